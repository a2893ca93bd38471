"""The best-prompt pool and the final choice among its prompts (``select_by``)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import prompt_gym  # noqa: F401
from prompt_gym.agents.baselines import RandomSearchAgent, RandomSearchConfig
from prompt_gym.agents.configs import SelectionConfig
from prompt_gym.agents.pool import PromptPool
from prompt_gym.testing import build_tiny_lm


def _pool() -> PromptPool:
    pool = PromptPool(max_size=3)
    pool.add("one more sentence right", 0.875, 0.30, update=4)
    pool.add("wider margin", 0.844, 0.44, update=9)
    pool.add("same margin, found later", 0.844, 0.44, update=12)
    pool.add("worst, dropped", 0.500, 0.90, update=1)  # kept by accuracy: the high gap does not save it
    return pool


def test_the_pool_keeps_by_accuracy_and_chooses_by_either_score():
    pool = _pool()
    assert [entry["prompt"] for entry in pool.entries] == ["one more sentence right", "wider margin",
                                                           "same margin, found later"]
    assert pool.best()["prompt"] == pool.best("accuracy")["prompt"] == "one more sentence right"
    assert pool.best("gap")["prompt"] == "wider margin"  # ties on the gap: the earlier found
    assert PromptPool(2).best("gap") is None
    with pytest.raises(ValueError, match="by must be one of accuracy, gap"):
        pool.best("loss")


def test_a_pool_rebuilt_from_a_checkpoint_chooses_the_same():
    pool = _pool()
    rebuilt = PromptPool.from_list(pool.to_list(), pool.max_size)
    assert rebuilt.best("gap") == pool.best("gap") and rebuilt.best() == pool.best()


def test_select_by_is_checked():
    with pytest.raises(ValueError, match="select_by must be one of accuracy, gap, got 'loss'"):
        SelectionConfig(select_by="loss")
    with pytest.raises(ValueError, match="select_by"):
        RandomSearchConfig(select_by="margin")


@pytest.mark.parametrize("select_by", ["accuracy", "gap"])
def test_an_agent_chooses_by_its_select_by(select_by):
    env = gym.make("PromptTune-Toy-v0")
    tokenizer = env.unwrapped.tokenizer
    agent = RandomSearchAgent(env, RandomSearchConfig(seed=0, batch_size=4, eval_interval=1, eval_samples=2,
                                                      final_samples=2, pool_size=10, select_by=select_by),
                              model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    agent.learn(total_updates=2)
    agent.pool.add("fewer right, wider margin", 0.0, 0.99, update=agent.num_updates)
    chosen = agent.select_prompt()
    if select_by == "gap":
        assert chosen["prompt"] == "fewer right, wider margin"
    else:
        assert chosen["val_accuracy"] == max(entry["val_accuracy"] for entry in agent.pool.to_list()) > 0.0


@pytest.mark.slow
def test_real_sst2_random_search_chooses_its_widest_margin(real_lm):
    model, tokenizer = real_lm  # agent and target share the default model, as `compare` runs them
    env = gym.make("PromptTune-SST2-v0", target=(model, tokenizer), tokenizer=tokenizer, max_prompt_tokens=8,
                   num_demos=1, reward_batch_size=4)
    agent = RandomSearchAgent(env, RandomSearchConfig(seed=0, batch_size=4, eval_interval=1, eval_samples=2,
                                                      final_samples=2, pool_size=10, select_by="gap"),
                              model=model, tokenizer=tokenizer)
    agent.learn(total_updates=1)
    chosen = agent.select_prompt()
    gaps = [entry["val_gap"] for entry in agent.pool.to_list()]
    assert len(gaps) >= 3 and len(set(gaps)) == len(gaps) and all(-1.0 <= gap <= 1.0 for gap in gaps)
    assert chosen["val_gap"] == max(gaps) and chosen == agent.pool.best("gap")
