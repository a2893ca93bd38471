"""Rewards: one table of reward functions, and the judge that turns finished prompts into rewards.

Every reward function has one signature, for classification and generation tasks alike::

    f(scores, gaps, **options) -> (rewards, parts)

``scores`` has shape ``(num_prompts, num_examples)`` and lies in ``[0, 1]`` (1/0 correctness for
classification, the task metric for generation); ``gaps`` has the same shape and holds the
verbalizer gaps of classification tasks (see :func:`prompt_gym.scoring.correct_and_gap`), or is
``None`` for generation tasks. It returns one reward per prompt and a dict of named per-prompt
components for logging: ``accuracy`` (the mean score) always, ``gap`` (the mean gap) when ``gaps``
is given. Both come from one target call, :meth:`prompt_gym.scoring.Scorer.score_examples`.

The environments' ``reward=`` takes a name of :data:`REWARD_FUNCTIONS` or such a callable, and
``reward_kwargs`` its options. :class:`PromptJudge` scores the finished prompts and applies it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from prompt_gym.checks import check_number
from prompt_gym.data import Example
from prompt_gym.scoring import Scorer

RewardParts = dict[str, np.ndarray]
RewardFunction = Callable[..., tuple[np.ndarray, RewardParts]]


def _checked(scores: np.ndarray, gaps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"Expected scores of shape (prompts, examples), got {scores.shape}.")
    if gaps is None:
        return scores, None
    gaps = np.asarray(gaps, dtype=np.float64)
    if gaps.shape != scores.shape:
        raise ValueError(f"Expected gaps of the scores' shape {scores.shape}, got {gaps.shape}.")
    return scores, gaps


def _parts(accuracy: np.ndarray, gaps: np.ndarray | None) -> RewardParts:
    return {"accuracy": accuracy} if gaps is None else {"accuracy": accuracy, "gap": gaps.mean(axis=1)}


def accuracy_reward(scores: np.ndarray, gaps: np.ndarray | None) -> tuple[np.ndarray, RewardParts]:
    """Reward = the mean score: accuracy for classification, the task metric's mean for generation."""
    scores, gaps = _checked(scores, gaps)
    accuracy = scores.mean(axis=1)
    return accuracy, _parts(accuracy, gaps)


def margin_reward(
    scores: np.ndarray, gaps: np.ndarray | None, correct_weight: float = 2.0, wrong_weight: float = 1.8
) -> tuple[np.ndarray, RewardParts]:
    """RLPrompt's piecewise gap reward: mean of ``gap * (correct_weight if right else wrong_weight)``.

    RLPrompt uses 200 and 180; the defaults keep their ratio on a scale comparable to accuracy.

    Raises:
        ValueError: ``gaps`` is ``None`` (a generation task: it has no classes, hence no gap).
    """
    scores, gaps = _checked(scores, gaps)
    if gaps is None:
        raise ValueError("The 'margin' reward needs class gaps, and generation tasks have none; "
                         "use 'accuracy' or 'stableprompt'.")
    weighted = np.where(scores > 0.5, correct_weight, wrong_weight) * gaps
    return weighted.mean(axis=1), _parts(scores.mean(axis=1), gaps)


def stableprompt_reward(
    scores: np.ndarray, gaps: np.ndarray | None, accuracy_weight: float = 30.0, gap_weight: float = 1.0
) -> tuple[np.ndarray, RewardParts]:
    """StablePrompt's mix, ``accuracy_weight * accuracy + gap_weight * mean gap`` (no gap term without gaps).

    The paper's code computes its gap over the full vocabulary at the class *index*, which makes
    the term noise; here the gap is over the verbalizer classes, so it breaks ties between prompts
    of equal accuracy. 30 is the paper's accuracy weight. For generation tasks the reward is
    ``accuracy_weight *`` the mean metric score.
    """
    scores, gaps = _checked(scores, gaps)
    accuracy = scores.mean(axis=1)
    parts = _parts(accuracy, gaps)
    if gaps is None:
        return accuracy_weight * accuracy, parts
    return accuracy_weight * accuracy + gap_weight * parts["gap"], parts


REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "accuracy": accuracy_reward,
    "margin": margin_reward,
    "stableprompt": stableprompt_reward,
}
"""The built-in rewards by name; every one takes ``(scores, gaps, **options)``."""


GAP_REWARDS = frozenset({"margin"})
"""Built-in rewards that need class gaps: :class:`PromptJudge` refuses them for a generation target."""


def get_reward_function(name: str) -> RewardFunction:
    """Look up a built-in reward function by name.

    Raises:
        KeyError: Unknown name (the message lists the known ones).
    """
    if name not in REWARD_FUNCTIONS:
        raise KeyError(f"Unknown reward {name!r}; choose one of {sorted(REWARD_FUNCTIONS)} or pass a callable.")
    return REWARD_FUNCTIONS[name]


def reward_options(reward: RewardFunction) -> list[str] | None:
    """The option names ``reward`` takes after ``(scores, gaps)``; ``None`` when it takes any (``**kwargs``).

    Raises:
        TypeError: ``reward`` does not take two positional arguments ``(scores, gaps)``.
    """
    parameters = list(inspect.signature(reward).parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        name = getattr(reward, "__name__", type(reward).__name__)
        raise TypeError(f"A reward function takes (scores, gaps, **options); {name!r} takes "
                        f"({', '.join(p.name for p in parameters)}).")
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in positional[2:]] + [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]


