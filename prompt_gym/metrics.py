"""Answer metrics of generation tasks (instruction induction and user tasks).

Each metric compares one predicted answer with a task example's acceptable answers and returns a
score in ``[0, 1]``; with several acceptable answers the best one counts. Normalisation follows
the Instruction Induction evaluation code of APE (which StablePrompt reuses): lower-case, keep the
first line and the text before the first ``.``, drop ``" and "``, turn ``-`` into a space, strip
punctuation and surrounding whitespace.

Example:
    >>> score_answer("exact_match", "Hot.", ("hot",))
    1.0
    >>> score_answer("set_match", "dog, cat", ("cat, dog",))
    1.0
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Normalise an answer the way APE's Instruction Induction evaluation does."""
    text = text.replace(" and ", " ").strip()
    text = text.split("\n")[0].split(".")[0].lower()
    return text.replace("-", " ").translate(_PUNCTUATION).strip()


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when the normalised prediction equals the normalised answer."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


def f1(prediction: str, answer: str) -> float:
    """Token-level F1 between the normalised prediction and answer (SQuAD style)."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, answer: str) -> float:
    """1.0 when the normalised answer occurs as whole words in the normalised prediction."""
    gold = normalize_answer(answer)
    found = re.search(rf"\b{re.escape(gold)}\b", normalize_answer(prediction))
    return float(bool(gold) and found is not None)


def set_match(prediction: str, answer: str) -> float:
    """1.0 when the prediction and the answer hold the same set of words (order-free lists)."""
    return float(set(normalize_answer(prediction).split()) == set(normalize_answer(answer).split()))


METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "f1": f1,
    "contains": contains,
    "set_match": set_match,
}
"""Generation metrics by name. Classification tasks use ``"accuracy"`` (not listed here)."""


def check_metric(name: str) -> str:
    """Return ``name`` if it is a generation metric.

    Raises:
        ValueError: Unknown metric (the message lists the known ones).
    """
    if name not in METRICS:
        raise ValueError(f"Unknown generation metric {name!r}; choose one of {sorted(METRICS)}.")
    return name


def score_answer(metric: str, prediction: str, answers: Sequence[str]) -> float:
    """Score ``prediction`` against every acceptable answer with ``metric``; return the best score."""
    function = METRICS[check_metric(metric)]
    return max((function(prediction, answer) for answer in answers), default=0.0)
