"""Target scoring for generation tasks: the target writes an answer, the task metric scores it.

:class:`GenerationScorer` runs a Hugging Face causal LM greedily on ``template(prompt, input)``
(left-padded batches with an attention mask) and keeps only the newly generated tokens, so text the
prompt itself contains (an ``Output:`` in a learned prompt, say) can never leak into the answer.
The answer is the first non-empty line of that continuation, stripped. The metric (see
:mod:`prompt_gym.metrics`) compares it with the example's acceptable answers; that score is what
:meth:`BaseGenerationScorer.score_examples` returns (no margins: generation has no classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prompt_gym.data import Example
from prompt_gym.metrics import check_metric, score_answer
from prompt_gym.models import adapters_disabled, padding_id
from prompt_gym.scoring import ExampleScores, left_pad, render
from prompt_gym.template import DEFAULT_TEMPLATE


def extract_answer(continuation: str) -> str:
    """Return the first non-empty line of the target's continuation, stripped ("" if none)."""
    return next((line.strip() for line in continuation.splitlines() if line.strip()), "")


class BaseGenerationScorer:
    """A generation target: implements :meth:`score_examples` on top of a subclass's :meth:`generate_pairs`.

    Attributes:
        metric: Name of the task metric (a key of :data:`prompt_gym.metrics.METRICS`).
        verbalizer: Always ``()``: generation tasks have no class words.
        num_evaluations: Number of (prompt, input) pairs answered so far (the budget unit).
    """

    verbalizer: tuple[str, ...] = ()

    def __init__(self, metric: str) -> None:
        self.metric = check_metric(metric)
        self.num_evaluations = 0

    def generate_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> list[str]:
        """Return the target's answer to ``inputs[i]`` when it reads ``prompts[i]``."""
        raise NotImplementedError

    def score_examples(self, prompts: Sequence[str], examples: Sequence[Example]) -> ExampleScores:
        """Answer ``examples[i]`` with ``prompts[i]``; score each answer against the example's ``outputs``.

        Returns:
            The metric scores, shape ``(N,)`` in ``[0, 1]``, and ``gaps=None``.
        """
        if len(prompts) != len(examples):
            raise ValueError(f"Got {len(prompts)} prompts for {len(examples)} examples; pair them one to one.")
        if not examples:
            return ExampleScores(np.zeros(0), None)
        answers = self.generate_pairs(prompts, [example.input for example in examples])
        pairs = zip(answers, examples, strict=True)
        return ExampleScores(np.array([score_answer(self.metric, answer, e.outputs) for answer, e in pairs],
                                      dtype=np.float64), None)


class GenerationScorer(BaseGenerationScorer):
    """Greedy answers from a causal LM, scored by the task metric.

    Rows are sorted by length and generated in batches of ``batch_size``; a batch stops as soon as
    every row has finished a non-empty line (or emitted EOS) or after ``max_new_tokens``.

    Args:
        model: A causal LM (``transformers``); peft adapters are disabled while it answers.
        tokenizer: Its tokenizer.
        metric: The task metric.
        template: Target template with ``{prompt}`` and ``{input}``.
        max_new_tokens: Longest answer in tokens.
        batch_size: Rows per ``generate`` call.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        metric: str,
        template: str = DEFAULT_TEMPLATE,
        max_new_tokens: int = 16,
        batch_size: int = 16,
    ) -> None:
        super().__init__(metric)
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(
                f"max_new_tokens and batch_size must be positive, got {max_new_tokens}, {batch_size}.")
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.pad_id = padding_id(tokenizer)

    def generate_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> list[str]:
        """Return the target's answer (first line of its greedy continuation) for each pair."""
        import torch  # here, not at the top: `import prompt_gym` stays torch-free

        texts = [render(self.template, p, source) for p, source in zip(prompts, inputs, strict=True)]
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        answers = [""] * len(texts)
        device = next(self.model.parameters()).device
        with torch.inference_mode(), adapters_disabled(self.model):
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                input_ids, mask = left_pad([encoded[i] for i in rows], self.pad_id, device)
                generated = self.model.generate(
                    input_ids=input_ids, attention_mask=mask, do_sample=False,
                    max_new_tokens=self.max_new_tokens, pad_token_id=self.pad_id,
                    stopping_criteria=[_LineDone(self.tokenizer, input_ids.shape[1])],
                )
                for row, ids in zip(rows, generated[:, input_ids.shape[1] :].tolist(), strict=True):
                    answers[row] = extract_answer(self.tokenizer.decode(ids, skip_special_tokens=True))
        self.num_evaluations += len(texts)
        return answers


class _LineDone:
    """Stopping criterion: a row is done once its continuation holds a finished non-empty line."""

    def __init__(self, tokenizer: Any, prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch  # here, not at the top: `import prompt_gym` stays torch-free

        done = [self._finished(self.tokenizer.decode(row[self.prompt_width :], skip_special_tokens=True))
                for row in input_ids.tolist()]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    @staticmethod
    def _finished(text: str) -> bool:
        head, newline, _ = text.lstrip().partition("\n")
        return bool(head.strip() and newline)
