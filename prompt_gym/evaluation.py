"""Evaluate prompts on a task split: accuracy (or the generation metric) of the target with each prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from prompt_gym.scoring import Scorer
from prompt_gym.tasks import Task


def evaluate_prompts(
    scorer: Scorer,
    task: Task,
    prompts: Sequence[str],
    split: str = "test",
    chunk_size: int = 64,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score every prompt on every example of ``split``.

    Each chunk of examples is one target call (:meth:`~prompt_gym.scoring.Scorer.score_examples`)
    over every prompt, prompt by prompt.

    Args:
        scorer: The target (see :class:`prompt_gym.scoring.Scorer`).
        task: The task.
        prompts: Prompts to evaluate.
        split: ``"test"`` to report, ``"validation"`` to select (never select on test).
        chunk_size: Examples per scorer call (progress granularity).
        progress: Show a tqdm progress bar.

    Returns:
        One dict per prompt: ``prompt``, ``split``, ``metric`` (the task's), ``accuracy`` (the
        metric's mean: accuracy for classification; exact match, F1, contains or set match for
        generation tasks), ``num_examples``, and for classification ``gap`` (mean verbalizer gap).

    Raises:
        TypeError: ``prompts`` is one string or holds something other than strings.
    """
    if isinstance(prompts, str) or not all(isinstance(prompt, str) for prompt in prompts):
        raise TypeError(f"prompts must be a list of strings, got {prompts!r}; wrap a single prompt as [prompt].")
    examples = task.split(split)
    scores = np.zeros((len(prompts), len(examples)))
    gaps: np.ndarray | None = None
    with tqdm(total=len(prompts) * len(examples), disable=not progress, unit="ex", desc=f"{task.name}/{split}") as bar:
        for start in range(0, len(examples), chunk_size):
            chunk = examples[start : start + chunk_size]
            stop = start + len(chunk)
            scored = scorer.score_examples([prompt for prompt in prompts for _ in chunk], list(chunk) * len(prompts))
            scores[:, start:stop] = scored.scores.reshape(len(prompts), len(chunk))
            if scored.gaps is not None:
                gaps = np.zeros_like(scores) if gaps is None else gaps
                gaps[:, start:stop] = scored.gaps.reshape(len(prompts), len(chunk))
            bar.update(len(prompts) * len(chunk))
    return [
        {"prompt": prompt, "split": split, "metric": task.metric, "accuracy": float(scores[i].mean())}
        | ({} if gaps is None else {"gap": float(gaps[i].mean())})
        | {"num_examples": len(examples)}
        for i, prompt in enumerate(prompts)
    ]
