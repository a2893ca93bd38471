"""Configuration of the APPO agent: the algorithm (:class:`APPOConfig`); the model is :class:`ModelConfig`.

``APPOConfig`` inherits the settings every LLM agent has (:class:`~prompt_gym.agents.configs.LLMAgentConfig`:
``seed``, ``device``, ``temperature``, ``max_prompt_tokens``, ``pool_size``, ``final_samples``) and adds
APPO's. Both are plain dataclasses that round-trip through :func:`dataclasses.asdict` (runs log them
in ``results.json`` and checkpoints store them), and validate their fields in ``__post_init__``.
The defaults are the settings measured to learn with the default 135M model on a CPU
(``benchmarks/RESULTS.md``, "Learning"); the StablePrompt code's (trl 0.x PPO with its defaults, as ``docs/appo.md`` lists)
are the preset ``"paper"`` (:data:`PRESETS`, :meth:`APPOConfig.from_preset`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from prompt_gym.agents.configs import LLMAgentConfig, ModelConfig, require

__all__ = ["ADVANTAGES", "PRESETS", "SELECTIONS", "APPOConfig", "ModelConfig"]

ADVANTAGES = ("batch", "critic")
"""How APPO estimates advantages (see ``APPOConfig.advantage``)."""

SELECTIONS = ("checks", "screened")
"""Which validated prompts compete for APPO's final choice (see ``APPOConfig.selection``)."""


