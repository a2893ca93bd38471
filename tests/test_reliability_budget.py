"""Every budgeted run ends: cached (free) evaluations cannot keep a run going forever (issue 10, defect 4)."""

from __future__ import annotations

import dataclasses

import pytest

import prompt_gym
from prompt_gym.budget import BudgetedScorer, BudgetExhausted, NoProgress
from prompt_gym.runs import pipeline
from prompt_gym.runs.compare import CompareConfig, run_comparison
from prompt_gym.scoring import LMScorer
from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm

INPUTS = ["a delight", "a mess", "great fun", "dull and flat"]


@pytest.fixture(scope="module")
def caching_target():
    """Builds a fresh tiny-LM target with a score cache (repeated pairs are free)."""
    tokenizer = build_byte_tokenizer()
    model = build_tiny_lm(tokenizer)
    return lambda task=None: LMScorer(model, tokenizer, ("negative", "positive"))


def test_repeating_cached_prompts_ends_with_no_progress(caching_target):
    scorer = BudgetedScorer(caching_target(), limit=300)
    with pytest.raises(NoProgress, match="cache"):
        for _ in range(100_000):  # before the fix: never raised, 4 evaluations of 300 spent
            scorer.score_pairs(["the same prompt"] * len(INPUTS), INPUTS)
    assert scorer.num_evaluations == len(INPUTS)
    assert scorer.num_requested == scorer.stall_limit + len(INPUTS)
    assert isinstance(NoProgress("x"), BudgetExhausted)  # loops that stop on a spent budget stop on it too


def test_new_prompts_restart_the_streak_and_raising_the_limit_restarts_it(caching_target):
    scorer = BudgetedScorer(caching_target(), limit=100, patience=8)
    scorer.score_pairs(["p"] * 4, INPUTS)
    scorer.score_pairs(["p"] * 4, INPUTS)
    scorer.score_pairs(["p"] * 4, INPUTS)
    assert scorer.free_streak == 8
    scorer.limit = 200  # a new phase (prompt selection) may call again
    scorer.score_pairs(["p"] * 4, INPUTS)
    scorer.score_pairs(["q"] * 4, INPUTS)  # a new prompt: real evaluations
    assert scorer.free_streak == 0 and scorer.num_evaluations == 8
    scorer.score_pairs(["q"] * 4, INPUTS)
    scorer.score_pairs(["q"] * 4, INPUTS)
    with pytest.raises(NoProgress):
        scorer.score_pairs(["q"] * 4, INPUTS)
    scorer.score_pairs(["r"] * 4, INPUTS)  # signalled once: the next call runs
    assert scorer.num_evaluations == 12


def test_default_patience_scales_with_the_budget(caching_target):
    assert BudgetedScorer(caching_target(), limit=50).stall_limit == 1000
    assert BudgetedScorer(caching_target(), limit=5000).stall_limit == 50_000
    assert BudgetedScorer(caching_target()).stall_limit is None  # no budget: the run ends by its own steps


def test_collapsed_random_search_under_a_caching_target_ends(caching_target, tmp_path, monkeypatch):
    """The reported case: random search at temperature 1e-4 repeats its prompts, which the target has cached."""
    prompt_gym.register_task("toy-cached", dataclasses.replace(
        prompt_gym.get_task("toy"), name="toy-cached", default_scorer=caching_target), overwrite=True)
    monkeypatch.setattr(pipeline, "UNLIMITED_STEPS", 20_000)  # before the fix the run only ended here
    config = CompareConfig("PromptTune-Toy-v0", ["random-search"], 300, [0], tmp_path / "cmp",
                           env_kwargs={"task": "toy-cached", "reward_batch_size": 4, "max_prompt_tokens": 4,
                                       "num_demos": 2},
                           agent_options={"random-search": {"temperature": 1e-4, "final_samples": 1}})
    with pytest.warns(UserWarning, match="answered from its cache"):
        result = run_comparison(config, log=lambda line: None)[0]
    assert result["stopped_by"] == "no_progress"
    assert result["num_timesteps"] < 20_000 and result["evaluations"] < 300
    assert (tmp_path / "cmp" / "results.md").is_file()
