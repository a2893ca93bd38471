"""Training curves as a PNG: reward and validation accuracy against target-LLM evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

X_KEY = "time/target_evaluations"


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r[X_KEY], r[key]) for r in records if r.get(key) is not None and r.get(X_KEY) is not None]
    return [x for x, _ in points], [y for _, y in points]


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Draw ``rollout/reward`` and ``eval/val_accuracy`` against ``time/target_evaluations``.

    Args:
        records: Logger records (see :mod:`prompt_gym.logging`).
        path: The PNG file to write.
        title: Figure title.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    xs, ys = _series(records, "rollout/reward")
    top.plot(xs, ys, marker=".", label="rollout/reward (train batch)")
    top.set_ylabel("reward")
    top.legend(loc="best")
    for key, style in (("eval/val_accuracy", "o-"), ("anchor/anchor_val_accuracy", "s--"), ("rollout/accuracy", ".:")):
        xs, ys = _series(records, key)
        if xs:
            bottom.plot(xs, ys, style, label=key)
    bottom.set_ylabel("accuracy")
    bottom.set_xlabel("target-LLM evaluations (prompt x input pairs)")
    bottom.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