def zscore(rewards: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Normalise rewards of the prompts of one step to zero mean and unit variance (RLPrompt).

    A single reward, or rewards that are all equal, normalise to zeros.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.size < 2:
        return np.zeros_like(rewards)
    return (rewards - rewards.mean()) / (rewards.std() + eps)


class PromptJudge:
    """Scores finished prompts on their reward batches (one target call) and computes their rewards.

    Args:
        scorer: The target (see :class:`prompt_gym.scoring.Scorer`).
        reward: A name in :data:`REWARD_FUNCTIONS`, or a callable ``f(scores, gaps, **options) ->
            (rewards, parts)`` (see the module docstring).
        reward_kwargs: Options for it (numbers, for the built-in rewards).
        normalize: ``"zscore"`` to normalise the rewards of the prompts judged together.

    Raises:
        TypeError: ``reward`` is neither a name nor a callable, or an option of a built-in reward
            is not a number.
        KeyError: Unknown reward name.
        ValueError: An option the reward does not take, an unknown ``normalize``, or a reward of
            :data:`GAP_REWARDS` for a generation target.
    """

    def __init__(
        self, scorer: Scorer, reward: str | RewardFunction = "stableprompt",
        reward_kwargs: dict[str, Any] | None = None, normalize: str | None = None,
    ) -> None:
        if normalize not in (None, "zscore"):
            raise ValueError(f"normalize must be None or 'zscore', got {normalize!r}.")
        if isinstance(reward, str):
            self.reward_fn, self.reward_name = get_reward_function(reward), reward
        elif callable(reward):
            self.reward_fn, self.reward_name = reward, getattr(reward, "__name__", type(reward).__name__)
        else:
            raise TypeError(f"reward must be the name of a reward function {sorted(REWARD_FUNCTIONS)} or a callable "
                            f"f(scores, gaps, **options) -> (rewards, parts), got {reward!r}.")
        self.reward_kwargs = dict(reward_kwargs or {})
        options = reward_options(self.reward_fn)
        unknown = sorted(set(self.reward_kwargs) - set(options or ()))
        if options is not None and unknown:
            raise ValueError(f"reward_kwargs {unknown} are not options of the {self.reward_name!r} reward; "
                             f"it takes {options}.")
        if isinstance(reward, str):
            for key, value in self.reward_kwargs.items():
                check_number(f"reward_kwargs[{key!r}]", value)
        if reward in GAP_REWARDS and scorer.metric != "accuracy":
            raise ValueError(f"The {reward!r} reward needs class gaps, which only classification targets give; this "
                             f"task is scored by {scorer.metric!r}: use 'accuracy' or 'stableprompt'.")
        self.scorer = scorer
        self.normalize = normalize
        self._ahead: dict[tuple[str, tuple[Example, ...]], list[tuple[np.ndarray, np.ndarray | None]]] = {}

    def judge_ahead(self, prompts: Sequence[str], batch: Sequence[Example]) -> None:
        """Score ``prompts`` on one ``batch`` now, in one scorer call; :meth:`judge` takes their scores from here.

        Each prompt's scores serve one later :meth:`judge` of that prompt on that batch. A new
        call forgets whatever the previous one left unused.
        """
        self._ahead = {}
        key = tuple(batch)
        for prompt, rows in zip(prompts, self._score(prompts, [batch] * len(prompts)), strict=True):
            self._ahead.setdefault((prompt, key), []).append(rows)

    def judge(self, prompts: Sequence[str], batches: Sequence[Sequence[Example]]) -> list[dict[str, float]]:
        """Score each prompt on its own batch in one scorer call (none for prompts scored by :meth:`judge_ahead`).

        Returns:
            One dict per prompt with ``reward`` and the reward parts (``accuracy``, and ``gap`` for
            classification with the built-in rewards), plus ``raw_reward`` under ``"zscore"``.

        Raises:
            FloatingPointError: A reward is not a finite number (the target returned NaN or inf).
            ValueError: The reward function returned more or fewer than one reward per prompt.
        """
        rows = [self._scored_ahead(prompt, batch) for prompt, batch in zip(prompts, batches, strict=True)]
        missing = [index for index, row in enumerate(rows) if row is None]
        for index, row in zip(missing, self._score([prompts[i] for i in missing], [batches[i] for i in missing]),
                              strict=True):
            rows[index] = row
        results = []
        for prompt, (scores, gaps) in zip(prompts, rows, strict=True):
            rewards, parts = self.reward_fn(scores[None], None if gaps is None else gaps[None], **self.reward_kwargs)
            result = {"reward": self._one(rewards, "rewards")} | {k: self._one(v, k) for k, v in parts.items()}
            if not math.isfinite(result["reward"]):
                raise FloatingPointError(
                    f"The reward of prompt {prompt!r} is {result['reward']} ({result}): the target returned scores "
                    "that are not finite numbers. Score in float32 (--dtype float32) or check the scorer."
                )
            results.append(result)
        if self.normalize == "zscore" and results:
            for result, value in zip(results, zscore(np.array([r["reward"] for r in results])), strict=False):
                result["raw_reward"], result["reward"] = result["reward"], float(value)
        return results

    def _scored_ahead(self, prompt: str, batch: Sequence[Example]) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The scores :meth:`judge_ahead` left for ``prompt`` on ``batch`` (used once), or ``None``."""
        stored = self._ahead.get((prompt, tuple(batch)))
        return stored.pop() if stored else None

    def _score(
        self, prompts: Sequence[str], batches: Sequence[Sequence[Example]]
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """One scorer call for every (prompt, example) pair; per prompt, its batch's scores and gaps (or ``None``)."""
        if not prompts:
            return []
        flat_prompts = [prompt for prompt, batch in zip(prompts, batches, strict=True) for _ in batch]
        flat_examples = [example for batch in batches for example in batch]
        scored = self.scorer.score_examples(flat_prompts, flat_examples)
        rows, start = [], 0
        for batch in batches:
            part = slice(start, start + len(batch))
            start += len(batch)
            rows.append((scored.scores[part], None if scored.gaps is None else scored.gaps[part]))
        return rows

    def _one(self, values: Any, what: str) -> float:
        """The single per-prompt value of ``values`` (the reward was given one prompt's row)."""
        array = np.asarray(values, dtype=np.float64)
        if array.shape != (1,):
            raise ValueError(f"The {self.reward_name!r} reward returned {what} of shape {array.shape} for one "
                             "prompt; a reward returns one value per prompt (shape (num_prompts,)).")
        return float(array[0])
