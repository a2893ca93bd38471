"""A hard budget on target-LLM evaluations, enforced at the scorer.

The budget unit is the scorer's ``num_evaluations``: (prompt, input) pairs the target actually
scored (a scorer with a score cache does not count cache hits). :class:`BudgetedScorer` wraps any
scorer and refuses, with :class:`BudgetExhausted`, every call whose *worst-case* cost (one
evaluation per pair it is asked for, as if nothing were cached) would take the total past its
``limit``. The call is refused before it runs, so the count never exceeds the limit, whatever the
agent's loop looks like: an agent is stopped exactly when its next target call might not fit.

Example:
    >>> from prompt_gym.tasks import get_task
    >>> task = get_task("toy")
    >>> scorer = BudgetedScorer(task.default_scorer(task), limit=10)
    >>> scorer.score_pairs(["Classify the review"] * 8, [e.input for e in task.split("train")]).shape
    (8, 2)
    >>> scorer.num_evaluations, scorer.remaining
    (8, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class BudgetExhausted(RuntimeError):
    """A target call was refused because it could take the evaluations past the budget."""


class BudgetedScorer:
    """Counts a scorer's evaluations from zero and refuses calls that could exceed ``limit``.

    Every attribute other than the scoring methods is the wrapped scorer's (``verbalizer``,
    ``metric``, ``tokenizer``...), so environments accept it wherever they accept a scorer
    (``gym.make(env_id, scorer=BudgetedScorer(...))``).

    Args:
        scorer: The target to wrap.
        limit: Most evaluations allowed through this wrapper; ``None`` means no limit (only count).

    Attributes:
        limit: The current limit; raise it to let a later phase (prompt selection) spend a reserve.
        num_evaluations: Evaluations made through this wrapper (the wrapped scorer's count delta).
    """

    def __init__(self, scorer: Any, limit: int | None = None) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"The budget must be a non-negative number of evaluations, got {limit}.")
        self.scorer = scorer
        self.limit = limit
        self.num_evaluations = 0

    @property
    def remaining(self) -> int | None:
        """Evaluations left under :attr:`limit` (``None`` without a limit)."""
        return None if self.limit is None else self.limit - self.num_evaluations

    def _charge(self, pairs: int, call: Any) -> Any:
        if self.limit is not None and self.num_evaluations + pairs > self.limit:
            raise BudgetExhausted(
                f"A target call of {pairs} evaluations would exceed the budget ({self.num_evaluations} of "
                f"{self.limit} used); it was not run."
            )
        before = self.scorer.num_evaluations
        try:
            return call()
        finally:
            self.num_evaluations += self.scorer.num_evaluations - before

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """The wrapped ``score_pairs``, charged ``len(prompts)`` evaluations at most."""
        return self._charge(len(prompts), lambda: self.scorer.score_pairs(prompts, inputs))

    def score(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """The wrapped ``score``, charged ``len(prompts) * len(inputs)`` evaluations at most."""
        return self._charge(len(prompts) * len(inputs), lambda: self.scorer.score(prompts, inputs))

    def __getattr__(self, name: str) -> Any:
        if name == "scorer":  # not set yet (copy/pickle): avoid infinite recursion
            raise AttributeError(name)
        value = getattr(self.scorer, name)
        if name == "score_outputs" and callable(value):
            return lambda prompts, inputs, outputs, **kw: self._charge(
                len(prompts), lambda: value(prompts, inputs, outputs, **kw))
        return value
