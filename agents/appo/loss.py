"""APPO/PPO math as pure functions on tensors.

Every tensor is ``(batch, tokens)``: one row per episode (prompt), one column per action token,
with a float ``mask`` (1 for real action tokens, 0 for padding). Functions that produce a loss
return ``(loss, stats)`` where ``stats`` holds plain floats for logging.
"""

from __future__ import annotations

import torch

from prompt_gym.agents.lora_policy import masked_mean


def whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise ``values`` to zero mean and unit variance over the masked positions (padding stays 0)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def kl_to_anchor(logprobs: torch.Tensor, anchor_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``log pi(a_t|s_t) - log pi_anchor(a_t|s_t)`` (trl's ``"kl"`` penalty)."""
    return logprobs - anchor_logprobs


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards: ``-kl_coef * kl`` at every action token, plus the episode score at its last token.

    Args:
        scores: ``(batch,)`` episode rewards from the environment.
        kl: ``(batch, tokens)`` per-token KL to the anchor.
        mask: ``(batch, tokens)`` action-token mask; every row has at least one token.
        kl_coef: beta.
    """
    rewards = -kl_coef * kl * mask
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded token sequences.

    The episode ends after its last masked token, so the value after it is 0.

    Returns:
        ``(advantages, returns)``, both ``(batch, tokens)`` and 0 on padding; ``returns = advantages + values``.
    """
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        live = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * live
        advantages[:, t] = running
        next_value = values[:, t] * live
    return advantages, (advantages + values) * mask


def batch_advantages(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float, baseline_rows: int | None = None
) -> torch.Tensor:
    """Critic-free advantages: each token's return-to-go minus the batch's mean episode return.

    With ``gamma = 1`` the return-to-go of token ``t`` is the episode score minus ``kl_coef`` times the
    KL of tokens ``t`` and later. The baseline is the mean return of the batch's episodes (the
    group baseline of GRPO/RLOO, here over the whole batch), so no value function is needed.

    Args:
        scores: ``(batch,)`` episode rewards from the environment.
        kl: ``(batch, tokens)`` per-token KL to the anchor.
        mask: ``(batch, tokens)`` action-token mask.
        kl_coef: beta.
        baseline_rows: Average the baseline over the first ``baseline_rows`` episodes only (the
            fresh ones, when replayed episodes follow them); ``None``: over all.

    Returns:
        ``(batch, tokens)`` advantages, 0 on padding.
    """
    penalties = -kl_coef * kl * mask
    to_go = scores[:, None].to(penalties.dtype) + penalties.flip(1).cumsum(1).flip(1)
    baseline = to_go[:baseline_rows, 0].mean()
    return (to_go - baseline) * mask


def kl_share(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> float:
    """How much of the episode returns' spread the KL penalty makes: ``std(penalty) / std(score)`` over episodes.

    Near 0: the KL term does nothing against the reward; near or above 1: it dominates the signal.
    NaN when every score in the batch is the same.
    """
    penalty = -kl_coef * (kl * mask).sum(1)
    spread = float(scores.std()) if scores.numel() > 1 else 0.0
    return float(penalty.std()) / spread if spread > 0 else float("nan")


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate, averaged over action tokens.

    Returns:
        ``(loss, stats)`` with ``policy_loss``, ``approx_kl`` (the ``(r - 1) - log r`` estimator of
        KL(old || new)) and ``clip_fraction`` (share of tokens whose ratio left ``1 +- clip_range``).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "policy_loss": float(loss),
            "approx_kl": float(approx_kl(logprobs, old_logprobs, mask)),
            "clip_fraction": float(clip_fraction(ratio, mask, clip_range)),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range_value: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped value loss ``0.5 * max((v - R)^2, (clip(v, v_old +- c) - R)^2)``, averaged over action tokens.

    Returns:
        ``(loss, stats)`` with ``value_loss``, ``value_clip_fraction`` and ``explained_variance``.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    losses = torch.maximum((values - returns) ** 2, (clipped_values - returns) ** 2)
    loss = 0.5 * masked_mean(losses, mask)
    with torch.no_grad():
        stats = {
            "value_loss": float(loss),
            "value_clip_fraction": float(
                masked_mean(((values - returns) ** 2 < (clipped_values - returns) ** 2).float(), mask)
            ),
            "explained_variance": float(explained_variance(values, returns, mask)),
        }
    return loss, stats


def approx_kl(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Low-variance estimator of KL(old || new): mean of ``(r - 1) - log r`` (Schulman's k3)."""
    log_ratio = logprobs - old_logprobs
    return masked_mean(torch.exp(log_ratio) - 1.0 - log_ratio, mask)


def clip_fraction(ratio: torch.Tensor, mask: torch.Tensor, clip_range: float) -> torch.Tensor:
    """Share of action tokens whose probability ratio lies outside ``[1 - clip_range, 1 + clip_range]``."""
    return masked_mean(((ratio - 1.0).abs() > clip_range).float(), mask)


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 - Var[targets - predictions] / Var[targets]`` over masked positions (NaN when targets are constant)."""
    mean = masked_mean(targets, mask)
    var_targets = masked_mean((targets - mean) ** 2, mask)
    residual = targets - predictions
    var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    if float(var_targets) == 0.0:
        return torch.tensor(float("nan"))
    return 1.0 - var_residual / var_targets
