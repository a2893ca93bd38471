"""Training curves as a PNG: reward and validation accuracies against target-LLM evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

X_KEY = "time/target_evaluations"


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r[X_KEY], r[key]) for r in records if r.get(key) is not None and r.get(X_KEY) is not None]
    return [x for x, _ in points], [y for _, y in points]


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Draw the reward (top) and the accuracies (bottom) against ``time/target_evaluations``.

    The bottom panel shows ``eval/policy_accuracy`` (the policy's own accuracy: the mean validation
    accuracy of prompts it samples), ``eval/best_val_accuracy`` (the best prompt found so far),
    the anchor's estimate, ``eval/val_accuracy`` (the prompts a search agent validated) and the
    training batch's accuracy, each where the log has it.

    Args:
        records: Logger records (see :mod:`prompt_gym.logging`).
        path: The PNG file to write.
        title: Figure title.

    Returns:
        The written path.
    """
    import matplotlib  # here: the headless backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    xs, ys = _series(records, "rollout/reward")
    top.plot(xs, ys, marker=".", label="rollout/reward (train batch)")
    top.set_ylabel("reward")
    for key, style in (("eval/policy_accuracy", "o-"), ("eval/best_val_accuracy", "^-"),
                       ("anchor/anchor_val_accuracy", "s--"), ("eval/val_accuracy", "d-"), ("rollout/accuracy", ".:")):
        xs, ys = _series(records, key)
        if xs:
            bottom.plot(xs, ys, style, label=key)
    bottom.set_ylabel("accuracy")
    bottom.set_xlabel("target-LLM evaluations (prompt x input pairs)")
    for axis in (top, bottom):
        if axis.get_legend_handles_labels()[0]:  # an agent may log neither (a user's agent, a baseline)
            axis.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
