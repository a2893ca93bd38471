"""What one prompt-tuning episode needs, shared by the single and the vectorised environment.

:class:`EpisodeSampler` draws the demonstrations (validation split) and the reward batch (train
split) and builds the meta-prompt. Finished prompts are turned into rewards by
:class:`prompt_gym.rewards.PromptJudge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prompt_gym.data import Example
from prompt_gym.meta_prompts import (
    INSTRUCTION_INDUCTION,
    REQUEST_FIELDS,
    build_meta_prompt,
    check_request,
    has_chat_template,
)
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
        request: The meta-prompt's request template (fields ``{count}`` and ``{pairs}``); ``None``:
            :attr:`default_request`.

    Raises:
        TypeError: ``request`` is not a string.
        ValueError: ``num_demos`` exceeds the validation split, ``reward_batch_size`` is not positive
            or ``request`` is not a template with a ``{pairs}`` field.
    """

    default_request: str = INSTRUCTION_INDUCTION
    """The request template used when none is given."""

    request_fields: tuple[str, ...] = REQUEST_FIELDS
    """The fields a request template may use."""
    required_fields: tuple[str, ...] = ("pairs",)
    """The fields it must use."""

    def __init__(
        self, task: Task, tokenizer: Any, num_demos: int, reward_batch_size: int, max_meta_prompt_tokens: int,
        request: str | None = None,
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
        self.request = check_request(self.default_request if request is None else request, self.request_fields,
                                     self.required_fields)
        self.add_special_tokens = not has_chat_template(tokenizer)

    def sample(self, rng: np.random.Generator) -> Episode:
        """Draw demonstrations and a reward batch with ``rng`` and build the meta-prompt."""
        validation, train = self.task.split("validation"), self.task.split("train")
        demos = [validation[i] for i in rng.choice(len(validation), size=self.num_demos, replace=False)]
        batch = [train[i] for i in rng.choice(len(train), size=self.reward_batch_size, replace=False)]
        return self.episode(demos, batch)

    def episode(self, demos: Sequence[Example], batch: Sequence[Example], request: str | None = None) -> Episode:
        """Build the episode that shows ``demos`` and scores on ``batch``.

        ``request`` replaces the sampler's request template for this episode (fields ``{count}``
        and ``{pairs}``).

        Raises:
            ValueError: The meta-prompt is longer than ``max_meta_prompt_tokens``.
        """
        demo_pairs = [(d.input, self.task.answer(d)) for d in demos]
        meta = build_meta_prompt(demo_pairs, self.tokenizer, self.request if request is None else request)
        ids = list(self.tokenizer.encode(meta, add_special_tokens=self.add_special_tokens))
        if len(ids) > self.max_meta_prompt_tokens:
            raise ValueError(
                f"The meta-prompt has {len(ids)} tokens, more than max_meta_prompt_tokens="
                f"{self.max_meta_prompt_tokens}; pass a larger max_meta_prompt_tokens or fewer num_demos."
            )
        return Episode(meta, ids, [d.uid for d in demos], list(batch))
