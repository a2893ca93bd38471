import warnings

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
    assert info["prompt"] == "" and obs["attention_mask"].sum() == len(env.tokenizer.encode(info["meta_prompt"]))
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
    env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the env said it once; every later cut prompt is flagged in info only
        _, _, _, _, info = env.step("word " * 30)
    assert info["prompt_truncated"]


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


@pytest.mark.slow
def test_meta_prompt_template_on_real_model_and_data(real_lm):
    """A custom wording goes into the chat template's user turn; the episode is scored as before."""
    template = "{pairs}\n\nIn one short sentence, describe the task above."
    env = gym.make("PromptTune-SST2-v0", action_mode="text", target=real_lm, meta_prompt_template=template)
    obs, info = env.reset(seed=0)
    default, _ = gym.make("PromptTune-SST2-v0", action_mode="text", target=real_lm).reset(seed=0)
    demos = default[default.index("Input: "):default.index("\n\nWhat was the instruction?")]
    assert "<|im_start|>user\n" + demos + "\n\nIn one short sentence, describe the task above.<|im_end|>" in obs
    assert obs.endswith("<|im_start|>assistant\n") and info["meta_prompt"] == obs
    _, reward, terminated, _, info = env.step(env.unwrapped.task.manual_prompt)
    assert terminated and reward == pytest.approx(30 * info["accuracy"] + info["gap"])


def test_public_interface_the_vector_env_uses():
    """check_action, apply, reward_examples, observation: step is exactly apply + one judge call."""
    env = gym.make("PromptTune-Toy-v0").unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.observation()
    obs, info = env.reset(seed=4)
    np.testing.assert_array_equal(env.observation()["input_ids"], obs["input_ids"])
    word = env.tokenizer.ids["review"]
    assert env.check_action(np.int64(word)) == word
    with pytest.raises(ValueError, match="outside the vocabulary"):
        env.check_action(10**6)
    np.testing.assert_array_equal(env.observation()["input_ids"], obs["input_ids"])  # checking changed nothing
    before = env.scorer.num_evaluations
    assert env.apply(word) == (False, {"meta_prompt": info["meta_prompt"], "prompt": "review",
                                       "demo_uids": info["demo_uids"]})
    finished, info = env.apply(env.eos_token_id)
    assert finished and info["prompt"] == "review" and env.scorer.num_evaluations == before  # apply never scores
    assert env.observation()["input_ids"][-1] == word
    with pytest.raises(RuntimeError, match="call reset"):
        env.check_action(word)
    stepped = gym.make("PromptTune-Toy-v0").unwrapped
    stepped.reset(seed=4)
    assert stepped.reward_examples == env.reward_examples
    stepped.step(word)
    reward = stepped.step(stepped.eos_token_id)[1]
    assert reward == env.judge.judge(["review"], [env.reward_examples])[0]["reward"]


def test_evaluations_per_episode_is_what_one_episode_costs():
    env = gym.make("PromptTune-Toy-v0", action_mode="text").unwrapped
    assert env.evaluations_per_episode == 8  # the registered reward_batch_size
    for seed in range(3):
        env.reset(seed=seed)
        before = env.scorer.num_evaluations
        env.step("classify the review")
        assert env.scorer.num_evaluations - before == env.evaluations_per_episode == len(env.reward_examples)
    with pytest.raises(AttributeError):
        env.evaluations_per_episode = 3
    assert gym.make("PromptTune-Toy-v0", reward_batch_size=3).unwrapped.evaluations_per_episode == 3
    assert gym.make("PromptTune-Toy-v0", reward_batch_size=100).unwrapped.evaluations_per_episode == 8  # train size
    assert gym.make_vec("PromptTune-Toy-v0", num_envs=2, reward_batch_size=4).unwrapped.evaluations_per_episode == 4


def test_tte_env_costs_one_evaluation_and_refuses_reward_batch_size():
    env = gym.make("PromptTune-TTE-SST2-v0", task="toy", action_mode="text").unwrapped
    env.reset(seed=0)
    before = env.scorer.num_evaluations
    env.step("classify the review")
    assert env.evaluations_per_episode == 1 == env.scorer.num_evaluations - before
    with pytest.raises(TypeError, match="takes no reward_batch_size"):
        gym.make("PromptTune-TTE-SST2-v0", task="toy", reward_batch_size=1)


