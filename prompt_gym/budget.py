"""A hard budget on target-LLM evaluations, enforced at the scorer.

The budget unit is the scorer's ``num_evaluations``: (prompt, input) pairs the target actually
scored (a scorer with a score cache does not count cache hits). :class:`BudgetedScorer` wraps any
scorer and refuses, with :class:`BudgetExhausted`, every call whose *worst-case* cost (one
evaluation per pair it is asked for, as if nothing were cached; a calibrated target adds the
calibration inputs of prompts it has not seen) would take the total past its ``limit``. The call
is refused before it runs, so the count never exceeds the limit, whatever the agent's loop looks
like: an agent is stopped exactly when its next target call might not fit.

**Cached evaluations are free.** A pair answered from the target's score cache costs nothing, so a
policy that keeps writing prompts the target has already scored never spends its budget. Such a
run is stopped too: when the wrapped scorer has answered ``patience`` requested pairs in a row
without one real evaluation, the next call is refused with :class:`NoProgress` (a kind of
:class:`BudgetExhausted`, so a loop that ends on an exhausted budget also ends on it). By default
``patience`` is ``10 * limit`` pairs, at least 1,000: a run spends its budget or stops.

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

from prompt_gym.data import Example
from prompt_gym.scoring import ExampleScores


class BudgetExhausted(RuntimeError):
    """A target call was refused because it could take the evaluations past the budget."""


class NoProgress(BudgetExhausted):
    """A target call was refused because the last ``patience`` requested pairs were all free cache hits."""


class BudgetedScorer:
    """Counts a scorer's evaluations from zero and refuses calls that could exceed ``limit``.

    Every attribute other than the scoring methods is the wrapped scorer's (``verbalizer``,
    ``metric``, ``tokenizer``...), so environments accept it wherever they accept a scorer
    (``gym.make(env_id, scorer=BudgetedScorer(...))``).

    Args:
        scorer: The target to wrap.
        limit: Most evaluations allowed through this wrapper; ``None`` means no limit (only count).
        patience: Requested pairs in a row without a real evaluation after which calls are refused
            with :class:`NoProgress`; ``None`` means ``max(10 * limit, 1000)`` with a limit and
            no such stop without one.

    Attributes:
        limit: The current limit; raise it to let a later phase (prompt selection) spend a reserve
            (setting it also restarts :attr:`free_streak`).
        num_evaluations: Evaluations made through this wrapper (the wrapped scorer's count delta).
        num_requested: Pairs asked for through this wrapper, cache hits included.
        free_streak: Pairs asked for since the last call that made a real evaluation.
    """

    def __init__(self, scorer: Any, limit: int | None = None, patience: int | None = None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"The budget must be a non-negative number of evaluations, got {limit!r}.")
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be a positive number of pairs, got {patience!r}.")
        self.scorer = scorer
        self.patience = patience
        self.num_evaluations = 0
        self.num_requested = 0
        self.limit = limit

    @property
    def limit(self) -> int | None:
        """Most evaluations allowed; ``None`` means no limit."""
        return self._limit

    @limit.setter
    def limit(self, value: int | None) -> None:
        self._limit = value
        self.free_streak = 0

    @property
    def stall_limit(self) -> int | None:
        """Free pairs in a row after which calls are refused (``None``: never)."""
        if self.patience is not None:
            return self.patience
        return None if self.limit is None else max(10 * self.limit, 1000)

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
        stall = self.stall_limit
        if stall is not None and self.free_streak >= stall:
            self.free_streak = 0  # signalled once: a later phase (prompt selection) may still call
            raise NoProgress(
                f"The last {stall} pairs asked of the target were all answered from its cache (free), so the "
                f"budget ({self.num_evaluations} of {self.limit} used) stopped being spent: the agent keeps "
                "writing prompts it wrote before. Training stops here; raise the sampling temperature or the "
                "budget's patience to let it run on."
            )
        before = self.scorer.num_evaluations
        try:
            return call()
        finally:
            spent = self.scorer.num_evaluations - before
            self.num_evaluations += spent
            self.num_requested += pairs
            self.free_streak = 0 if spent else self.free_streak + pairs

    def _worst_case(self, prompts: Sequence[str]) -> int:
        """Most evaluations scoring one pair per entry of ``prompts`` can cost the wrapped scorer.

        One per pair, unless the scorer says more (a calibrated target also scores its calibration
        inputs for prompts it has not seen: :meth:`prompt_gym.calibration.CalibratedScorer.max_evaluations`).
        """
        max_evaluations = getattr(self.scorer, "max_evaluations", None)
        return len(prompts) if max_evaluations is None else max_evaluations(prompts)

    def score_examples(self, prompts: Sequence[str], examples: Sequence[Example]) -> ExampleScores:
        """The wrapped ``score_examples``, charged one evaluation per pair at most (see :meth:`_worst_case`)."""
        return self._charge(self._worst_case(prompts), lambda: self.scorer.score_examples(prompts, examples))

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """The wrapped ``score_pairs`` (classification targets), charged one evaluation per pair at most."""
        return self._charge(self._worst_case(prompts), lambda: self.scorer.score_pairs(prompts, inputs))

    def score(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """The wrapped ``score`` (classification targets), charged one evaluation per (prompt, input) at most."""
        flat = [prompt for prompt in prompts for _ in inputs]
        return self._charge(self._worst_case(flat), lambda: self.scorer.score(prompts, inputs))

    def __getattr__(self, name: str) -> Any:
        if name in ("scorer", "_limit"):  # not set yet (copy/pickle): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.scorer, name)
