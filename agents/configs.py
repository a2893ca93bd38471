"""Config dataclasses the agents share: prompt selection, periodic validation, the agent LLM.

* :class:`SelectionConfig`: the prompt pool and the final selection (every agent that selects prompts);
* :class:`ValidationConfig`: validation checks every few updates (the SB3 bridge, pg-group, random search);
* :class:`ModelConfig`: the agent LLM and its LoRA adapters;
* :class:`LLMAgentConfig`: what every LLM prompt-writing agent has (APPO's config inherits it).

An agent's config inherits what it uses, so each field is declared once. They are plain dataclasses
that round-trip through :func:`dataclasses.asdict` (runs and checkpoints store them) and validate their
fields in ``__post_init__``. This module imports neither torch nor peft.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prompt_gym.models import DEFAULT_MODEL


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` (the checks of the configs' ``__post_init__``)."""
    if not condition:
        raise ValueError(message)


SELECT_BY = ("accuracy", "gap")
"""Validation scores the final choice among the pooled prompts can rank by (``SelectionConfig.select_by``)."""


@dataclass
class SelectionConfig:
    """How an agent keeps and selects its best prompts (on the validation split only).

    Attributes:
        pool_size: Best prompts kept, by validation accuracy, deduplicated.
        final_samples: Extra prompts validated by ``select_prompt`` before the choice.
        select_by: How ``select_prompt`` chooses among the kept prompts: ``"accuracy"`` (validation
            accuracy, ties broken by the mean verbalizer gap) or ``"gap"`` (the mean verbalizer gap
            on validation, ``p(correct) - max p(other)``, ties broken by accuracy): a continuous score,
            less noisy than accuracy on a few dozen sentences (see :data:`SELECT_BY`).
    """

    pool_size: int = 5
    final_samples: int = 4
    select_by: str = "accuracy"

    def __post_init__(self) -> None:
        require(self.pool_size >= 1, f"pool_size must be positive, got {self.pool_size}.")
        require(self.final_samples >= 0, f"final_samples must be non-negative, got {self.final_samples}.")
        require(self.select_by in SELECT_BY, f"select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}.")


@dataclass
class ValidationConfig(SelectionConfig):
    """Selection plus validation checks during training that feed the prompt pool.

    Attributes:
        eval_interval: Updates between validation checks.
        eval_samples: Prompts validated at each check.
    """

    eval_interval: int = 5
    eval_samples: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.eval_interval >= 1, f"eval_interval must be a positive number of updates, "
                                         f"got {self.eval_interval}.")
        require(self.eval_samples >= 1, f"eval_samples must be positive, got {self.eval_samples}.")


@dataclass
class ModelConfig:
    """The agent LLM and its LoRA adapter.

    Attributes:
        model: Model spec: a built-in alias, a ``.gguf`` file, a local folder or a hub id. Ignored
            when the agent is given a loaded model.
        dtype: Weight dtype (``"float32"``, ``"bfloat16"``...); ``None`` picks bf16 on CUDA, fp32 on CPU.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_r``).
        lora_dropout: Dropout on the LoRA input in training passes. APPO and PPO need 0 (their
            probability ratio compares two passes of the same function; dropout would make it
            differ from 1 for unchanged weights, as TRL's ``disable_dropout`` notes); the
            group policy gradient, a single on-policy pass, may use it.
        lora_target_modules: Module names that get LoRA layers; ``None`` uses peft's default for the
            architecture (``q_proj``/``v_proj`` for Llama-style models).
    """

    model: str = DEFAULT_MODEL
    dtype: str | None = None
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        require(self.lora_r >= 1, f"lora_r must be a positive integer, got {self.lora_r}.")
        require(self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha}.")
        require(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must lie in [0, 1), got {self.lora_dropout}.")
        if self.lora_target_modules is not None:
            require(len(self.lora_target_modules) > 0, "lora_target_modules must be None or a non-empty list.")
            self.lora_target_modules = list(self.lora_target_modules)

    def to_peft_config(self) -> Any:
        """Return the ``peft.LoraConfig`` of the policy (and anchor) adapter."""
        from peft import LoraConfig  # peft imports torch: keep this module (and the CLI's help) light

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.lora_target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        )


@dataclass
class LLMAgentConfig(SelectionConfig):
    """Settings every LLM prompt-writing agent has (:class:`~prompt_gym.agents.llm.LLMPromptAgent` reads them).

    Attributes:
        seed: Seeds torch, numpy and python, the first env reset and the agent's own generator.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``; used when the agent loads its model.
        temperature: Sampling temperature (no top-k/top-p, as in the paper).
        max_prompt_tokens: Longest prompt the agent writes; ``None`` reads the env's ``max_prompt_tokens``.
    """

    seed: int = 0
    device: str = "auto"
    temperature: float = 1.0
    max_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.temperature > 0, f"temperature must be positive, got {self.temperature}.")
        require(self.max_prompt_tokens is None or self.max_prompt_tokens >= 1, "max_prompt_tokens must be positive.")
