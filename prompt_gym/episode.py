"""What one prompt-tuning episode needs, shared by the single and the vectorised environment.

:class:`EpisodeSampler` draws the demonstrations (validation split) and the reward batch (train
split) and builds the meta-prompt; :class:`PromptJudge` turns finished prompts into rewards with
one batched scorer call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prompt_gym.checks import check_number
from prompt_gym.data import Example
from prompt_gym.generation import is_generation_scorer
from prompt_gym.meta_prompts import INSTRUCTION_INDUCTION, build_meta_prompt, has_chat_template
from prompt_gym.rewards import get_reward_function, zscore
from prompt_gym.tasks import Task


@dataclass
class Episode:
    """State of one episode.

    Attributes:
        meta_prompt: The text the agent reads.
        meta_ids: Its token ids (env tokenizer).
        demo_uids: Ids of the demonstrations shown.
        reward_examples: The training examples the final prompt is scored on.
        prompt_ids: Tokens written so far (token mode).
    """

    meta_prompt: str
    meta_ids: list[int]
    demo_uids: list[str]
    reward_examples: list[Example]
    prompt_ids: list[int] = field(default_factory=list)


class EpisodeSampler:
    """Draws episodes for a task.

    Args:
        task: The task.
        tokenizer: The env tokenizer (the agent's), used for the chat template and token ids.
        num_demos: Demonstrations per meta-prompt (drawn from the validation split).
        reward_batch_size: Training examples each final prompt is scored on.
        max_meta_prompt_tokens: Longest allowed meta-prompt.
    """

    def __init__(
        self, task: Task, tokenizer: Any, num_demos: int, reward_batch_size: int, max_meta_prompt_tokens: int
    ) -> None:
        validation = task.split("validation")
        if not 0 <= num_demos <= len(validation):
            raise ValueError(f"num_demos must lie in [0, {len(validation)}] (validation size), got {num_demos}.")
        if reward_batch_size < 1:
            raise ValueError(f"reward_batch_size must be positive, got {reward_batch_size}.")
        self.task = task
        self.tokenizer = tokenizer
        self.num_demos = num_demos
        self.reward_batch_size = min(reward_batch_size, len(task.split("train")))
        self.max_meta_prompt_tokens = max_meta_prompt_tokens
        self.add_special_tokens = not has_chat_template(tokenizer)

    def sample(self, rng: np.random.Generator) -> Episode:
        """Draw demonstrations and a reward batch with ``rng`` and build the meta-prompt."""
        validation, train = self.task.split("validation"), self.task.split("train")
        demos = [validation[i] for i in rng.choice(len(validation), size=self.num_demos, replace=False)]
        batch = [train[i] for i in rng.choice(len(train), size=self.reward_batch_size, replace=False)]
        return self.episode(demos, batch)

    def episode(self, demos: Sequence[Example], batch: Sequence[Example], request: str = INSTRUCTION_INDUCTION) -> Episode:
        """Build the episode that shows ``demos`` (with the meta-prompt ``request``) and scores on ``batch``.

        Raises:
            ValueError: The meta-prompt is longer than ``max_meta_prompt_tokens``.
        """
        meta = build_meta_prompt([(d.input, self.task.answer(d)) for d in demos], self.tokenizer, request)
        ids = list(self.tokenizer.encode(meta, add_special_tokens=self.add_special_tokens))
        if len(ids) > self.max_meta_prompt_tokens:
            raise ValueError(
                f"The meta-prompt has {len(ids)} tokens, more than max_meta_prompt_tokens="
                f"{self.max_meta_prompt_tokens}; pass a larger max_meta_prompt_tokens or fewer num_demos."
            )
        return Episode(meta, ids, [d.uid for d in demos], list(batch))


class PromptJudge:
    """Scores finished prompts on their reward batches and computes rewards.

    With a generation target (:mod:`prompt_gym.generation`) the target answers each example and
    the reward comes from the task metric (:data:`prompt_gym.rewards.GENERATION_REWARD_FUNCTIONS`).

    Args:
        scorer: The target (see :mod:`prompt_gym.scoring` and :mod:`prompt_gym.generation`).
        reward: Name of a reward function in :data:`prompt_gym.rewards.REWARD_FUNCTIONS`.
        reward_kwargs: Keyword arguments for it.
        normalize: ``"zscore"`` to normalise the rewards of the prompts judged together.
    """

    def __init__(
        self, scorer: Any, reward: str = "stableprompt", reward_kwargs: dict[str, Any] | None = None,
        normalize: str | None = None,
    ) -> None:
        if normalize not in (None, "zscore"):
            raise ValueError(f"normalize must be None or 'zscore', got {normalize!r}.")
        self.scorer = scorer
        self.generation = is_generation_scorer(scorer)
        self.reward_fn = get_reward_function(reward, generation=self.generation)
        self.reward_kwargs = dict(reward_kwargs or {})
        data_arguments = 1 if self.generation else 2  # (scores) or (log_probs, labels), then the options
        options = list(inspect.signature(self.reward_fn).parameters)[data_arguments:]
        unknown = sorted(set(self.reward_kwargs) - set(options))
        if unknown:
            raise ValueError(f"reward_kwargs {unknown} are not options of the {reward!r} reward; it takes {options}.")
        for key, value in self.reward_kwargs.items():
            check_number(f"reward_kwargs[{key!r}]", value)
        self.normalize = normalize

    def judge(self, prompts: Sequence[str], batches: Sequence[Sequence[Example]]) -> list[dict[str, float]]:
        """Score each prompt on its own batch in one scorer call.

        Returns:
            One dict per prompt with ``reward`` and the reward parts (``accuracy``, and ``gap`` for
            classification).
        """
        results = self._generation(prompts, batches) if self.generation else self._classification(prompts, batches)
        for prompt, result in zip(prompts, results, strict=True):
            if not math.isfinite(result["reward"]):
                raise FloatingPointError(
                    f"The reward of prompt {prompt!r} is {result['reward']} ({result}): the target returned scores "
                    "that are not finite numbers. Score in float32 (--dtype float32) or check the scorer."
                )
        if self.normalize == "zscore" and results:
            for result, value in zip(results, zscore(np.array([r["reward"] for r in results])), strict=False):
                result["raw_reward"], result["reward"] = result["reward"], float(value)
        return results

    def _classification(self, prompts: Sequence[str], batches: Sequence[Sequence[Example]]) -> list[dict[str, float]]:
        flat_prompts = [p for p, batch in zip(prompts, batches, strict=True) for _ in batch]
        flat_inputs = [example.input for batch in batches for example in batch]
        scores = self.scorer.score_pairs(flat_prompts, flat_inputs) if flat_prompts else np.empty((0, 0))
        results, start = [], 0
        for batch in batches:
            labels = np.array([example.label for example in batch])
            rows = scores[start : start + len(batch)][None]
            start += len(batch)
            reward, parts = self.reward_fn(rows, labels, **self.reward_kwargs)
            results.append({"reward": float(reward[0])} | {k: float(v[0]) for k, v in parts.items()})
        return results

    def _generation(self, prompts: Sequence[str], batches: Sequence[Sequence[Example]]) -> list[dict[str, float]]:
        pairs = [(p, example) for p, batch in zip(prompts, batches, strict=True) for example in batch]
        values = self.scorer.score_outputs([p for p, _ in pairs], [e.input for _, e in pairs],
                                           [e.outputs for _, e in pairs]) if pairs else np.empty(0)
        results, start = [], 0
        for batch in batches:
            reward, parts = self.reward_fn(values[start : start + len(batch)][None], **self.reward_kwargs)
            start += len(batch)
            results.append({"reward": float(reward[0])} | {k: float(v[0]) for k, v in parts.items()})
        return results
