"""``judge_ahead``: a group's prompts scored in one target call, with the rewards and counts of one by one."""

import gymnasium as gym
import numpy as np
import pytest

import prompt_gym  # noqa: F401
from prompt_gym.budget import BudgetedScorer, BudgetExhausted
from prompt_gym.scoring import LMScorer
from prompt_gym.testing import CallCountingScorer


def _play(env, seed, prompts, ahead):
    """Play each prompt as one episode reset with ``seed``; returns ``[(reward, info), ...]``."""
    env.reset(seed=seed)
    if ahead:
        assert env.unwrapped.judge_ahead(prompts) == len(prompts)
    played = []
    for prompt in prompts:
        env.reset(seed=seed)
        steps = [prompt] if isinstance(prompt, str) else [*prompt, env.unwrapped.eos_token_id]
        for action in steps:
            _, reward, terminated, _, info = env.step(action)
            if terminated:
                break
        played.append((reward, info))
    return played


def _lm_env(tiny_lm, mode, budget=None, **kwargs):
    """A toy env on the tiny LM; its scorer counts calls (and has a budget when ``budget`` is given)."""
    model, tokenizer = tiny_lm
    scorer = CallCountingScorer(LMScorer(model, tokenizer, ("negative", "positive"), cache_size=0))
    scorer = scorer if budget is None else BudgetedScorer(scorer, limit=budget)
    options = {"action_mode": mode, "scorer": scorer, "tokenizer": tokenizer, "max_prompt_tokens": 6,
               "reward_batch_size": 4, "num_demos": 1, "max_meta_prompt_tokens": 1024} | kwargs
    return gym.make("PromptTune-Toy-v0", **options), scorer


def _assert_same(ahead, plain):
    for (reward_a, info_a), (reward_p, info_p) in zip(ahead, plain, strict=True):
        assert info_a["prompt"] == info_p["prompt"]
        assert reward_a == pytest.approx(reward_p, abs=1e-4)
        assert info_a["accuracy"] == info_p["accuracy"]
        assert info_a["prompt_truncated"] == info_p["prompt_truncated"]


def test_text_prompts_are_scored_in_one_call_with_the_same_rewards(tiny_lm):
    # special tokens are dropped and a long prompt is cut, as step() does; a repeated prompt serves twice
    prompts = ["Classify it.", "Is the review good?", "Classify it.", f"Say it{tiny_lm[1].eos_token}", "a b c d e f g h"]
    ahead_env, ahead_scorer = _lm_env(tiny_lm, "text")
    plain_env, plain_scorer = _lm_env(tiny_lm, "text")
    with pytest.warns(UserWarning):
        ahead = _play(ahead_env, 3, prompts, ahead=True)
        plain = _play(plain_env, 3, prompts, ahead=False)
    _assert_same(ahead, plain)
    assert ahead[-1][1]["prompt_truncated"]
    assert (ahead_scorer.calls, plain_scorer.calls) == (1, len(prompts))
    assert ahead_scorer.num_evaluations == plain_scorer.num_evaluations == len(prompts) * 4


def test_token_prompts_end_at_the_first_eos_and_the_length_limit(tiny_lm):
    tokenizer = tiny_lm[1]
    words = [tokenizer.encode(text, add_special_tokens=False) for text in ("Rate", "Classify the review", "ok")]
    prompts = [words[0], words[1], [*words[2], tokenizer.eos_token_id, *words[0]]]  # 2nd: past max_prompt_tokens
    ahead_env, ahead_scorer = _lm_env(tiny_lm, "token")
    plain_env, plain_scorer = _lm_env(tiny_lm, "token")
    _assert_same(_play(ahead_env, 5, prompts, ahead=True), _play(plain_env, 5, prompts, ahead=False))
    assert (ahead_scorer.calls, plain_scorer.calls) == (1, len(prompts))


def test_the_budget_bounds_what_is_scored_ahead_and_refuses_at_the_same_prompt(tiny_lm):
    budgets = []
    for ahead in (True, False):
        env, budget = _lm_env(tiny_lm, "text", budget=10)  # 2 prompts of 4 examples fit, the third does not
        env.reset(seed=1)
        if ahead:
            assert env.unwrapped.judge_ahead(["one", "two", "three"]) == 2
        rewards = []
        for prompt in ("one", "two", "three"):
            env.reset(seed=1)
            try:
                rewards.append(env.step(prompt)[1])
            except BudgetExhausted:
                rewards.append(None)
        budgets.append((rewards, budget.num_evaluations))
    assert budgets[0][0][2] is None and budgets[1][0][2] is None
    np.testing.assert_allclose(budgets[0][0][:2], budgets[1][0][:2], atol=1e-4)
    assert budgets[0][1] == budgets[1][1] == 8


def test_scores_ahead_serve_only_their_own_reward_batch_and_only_once(tiny_lm):
    env, scorer = _lm_env(tiny_lm, "text", max_prompt_tokens=32)
    env.reset(seed=1)
    env.unwrapped.judge_ahead(["Classify it."])
    env.reset(seed=2)  # another reward batch: the prompt is scored again
    env.step("Classify it.")
    env.reset(seed=1)
    env.step("Classify it.")  # served from the call ahead
    env.reset(seed=1)
    env.step("Classify it.")  # already used once: scored again
    assert scorer.calls == 3


@pytest.mark.slow
def test_real_sst2_group_scored_ahead_equals_one_by_one(real_lm):
    model, tokenizer = real_lm
    prompts = ["Classify the sentiment of the review.", "Is this review positive or negative?", "Review:",
               "Classify the sentiment of the review."]
    played = {}
    for ahead in (True, False):
        scorer = CallCountingScorer(LMScorer(model, tokenizer, ("negative", "positive"), cache_size=0))
        env = gym.make("PromptTune-SST2-v0", target=(model, tokenizer), scorer=scorer, tokenizer=tokenizer,
                       action_mode="text", max_prompt_tokens=16, num_demos=1, reward_batch_size=16)
        played[ahead] = (_play(env, 7, prompts, ahead), scorer.calls, scorer.num_evaluations)
    _assert_same(played[True][0], played[False][0])
    assert played[True][1:] == (1, 64) and played[False][1:] == (4, 64)
