"""The run layer: flags generated from the configs, and a user's own agent through ``train`` and ``compare``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from prompt_gym.agents.base import Agent
from prompt_gym.agents.configs import ModelConfig
from prompt_gym.agents.registry import AGENTS, make_agent, register_agent
from prompt_gym.budget import BudgetedScorer
from prompt_gym.callbacks import as_callback
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.logging import Logger
from prompt_gym.runs.cli import build_parser, main
from prompt_gym.runs.compare import CompareConfig, run_comparison
from prompt_gym.runs.flags import field_default, flag_name
from prompt_gym.runs.target_state import load_target_state, save_target_state
from prompt_gym.runs.train import AGENT_SKIP
from prompt_gym.scoring import LMScorer
from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm

TOY = "PromptTune-Toy-v0"


def _train_parser(agent: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser(agent)._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


@pytest.mark.parametrize("agent", ["appo", "ppo", "pg-group", "random-search", "sb3:ppo"])
def test_every_config_field_is_a_train_flag_whose_default_is_the_configs(agent):
    spec = AGENTS[agent]
    actions = {a.dest: a for a in _train_parser(agent)._actions}
    configs = [spec.config_class(), *([ModelConfig] if spec.uses_llm else [])]
    for config in configs:
        for item in dataclasses.fields(config):
            if item.name in spec.fixed:  # set by the name ("ppo": fixed_reference=True)
                assert item.name not in actions
                continue
            if item.name in (*AGENT_SKIP, "model"):  # the env's --max-prompt-tokens, --agent-model
                continue
            action = actions[item.name]
            assert action.default is None  # "the config's default": written once, in the dataclass
            assert repr(field_default(item)) in action.help
            assert flag_name(item.name) in action.option_strings


def test_train_keeps_every_flag_spelling_it_had():
    parser = _train_parser("appo")
    options = {option for action in parser._actions for option in action.option_strings}
    assert {"--lr", "--batch-size", "--ppo-epochs", "--kl-coef", "--advantage", "--elite-replay", "--temperature",
            "--anchor-samples", "--anchor-check-interval", "--anchor-threshold", "--fixed-reference", "--no-rollback",
            "--preset", "--resume", "--overwrite", "--agent-model", "--target", "--target-model", "--seed", "--device",
            "--dtype", "--max-prompt-tokens", "--num-demos", "--reward-batch-size", "--test-split", "--task",
            "--num-envs", "--save-every", "--action-mode", "--env", "--agent", "--out", "--updates"} <= options


@dataclass
class EchoConfig:
    """Settings of the tutorial agent below.

    Attributes:
        seed: Seeds the agent's word choices.
        words: The words it draws its prompts from.
    """

    seed: int = 0
    words: str = "classify the review sentiment positive negative"


class EchoAgent(Agent):
    """A user's agent: writes random draws of its words (text mode), keeps the best it has validated."""

    def __init__(self, env: Any, config: EchoConfig, model_spec: str | None = None, logger: Logger | None = None):
        self.env, self.config = env, config
        self.logger = logger or Logger()
        self.rng = np.random.default_rng(config.seed)
        self.best: dict[str, Any] | None = None

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        words = self.config.words.split()
        return " ".join(self.rng.choice(words, size=self.rng.integers(1, len(words) + 1))), state

    def learn(self, total_timesteps=None, total_updates=None, callback=None, progress_bar=False):
        callback = as_callback(callback)
        callback.init_callback(self)
        callback.on_training_start(locals())
        while ((total_updates is None or self.num_updates < total_updates)
               and (total_timesteps is None or self.num_timesteps < total_timesteps)):
            observation, _ = self.env.reset(seed=self.num_updates)
            self.env.step(self.predict(observation)[0])
            self.num_timesteps += 1
            self.num_updates += 1
            callback.on_rollout_end()
            self.logger.record("time/target_evaluations", self.env.unwrapped.scorer.num_evaluations)
            self.logger.dump(self.num_updates)
            callback.on_update_end()
        callback.on_training_end()
        return self

    def selection_evaluations(self) -> int:
        return len(self.env.unwrapped.task.split("validation"))

    def select_prompt(self) -> dict[str, Any]:
        env = self.env.unwrapped
        result = evaluate_prompts(env.scorer, env.task, [self.predict(None)[0]], split="validation")[0]
        return {"prompt": result["prompt"], "val_accuracy": result["accuracy"]}

    def save(self, path):
        raise NotImplementedError

    @classmethod
    def load(cls, path, env=None, **kwargs):
        raise NotImplementedError


