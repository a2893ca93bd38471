"""Reward functions over the target's class scores.

Every function takes ``log_probs`` of shape ``(num_prompts, num_examples, num_classes)`` (log-
probabilities over the verbalizer classes, see :mod:`prompt_gym.scoring`) and ``labels`` of shape
``(num_examples,)``, and returns ``(rewards, parts)``: one reward per prompt and a dict of named
per-prompt components (always including ``accuracy`` and ``gap``) for logging.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RewardParts = dict[str, np.ndarray]
RewardFunction = Callable[..., tuple[np.ndarray, RewardParts]]


def _checked(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if log_probs.ndim != 3 or log_probs.shape[1] != labels.shape[0]:
        raise ValueError(
            f"Expected log_probs (prompts, examples, classes) matching {labels.shape[0]} labels, got {log_probs.shape}."
        )
    return log_probs, labels


def correct_and_gap(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example correctness and probability gap.

    The gap is RLPrompt's: ``p(correct class) - max p(other class)`` with probabilities over the
    verbalizer classes; it lies in ``[-1, 1]`` and is positive exactly when the example is right.

    Returns:
        ``(correct, gap)``, both of shape ``(num_prompts, num_examples)``.
    """
    log_probs, labels = _checked(log_probs, labels)
    probs = np.exp(log_probs)
    rows = np.arange(labels.shape[0])
    p_true = probs[:, rows, labels]
    others = probs.copy()
    others[:, rows, labels] = -np.inf
    gap = p_true - others.max(axis=2)
    correct = log_probs.argmax(axis=2) == labels[None, :]
    return correct, gap


def accuracy_reward(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, RewardParts]:
    """Reward = fraction of examples whose highest-scoring class is the label."""
    correct, gap = correct_and_gap(log_probs, labels)
    accuracy = correct.mean(axis=1)
    return accuracy, {"accuracy": accuracy, "gap": gap.mean(axis=1)}


def margin_reward(
    log_probs: np.ndarray, labels: np.ndarray, correct_weight: float = 2.0, wrong_weight: float = 1.8
) -> tuple[np.ndarray, RewardParts]:
    """RLPrompt's piecewise gap reward: mean of ``gap * (correct_weight if right else wrong_weight)``.

    RLPrompt uses 200 and 180; the defaults keep their ratio on a scale comparable to accuracy.
    """
    correct, gap = correct_and_gap(log_probs, labels)
    weighted = np.where(correct, correct_weight, wrong_weight) * gap
    return weighted.mean(axis=1), {"accuracy": correct.mean(axis=1), "gap": gap.mean(axis=1)}


def stableprompt_reward(
    log_probs: np.ndarray, labels: np.ndarray, accuracy_weight: float = 30.0, gap_weight: float = 1.0
) -> tuple[np.ndarray, RewardParts]:
    """StablePrompt's mix, ``accuracy_weight * accuracy + gap_weight * mean gap``, on the verbalizer classes.

    The paper's code computes its gap over the full vocabulary at the class *index* (a bug, see
    the reference digest §2.4), which makes the term noise; here the gap is the verbalizer-space
    one, so it breaks ties between prompts of equal accuracy. 30 is the paper's accuracy weight.
    """
    correct, gap = correct_and_gap(log_probs, labels)
    accuracy, mean_gap = correct.mean(axis=1), gap.mean(axis=1)
    return accuracy_weight * accuracy + gap_weight * mean_gap, {"accuracy": accuracy, "gap": mean_gap}


REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "accuracy": accuracy_reward,
    "margin": margin_reward,
    "stableprompt": stableprompt_reward,
}


def metric_reward(scores: np.ndarray, accuracy_weight: float = 1.0) -> tuple[np.ndarray, RewardParts]:
    """Generation tasks: reward = ``accuracy_weight *`` the mean task-metric score per prompt.

    Args:
        scores: Metric scores in ``[0, 1]`` of shape ``(num_prompts, num_examples)``.
        accuracy_weight: Scale (1 for ``"accuracy"``; 30, the paper's weight, for ``"stableprompt"``).

    Returns:
        ``(rewards, {"accuracy": mean score})``: for generation tasks ``accuracy`` is the task
        metric's mean (exact match, F1, contains or set match).
    """
    mean = np.asarray(scores, dtype=np.float64).mean(axis=1)
    return accuracy_weight * mean, {"accuracy": mean}


def stableprompt_metric_reward(scores: np.ndarray, accuracy_weight: float = 30.0) -> tuple[np.ndarray, RewardParts]:
    """StablePrompt's scale for generation tasks: ``30 *`` the mean metric score (no gap term exists)."""
    return metric_reward(scores, accuracy_weight)


GENERATION_REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "accuracy": metric_reward,
    "stableprompt": stableprompt_metric_reward,
}
"""Rewards for generation tasks, under the names of their classification counterparts."""


def get_reward_function(name: str, generation: bool = False) -> RewardFunction:
    """Look up a reward function by name (``generation=True``: the generation-task version).

    Raises:
        KeyError: Unknown name (the message lists the known ones).
    """
    table = GENERATION_REWARD_FUNCTIONS if generation else REWARD_FUNCTIONS
    if name not in table:
        kind = "generation tasks" if generation else "classification tasks"
        raise KeyError(f"Unknown reward {name!r} for {kind}; choose one of {sorted(table)}.")
    return table[name]


def zscore(rewards: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Normalise rewards of the prompts of one step to zero mean and unit variance (RLPrompt).

    A single reward, or rewards that are all equal, normalise to zeros.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.size < 2:
        return np.zeros_like(rewards)
    return (rewards - rewards.mean()) / (rewards.std() + eps)
