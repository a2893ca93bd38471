"""Group-baseline policy gradient (the GRPO / RLOO family) on the shared LLM-agent pieces.

Each update draws ``groups_per_update`` meta-prompts and writes ``group_size`` prompts for each;
every prompt is played as one env episode, and all prompts of a group are judged on the same
meta-prompt and reward batch (``env.reset(seed=s)`` with one ``s``). No value function:

* advantage ``A_i = R_i - mean_group(R)`` (RLOO uses the leave-one-out mean, which is this times
  ``G / (G - 1)``), divided by the group's standard deviation when ``scale_by_std`` (GRPO);
* loss ``-mean_tokens(A_i * log pi(a_t | s_t)) + kl_coef * mean_tokens(KL_t)``, where ``KL_t`` is
  Schulman's k3 estimator ``exp(q) - q - 1`` with ``q = log pi_ref - log pi`` and the reference is
  the frozen starting policy (the ``anchor`` adapter, never promoted).

One gradient step per update on freshly sampled prompts (on-policy, so no ratio clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prompt_gym.agents.configs import LLMAgentConfig, ModelConfig, ValidationConfig, require
from prompt_gym.agents.llm import LLMPromptAgent
from prompt_gym.agents.lora_policy import ANCHOR, POLICY, masked_mean
from prompt_gym.agents.rollout import Trajectory
from prompt_gym.callbacks import Callback
from prompt_gym.logging import Logger


@dataclass
class PGGroupConfig(LLMAgentConfig, ValidationConfig):
    """Hyper-parameters of the group-baseline policy gradient (with the LLM-agent and validation settings).

    Attributes:
        learning_rate: Adam learning rate of the LoRA weights.
        group_size: Prompts per meta-prompt (G >= 2: a group of one has no baseline).
        groups_per_update: Meta-prompts per update (episodes per update = both multiplied).
        scale_by_std: Divide advantages by the group's reward standard deviation (GRPO); off is
            the plain mean baseline (RLOO up to a constant factor).
        kl_coef: Weight of the KL penalty to the starting policy.
        max_grad_norm: Gradient-norm clip; ``None`` disables it.
    """

    learning_rate: float = 1e-4
    group_size: int = 4
    groups_per_update: int = 1
    scale_by_std: bool = True
    kl_coef: float = 0.05
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}.")
        require(self.group_size >= 2, f"group_size must be at least 2 (the group mean is the baseline), "
                                      f"got {self.group_size}.")
        require(self.groups_per_update >= 1, f"groups_per_update must be positive, got {self.groups_per_update}.")
        require(self.kl_coef >= 0, f"kl_coef must be non-negative, got {self.kl_coef}.")
        require(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm must be None or positive.")


def group_advantages(rewards: torch.Tensor, scale_by_std: bool, eps: float = 1e-6) -> torch.Tensor:
    """Per-episode advantages from ``(groups, group_size)`` rewards: minus the group mean, optionally / std."""
    advantages = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_by_std:
        advantages = advantages / (rewards.std(dim=1, keepdim=True) + eps)
    return advantages


def pg_group_loss(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``-mean(A * log pi) + kl_coef * mean(k3 KL to the reference)`` over action tokens.

    Args:
        logprobs: ``(episodes, tokens)`` log-probabilities under the policy (with gradients).
        ref_logprobs: The same under the reference.
        advantages: ``(episodes,)`` advantages.
        mask: ``(episodes, tokens)`` action-token mask.
        kl_coef: Weight of the KL term.

    Returns:
        ``(loss, stats)`` with ``policy_loss``, ``kl_to_reference`` and ``loss``.
    """
    surrogate = -masked_mean(advantages[:, None] * logprobs, mask)
    log_ratio = ref_logprobs - logprobs
    kl = masked_mean(torch.exp(log_ratio) - log_ratio - 1.0, mask)
    loss = surrogate + kl_coef * kl
    return loss, {"policy_loss": float(surrogate.detach()), "kl_to_reference": float(kl.detach()),
                  "loss": float(loss.detach())}


class PGGroupAgent(LLMPromptAgent):
    """Group-baseline policy gradient with a KL penalty to the starting model.

    Args:
        env: A prompt-gym env (single, token or text mode).
        config: Algorithm settings.
        model_config: Model and LoRA settings.
        model: A loaded causal LM without adapters; ``tokenizer`` with it.
        tokenizer: The model's tokenizer.
        logger: Where metrics go.
    """

    name = "pg-group"
    config_class = PGGroupConfig

    def __init__(
        self, env: Any = None, config: PGGroupConfig | None = None, model_config: ModelConfig | None = None,
        model: Any = None, tokenizer: Any = None, logger: Logger | None = None,
    ) -> None:
        super().__init__(env, config or PGGroupConfig(), model_config, model, tokenizer, logger)
        self.optimizer = torch.optim.Adam(self.policy.adapter_parameters(POLICY), lr=self.config.learning_rate)

    def measure_start(self) -> None:
        """Measure the starting policy's own accuracy (update 0), as every ``eval_interval`` updates later."""
        accuracy, _ = self.policy_accuracy(self.config.eval_samples)
        self.log_validation({"eval/policy_accuracy": accuracy})

    def learning_step(self, callback: Callback) -> dict[str, float]:
        """Play ``groups_per_update`` groups, take one gradient step, validate when due."""
        groups = [self.play_group(self.config.group_size, same_meta_prompt=True)
                  for _ in range(self.config.groups_per_update)]
        callback.on_rollout_end()
        stats = self.gradient_step(groups)
        if self.num_updates % self.config.eval_interval == 0:
            accuracy, _ = self.policy_accuracy(self.config.eval_samples)
            self.log_validation(stats | {"eval/policy_accuracy": accuracy})
        return stats

    def gradient_step(self, groups: list[list[Trajectory]]) -> dict[str, float]:
        """One gradient step on finished groups of episodes; returns the update's statistics."""
        episodes = [t for group in groups for t in group]
        contexts, actions = [t.context for t in episodes], [t.actions for t in episodes]
        rewards = torch.tensor([[t.reward for t in group] for group in groups], dtype=torch.float32)
        advantages = group_advantages(rewards, self.config.scale_by_std).flatten().to(self.policy.device)
        with torch.no_grad(), self.policy.use_adapter(ANCHOR):
            ref_logprobs, _, _ = self.policy.sequence_logprobs(contexts, actions, self.pad_id, self.config.temperature)
        self.policy.train()
        logprobs, _, mask, entropy = self.policy.sequence_logprobs(contexts, actions, self.pad_id,
                                                                   self.config.temperature, with_entropy=True)
        loss, stats = pg_group_loss(logprobs, ref_logprobs, advantages, mask, self.config.kl_coef)
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.adapter_parameters(POLICY), self.config.max_grad_norm)
        self.optimizer.step()
        self.policy.eval()
        self.num_updates += 1
        stats = {f"train/{k}": v for k, v in stats.items()} | {
            "train/entropy": float(masked_mean(entropy.detach(), mask)),
            "rollout/reward": float(rewards.mean()),
            "rollout/reward_group_std": float(rewards.std(dim=1).mean()),
            "rollout/prompt_tokens": float(np.mean([len(a) for a in actions])),
        }
        if all("accuracy" in t.info for t in episodes):
            stats["rollout/accuracy"] = float(np.mean([t.info["accuracy"] for t in episodes]))
        return stats
