"""Shared pieces of the scripts that rescore a ``prompt-gym compare`` run on test (for reporting only).

``pool_test_accuracy.py`` and ``policy_test_accuracy.py`` rebuild one run's environment the way
``compare`` built it (its options, the seed's data split, its target) and append what they measured
as one JSON line to a ``--json`` file, which ``headroom.py`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym import checkpoint as ckpt
from prompt_gym.runs.compare import run_dir


def comparison_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` that ``prompt-gym compare`` wrote into ``folder`` (a run's folder or a kept copy of it)."""
    path = folder / "config.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: a comparison folder needs the config.json that prompt-gym compare "
                         "wrote (it names the task, target and calibration); copy it from the run's folder.")
    return json.loads(path.read_text(encoding="utf-8"))


def target_of(config: dict[str, Any]) -> str | None:
    """The target a comparison named (``--target``), or ``None`` for the agent model's shared copy."""
    return config["env_kwargs"].get("target")


def newest_checkpoint(folder: Path, agent: str, seed: int) -> Path:
    """The newest checkpoint of one run (``step-NNNNNN``)."""
    return ckpt.latest_checkpoint(run_dir(folder, agent, seed) / "checkpoints")


def rebuild_env(folder: Path, seed: int, model: Any, tokenizer: Any) -> gym.Env:
    """The text-mode environment of one run of the comparison in ``folder``.

    Args:
        folder: A ``prompt-gym compare`` output folder.
        seed: The run's seed (it is also the data split's, unless the comparison kept one split).
        model: The agent model; it is the target too unless the comparison named one.
        tokenizer: The agent model's tokenizer.
    """
    config = comparison_config(folder)
    kwargs = dict(config["env_kwargs"]) | {"action_mode": "text"}
    kwargs.setdefault("target", (model, tokenizer))
    if config.get("vary_data", True):
        kwargs["data_seed"] = seed
    return gym.make(config["env_id"], tokenizer=tokenizer, **kwargs)


def append_record(path: Path | None, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON-lines file ``path`` (nothing when ``path`` is ``None``)."""
    if path is not None:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_identity(folder: Path, agent: str, seed: int) -> dict[str, Any]:
    """The fields that name a run in a record: its folder, agent, seed, environment, target and calibration."""
    config = comparison_config(folder)
    return {"folder": folder.as_posix(), "agent": agent, "seed": seed, "env_id": config["env_id"],
            "target": target_of(config), "calibration": config["env_kwargs"].get("calibration")}
