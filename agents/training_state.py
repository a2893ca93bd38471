"""What a resumable checkpoint of an LLM agent holds besides its weights: optimizer, RNGs, counters.

Every LLM agent's checkpoint folder is ``agent/`` (what ``agent.save`` writes: configs, adapters,
pool) plus the files written here: ``optimizer.pt`` (the optimizer's and, when the agent has one,
the scheduler's ``state_dict``; absent for agents that do not train), ``rng.json`` / ``rng.pt``
(python, numpy, torch and every env generator), ``state.json`` (counters, the last meta-prompt,
the last measured policy accuracy and what the agent adds) and ``clock.json`` (training wall time).
Everything is read back with JSON or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prompt_gym import checkpoint as ckpt

COUNTERS = ("num_updates", "num_timesteps")
CLOCK_FILE = "clock.json"
"""The training wall time so far: the one file of a checkpoint that differs between a run and its exact resume."""


def write_training_state(agent: Any, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``agent``'s optimizer, RNG states, counters and ``extra`` (JSON-ready) into ``folder``.

    ``agent`` is an :class:`~prompt_gym.agents.llm.LLMPromptAgent` (its ``optimizer`` and
    ``scheduler`` are ``None`` when it has none).
    """
    if agent.optimizer is not None:
        scheduler = agent.scheduler
        ckpt.save_tensors(folder / "optimizer.pt", {"optimizer": agent.optimizer.state_dict(),
                                                    "scheduler": None if scheduler is None else scheduler.state_dict()})
    rng = ckpt.global_rng_state()
    envs = agent.env.rng_states() if agent.env is not None else []
    ckpt.save_json(folder / "rng.json", {"python": rng["python"], "numpy": rng["numpy"], "env": envs,
                                         "agent": agent.rng.bit_generator.state})
    ckpt.save_tensors(folder / "rng.pt", {k: rng[k] for k in ("torch", "cuda") if k in rng})
    state = {name: getattr(agent, name) for name in COUNTERS}
    state |= {"last_context": agent._last_context, "policy_accuracy": agent.policy_acc}
    ckpt.save_json(folder / "state.json", state | (extra or {}))
    ckpt.save_json(folder / CLOCK_FILE, {"wall_time_s": agent.elapsed()})


def read_training_state(agent: Any, folder: Path) -> dict[str, Any]:
    """Restore what :func:`write_training_state` wrote into ``agent``; returns ``state.json`` (with ``extra``)."""
    if agent.optimizer is not None:
        saved = ckpt.load_tensors(folder / "optimizer.pt")
        agent.optimizer.load_state_dict(saved["optimizer"])
        if agent.scheduler is not None:
            agent.scheduler.load_state_dict(saved["scheduler"])
    rng = ckpt.load_json(folder / "rng.json") | ckpt.load_tensors(folder / "rng.pt")
    ckpt.set_global_rng_state(rng)
    if agent.env is not None and rng["env"]:
        agent.env.set_rng_states(rng["env"])
    agent.rng.bit_generator.state = rng["agent"]
    state = ckpt.load_json(folder / "state.json")
    for name in COUNTERS:
        setattr(agent, name, int(state[name]))
    agent._last_context = state["last_context"]
    agent.policy_acc = float(state["policy_accuracy"])
    clock = folder / CLOCK_FILE
    agent.wall_time_s = float(ckpt.load_json(clock)["wall_time_s"]) if clock.is_file() else 0.0  # older: untimed
    agent._learn_started = time.perf_counter()
    return state


def check_same_config(agent: Any, meta: dict[str, Any], folder: Path) -> None:
    """Refuse a checkpoint whose saved ``config`` / ``model_config`` (``meta``) differ from ``agent``'s.

    A config field listed in its class's ``ADDED_FIELDS`` and missing from an older checkpoint reads
    as the value listed there (the one that behaves as the code that wrote the checkpoint did).

    Raises:
        prompt_gym.checkpoint.CheckpointError: The fields differ (the message names them).
    """
    saved_config = getattr(agent.config, "ADDED_FIELDS", {}) | meta["config"]
    saved = saved_config | meta["model_config"]
    current = asdict(agent.config) | asdict(agent.model_config)
    if saved_config != asdict(agent.config) or meta["model_config"] != asdict(agent.model_config):
        missing = object()
        diff = sorted(k for k in saved.keys() | current.keys() if saved.get(k, missing) != current.get(k, missing))
        unknown = sorted(current.keys() - saved.keys())
        older = (f"; it predates the fields {unknown}, so a run this old cannot be resumed by this version"
                 if unknown else "")
        raise ckpt.CheckpointError(
            f"Checkpoint {folder} was written with a different configuration (fields {diff}){older}; resume with "
            "the settings of the original run, or start a new run."
        )