@pytest.fixture
def echo_agent():
    register_agent("echo", EchoAgent, EchoConfig, action_mode="text", uses_llm=False, summary="random word draws")
    yield "echo"
    del AGENTS["echo"]


def test_register_agent_refuses_a_taken_name_and_an_unknown_mode(echo_agent):
    with pytest.raises(ValueError, match="registered already"):
        register_agent("echo", EchoAgent, EchoConfig, "text", False, "again")
    with pytest.raises(ValueError, match="action_mode"):
        register_agent("echo-2", EchoAgent, EchoConfig, "words", False, "bad mode")
    assert make_agent("echo", _toy_env(), seed=3, words="review").config == EchoConfig(seed=3, words="review")


def _toy_env():
    import gymnasium as gym

    return gym.make(TOY, action_mode="text")


def test_a_registered_agent_runs_through_compare(echo_agent, tmp_path):
    config = CompareConfig(TOY, ["echo", "manual"], 60, [0, 1], tmp_path / "cmp",
                           agent_options={"echo": {"words": "sentiment review positive negative"}})
    results = run_comparison(config, log=lambda line: None)
    echo = [r for r in results if r["agent"] == "echo"]
    assert len(echo) == 2 and all(r["evaluations"] <= 60 and r["num_updates"] > 0 for r in echo)
    assert all(r["stopped_by"] == "budget" for r in echo)
    assert "| echo | 2 |" in (config.out / "results.md").read_text()


def test_a_registered_agent_runs_through_train_with_its_config_as_flags(echo_agent, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--agent", "echo", "--env", TOY, "--updates", "3", "--seed", "2", "--words", "review",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["agent"] == "echo" and results["num_updates"] == 3
    assert results["settings"]["config"] == {"seed": 2, "words": "review"}
    assert results["selected"]["prompt"].split() == ["review"] * len(results["selected"]["prompt"].split())
    assert json.loads((out / "best_prompts.json").read_text()) == [results["selected"]]
    assert "test accuracy  learned" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # APPO's flags are not the echo agent's
        main(["train", "--agent", "echo", "--env", TOY, "--updates", "1", "--lr", "0.1", "--out", str(tmp_path / "x")])


def test_the_target_state_round_trips_counts_and_the_score_cache_in_lru_order(tmp_path):
    tokenizer = build_byte_tokenizer()
    model = build_tiny_lm(tokenizer)
    saved = BudgetedScorer(LMScorer(model, tokenizer, ("negative", "positive"), cache_size=3), limit=100)
    saved.score_pairs(["a", "b", "a", "c"], ["x", "x", "x", "y"])  # "a x" repeated: a cache hit
    saved.score_pairs(["b"], ["x"])  # "b x" becomes the most recently used
    save_target_state(saved, tmp_path)
    restored = BudgetedScorer(LMScorer(model, tokenizer, ("negative", "positive"), cache_size=3), limit=100)
    counts = load_target_state(restored, tmp_path)
    assert counts["free_streak"] == saved.free_streak == 1
    assert (restored.num_evaluations, restored.num_requested) == (saved.num_evaluations, saved.num_requested) == (3, 5)
    assert restored.scorer.cache_hits == saved.scorer.cache_hits == 2
    assert [key for key, _ in restored.scorer.cache.items()] == [("a", "x"), ("c", "y"), ("b", "x")]
    for (_, mine), (_, theirs) in zip(restored.scorer.cache.items(), saved.scorer.cache.items(), strict=True):
        assert mine.tobytes() == theirs.tobytes()  # float32, bit for bit
    three_classes = BudgetedScorer(LMScorer(model, tokenizer, ("negative", "positive", "neutral")))
    with pytest.raises(ValueError, match="another target"):
        load_target_state(three_classes, tmp_path)
    assert load_target_state(restored, tmp_path / "elsewhere") is None  # an older checkpoint: nothing to restore
