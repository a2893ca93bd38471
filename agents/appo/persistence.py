"""Saving, loading and checkpointing the APPO agent.

``save``: ``agent.json`` (config + counters), ``adapters/`` (peft ``save_pretrained``: the policy
adapter at the top, the anchor in ``adapters/anchor/``; safetensors), ``value_heads.safetensors``
and ``pool.json``. A checkpoint adds what :mod:`prompt_gym.agents.training_state` writes (optimizer and scheduler,
RNGs, counters) with the anchor's estimate and the elite episodes in ``state.json``.
Everything is read back with safetensors, JSON or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.appo.config import APPOConfig
from prompt_gym.agents.configs import ModelConfig
from prompt_gym.agents.lora_policy import ANCHOR, POLICY
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import Trajectory
from prompt_gym.agents.training_state import check_same_config, read_training_state, write_training_state


def save_agent(agent: Any, path: Path) -> None:
    """Write what is needed to act and to keep training: config, adapters, value heads, pool."""
    path.mkdir(parents=True, exist_ok=True)
    ckpt.save_json(path / "agent.json", agent.describe())
    agent.policy.model.save_pretrained(path / "adapters", selected_adapters=[POLICY, ANCHOR])
    heads = {f"policy.{k}": v.detach().cpu().contiguous() for k, v in agent.policy.value_head.state_dict().items()}
    heads |= {f"anchor.{k}": v.detach().cpu().contiguous() for k, v in agent.policy.anchor_value_head.items()}
    save_file(heads, str(path / "value_heads.safetensors"))
    ckpt.save_json(path / "pool.json", agent.pool.to_list())


def _adapter_file(path: Path, adapter: str) -> Path:
    folder = path / "adapters" if adapter == POLICY else path / "adapters" / adapter
    file = folder / "adapter_model.safetensors"
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: {path} is not a complete saved APPO agent.")
    return file


def load_weights(agent: Any, path: Path) -> None:
    """Load both adapters, the value heads and the pool saved by :func:`save_agent` into ``agent``."""
    device = agent.policy.device
    for adapter in (POLICY, ANCHOR):
        weights = load_file(str(_adapter_file(path, adapter)), device=str(device))
        result = set_peft_model_state_dict(agent.policy.model, weights, adapter_name=adapter)
        missing = [k for k in result.missing_keys if f".{adapter}." in k]
        if missing:
            raise ValueError(f"The saved {adapter!r} adapter does not fit this model (missing {missing[:3]}...); "
                             "load it with the base model and LoRA settings it was trained with.")
    heads = load_file(str(path / "value_heads.safetensors"), device=str(device))
    agent.policy.value_head.load_state_dict({k[7:]: v for k, v in heads.items() if k.startswith("policy.")})
    agent.policy.anchor_value_head = {k[7:]: v for k, v in heads.items() if k.startswith("anchor.")}
    agent.pool = PromptPool.from_list(ckpt.load_json(path / "pool.json"), agent.config.pool_size)


def load_agent(cls: type, path: Path, env: Any = None, **kwargs: Any) -> Any:
    """Rebuild an agent from :func:`save_agent` output (the model comes from the saved spec unless given)."""
    meta_file = path / "agent.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file} is missing: {path} is not a saved APPO agent (see APPOAgent.save).")
    meta = ckpt.load_json(meta_file)
    agent = cls(env, APPOConfig(**meta["config"]), ModelConfig(**meta["model_config"]), **kwargs)
    load_weights(agent, path)
    _set_counters(agent, meta)
    return agent


def _set_counters(agent: Any, meta: dict[str, Any]) -> None:
    for name in ("num_updates", "num_timesteps", "promotions", "rollbacks"):
        setattr(agent, name, int(meta[name]))


def write_checkpoint(agent: Any, folder: Path) -> None:
    """Write the full training state of ``agent`` into ``folder`` (called inside an atomic checkpoint)."""
    save_agent(agent, folder / "agent")
    write_training_state(agent, folder, {"anchor_scores": agent.anchor_scores, "elites": _episodes(agent.elites),
                                         "finished": _episodes(agent._buffer), "screened": agent.screened,
                                         "screened_at_check": agent.screened_at_check,
                                         "validated": sorted(agent.validated)})


def read_checkpoint(agent: Any, folder: Path) -> None:
    """Restore ``agent`` from a verified checkpoint folder.

    Raises:
        ckpt.CheckpointError: The checkpoint was written with a different configuration.
    """
    meta = ckpt.load_json(folder / "agent" / "agent.json")
    check_same_config(agent, meta, folder)
    load_weights(agent, folder / "agent")
    _set_counters(agent, meta)
    state = read_training_state(agent, folder)
    agent.anchor_scores = [float(score) for score in state["anchor_scores"]]
    agent.elites = _trajectories(state["elites"])
    agent._buffer = _trajectories(state.get("finished", []))  # checkpoints before 2026-12-01 kept no overflow
    agent.screened = [(float(r), str(p)) for r, p in state["screened"]]
    if "screened_at_check" in state:
        agent.screened_at_check = int(state["screened_at_check"])
    else:  # checkpoints before ea3a9a8 kept the episodes since the last check as a second list
        agent.screened_at_check = len(agent.screened) - len(state["screened_since_check"])
    agent.validated = set(state["validated"])


def _episodes(trajectories: list[Trajectory]) -> list[dict[str, Any]]:
    """JSON-ready episodes: ids, reward and the final info's accuracy (what a later update reads)."""
    return [{"context": t.context, "actions": t.actions, "reward": t.reward,
             "info": {k: float(t.info[k]) for k in ("accuracy",) if k in t.info}} for t in trajectories]


def _trajectories(episodes: list[dict[str, Any]]) -> list[Trajectory]:
    """Inverse of :func:`_episodes`."""
    return [Trajectory([int(i) for i in e["context"]], [int(i) for i in e["actions"]], float(e["reward"]),
                       dict(e.get("info", {}))) for e in episodes]  # elites before 2026-12-01 kept no info
