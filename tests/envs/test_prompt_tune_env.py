import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import prompt_gym  # noqa: F401
from prompt_gym.envs.prompt_tune import PromptTuneEnv
from prompt_gym.scoring import LMScorer


def _rollout(env, seed, actions):
    obs, info = env.reset(seed=seed)
    trace = [info["meta_prompt"]]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((reward, terminated, info["prompt"]))
        if terminated:
            break
    return trace, info


@pytest.mark.parametrize("mode", ["token", "text"])
def test_toy_env_passes_check_env(mode):
    check_env(gym.make("PromptTune-Toy-v0", action_mode=mode).unwrapped, skip_render_check=False)


def test_tiny_lm_env_passes_check_env_both_modes(tiny_lm):
    model, tokenizer = tiny_lm
    for mode in ("token", "text"):
        env = gym.make("PromptTune-Toy-v0", action_mode=mode, target=(model, tokenizer), tokenizer=tokenizer,
                       max_meta_prompt_tokens=1024)
        check_env(env.unwrapped)


def test_sb3_check_env_token_mode():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(gym.make("PromptTune-Toy-v0"))


def test_token_mode_episode():
    env = gym.make("PromptTune-Toy-v0").unwrapped
    words = "classify the review sentiment".split()
    obs, info = env.reset(seed=3)
    assert info["prompt"] == "" and obs["attention_mask"].sum() == len(env._episode.meta_ids)
    for word in words:
        obs, reward, terminated, truncated, info = env.step(env.tokenizer.ids[word])
        assert reward == 0.0 and not terminated and not truncated
    obs, reward, terminated, truncated, info = env.step(env.eos_token_id)
    assert terminated and not truncated
    assert info["prompt"] == "classify the review sentiment"
    assert reward == pytest.approx(30 * info["accuracy"] + info["gap"])
    assert obs["input_ids"][-1] == env.tokenizer.ids["sentiment"]  # EOS is not part of the prompt
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_token_mode_ends_at_max_prompt_tokens():
    env = gym.make("PromptTune-Toy-v0", max_prompt_tokens=3).unwrapped
    env.reset(seed=0)
    done = [env.step(env.tokenizer.ids["the"])[2] for _ in range(3)]
    assert done == [False, False, True]


def test_seeded_rollouts_are_reproducible(tiny_lm):
    model, tokenizer = tiny_lm
    make = lambda: gym.make("PromptTune-Toy-v0", target=(model, tokenizer), tokenizer=tokenizer,  # noqa: E731
                            max_meta_prompt_tokens=1024)
    actions = np.random.default_rng(0).integers(3, len(tokenizer), size=8)
    first, second = _rollout(make(), 5, actions), _rollout(make(), 5, actions)
    assert first[0] == second[0]
    assert _rollout(make(), 6, actions)[0][0] != first[0][0]


def test_text_mode_and_truncation():
    env = gym.make("PromptTune-Toy-v0", action_mode="text").unwrapped
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("Classify the sentiment of the review as positive or negative.")
    assert terminated and info["accuracy"] == 1.0 and not info["prompt_truncated"]
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="cut to max_prompt_tokens=12"):
        _, _, _, _, info = env.step("word " * 20)
    assert info["prompt_truncated"] and info["prompt"] == " ".join(["word"] * 12)


def test_bad_actions_and_arguments():
    env = gym.make("PromptTune-Toy-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        env.step(10_000)
    with pytest.raises(TypeError, match="one integer token id"):
        env.step("a prompt")
    text_env = gym.make("PromptTune-Toy-v0", action_mode="text").unwrapped
    text_env.reset(seed=0)
    with pytest.raises(TypeError, match="as a str"):
        text_env.step(5)
    with pytest.raises(ValueError, match="action_mode"):
        gym.make("PromptTune-Toy-v0", action_mode="words")
    with pytest.raises(KeyError, match="Unknown task"):
        PromptTuneEnv(task="nope")
    with pytest.raises(gym.error.NameNotFound):
        gym.make("PromptTune-Nope-v0")
    with pytest.raises(ValueError, match="max_meta_prompt_tokens"):
        gym.make("PromptTune-Toy-v0", max_meta_prompt_tokens=10).reset(seed=0)


def test_render_ansi():
    env = gym.make("PromptTune-Toy-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(env.unwrapped.tokenizer.ids["review"])
    assert env.render().endswith("review")


def test_envs_share_one_scorer(tiny_lm):
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, ["negative", "positive"])
    envs = [gym.make("PromptTune-Toy-v0", scorer=scorer, tokenizer=tokenizer, max_meta_prompt_tokens=1024)
            for _ in range(2)]
    assert envs[0].unwrapped.scorer is envs[1].unwrapped.scorer
    with pytest.raises(ValueError, match="verbalizer"):
        gym.make("PromptTune-Toy-v0", scorer=LMScorer(model, tokenizer, ["positive", "negative"]))


def test_toy_target_is_learnable_by_search():
    """More task words in the prompt give a higher reward: a signal an agent can climb."""
    env = gym.make("PromptTune-Toy-v0", action_mode="text", reward="accuracy").unwrapped
    rewards = []
    for prompt in ["", "review", "review sentiment", "classify review sentiment positive negative"]:
        env.reset(seed=0)
        rewards.append(env.step(prompt)[1])
    assert rewards == sorted(rewards) and rewards[-1] == 1.0 and rewards[0] < 0.75


@pytest.mark.slow
def test_sst2_env_on_real_model_and_data(real_lm):
    env = gym.make("prompt_gym:PromptTune-SST2-v0", action_mode="text", target=real_lm)
    obs, info = env.reset(seed=0)
    assert "Output: positive" in obs or "Output: negative" in obs
    assert obs.startswith("<|im_start|>system")  # the agent tokenizer's chat template
    _, reward, terminated, _, info = env.step(env.unwrapped.task.manual_prompt)
    assert terminated and 0.0 <= info["accuracy"] <= 1.0 and reward == pytest.approx(30 * info["accuracy"] + info["gap"])
    token_env = gym.make("PromptTune-SST2-v0", target=real_lm)
    obs, _ = token_env.reset(seed=0)
    assert token_env.action_space.n == len(real_lm[1])
    obs, reward, terminated, _, info = token_env.step(real_lm[1].eos_token_id)
    assert terminated and info["prompt"] == ""
