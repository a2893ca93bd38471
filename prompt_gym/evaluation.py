"""Evaluate prompts on a task split: accuracy of the target with each prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prompt_gym.rewards import correct_and_gap
from prompt_gym.tasks import Task


def evaluate_prompts(
    scorer: Any,
    task: Task,
    prompts: Sequence[str],
    split: str = "test",
    chunk_size: int = 64,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score every prompt on every example of ``split``.

    Args:
        scorer: The target (see :mod:`prompt_gym.scoring`).
        task: The task.
        prompts: Prompts to evaluate.
        split: ``"test"`` to report, ``"validation"`` to select (never select on test).
        chunk_size: Examples per scorer call (progress granularity).
        progress: Show a tqdm progress bar.

    Returns:
        One dict per prompt: ``prompt``, ``split``, ``accuracy``, ``gap`` (mean verbalizer gap),
        ``num_examples``.
    """
    examples = task.split(split)
    labels = np.array([example.label for example in examples])
    correct = np.zeros((len(prompts), len(examples)), dtype=bool)
    gap = np.zeros((len(prompts), len(examples)))
    from tqdm.auto import tqdm

    with tqdm(total=len(prompts) * len(examples), disable=not progress, unit="ex", desc=f"{task.name}/{split}") as bar:
        for start in range(0, len(examples), chunk_size):
            stop = min(start + chunk_size, len(examples))
            scores = scorer.score(prompts, [example.input for example in examples[start:stop]])
            correct[:, start:stop], gap[:, start:stop] = correct_and_gap(scores, labels[start:stop])
            bar.update(len(prompts) * (stop - start))
    return [
        {"prompt": prompt, "split": split, "accuracy": float(correct[i].mean()), "gap": float(gap[i].mean()),
         "num_examples": len(examples)}
        for i, prompt in enumerate(prompts)
    ]
