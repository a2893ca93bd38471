import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

import prompt_gym  # noqa: F401
from prompt_gym.envs.prompt_tune import PromptTuneEnv
from prompt_gym.envs.tte import TTEEnv, TTEVectorEnv
from prompt_gym.envs.vector import PromptTuneVectorEnv
from prompt_gym.rewards import zscore
from prompt_gym.scoring import LMScorer

TEXT_PROMPTS = ["classify the review sentiment", "", "review", "say if the review is positive or negative"]


def _tiny_kwargs(tiny_lm, mode="token"):
    """A tiny-LM target; short token-mode episodes, text prompts that fit (the tokenizer is byte-level)."""
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, ["negative", "positive"], batch_size=7)
    return {"scorer": scorer, "tokenizer": tokenizer, "max_meta_prompt_tokens": 1024, "action_mode": mode,
            "max_prompt_tokens": 6 if mode == "token" else 64}


def _actions(envs, steps, seed=0):
    if isinstance(envs.single_action_space, gym.spaces.Discrete):
        rng = np.random.default_rng(seed)
        return [rng.integers(0, envs.single_action_space.n, size=envs.num_envs) for _ in range(steps)]
    count = len(TEXT_PROMPTS)
    return [tuple(TEXT_PROMPTS[(t + i) % count] for i in range(envs.num_envs)) for t in range(steps)]


def _rollout(envs, seed, actions):
    trace = [envs.reset(seed=seed)]
    trace += [envs.step(action) for action in actions]
    return trace


def _check_vector_env(envs, steps=10):
    """What Gymnasium's vector envs guarantee: batched spaces, shapes, dtypes, SAME_STEP autoreset."""
    n = envs.num_envs
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.observation_space == batch_space(envs.single_observation_space, n)
    assert envs.action_space == batch_space(envs.single_action_space, n)
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space
    assert all(info[f"_{key}"].all() for key in ("meta_prompt", "prompt", "demo_uids"))
    finished = 0
    for action in _actions(envs, steps):
        obs, rewards, terminated, truncated, info = envs.step(action)
        assert obs in envs.observation_space
        assert rewards.shape == (n,) and rewards.dtype == np.float64
        assert terminated.shape == truncated.shape == (n,) and terminated.dtype == truncated.dtype == np.bool_
        assert not truncated.any()
        assert (rewards[~terminated] == 0).all()
        if terminated.any():
            assert (info["_final_obs"] == terminated).all() and (info["_final_info"] == terminated).all()
            for i in np.flatnonzero(terminated):
                assert info["final_obs"][i] in envs.single_observation_space
                assert info["final_info"]["_accuracy"][i]
            # the returned observation already starts the next episode
            assert (info["prompt"][terminated] == "").all()
            finished += int(terminated.sum())
    assert finished > 0
    envs.close()
    envs.close()


