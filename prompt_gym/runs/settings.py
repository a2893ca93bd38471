"""What defines a run (:class:`RunSettings`, saved as ``run.json``) and reading it back for ``--resume``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

import prompt_gym
from prompt_gym.agents.configs import ModelConfig
from prompt_gym.agents.registry import get_agent_spec
from prompt_gym.checks import check_int, check_type

SETTINGS_FILE = "run.json"
DEFAULT_ENV = "PromptTune-SST2-v0"
"""The environment the commands run when given none."""
DEFAULT_AGENT = "appo"
"""The agent ``prompt-gym train`` runs when given none."""


@dataclass
class RunSettings:
    """Everything that defines one run of one agent on one environment.

    Attributes:
        env: Environment id.
        out: Run folder.
        updates: Total updates (a resumed run continues up to this number); ``None``: until the
            budget a comparison gives is spent.
        agent: Agent name (``prompt_gym.agents.AGENTS``).
        agent_model: Agent model spec; ``None``: the default model, or a tiny random LM on envs whose
            task has its own rule target (the toy task).
        target_model: Target model spec or served model; ``None`` means the agent model (one shared
            copy of the weights) or, for tasks with their own rule target, that rule.
        num_envs: Parallel environments (a SAME_STEP vector env when > 1).
        save_every: Updates between checkpoints (agents that write them).
        env_kwargs: Extra ``gym.make`` arguments (``action_mode``, ``num_demos``...); the action
            mode defaults to the agent's.
        config: The agent's config (its dataclass; ``None``: its defaults), or for an agent without
            a config the keyword options it takes.
        model_config: Model and LoRA settings of LLM agents (``model`` is set from ``agent_model``).
    """

    env: str
    out: str
    updates: int | None = None
    agent: str = DEFAULT_AGENT
    agent_model: str | None = None
    target_model: str | None = None
    num_envs: int = 1
    save_every: int = 10
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    model_config: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        spec = get_agent_spec(self.agent)
        if self.updates is not None:
            check_int("updates", self.updates, minimum=1)
        for name in ("num_envs", "save_every"):
            check_int(name, getattr(self, name), minimum=1)
        if self.env not in gym.registry:
            raise ValueError(f"Unknown environment {self.env!r}; `prompt-gym envs` lists them.")
        check_type("env_kwargs", self.env_kwargs, dict, "a dict of gym.make arguments")
        task = self.env_kwargs.get("task")
        if isinstance(task, str) and task not in prompt_gym.list_tasks():
            raise ValueError(f"Unknown task {task!r}; known tasks: {', '.join(prompt_gym.list_tasks())}.")
        if spec.config is None:
            self.config = dict(self.config or {})
        elif self.config is None:
            self.config = spec.make_config()
        elif isinstance(self.config, dict):  # read back from run.json: the fields the name fixes are in it
            self.config = spec.make_config(**{k: v for k, v in self.config.items() if k not in spec.fixed})
        if isinstance(self.model_config, dict):
            self.model_config = ModelConfig(**self.model_config)
        if self.agent_model is not None:
            self.model_config.model = self.agent_model

    @property
    def seed(self) -> int:
        """The run's seed: the agent config's (0 for an agent without a config)."""
        return self.config.seed if dataclasses.is_dataclass(self.config) else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``run.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        """Inverse of :meth:`to_dict` (the config is rebuilt by the agent's config class)."""
        return cls(**data)


def read_settings(run: str | Path, updates: int | None = None) -> RunSettings:
    """Read a run's settings for ``--resume``; ``updates`` may raise the total.

    Raises:
        FileNotFoundError: ``run`` is not a run folder (the message names the run folder around it, if any).
        ValueError: ``run.json`` is not a valid run description.
    """
    path = Path(run) / SETTINGS_FILE
    inside = [folder for folder in Path(run).resolve().parents if (folder / SETTINGS_FILE).is_file()]
    if not path.is_file() and inside:
        raise FileNotFoundError(f"{run} is inside the run folder {inside[0]}: pass that folder to --resume (it picks "
                                "the newest checkpoint that verifies).")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run} is not a prompt-gym run folder (nothing to resume).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        settings = RunSettings.from_dict(data)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a valid run description ({error!r}); start a new run instead.") from error
    settings.out = str(run)
    if updates is not None:
        settings.updates = updates
    return settings
