"""docs/architecture.md: its "Add an agent" recipe runs as written, and the agent it registers runs through compare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prompt_gym.agents.registry import AGENTS
from prompt_gym.runs.compare import CompareConfig, run_comparison

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.fixture
def recipe():
    """The namespace after running the page's python block (the bandit registered), unregistered afterwards."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 1
    namespace: dict = {"__name__": "architecture_recipe"}
    exec(compile(blocks[0], str(DOC), "exec", dont_inherit=True), namespace)
    yield namespace
    del AGENTS["bandit"]


def test_the_add_an_agent_recipe_runs_as_written(recipe):
    agent = recipe["agent"]
    assert agent.num_updates == 12 and sum(len(r) for r in agent.rewards.values()) == 12
    selected = agent.select_prompt()
    assert selected["prompt"] in recipe["BanditConfig"]().candidates
    assert 0.0 <= selected["val_accuracy"] <= 1.0


def test_the_registered_agent_runs_through_compare(recipe, tmp_path):
    config = CompareConfig("PromptTune-Toy-v0", ["bandit", "manual"], 200, [0], tmp_path / "cmp")
    results = {r["agent"]: r for r in run_comparison(config, log=lambda line: None)}
    bandit = results["bandit"]
    assert bandit["stopped_by"] == "budget" and bandit["evaluations"] <= 200 and bandit["num_updates"] > 0
    assert bandit["prompt"] in recipe["BanditConfig"]().candidates
    assert 0.0 <= bandit["test_accuracy"] <= 1.0
