import gymnasium as gym
import numpy as np
import pytest
import torch

from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.agents.decoding import Decoder
from prompt_gym.testing import build_tiny_lm
from prompt_gym.toy import WordTokenizer

LORA = ModelConfig(lora_target_modules=["q_proj", "v_proj", "lm_head"])


def test_appo_learns_the_toy_task():
    """The toy target is competent when the prompt holds task keywords; APPO must find them.

    Token mode, a tiny random Llama over the toy word vocabulary (~60 words, 5 of them keywords),
    12-token prompts, reward = accuracy on the 8 training examples.
    """
    tokenizer = WordTokenizer()
    env = gym.make("PromptTune-Toy-v0", reward="accuracy", max_prompt_tokens=12)
    config = APPOConfig(seed=0, learning_rate=3e-2, batch_size=16, kl_coef=0.01,
                        anchor_check_interval=5, anchor_samples=2)
    agent = APPOAgent(env, config, LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    agent.learn(total_updates=30, progress_bar=False)
    rewards = [r["rollout/reward"] for r in agent.logger.history if "rollout/reward" in r]
    first, last = np.mean(rewards[:3]), np.mean(rewards[-5:])
    assert last > first + 0.12, rewards
    assert last > 0.8, rewards


@pytest.mark.parametrize("minibatch_size", [None, 1])
def test_target_kl_stops_the_passes_once_the_policy_moved_too_far(toy_env, minibatch_size):
    """One step at lr 1e-2 moves a tiny model far; a tiny ``target_kl`` stops the update right after it."""

    def last_stats(**options):
        tokenizer = WordTokenizer()
        config = APPOConfig(seed=0, learning_rate=1e-2, batch_size=8, minibatch_size=minibatch_size, ppo_epochs=3,
                            anchor_check_interval=1000, anchor_samples=1, final_samples=1, **options)
        agent = APPOAgent(toy_env, config, LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
        agent.learn(total_updates=1, progress_bar=False)
        return agent.last_stats

    assert last_stats()["train/gradient_steps"] == 3 * (1 if minibatch_size is None else 8)
    stopped = last_stats(target_kl=1e-9)
    assert stopped["train/gradient_steps"] == 1
    assert stopped["train/approx_kl"] > 1e-9


def test_target_kl_must_be_positive():
    with pytest.raises(ValueError, match="target_kl must be None or positive"):
        APPOConfig(target_kl=0.0)


def test_vector_env_same_step_with_kv_cache():
    tokenizer = WordTokenizer()
    envs = gym.make_vec("PromptTune-Toy-v0", 3, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                        max_prompt_tokens=5, num_demos=2, reward_batch_size=4)
    config = APPOConfig(seed=0, batch_size=4, minibatch_size=2, ppo_epochs=1, learning_rate=1e-2)
    agent = APPOAgent(envs, config, LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    agent.learn(total_updates=2, progress_bar=False)
    assert agent.num_updates == 2 and agent.num_timesteps >= 8
    assert agent.logger.history[-1]["time/target_evaluations"] > 0


@pytest.mark.parametrize("mode", ["token", "text"])
def test_native_vector_env(mode):
    """The package's own vector env (one shared scorer, batched scoring) drives APPO unchanged."""
    tokenizer = WordTokenizer()
    envs = gym.make_vec("PromptTune-Toy-v0", 3, action_mode=mode, max_prompt_tokens=5, num_demos=2,
                        reward_batch_size=4)
    assert type(envs.unwrapped).__name__ == "PromptTuneVectorEnv"
    config = APPOConfig(seed=0, batch_size=4, minibatch_size=2, ppo_epochs=1, learning_rate=1e-2,
                        anchor_check_interval=1)
    agent = APPOAgent(envs, config, LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    agent.learn(total_updates=2, progress_bar=False)
    assert agent.num_updates == 2 and agent.num_timesteps >= 8
    assert agent.logger.history[-1]["time/target_evaluations"] > 0
    assert agent.select_prompt()["val_accuracy"] >= 0


def test_vector_env_needs_same_step():
    envs = gym.make_vec("PromptTune-Toy-v0", 2, vectorization_mode="sync")
    tokenizer = WordTokenizer()
    with pytest.raises(ValueError, match="SAME_STEP"):
        APPOAgent(envs, APPOConfig(), LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)


def test_incremental_decoding_matches_full_forward():
    """Cached one-token steps, with rows restarting at different times, equal a fresh full encoding."""
    tokenizer = WordTokenizer()
    agent = APPOAgent(None, APPOConfig(seed=0, max_prompt_tokens=4), LORA, model=build_tiny_lm(tokenizer),
                      tokenizer=tokenizer)
    decoder = Decoder(agent.policy, pad_id=0)
    rows = [[5, 6, 7], [8, 9, 10, 11, 12, 13]]
    state = decoder.prefill(rows)
    decoder.feed(state, [20, 21])
    decoder.restart(state, [0], [[30, 31, 32, 33, 34, 35, 36, 37, 38]])
    decoder.feed(state, [22, 23])
    reference = decoder.prefill([[30, 31, 32, 33, 34, 35, 36, 37, 38, 22], [8, 9, 10, 11, 12, 13, 21, 23]])
    torch.testing.assert_close(state.logits, reference.logits, rtol=1e-4, atol=1e-5)
    assert state.mask.shape[1] == 10  # columns that are padding in every row are trimmed


def test_token_mode_predict_keeps_state_across_steps(toy_env, make_agent):
    agent = make_agent()
    obs, _ = toy_env.reset(seed=1)
    state, steps, done = None, 0, False
    while not done:
        action, state = agent.predict(obs, state)
        assert isinstance(action, int)
        obs, reward, done, _, info = toy_env.step(action)
        steps += 1
    assert steps <= 4 and "accuracy" in info
    assert len(state.tokens[0]) == len(agent._encode(info["meta_prompt"])) + steps - 1


def test_text_mode_learns_without_errors(env_factory):
    tokenizer = WordTokenizer()
    env = env_factory(action_mode="text")
    agent = APPOAgent(env, APPOConfig(seed=0, batch_size=2, minibatch_size=2, ppo_epochs=1, learning_rate=1e-2),
                      LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    obs, _ = env.reset(seed=0)
    prompt, state = agent.predict(obs)
    assert isinstance(prompt, str) and state is None
    agent.learn(total_updates=2, progress_bar=False)
    assert agent.num_updates == 2 and agent.num_timesteps == 4


def test_user_loop_with_remember_and_update(toy_env, make_agent):
    agent = make_agent()
    obs, _ = toy_env.reset(seed=0)
    state = None
    while agent.num_updates < 1:
        action, state = agent.predict(obs, state)
        next_obs, reward, terminated, truncated, info = toy_env.step(action)
        agent.remember(obs, action, reward, terminated, truncated, info)
        obs = toy_env.reset()[0] if terminated or truncated else next_obs
        if agent.batch_ready:
            agent.update()
    assert agent.logger.history[-1]["rollout/reward"] > 0


def test_env_with_another_tokenizer_is_rejected(fresh_tiny_lm, toy_env):
    model, tokenizer = fresh_tiny_lm
    big = gym.make("PromptTune-Toy-v0", tokenizer=tokenizer)
    small_model = build_tiny_lm(WordTokenizer())
    with pytest.raises(ValueError, match="tokenizer"):
        APPOAgent(big, APPOConfig(), LORA, model=small_model, tokenizer=WordTokenizer())


def test_finished_episodes_beyond_a_batch_open_the_next_one(tmp_path):
    """A vector env can finish more episodes than a batch needs: they were paid for, so none is dropped."""
    tokenizer = WordTokenizer()
    envs = gym.make_vec("PromptTune-Toy-v0", 3, action_mode="text", max_prompt_tokens=3, num_demos=1,
                        reward_batch_size=2)
    config = APPOConfig(seed=0, batch_size=2, ppo_epochs=1, learning_rate=1e-2, elite_replay=0,
                        anchor_check_interval=100, anchor_samples=1)
    agent = APPOAgent(envs, config, LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    agent.learn(total_updates=1, progress_bar=False)
    assert len(agent._buffer) == 1  # 3 finished in one step, 2 trained on
    leftover = agent._buffer[0].actions
    agent.save_checkpoint(tmp_path)
    restored = APPOAgent(envs, config, LORA, model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    restored.load_checkpoint(tmp_path)
    assert [t.actions for t in restored._buffer] == [leftover]
    trained = []
    original = agent._ppo_update
    agent._ppo_update = lambda batch, fresh: trained.append([t.actions for t in batch]) or original(batch, fresh)
    agent.learn(total_updates=2, progress_bar=False)
    assert trained[0][0] == leftover
