"""Agents by name: ``make_agent("pg-group", env, seed=0)``.

Every agent implements :class:`~prompt_gym.agents.base.Agent` and, for comparisons,
``select_prompt()`` (best prompt on the validation split), ``selection_evaluations()`` (the most
target evaluations ``select_prompt()`` can spend) and a ``logger`` whose records carry
``eval/best_val_accuracy`` and ``time/target_evaluations``. Agent modules are imported only when
an agent is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentSpec:
    """How to build one named agent.

    Attributes:
        name: Registry name.
        build: ``build(env, seed, model, tokenizer, model_spec, logger, options) -> Agent``.
        uses_llm: Whether the agent writes prompts with an LLM that it changes (it needs its own copy).
        action_mode: The env action mode the agent trains in (``"text"`` or ``"token"``).
        summary: One line for ``--help`` and docs.
        config: ``"module:Class"`` of the agent's config dataclass (``None``: the agent has none).
    """

    name: str
    build: Callable[..., Any]
    uses_llm: bool
    action_mode: str
    summary: str
    config: str | None = None

    def config_fields(self) -> dict[str, Any]:
        """The fields of the agent's config dataclass by name (imports the agent's module)."""
        import dataclasses
        import importlib

        if self.config is None:
            raise ValueError(f"Agent {self.name!r} has no config.")
        module, cls = self.config.split(":")
        return {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}

    def config_default(self, field_name: str) -> Any:
        """The default of one field of the agent's config (imports the agent's module)."""
        import dataclasses

        field = self.config_fields()[field_name]
        return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _appo(fixed_reference: bool) -> Callable[..., Any]:
    def build(env: Any, seed: int, model: Any, tokenizer: Any, model_spec: str | None, logger: Any,
              options: dict[str, Any]) -> Any:
        from prompt_gym.agents.appo.agent import APPOAgent
        from prompt_gym.agents.appo.config import APPOConfig, ModelConfig

        config = APPOConfig(**{"seed": seed, **options, "fixed_reference": fixed_reference})
        model_config = ModelConfig(model=model_spec) if model_spec else None
        return APPOAgent(env, config, model_config, model=model, tokenizer=tokenizer, logger=logger)

    return build


def _llm(module: str, agent: str, config: str) -> Callable[..., Any]:
    def build(env: Any, seed: int, model: Any, tokenizer: Any, model_spec: str | None, logger: Any,
              options: dict[str, Any]) -> Any:
        import importlib

        from prompt_gym.agents.appo.config import ModelConfig

        mod = importlib.import_module(f"prompt_gym.agents.{module}")
        model_config = ModelConfig(model=model_spec) if model_spec else None
        return getattr(mod, agent)(env, getattr(mod, config)(**{"seed": seed, **options}), model_config,
                                   model=model, tokenizer=tokenizer, logger=logger)

    return build


def _manual(
    env: Any, seed: int, model: Any, tokenizer: Any, model_spec: str | None, logger: Any, options: dict[str, Any]
) -> Any:
    from prompt_gym.agents.baselines import ManualAgent

    unknown = set(options) - {"prompt"}
    if unknown:
        raise TypeError(f"The manual agent takes only the option 'prompt', got {sorted(unknown)}.")
    return ManualAgent(env, prompt=options.get("prompt"), logger=logger)


def _sb3(algo: str) -> Callable[..., Any]:
    def build(env: Any, seed: int, model: Any, tokenizer: Any, model_spec: str | None, logger: Any,
              options: dict[str, Any]) -> Any:
        from prompt_gym.agents.sb3 import SB3Agent, SB3Config

        config = SB3Config(**{"seed": seed, **options, "algo": algo})
        return SB3Agent(env, config, model=None if model_spec else model, model_spec=model_spec, logger=logger)

    return build


_APPO_CONFIG = "prompt_gym.agents.appo.config:APPOConfig"
_SB3_CONFIG = "prompt_gym.agents.sb3:SB3Config"

AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("appo", _appo(False), True, "text",
                  "StablePrompt's APPO: PPO whose KL anchor moves after validated progress, with rollback",
                  _APPO_CONFIG),
        AgentSpec("ppo", _appo(True), True, "text",
                  "PPO with the KL reference fixed at the starting model (APPO with fixed_reference=True)",
                  _APPO_CONFIG),
        AgentSpec("pg-group", _llm("pg_group", "PGGroupAgent", "PGGroupConfig"), True, "text",
                  "group-baseline policy gradient (GRPO/RLOO family), KL to the starting model",
                  "prompt_gym.agents.pg_group:PGGroupConfig"),
        AgentSpec("random-search", _llm("baselines", "RandomSearchAgent", "RandomSearchConfig"), True, "text",
                  "APE-style search: prompts sampled from the untrained LLM, best on validation",
                  "prompt_gym.agents.baselines:RandomSearchConfig"),
        AgentSpec("manual", _manual, False, "text", "the task's hand-written prompt (or options={'prompt': ...})"),
        AgentSpec("sb3:ppo", _sb3("ppo"), False, "token", "Stable-Baselines3 PPO on the token env (frozen LLM "
                                                           "embeddings, top-k vocabulary)", _SB3_CONFIG),
        AgentSpec("sb3:a2c", _sb3("a2c"), False, "token", "Stable-Baselines3 A2C on the token env", _SB3_CONFIG),
    )
}
"""Every registered agent, by name."""


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
            ``"manual"``, ``"sb3:ppo"``, ``"sb3:a2c"``).
        env: The environment (its action mode must match the agent's, see :class:`AgentSpec`).
        seed: The agent's seed.
        model: A loaded agent LLM (plain, no adapters; LLM agents change it in place); with ``tokenizer``.
        tokenizer: The model's tokenizer.
        model_spec: A model spec to load instead (SB3: where its frozen embeddings come from).
        logger: A :class:`~prompt_gym.logging.Logger` for the agent's metrics (in memory by default).
        **options: Fields of the agent's config (``learning_rate=...``, ``batch_size=...``...).

    Returns:
        The agent.
    """
    return get_agent_spec(name).build(env, seed, model, tokenizer, model_spec, logger, options)
