"""The agent protocol, the env contract, the shared configs and the saved formats, pinned.

What a run relies on (``prompt_gym.agents.base.Agent``), what agents may read from an env
(``PromptEnv``), that every config field is declared once with its old default, that a new LLM
agent needs nothing from APPO, and that saved agents keep the layout older checkpoints have.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

import prompt_gym  # noqa: F401
from prompt_gym.agents import make_agent
from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig
from prompt_gym.agents.base import Agent
from prompt_gym.agents.baselines import ManualAgent, RandomSearchAgent, RandomSearchConfig
from prompt_gym.agents.configs import LLMAgentConfig, ModelConfig, SelectionConfig, ValidationConfig
from prompt_gym.agents.pg_group import PGGroupAgent, PGGroupConfig
from prompt_gym.agents.rollout import PROMPT_ENV_ATTRIBUTES, EnvAdapter
from prompt_gym.agents.sb3 import SB3Agent, SB3Config
from prompt_gym.callbacks import Callback
from prompt_gym.testing import build_tiny_lm

AGENT_CLASSES = [APPOAgent, PGGroupAgent, RandomSearchAgent, ManualAgent, SB3Agent]


def toy(action_mode="text"):
    return gym.make("PromptTune-Toy-v0", action_mode=action_mode)


def tiny(env):
    tokenizer = env.unwrapped.tokenizer
    return {"model": build_tiny_lm(tokenizer), "tokenizer": tokenizer}


@pytest.mark.parametrize("cls", AGENT_CLASSES, ids=lambda cls: cls.__name__)
def test_every_agent_has_the_same_learn_signature(cls):
    assert issubclass(cls, Agent) and not inspect.isabstract(cls)
    parameters = inspect.signature(cls.learn).parameters
    assert [(name, p.default) for name, p in parameters.items()] == [
        ("self", inspect.Parameter.empty), ("total_timesteps", None), ("total_updates", None), ("callback", None),
        ("progress_bar", False)]


def test_checkpoints_are_declared_and_refused_where_missing(tmp_path):
    assert {cls for cls in AGENT_CLASSES if cls.supports_checkpoints} == {APPOAgent, PGGroupAgent, RandomSearchAgent}
    agent = ManualAgent(toy())
    assert (agent.num_updates, agent.promotions, agent.rollbacks) == (0, None, None)
    with pytest.raises(NotImplementedError, match="ManualAgent does not write checkpoints"):
        agent.save_checkpoint(tmp_path)
    with pytest.raises(NotImplementedError, match="ManualAgent does not read checkpoints"):
        agent.load_checkpoint(tmp_path)


@pytest.mark.parametrize("action_mode", ["token", "text"])
def test_the_env_offers_what_prompt_env_declares(action_mode):
    assert PROMPT_ENV_ATTRIBUTES == {"task", "scorer", "tokenizer", "action_mode", "max_prompt_tokens",
                                     "evaluations_per_episode", "observation_length", "pad_token_id",
                                     "eos_token_id", "sampler"}
    env = toy(action_mode)
    adapter = EnvAdapter(env)
    for name in PROMPT_ENV_ATTRIBUTES:
        assert adapter.attr(name) is getattr(env.unwrapped, name)
    with pytest.raises(AttributeError, match="only the PromptEnv attributes"):
        adapter.attr("np_random")


def _declared_in(cls, name):
    return [base.__name__ for base in cls.__mro__ if name in vars(base).get("__annotations__", {})]


@pytest.mark.parametrize("cls", [APPOConfig, PGGroupConfig, RandomSearchConfig, SB3Config, ModelConfig])
def test_each_config_field_is_declared_once(cls):
    twice = {f.name: _declared_in(cls, f.name) for f in dataclasses.fields(cls) if len(_declared_in(cls, f.name)) > 1}
    assert not twice, twice


def test_configs_share_their_bases_and_keep_their_defaults():
    assert issubclass(APPOConfig, LLMAgentConfig) and issubclass(PGGroupConfig, LLMAgentConfig)
    assert issubclass(PGGroupConfig, ValidationConfig) and issubclass(RandomSearchConfig, ValidationConfig)
    assert issubclass(SB3Config, ValidationConfig) and issubclass(LLMAgentConfig, SelectionConfig)
    # the defaults of the fields our runs and saved run folders use (a changed default changes old runs)
    assert dataclasses.asdict(APPOConfig()) == {
        "seed": 0, "device": "auto", "learning_rate": 1e-3, "anneal_lr": False, "batch_size": 8, "advantage": "batch",
        "shared_meta_prompt": None, "elite_replay": 8, "minibatch_size": None, "ppo_epochs": 2, "gamma": 1.0,
        "gae_lambda": 0.95, "clip_range": 0.2, "clip_range_value": 0.2, "vf_coef": 0.1, "kl_coef": 0.2,
        "max_grad_norm": None, "target_kl": None, "whiten_advantages": True, "temperature": 1.0,
        "max_prompt_tokens": None, "fixed_reference": False, "rollback": True, "reset_optimizer_on_rollback": True,
        "anchor_check_interval": 5, "anchor_samples": 8, "anchor_threshold": 0.05, "selection": "checks",
        "screen_samples": 2, "pool_size": 5, "final_samples": 4, "select_by": "accuracy"}
    shared = {"seed": 0, "device": "auto", "temperature": 1.0, "max_prompt_tokens": None, "eval_interval": 5,
              "eval_samples": 2, "pool_size": 5, "final_samples": 4, "select_by": "accuracy"}
    assert dataclasses.asdict(PGGroupConfig()) == shared | {
        "learning_rate": 1e-4, "group_size": 4, "groups_per_update": 1, "scale_by_std": True, "kl_coef": 0.05,
        "max_grad_norm": 1.0}
    assert dataclasses.asdict(RandomSearchConfig()) == shared | {"batch_size": 4}
    assert dataclasses.asdict(SB3Config()) == {
        "algo": "ppo", "seed": 0, "device": "cpu", "top_k": 256, "embedding_dim": 32, "recent": 4,
        "algo_kwargs": {"n_steps": 64, "learning_rate": 3e-4}, "net_arch": [64], "eval_interval": 5,
        "eval_samples": 2, "pool_size": 5, "final_samples": 4, "select_by": "accuracy"}
    with pytest.raises(ValueError, match="temperature must be positive"):
        APPOConfig(temperature=0)
    with pytest.raises(ValueError, match="eval_samples must be positive"):
        SB3Config(eval_samples=0)


NEW_AGENT = textwrap.dedent('''
    import sys
    from dataclasses import dataclass

    import gymnasium as gym
    import numpy as np

    import prompt_gym  # noqa: F401
    from prompt_gym.agents.configs import LLMAgentConfig
    from prompt_gym.agents.llm import LLMPromptAgent
    from prompt_gym.testing import build_tiny_lm


    @dataclass
    class BestOfGroupConfig(LLMAgentConfig):
        group_size: int = 3


    class BestOfGroup(LLMPromptAgent):
        """Writes a group of prompts per update and keeps the best-rewarded one on validation (no training)."""

        def learning_step(self, callback):
            group = self.play_group(self.config.group_size, same_meta_prompt=True)
            callback.on_rollout_end()
            self.num_updates += 1
            best = max(group, key=lambda t: t.reward)
            self.log_validation({"rollout/reward": float(np.mean([t.reward for t in group]))}
                                | {"eval/val_accuracy": self.validate([self._decode(best.actions)])[0]["accuracy"]})
            return {"rollout/reward": best.reward}


    env = gym.make("PromptTune-Toy-v0", action_mode="text")
    tokenizer = env.unwrapped.tokenizer
    agent = BestOfGroup(env, BestOfGroupConfig(seed=1, final_samples=1), model=build_tiny_lm(tokenizer),
                        tokenizer=tokenizer)
    agent.learn(total_updates=2)
    best = agent.select_prompt()
    assert agent.num_updates == 2 and 0.0 <= best["val_accuracy"] <= 1.0 and isinstance(best["prompt"], str)
    assert agent.selection_evaluations() == 2 * len(env.unwrapped.task.split("validation"))
    assert [r["time/updates"] for r in agent.logger.history] == [1, 2]
    assert not [m for m in sys.modules if m.startswith("prompt_gym.agents.appo")], "imported APPO"
    print("ok")
''')


def test_a_new_llm_agent_needs_nothing_from_appo():
    """The recipe for a new LLM agent: subclass LLMPromptAgent, write learning_step; APPO is never imported."""
    result = subprocess.run([sys.executable, "-c", NEW_AGENT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


class _Count(Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.updates = self.steps = 0
        self.stop_after = stop_after

    def _on_step(self):
        self.steps += 1
        return True

    def _on_update_end(self):
        self.updates += 1
        return self.stop_after is None or self.updates < self.stop_after


def test_sb3_learns_by_updates_and_drives_prompt_gym_callbacks():
    agent = make_agent("sb3:ppo", toy("token"), seed=0, algo_kwargs={"n_steps": 8}, top_k=None, eval_interval=1)
    counter = _Count()
    agent.learn(total_updates=2, callback=counter)
    assert agent.num_updates == 2 and counter.updates == 2 and counter.steps == agent.num_timesteps == 16
    stopper = _Count(stop_after=1)
    agent.learn(total_updates=5, callback=stopper)
    assert agent.num_updates == 3 and stopper.updates == 1
    assert agent.logger.history[-1]["time/wall_s"] >= 0.0


@pytest.mark.parametrize("name", ["pg-group", "random-search"])
def test_group_agents_learn_by_timesteps_too(name):
    env = toy()
    options = {"group_size": 2} if name == "pg-group" else {"batch_size": 2}
    agent = make_agent(name, env, seed=0, **tiny(env), **options)
    agent.learn(total_timesteps=3)
    assert agent.num_timesteps >= 3 and agent.num_updates == 2  # two episodes (text mode: one step each) per update
    with pytest.raises(ValueError, match="Give total_timesteps or total_updates"):
        agent.learn()


# The saved layout every earlier version wrote; runs resume from it, so it must not drift.
APPO_FILES = {"agent.json", "pool.json", "value_heads.safetensors", "adapters/adapter_model.safetensors",
              "adapters/anchor/adapter_model.safetensors"}
APPO_META = {"agent", "config", "model_config", "num_updates", "num_timesteps", "promotions", "rollbacks"}
GROUP_META = {"agent", "config", "model_config", "num_updates", "num_timesteps", "pool"}
CHECKPOINT_FILES = {"optimizer.pt", "rng.json", "rng.pt", "state.json", "clock.json"}


@pytest.mark.parametrize("name", ["appo", "pg-group", "random-search"])
def test_saved_agents_keep_the_layout_old_checkpoints_have(name, tmp_path):
    env = toy()
    options = {"appo": {"batch_size": 2, "anchor_samples": 1, "final_samples": 1},
               "pg-group": {"group_size": 2}, "random-search": {"batch_size": 2}}[name]
    agent = make_agent(name, env, seed=0, **tiny(env), **options)
    agent.learn(total_updates=1)
    folder = agent.save_checkpoint(tmp_path)
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    meta = json.loads((folder / "agent" / "agent.json").read_text())
    assert set(meta["config"]) == {f.name for f in dataclasses.fields(type(agent.config))}
    assert set(meta["model_config"]) == {"model", "dtype", "lora_r", "lora_alpha", "lora_dropout",
                                         "lora_target_modules"}
    if name == "appo":
        assert {f"agent/{f}" for f in APPO_FILES} <= files and set(meta) == APPO_META
    else:
        assert set(meta) == GROUP_META | ({"candidates", "validated"} if name == "random-search" else set())
        assert "agent/pool.json" not in files  # the pool lives inside agent.json
    assert CHECKPOINT_FILES - ({"optimizer.pt"} if name == "random-search" else set()) <= files
