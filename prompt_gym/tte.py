"""Test-time editing (TTE-StablePrompt): one prompt per input.

The agent sees the task's demonstrations *and the current input* and writes a prompt for that
input only; the reward is the target's result on that input. :class:`TTESampler` draws such
episodes (one training input each); :func:`evaluate_tte` writes one prompt per test input
with any prompt writer (an agent, a baseline) and scores it.

Unlike the paper's code (``tte_stableprompt.py``, whose training queries hold the current input
only with ``--add_manual`` and whose training and test templates differ), the current input is
always in the meta-prompt, and training and evaluation use the same meta-prompt and target template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from prompt_gym.data import Example
from prompt_gym.episode import Episode, EpisodeSampler
from prompt_gym.meta_prompts import REQUEST_FIELDS
from prompt_gym.scoring import Scorer

TTE_REQUEST = (
    "I want to give a friend an instruction that helps them answer one input. Here are {count} example "
    "input-output pairs of the same task:\n\n{pairs}\n\nThis is the input my friend must answer:\n"
    "Input: {current}\n\nWrite an instruction that helps my friend give the right output for this input. "
    "Answer with the instruction only."
)
"""The TTE meta-prompt request (fields ``{count}``, ``{pairs}`` and ``{current}``)."""

PromptWriter = Callable[[list[str]], list[str]]
"""Writes one prompt per meta-prompt (a batch of observations in text form)."""


class TTESampler(EpisodeSampler):
    """Episodes of test-time editing: one training input per episode, shown in the meta-prompt.

    Args:
        task: The task.
        tokenizer: The env (agent) tokenizer.
        num_demos: Demonstrations per meta-prompt (validation split).
        max_meta_prompt_tokens: Longest allowed meta-prompt.
        request: The request template (``{count}``, ``{pairs}``, ``{current}``); ``None``: :data:`TTE_REQUEST`.
    """

    default_request = TTE_REQUEST
    request_fields = (*REQUEST_FIELDS, "current")
    required_fields = ("pairs", "current")

    def __init__(
        self, task: Any, tokenizer: Any, num_demos: int, max_meta_prompt_tokens: int,
        request: str | None = None,
    ) -> None:
        super().__init__(task, tokenizer, num_demos, 1, max_meta_prompt_tokens, request=request)

    def sample(self, rng: np.random.Generator) -> Episode:
        """Draw one training input and demonstrations; the reward batch is that input alone."""
        train = self.task.split("train")
        return self.episode_for(train[int(rng.integers(len(train)))], rng)

    def episode_for(self, example: Example, rng: np.random.Generator) -> Episode:
        """Build the episode for ``example``: demonstrations (never ``example`` itself), meta-prompt."""
        pool = [d for d in self.task.split("validation") if d.uid != example.uid]
        demos = [pool[i] for i in rng.choice(len(pool), size=min(self.num_demos, len(pool)), replace=False)]
        current = example.input.replace("{", "{{").replace("}", "}}")
        return self.episode(demos, [example], request=self.request.replace("{current}", current))


def evaluate_tte(
    sampler: TTESampler,
    scorer: Scorer,
    write_prompts: PromptWriter,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Write one prompt per input of ``split`` and score each prompt on its own input.

    Args:
        sampler: Builds the meta-prompts (the env's ``sampler``).
        scorer: The target (the env's ``scorer``).
        write_prompts: Maps a list of meta-prompts to as many prompts (the agent, in text form).
        split: ``"test"`` to report, ``"validation"`` to select.
        limit: Use only the first ``limit`` examples of the split.
        seed: Seeds the demonstrations shown with each input.
        batch_size: Meta-prompts per ``write_prompts`` call.

    Returns:
        ``accuracy`` (mean of the task metric), ``num_examples``, ``split``, and per input the
        ``prompts`` written and their ``scores`` (1/0 correctness, or the generation metric).
    """
    examples = sampler.task.split(split)[:limit]
    rng = np.random.default_rng(seed)
    metas = [sampler.episode_for(example, rng).meta_prompt for example in examples]
    prompts: list[str] = []
    for start in range(0, len(metas), batch_size):
        batch = metas[start : start + batch_size]
        written = write_prompts(batch)
        if len(written) != len(batch):
            raise ValueError(f"write_prompts returned {len(written)} prompts for {len(batch)} meta-prompts; "
                             "it must return one prompt per meta-prompt.")
        prompts.extend(str(p).strip() for p in written)
    scores = scorer.score_examples(prompts, examples).scores
    return {"accuracy": float(scores.mean()) if len(scores) else 0.0, "num_examples": len(examples),
            "split": split, "prompts": prompts, "scores": scores.tolist()}