def test_meta_prompt_template_is_what_the_agent_reads():
    template = "Examples of a task ({count}):\n\n{pairs}\n\nWrite a short instruction for it."
    env = gym.make("PromptTune-Toy-v0", action_mode="text", meta_prompt_template=template)
    observation, _ = env.reset(seed=0)
    default, _ = gym.make("PromptTune-Toy-v0", action_mode="text").reset(seed=0)
    assert observation.startswith("Examples of a task (three):\n\nInput: ")
    assert "Write a short instruction for it." in observation and "What was the instruction?" in default
    assert observation.split("\n\n")[1] == default.split("\n\n")[1]  # the same demonstrations
    vector_observations, _ = gym.make_vec("PromptTune-Toy-v0", num_envs=2, action_mode="text",
                                          meta_prompt_template=template).reset(seed=0)
    assert vector_observations[0] == observation
    tte = gym.make("PromptTune-TTE-SST2-v0", task="toy", action_mode="text",
                   meta_prompt_template="{pairs}\n\nNow this one: {current}\nInstruction:")
    observation, _ = tte.reset(seed=0)
    assert "Now this one: " in observation and "{current}" not in observation


@pytest.mark.parametrize(("template", "message"), [
    ("Write an instruction.", r"no \{pairs\} field; add it where that text should appear.*demonstrations"),
    ("{pairs} and {label}", r"only use the fields \{count\}, \{pairs\}.*KeyError\('label'\)"),
    ("{pairs} in {braces", r"write a literal brace as \{\{"),
])
def test_bad_meta_prompt_template_says_what_to_do(template, message):
    with pytest.raises(TypeError, match="must be a string"):
        gym.make("PromptTune-Toy-v0", meta_prompt_template=42)
    with pytest.raises(ValueError, match=message):
        gym.make("PromptTune-Toy-v0", meta_prompt_template=template)


def test_tte_meta_prompt_template_needs_the_current_input():
    with pytest.raises(ValueError, match=r"no \{current\} field"):
        gym.make("PromptTune-TTE-SST2-v0", task="toy", meta_prompt_template="{pairs}\nInstruction:")


def test_vector_env_touches_no_private_member_of_the_single_env():
    """The vector env drives sub-envs through the public interface only (no friend-class coupling)."""
    import ast
    import inspect

    from prompt_gym.envs import vector

    single_privates = {name for name in vars(PromptTuneEnv) if name.startswith("_") and not name.startswith("__")}
    single_privates |= {name for name in vars(gym.make("PromptTune-Toy-v0").unwrapped) if name.startswith("_")}
    used = {node.attr for node in ast.walk(ast.parse(inspect.getsource(vector))) if isinstance(node, ast.Attribute)}
    assert single_privates & used == set()


def test_spec_sheets_list_the_attributes_agents_may_read():
    from prompt_gym.agents.rollout import PROMPT_ENV_ATTRIBUTES
    from prompt_gym.envs.tte import TTEEnv

    for env_class in (PromptTuneEnv, TTEEnv):
        sheet = env_class.__doc__.split("## Attributes agents may read")[1].split("## ")[0]
        assert {name for name in PROMPT_ENV_ATTRIBUTES if f"``{name}``" not in sheet} == set(), env_class
    env = gym.make("PromptTune-Toy-v0").unwrapped
    assert all(hasattr(env, name) for name in PROMPT_ENV_ATTRIBUTES)


def test_reward_callable_passes_through_both_envs():
    """``reward=`` takes a callable ``f(scores, gaps, **reward_kwargs) -> (rewards, parts)``, single and vector."""
    def hits(scores, gaps, bonus=0.0):
        return scores.sum(axis=1) + bonus, {"accuracy": scores.mean(axis=1)}

    env = gym.make("PromptTune-Toy-v0", action_mode="text", reward=hits, reward_kwargs={"bonus": 0.5})
    env.reset(seed=0)
    _, reward, _, _, info = env.step("classify the review sentiment")
    assert reward == pytest.approx(8 * info["accuracy"] + 0.5)
    envs = gym.make_vec("PromptTune-Toy-v0", num_envs=2, action_mode="text", reward=hits)
    envs.reset(seed=0)
    rewards = envs.step(["classify the review sentiment"] * 2)[1]
    assert rewards[0] == pytest.approx(reward - 0.5)
