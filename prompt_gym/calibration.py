"""Calibration of a classification target: its class bias removed per prompt.

A small target often prefers some classes whatever it reads: SmolLM2-135M answers "World" or
"Business" for most AG News articles with any prompt, and a prompt's value is then mostly how far
it happens to push that bias back (``benchmarks/RESULTS.md``, "Learning that shows" §15).
Calibration removes the bias before the answer is read: for each prompt the target also scores a
fixed set of *calibration inputs*, and every class probability is divided by that prompt's mean
probability of the class over them, then renormalised over the classes::

    q(c | prompt, x)  ∝  p(c | prompt, x) / mean_n p(c | prompt, n),   n in the calibration inputs

Two sets of calibration inputs (the env's ``calibration`` argument):

- ``"batch"``: the task's training inputs, without their labels (Batch Calibration, Zhou et al.
  2024, with the few-shot training split as the batch: fixed, so a prompt's score on an example
  does not depend on what else is scored with it, and it never reads validation or test inputs).
- ``"content-free"``: ``"N/A"``, ``"[MASK]"`` and ``""`` (Zhao et al. 2021, "Calibrate Before
  Use"). On SmolLM2-135M and AG News it over-corrects (measured in ``benchmarks/RESULTS.md``, §16):
  the bias the target shows on those strings is not the one it shows on articles.

The division is Zhao et al.'s ``W = diag(p_cal)^-1, b = 0`` with their code's renormalisation,
computed in log space. It changes the task (the target's decision rule), so results with and
without it are not comparable; a run records which it used in its env arguments.

Cost: the calibration inputs are ordinary target evaluations, scored in the same call as the
prompt's first examples and counted in ``num_evaluations``; a score cache answers the ones it
holds (with ``"batch"``, the reward batch's inputs), and a prompt's baseline is kept, so later
calls with that prompt cost nothing extra. Baselines are not checkpointed: a resumed run recomputes
them from the restored score cache (free for the rows it still holds).

Example:
    >>> from prompt_gym.tasks import get_task
    >>> task = get_task("toy")
    >>> scorer = calibrated(task.default_scorer(task), "content-free", task)
    >>> scorer.score_pairs(["Classify the review"] * 2, [e.input for e in task.split("train")[:2]]).shape
    (2, 2)
    >>> scorer.num_evaluations  # 2 inputs + 3 content-free inputs
    5
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from prompt_gym.scoring import BaseScorer, ScoreCache
from prompt_gym.tasks import Task

CALIBRATIONS = (None, "batch", "content-free")
"""The env's ``calibration`` choices: ``None`` (the target's raw answers), ``"batch"`` or ``"content-free"``."""

CONTENT_FREE_INPUTS = ("N/A", "[MASK]", "")
"""Zhao et al.'s content-free inputs (``calibration="content-free"``)."""


def calibration_inputs(task: Task, calibration: str) -> tuple[str, ...]:
    """The inputs whose mean class probabilities are each prompt's baseline under ``calibration``.

    Raises:
        ValueError: Unknown calibration, or ``"batch"`` for a task without training inputs.
    """
    if calibration == "content-free":
        return CONTENT_FREE_INPUTS
    if calibration != "batch":
        raise ValueError(f"calibration must be one of {CALIBRATIONS!r}, got {calibration!r}.")
    inputs = tuple(dict.fromkeys(example.input for example in task.split("train")))
    if not inputs:
        raise ValueError(f"Task {task.name!r} has no training inputs to calibrate on; use "
                         "calibration='content-free' or None.")
    return inputs