@dataclass
class APPOConfig(LLMAgentConfig):
    """Hyper-parameters of APPO (PPO whose KL anchor moves only after validated progress).

    The inherited :class:`~prompt_gym.agents.configs.LLMAgentConfig` fields: ``seed`` (torch, numpy,
    python and the first env reset), ``device``, ``temperature`` (of the policy; top-k/top-p are off,
    as in the paper), ``max_prompt_tokens`` (``None``: the env's), ``pool_size`` and ``final_samples``
    (prompts sampled from the final policy and validated before the final selection).

    Attributes:
        learning_rate: Adam learning rate of the LoRA and value-head parameters (1e-5 in the paper's
            code, for a 7B model; a 135M model's LoRA needs about 1e-3 to move in tens of updates).
        anneal_lr: Decay the learning rate linearly to 0 over the ``total_updates`` of ``learn``.
        batch_size: Finished episodes (prompts) per update (4 in the paper's code).
        advantage: ``"batch"``: critic-free, each token's return-to-go minus the batch's mean
            episode return (GRPO/RLOO-style; the value head is not trained, ``vf_coef`` and the
            value clip are unused); ``"critic"``: GAE with the value head (the paper's PPO).
        shared_meta_prompt: Write each update's ``batch_size`` prompts for one meta-prompt and judge
            them on one reward batch (a single env reset with one seed per update, as the group policy
            gradient does): their rewards compare fairly, and the meta-prompt is encoded once for the
            whole batch when writing and in every PPO pass. ``False``: each episode is its own env
            episode, collected with ``predict``/``step`` (the only choice on a vector env). ``None``
            (default): shared on a single env, per episode on a vector env.
        elite_replay: Self-imitation (Oh et al., 2018): each update also trains on the ``elite_replay``
            highest-reward episodes seen so far (with their own meta-prompts and rewards, so no
            target calls), their advantage measured against the fresh episodes' mean return. It
            pulls the policy toward the best prompts it has written; 0 is pure on-policy PPO (the paper).
        minibatch_size: Episodes per gradient step; must divide ``batch_size + elite_replay``; ``None``:
            the whole batch in one step.
        ppo_epochs: Passes over each batch.
        gamma: Discount of the per-token rewards.
        gae_lambda: GAE lambda.
        clip_range: PPO ratio clip epsilon.
        clip_range_value: Value clip range around the rollout values.
        vf_coef: Weight of the value loss.
        kl_coef: beta of the per-token KL penalty ``-beta (log pi - log pi_anchor)``.
        max_grad_norm: Gradient-norm clip; ``None`` disables clipping (as in the paper's code).
        target_kl: Stop an update's PPO passes early, before the step, once a minibatch's
            ``approx_kl`` to the update's starting policy exceeds ``1.5 * target_kl`` (as
            Stable-Baselines3's PPO does); ``train/gradient_steps`` logs the steps taken. ``None``:
            always run every epoch.
        whiten_advantages: Normalise advantages over the batch's tokens.
        fixed_reference: Ablation "plain PPO": the KL reference is the starting policy and the anchor
            is never checked, promoted or rolled back.
        rollback: When the policy is worse than the anchor by more than ``anchor_threshold``, copy
            the anchor back into the policy. ``False`` is the "no rollback" ablation.
        reset_optimizer_on_rollback: Clear Adam's moments on rollback (the paper's code forgot this).
        anchor_check_interval: Updates between anchor checks.
        anchor_samples: Prompts sampled from the policy and from the anchor at each check (k).
        anchor_threshold: Validation-accuracy margin (delta) that triggers a promotion or a rollback.
        selection: Which validated prompts compete for the final choice (always made on validation).
            ``"checks"`` (the paper's way): every prompt validated during training (the anchor
            checks' samples of the policy and the anchor) joins the pool, and ``select_prompt``
            adds the greedy prompt and ``final_samples`` samples of the final policy.
            ``"screened"`` (random search's way): a prompt is validated for the pool only after
            it scored well on its training batch: at each anchor check the ``screen_samples``
            best-rewarded prompts trained on since the last check, and at the end the
            ``1 + final_samples`` best-rewarded ones not validated yet. The anchor checks' samples
            still measure the policy and decide promotions, but do not join the pool: the
            best of many prompts scored on a few validation sentences overstates itself.
        screen_samples: With ``selection="screened"``: prompts validated for the pool at each anchor check.
    """

    learning_rate: float = 1e-3
    anneal_lr: bool = False
    batch_size: int = 8
    advantage: str = "batch"
    shared_meta_prompt: bool | None = None
    elite_replay: int = 8
    minibatch_size: int | None = None
    ppo_epochs: int = 2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    kl_coef: float = 0.2
    max_grad_norm: float | None = None
    target_kl: float | None = None
    whiten_advantages: bool = True
    fixed_reference: bool = False
    rollback: bool = True
    reset_optimizer_on_rollback: bool = True
    anchor_check_interval: int = 5
    anchor_samples: int = 8
    anchor_threshold: float = 0.05
    selection: str = "checks"
    screen_samples: int = 2

    ADDED_FIELDS: ClassVar[dict[str, Any]] = {"target_kl": None}
    """Fields added after runs were checkpointed, with the value that behaves as the code before them:
    a checkpoint without one of them resumes as if it held that value."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            require(not isinstance(value, float) or math.isfinite(value), f"{name} must be a finite number, got {value}.")
        for name in ("batch_size", "elite_replay", "ppo_epochs", "anchor_check_interval", "anchor_samples",
                     "pool_size", "final_samples", "screen_samples"):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool),
                    f"{name} must be an integer, got {value!r}.")
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}.")
        require(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}.")
        require(self.advantage in ADVANTAGES, f"advantage must be one of {ADVANTAGES}, got {self.advantage!r}.")
        require(self.elite_replay >= 0, f"elite_replay must be non-negative, got {self.elite_replay}.")
        episodes = self.batch_size + self.elite_replay
        require(
            self.minibatch_size is None or (1 <= self.minibatch_size <= episodes and episodes % self.minibatch_size == 0),
            f"minibatch_size ({self.minibatch_size}) must divide batch_size + elite_replay ({episodes}).",
        )
        require(self.ppo_epochs >= 1, f"ppo_epochs must be positive, got {self.ppo_epochs}.")
        require(0.0 <= self.gamma <= 1.0, f"gamma must lie in [0, 1], got {self.gamma}.")
        require(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must lie in [0, 1], got {self.gae_lambda}.")
        require(self.clip_range > 0 and self.clip_range_value > 0, "clip_range and clip_range_value must be positive.")
        require(self.vf_coef >= 0 and self.kl_coef >= 0, "vf_coef and kl_coef must be non-negative.")
        require(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm must be None or positive.")
        require(self.target_kl is None or self.target_kl > 0, f"target_kl must be None or positive, got {self.target_kl}.")
        require(self.anchor_check_interval >= 1, "anchor_check_interval must be a positive number of updates.")
        require(self.anchor_samples >= 1, f"anchor_samples must be positive, got {self.anchor_samples}.")
        require(0.0 <= self.anchor_threshold < 1.0,
                f"anchor_threshold must lie in [0, 1), got {self.anchor_threshold}.")
        require(self.selection in SELECTIONS, f"selection must be one of {SELECTIONS}, got {self.selection!r}.")
        require(self.screen_samples >= 1, f"screen_samples must be positive, got {self.screen_samples}.")
        super().__post_init__()

    @classmethod
    def from_preset(cls, preset: str | None = None, **overrides: Any) -> APPOConfig:
        """A config from a named preset (see :data:`PRESETS`), then ``overrides`` (fields set to ``None`` are skipped).

        Raises:
            ValueError: Unknown preset or field (the message lists the known ones).
        """
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown APPO preset {preset!r}; choose one of {sorted(PRESETS)}.")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"APPOConfig has no field(s) {unknown}; known fields: {sorted(known)}.")
        values = dict(PRESETS.get(preset, {})) | {k: v for k, v in overrides.items() if v is not None}
        return cls(**values)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "learning_rate": 1e-5, "advantage": "critic", "shared_meta_prompt": False, "elite_replay": 0,
        "batch_size": 4, "minibatch_size": None, "ppo_epochs": 4, "vf_coef": 0.1, "kl_coef": 0.2,
        "anchor_check_interval": 5, "anchor_samples": 2, "anchor_threshold": 0.05,
    },
}
"""Named settings. ``"paper"``: the StablePrompt code's (trl 0.x PPO with a critic, lr 1e-5 for 7B agents,
4 prompts per update, anchor checks of 2 + 2 samples). The defaults of :class:`APPOConfig` are the
settings measured to learn with the default 135M model on a CPU (``benchmarks/RESULTS.md``)."""
