"""Agents by name: ``make_agent("pg-group", env, seed=0)``, and :func:`register_agent` for your own.

Every agent implements :class:`~prompt_gym.agents.base.Agent` (``learn``, ``select_prompt``,
``selection_evaluations``, ``logger``...), which is all that ``prompt-gym train`` and
``prompt-gym compare`` rely on. The built-in agents are registered as ``"module:Class"`` strings,
so importing the registry stays light: an agent's module (torch, peft, SB3) is imported only when
that agent is made or its config is read.

How the registry builds an agent from its config (``config_cls(seed=seed, **options)``):

* an agent that writes prompts with its own LLM (``uses_llm=True``):
  ``agent_cls(env, config, model_config, model=model, tokenizer=tokenizer, logger=logger)``;
* any other agent with a config: ``agent_cls(env, config, model_spec=model_spec, logger=logger)``
  (``model_spec``: where frozen embeddings may come from; ``None`` on envs without a model);
* an agent without a config (``config=None``): ``agent_cls(env, logger=logger, **options)``.

Example:
    >>> from prompt_gym.agents.registry import AGENTS, register_agent
    >>> register_agent("my-manual", "prompt_gym.agents.baselines:ManualAgent", None, action_mode="text",
    ...                uses_llm=False, summary="the manual prompt, under my own name")
    >>> AGENTS["my-manual"].action_mode
    'text'
    >>> del AGENTS["my-manual"]
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from prompt_gym.agents.configs import ModelConfig

ACTION_MODES = ("text", "token")


def _load(target: str | type) -> type:
    """The class named by ``"module:Class"`` (imported now), or ``target`` itself."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class AgentSpec:
    """How to build one named agent.

    Attributes:
        name: Registry name.
        agent: The agent class, or ``"module:Class"`` (imported when the agent is made).
        config: The agent's config dataclass (or ``"module:Class"``); ``None``: the agent has none.
        action_mode: The env action mode the agent trains in (``"text"`` or ``"token"``).
        uses_llm: Whether the agent writes prompts with an LLM that it changes (it needs its own copy).
        summary: One line for ``--help`` and docs.
        fixed: Config fields the name fixes (``"ppo"`` is APPO with ``fixed_reference=True``).
    """

    name: str
    agent: str | type
    config: str | type | None
    action_mode: str
    uses_llm: bool
    summary: str
    fixed: dict[str, Any] = field(default_factory=dict)

    def agent_class(self) -> type:
        """The agent class (imports its module)."""
        return _load(self.agent)

    def config_class(self) -> type | None:
        """The config dataclass (imports its module), or ``None`` for an agent without one."""
        return None if self.config is None else _load(self.config)

    def config_fields(self) -> dict[str, dataclasses.Field]:
        """The fields of the agent's config by name, without those the name fixes.

        Raises:
            ValueError: The agent has no config.
        """
        config = self.config_class()
        if config is None:
            raise ValueError(f"Agent {self.name!r} has no config.")
        return {f.name: f for f in dataclasses.fields(config) if f.name not in self.fixed}

    def config_default(self, field_name: str) -> Any:
        """The default of one field of the agent's config."""
        item = self.config_fields()[field_name]
        return item.default_factory() if item.default is dataclasses.MISSING else item.default

    def make_config(self, seed: int = 0, **options: Any) -> Any:
        """The agent's config: its defaults, then ``seed`` and ``options``, then the fields the name fixes.

        Raises:
            ValueError: Options for an agent without a config, or unknown fields (the message lists the known ones).
        """
        config = self.config_class()
        if config is None:
            if options:
                raise ValueError(f"Agent {self.name!r} has no config, got options {sorted(options)}.")
            return None
        unknown = sorted(set(options) - set(self.config_fields()))
        if unknown:
            raise ValueError(f"Agent {self.name!r} has no option(s) {unknown}; its config has "
                             f"{sorted(self.config_fields())}.")
        return config(**{"seed": seed, **options, **self.fixed})

    def build(self, env: Any, config: Any, *, model: Any = None, tokenizer: Any = None,
              model_config: ModelConfig | None = None, model_spec: str | None = None, logger: Any = None,
              **options: Any) -> Any:
        """Construct the agent on ``env`` with ``config`` (see the module docstring for the call each kind gets).

        ``model_config`` (LLM agents) defaults to the default LoRA settings on ``model_spec``.
        """
        agent = self.agent_class()
        if self.uses_llm:
            if model_config is None and model_spec:
                model_config = ModelConfig(model=model_spec)
            return agent(env, config, model_config, model=model, tokenizer=tokenizer, logger=logger)
        if self.config is None:
            return agent(env, logger=logger, **options)
        return agent(env, config, model_spec=model_spec, logger=logger)


AGENTS: dict[str, AgentSpec] = {}
"""Every registered agent, by name."""