@pytest.mark.parametrize("mode", ["token", "text"])
def test_make_vec_builds_the_native_env_without_warnings(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs = gym.make_vec("PromptTune-Toy-v0", num_envs=3, action_mode=mode)
    assert isinstance(envs, PromptTuneVectorEnv) and envs.num_envs == 3
    assert envs.spec.id == "PromptTune-Toy-v0"
    assert all(env.scorer is envs.scorer and env.tokenizer is envs.tokenizer for env in envs.envs)


@pytest.mark.parametrize("mode", ["token", "text"])
def test_vector_env_checks_rule_target(mode):
    _check_vector_env(gym.make_vec("PromptTune-Toy-v0", num_envs=3, action_mode=mode,
                                   max_prompt_tokens=4 if mode == "token" else 12))


@pytest.mark.parametrize("mode", ["token", "text"])
def test_vector_env_checks_tiny_lm(tiny_lm, mode):
    _check_vector_env(gym.make_vec("PromptTune-Toy-v0", num_envs=2, **_tiny_kwargs(tiny_lm, mode)))


@pytest.mark.parametrize("mode", ["token", "text"])
def test_seeded_rollouts_are_deterministic(tiny_lm, mode):
    make = lambda: gym.make_vec("PromptTune-Toy-v0", num_envs=3, **_tiny_kwargs(tiny_lm, mode))  # noqa: E731
    actions = _actions(make(), 14)
    first, second = _rollout(make(), 7, actions), _rollout(make(), 7, actions)
    assert data_equivalence(first, second, exact=True)
    other = _rollout(make(), 8, actions)
    assert not data_equivalence(first[0], other[0])


def _assert_same_rollouts(ours, reference, seed=11, steps=16):
    """Both vector envs give the same observations, rewards (to 1e-4), terminations and infos."""
    actions = _actions(ours, steps, seed=3)
    got, expected = _rollout(ours, seed, actions), _rollout(reference, seed, actions)
    assert data_equivalence(got[0], expected[0], exact=True)
    finished = 0
    for ours_step, reference_step in zip(got[1:], expected[1:], strict=True):
        obs, rewards, terminated, truncated, info = ours_step
        obs_r, rewards_r, terminated_r, truncated_r, info_r = reference_step
        assert data_equivalence(obs, obs_r, exact=True)
        assert (terminated == terminated_r).all() and (truncated == truncated_r).all()
        np.testing.assert_allclose(rewards, rewards_r, atol=1e-4)  # one batched call vs one call per env
        assert info.keys() == info_r.keys()
        for key in ("meta_prompt", "prompt", "demo_uids"):
            assert data_equivalence(info[key], info_r[key])
        if terminated.any():
            assert data_equivalence(info["final_obs"], info_r["final_obs"], exact=True)
            np.testing.assert_allclose(info["final_info"]["accuracy"], info_r["final_info"]["accuracy"])
            np.testing.assert_allclose(info["final_info"]["gap"], info_r["final_info"]["gap"], atol=1e-4)
            finished += int(terminated.sum())
    assert finished >= ours.num_envs


@pytest.mark.parametrize("mode", ["token", "text"])
def test_equals_separate_single_envs(tiny_lm, mode):
    """Sub-env i of reset(seed=s) is PromptTuneEnv.reset(seed=s + i); SAME_STEP autoreset."""
    kwargs = {"task": "toy", "num_demos": 3, "reward_batch_size": 8}
    ours = PromptTuneVectorEnv(num_envs=4, **kwargs, **_tiny_kwargs(tiny_lm, mode))
    separate = _tiny_kwargs(tiny_lm, mode)  # its own scorer, so no score comes from the other's cache
    reference = SyncVectorEnv([lambda: PromptTuneEnv(**kwargs, **separate) for _ in range(4)],
                              autoreset_mode=AutoresetMode.SAME_STEP)
    _assert_same_rollouts(ours, reference)


def test_test_time_editing_vector_env_equals_separate_single_envs(tiny_lm):
    """gym.make_vec on the TTE env gives the native vector env of TTEEnv (what APPO trains with)."""
    kwargs = {"task": "toy", "num_demos": 2}
    ours = gym.make_vec("PromptTune-TTE-SST2-v0", num_envs=3, **kwargs, **_tiny_kwargs(tiny_lm, "text"))
    assert isinstance(ours, TTEVectorEnv) and all(isinstance(e, TTEEnv) for e in ours.envs)
    separate = _tiny_kwargs(tiny_lm, "text")
    reference = SyncVectorEnv([lambda: TTEEnv(**kwargs, **separate) for _ in range(3)],
                              autoreset_mode=AutoresetMode.SAME_STEP)
    _assert_same_rollouts(ours, reference)


def test_finished_prompts_are_scored_in_one_call(tiny_lm, monkeypatch):
    kwargs = _tiny_kwargs(tiny_lm, "text")
    envs = gym.make_vec("PromptTune-Toy-v0", num_envs=4, **kwargs)
    calls = []
    real = kwargs["scorer"].score_pairs
    monkeypatch.setattr(kwargs["scorer"], "score_pairs", lambda p, x: calls.append(len(p)) or real(p, x))
    envs.reset(seed=0)
    envs.step(TEXT_PROMPTS)
    assert calls == [4 * 8]  # 4 prompts x reward_batch_size 8, one call


def test_zscore_normalises_across_the_prompts_of_a_step():
    plain = gym.make_vec("PromptTune-Toy-v0", num_envs=4, action_mode="text")
    normed = gym.make_vec("PromptTune-Toy-v0", num_envs=4, action_mode="text", reward_normalization="zscore")
    plain.reset(seed=0)
    normed.reset(seed=0)
    raw = plain.step(TEXT_PROMPTS)[1]
    _, rewards, _, _, info = normed.step(TEXT_PROMPTS)
    assert raw.std() > 0
    np.testing.assert_allclose(info["final_info"]["raw_reward"], raw)
    np.testing.assert_allclose(rewards, zscore(raw))
    assert abs(rewards.mean()) < 1e-9 and rewards.std() == pytest.approx(1.0, abs=1e-6)


def test_reset_mask_resets_only_marked_envs():
    envs = gym.make_vec("PromptTune-Toy-v0", num_envs=3)
    envs.reset(seed=0)
    word = envs.envs[0].tokenizer.ids["review"]
    stepped = envs.step(np.full(3, word))[0]
    obs, info = envs.reset(options={"reset_mask": np.array([True, False, True])})
    assert (info["_prompt"] == [True, False, True]).all()
    assert [env.render() is None for env in envs.envs] == [True] * 3  # no render_mode
    assert [obs["input_ids"][i, -1] == word for i in range(3)] == [False, True, False]
    np.testing.assert_array_equal(obs["input_ids"][1], stepped["input_ids"][1])


def test_render_and_bad_arguments():
    envs = gym.make_vec("PromptTune-Toy-v0", num_envs=2, render_mode="ansi")
    envs.reset(seed=0)
    envs.step(np.full(2, envs.envs[0].tokenizer.ids["review"]))
    assert all(text.endswith("review") for text in envs.render())
    with pytest.raises(ValueError, match="num_envs must be positive"):
        PromptTuneVectorEnv(num_envs=0, task="toy")
    with pytest.raises(ValueError, match="one per sub-env"):
        envs.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="one seed per sub-environment"):
        envs.reset(seed=[1])
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="normalize"):
        gym.make_vec("PromptTune-Toy-v0", num_envs=2, reward_normalization="minmax")


@pytest.mark.slow
def test_vector_env_on_real_model_and_data(real_lm):
    kwargs = {"target": real_lm, "reward_batch_size": 4}
    envs = gym.make_vec("PromptTune-SST2-v0", num_envs=2, max_prompt_tokens=3, **kwargs)
    obs, _ = envs.reset(seed=0)
    assert obs["input_ids"].shape[0] == 2
    tokenizer = envs.tokenizer
    word = tokenizer.encode(" sentiment", add_special_tokens=False)[0]
    for _ in range(2):
        _, rewards, terminated, _, _ = envs.step(np.array([word, word]))
        assert not terminated.any() and not rewards.any()
    _, rewards, terminated, _, info = envs.step(np.array([word, word]))
    assert terminated.all() and (info["final_info"]["prompt"] == tokenizer.decode([word] * 3).strip()).all()
    single = gym.make("PromptTune-SST2-v0", action_mode="text", **kwargs)
    single.reset(seed=0)
    np.testing.assert_allclose(rewards[0], single.step(info["final_info"]["prompt"][0])[1], atol=1e-4)
