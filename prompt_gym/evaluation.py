"""Evaluate prompts on a task split: accuracy (or the generation metric) of the target with each prompt."""

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
        One dict per prompt: ``prompt``, ``split``, ``metric`` (the task's), ``accuracy`` (the
        metric's mean: accuracy for classification; exact match, F1, contains or set match for
        generation tasks), ``num_examples``, and for classification ``gap`` (mean verbalizer gap).

    Raises:
        TypeError: ``prompts`` is one string or holds something other than strings.
    """
    if isinstance(prompts, str) or not all(isinstance(prompt, str) for prompt in prompts):
        raise TypeError(f"prompts must be a list of strings, got {prompts!r}; wrap a single prompt as [prompt].")
    if task.is_generation:
        return _evaluate_generation(scorer, task, prompts, split, chunk_size, progress)
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
        {"prompt": prompt, "split": split, "metric": task.metric, "accuracy": float(correct[i].mean()),
         "gap": float(gap[i].mean()), "num_examples": len(examples)}
        for i, prompt in enumerate(prompts)
    ]


def _evaluate_generation(
    scorer: Any, task: Task, prompts: Sequence[str], split: str, chunk_size: int, progress: bool
) -> list[dict[str, Any]]:
    """The target answers every example of ``split`` with each prompt; the task metric scores it."""
    from tqdm.auto import tqdm

    examples = task.split(split)
    scores = np.zeros((len(prompts), len(examples)))
    with tqdm(total=len(prompts) * len(examples), disable=not progress, unit="ex", desc=f"{task.name}/{split}") as bar:
        for i, prompt in enumerate(prompts):
            for start in range(0, len(examples), chunk_size):
                chunk = examples[start : start + chunk_size]
                scores[i, start : start + len(chunk)] = scorer.score_outputs(
                    [prompt] * len(chunk), [e.input for e in chunk], [e.outputs for e in chunk])
                bar.update(len(chunk))
    return [
        {"prompt": prompt, "split": split, "metric": task.metric, "accuracy": float(scores[i].mean()),
         "num_examples": len(examples)}
        for i, prompt in enumerate(prompts)
    ]