def _log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class CalibratedScorer(BaseScorer):
    """A classification target whose class log-probabilities are calibrated per prompt.

    Wraps any scorer with ``score_pairs`` (local, remote, the toy rule). Every other attribute is
    the wrapped scorer's, read and written (``tokenizer``, ``cache``, ``cache_hits``...), so
    checkpoints save and restore the wrapped target's score cache and counters as they would
    without calibration.

    Args:
        scorer: The classification target to calibrate.
        inputs: The calibration inputs (see :func:`calibration_inputs`).
        calibration: The method's name, recorded in :attr:`calibration`.
        max_prompts: Baselines kept (least recently used dropped first); a dropped prompt's
            baseline is recomputed when it comes back, from the wrapped scorer's cache if it still
            holds the calibration rows.

    Attributes:
        calibration: The method's name (environments read it to avoid calibrating twice; test
            scores are cached under it).
        extra_evaluations_per_prompt: Most evaluations a prompt costs beyond one per pair the first
            time it is scored (its calibration inputs); environments add it to
            ``evaluations_per_episode`` and agents to their selection reserve.
        verbalizer: The wrapped scorer's class words.
    """

    def __init__(self, scorer: Any, inputs: Sequence[str], calibration: str, max_prompts: int = 16384) -> None:
        if not callable(getattr(scorer, "score_pairs", None)) or not getattr(scorer, "verbalizer", ()):
            raise TypeError("Calibration needs a classification target (score_pairs over verbalizer classes); got "
                            f"{type(scorer).__name__}. Generation tasks have no classes to calibrate: use "
                            "calibration=None.")
        if getattr(scorer, "calibration", None) is not None:
            raise ValueError(f"{type(scorer).__name__} is calibrated already; calibrating twice would count "
                             "the calibration inputs twice and change the scores again.")
        if not inputs:
            raise ValueError("Calibration needs at least one calibration input.")
        self.scorer = scorer
        self.inputs = tuple(inputs)
        self.calibration = calibration
        self.extra_evaluations_per_prompt = len(self.inputs)
        self.verbalizer = tuple(scorer.verbalizer)
        self._baselines = ScoreCache(max_prompts)  # keyed by (prompt, calibration)

    @property
    def num_evaluations(self) -> int:
        """The wrapped scorer's evaluations, calibration inputs included (setting it sets the wrapped scorer's)."""
        return self.scorer.num_evaluations

    def max_evaluations(self, prompts: Sequence[str]) -> int:
        """Most evaluations a call with ``prompts`` can cost: one per pair, plus the baselines it lacks."""
        new = [prompt for prompt in set(prompts) if self.baseline(prompt) is None]
        return len(prompts) + self.extra_evaluations_per_prompt * len(new)

    def baseline(self, prompt: str) -> np.ndarray | None:
        """The class log-probabilities averaged over the calibration inputs for ``prompt`` (``None`` if not computed)."""
        return self._baselines.get((prompt, self.calibration))

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return calibrated log-probabilities of shape ``(len(prompts), C)``.

        Prompts without a baseline get their calibration rows in the same call to the wrapped scorer.
        """
        if len(prompts) != len(inputs):
            raise ValueError(f"Got {len(prompts)} prompts for {len(inputs)} inputs; pair them one to one.")
        known = {prompt: self.baseline(prompt) for prompt in dict.fromkeys(prompts)}
        new = [prompt for prompt, baseline in known.items() if baseline is None]
        extra = [(prompt, source) for prompt in new for source in self.inputs]
        rows = self.scorer.score_pairs([*prompts, *(p for p, _ in extra)], [*inputs, *(s for _, s in extra)])
        classes = len(self.verbalizer)
        rows = np.asarray(rows, dtype=np.float64).reshape(len(prompts) + len(extra), classes)
        for prompt, scores in zip(new, rows[len(prompts):].reshape(len(new), len(self.inputs), classes), strict=True):
            known[prompt] = np.log(np.exp(scores).mean(axis=0))
            self._baselines.put((prompt, self.calibration), known[prompt])
        if not prompts:
            return rows.astype(np.float32)
        baselines = np.stack([known[prompt] for prompt in prompts])
        return _log_softmax(rows[: len(prompts)] - baselines).astype(np.float32)

    def __getattr__(self, name: str) -> Any:
        if name in ("scorer", "_baselines"):  # not set yet (copy/pickle): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.scorer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The wrapped scorer's counters are set on it (a resumed run restores cache_hits, num_evaluations...).
        if name in _OWN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            setattr(self.scorer, name, value)


_OWN_ATTRIBUTES = frozenset({"scorer", "inputs", "calibration", "extra_evaluations_per_prompt", "verbalizer",
                             "_baselines"})
"""What :class:`CalibratedScorer` keeps itself; every other attribute is read from and written to the wrapped scorer."""


def extra_evaluations_per_prompt(scorer: Any) -> int:
    """Most evaluations ``scorer`` spends on a prompt it has not seen beyond one per pair (0 for a raw target)."""
    return int(getattr(scorer, "extra_evaluations_per_prompt", 0))


def calibration_key(scorer: Any) -> str | None:
    """What a score from ``scorer`` depends on beyond the prompt and the input: ``None`` for a raw target.

    For a calibrated one, the method and a fingerprint of its calibration inputs (``"batch:1f2e3d4c"``):
    with ``"batch"`` they are the training split, which differs between few-shot seeds, so a score
    cached under one seed's calibration must not answer for another's.
    """
    calibration = getattr(scorer, "calibration", None)
    if calibration is None:
        return None
    return f"{calibration}:{zlib.crc32(chr(0).join(scorer.inputs).encode()):08x}"


def calibrated(scorer: Any, calibration: str | None, task: Task) -> Any:
    """Return ``scorer`` with ``calibration`` (see :data:`CALIBRATIONS`) applied for ``task``.

    A scorer that already has the requested calibration is returned as it is, so environments
    that share one scorer (vector envs, a run's budgeted target) do not calibrate twice.

    Raises:
        ValueError: Unknown calibration, or a scorer calibrated otherwise than asked.
        TypeError: Calibration asked of a target without classes (a generation task).
    """
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS!r}, got {calibration!r}.")
    current = getattr(scorer, "calibration", None)
    if calibration is None or current == calibration:
        return scorer
    if current is not None:
        raise ValueError(f"The scorer given is calibrated with {current!r}, not {calibration!r}; pass a raw scorer.")
    return CalibratedScorer(scorer, calibration_inputs(task, calibration), calibration)