def register_agent(
    name: str, agent_cls_or_path: str | type, config_cls_or_path: str | type | None, action_mode: str,
    uses_llm: bool, summary: str, *, fixed: dict[str, Any] | None = None, overwrite: bool = False,
) -> AgentSpec:
    """Register an agent under ``name`` so that ``make_agent``, ``prompt-gym train`` and ``compare`` run it.

    Args:
        name: The registry name (``--agent NAME``).
        agent_cls_or_path: The agent class (an :class:`~prompt_gym.agents.base.Agent`), or
            ``"module:Class"`` to import it only when the agent is made.
        config_cls_or_path: Its config dataclass (or ``"module:Class"``), whose fields become the
            agent's options (and ``prompt-gym train``'s flags, help taken from its ``Attributes:``
            docstring); it must have a ``seed`` field, and an LLM agent's a ``device`` field too
            (:class:`~prompt_gym.agents.configs.LLMAgentConfig` has both). ``None``: the agent takes
            its options as keyword arguments.
        action_mode: ``"text"`` (the agent returns whole prompts) or ``"token"``.
        uses_llm: Whether the agent changes an LLM of its own (it is given a fresh one per run).
        summary: One line for ``--help``.
        fixed: Config fields this name fixes (users cannot set them).
        overwrite: Replace an agent already registered under ``name``.

    Returns:
        The registered spec.

    Raises:
        ValueError: ``name`` is taken (and not ``overwrite``), or ``action_mode`` is unknown.
    """
    if name in AGENTS and not overwrite:
        raise ValueError(f"Agent {name!r} is registered already; pass overwrite=True to replace it.")
    if action_mode not in ACTION_MODES:
        raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}.")
    spec = AgentSpec(name, agent_cls_or_path, config_cls_or_path, action_mode, uses_llm, summary, dict(fixed or {}))
    AGENTS[name] = spec
    return spec


_APPO = ("prompt_gym.agents.appo.agent:APPOAgent", "prompt_gym.agents.appo.config:APPOConfig")
_SB3 = ("prompt_gym.agents.sb3:SB3Agent", "prompt_gym.agents.sb3:SB3Config")
register_agent("appo", *_APPO, "text", True,
               "StablePrompt's APPO: PPO whose KL anchor moves after validated progress, with rollback")
register_agent("ppo", *_APPO, "text", True,
               "PPO with the KL reference fixed at the starting model (APPO with fixed_reference=True)",
               fixed={"fixed_reference": True})
register_agent("pg-group", "prompt_gym.agents.pg_group:PGGroupAgent", "prompt_gym.agents.pg_group:PGGroupConfig",
               "text", True, "group-baseline policy gradient (GRPO/RLOO family), KL to the starting model")
register_agent("random-search", "prompt_gym.agents.baselines:RandomSearchAgent",
               "prompt_gym.agents.baselines:RandomSearchConfig", "text", True,
               "APE-style search: prompts sampled from the untrained LLM, best on validation")
register_agent("manual", "prompt_gym.agents.baselines:ManualAgent", None, "text", False,
               "the task's hand-written prompt (or options={'prompt': ...})")
register_agent("sb3:ppo", *_SB3, "token", False,
               "Stable-Baselines3 PPO on the token env (frozen LLM embeddings, top-k vocabulary)",
               fixed={"algo": "ppo"})
register_agent("sb3:a2c", *_SB3, "token", False, "Stable-Baselines3 A2C on the token env", fixed={"algo": "a2c"})


def get_agent_spec(name: str) -> AgentSpec:
    """Return the spec of agent ``name``.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if name not in AGENTS:
        raise ValueError(f"Unknown agent {name!r}; choose from {', '.join(AGENTS)}.")
    return AGENTS[name]


def make_agent(
    name: str, env: Any, *, seed: int = 0, model: Any = None, tokenizer: Any = None, model_spec: str | None = None,
    logger: Any = None, **options: Any,
) -> Any:
    """Build agent ``name`` on ``env``.

    Args:
        name: A key of :data:`AGENTS` (``"appo"``, ``"ppo"``, ``"pg-group"``, ``"random-search"``,
            ``"manual"``, ``"sb3:ppo"``, ``"sb3:a2c"``, or one added with :func:`register_agent`).
        env: The environment (its action mode must match the agent's, see :class:`AgentSpec`).
        seed: The agent's seed.
        model: A loaded agent LLM (plain, no adapters; LLM agents change it in place); with ``tokenizer``.
        tokenizer: The model's tokenizer.
        model_spec: A model spec to load instead (SB3: where its frozen embeddings come from).
        logger: A :class:`~prompt_gym.logging.Logger` for the agent's metrics (in memory by default).
        **options: Fields of the agent's config (``learning_rate=...``, ``batch_size=...``), or the
            keyword arguments of an agent without a config (``manual``: ``prompt``).

    Returns:
        The agent.
    """
    spec = get_agent_spec(name)
    if spec.config is None:
        return spec.build(env, None, model=model, tokenizer=tokenizer, model_spec=model_spec, logger=logger,
                          **options)
    return spec.build(env, spec.make_config(seed, **options), model=model, tokenizer=tokenizer,
                      model_spec=model_spec, logger=logger)
