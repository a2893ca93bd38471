"""Target scoring: how well the target LLM does a task when it reads a prompt.

A scorer maps ``N`` prompts and ``M`` inputs to class log-probabilities of shape ``(N, M, C)``
over the task's verbalizer words. :class:`LMScorer` runs a Hugging Face causal LM;
:class:`RuleScorer` is the deterministic keyword target of the toy task. Environments receive a
scorer at construction, so any number of them can share one loaded model.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from prompt_gym.tasks import DEFAULT_TEMPLATE


@runtime_checkable
class Scorer(Protocol):
    """What environments need from a target.

    Attributes:
        verbalizer: One word per class.
        num_evaluations: Number of (prompt, input) pairs scored so far (the budget unit).
    """

    verbalizer: tuple[str, ...]
    num_evaluations: int

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""

    def score(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score every prompt on every input; return shape ``(len(prompts), len(inputs), C)``."""


class BaseScorer:
    """Implements :meth:`score` on top of a subclass's :meth:`score_pairs`."""

    verbalizer: tuple[str, ...]
    num_evaluations: int = 0

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        raise NotImplementedError

    def score(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score every prompt on every input; return shape ``(len(prompts), len(inputs), C)``."""
        pairs_prompts = [prompt for prompt in prompts for _ in inputs]
        pairs_inputs = [source for _ in prompts for source in inputs]
        flat = self.score_pairs(pairs_prompts, pairs_inputs)
        return flat.reshape(len(prompts), len(inputs), len(self.verbalizer))


def render(template: str, prompt: str, source: str) -> str:
    """Fill the target template; an empty prompt leaves no leading blank line."""
    return template.format(prompt=prompt.strip(), input=source).lstrip()


def verbalizer_token_ids(tokenizer: Any, verbalizer: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[int]:
    """Return the single token id of each verbalizer word as it follows the template.

    A template that ends in ``"Output:"`` is followed by ``" positive"`` (leading space); one that
    ends in whitespace by ``"positive"``.

    Raises:
        ValueError: A word is not a single token, or two words share a token.
    """
    lead = "" if template[-1:].isspace() else " "
    ids = []
    for word in verbalizer:
        pieces = tokenizer.encode(lead + word, add_special_tokens=False)
        if len(pieces) != 1:
            shown = [tokenizer.decode([p]) for p in pieces]
            raise ValueError(
                f"Verbalizer word {word!r} is {len(pieces)} tokens after the template ({lead + word!r} -> {shown}); "
                "each class word must be one token. Pick a word that is a single token for this tokenizer "
                "(for example a common lower-case word)."
            )
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"Verbalizer words {list(verbalizer)} map to repeated token ids {ids}.")
    return ids


def _chunks(order: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


class LMScorer(BaseScorer):
    """Score prompts with a causal LM: next-token log-probs of the verbalizer words.

    All ``N x M`` rows are tokenised at once, sorted by length (so each chunk pads little), and run
    in chunks of ``batch_size``. Rows are left-padded with explicit position ids, and the LM head is
    applied at the last position only, so the result does not depend on the tokenizer's padding
    side or on how rows were grouped (equal to one-at-a-time scoring to 1e-4 in fp32).

    Args:
        model: A causal LM (``transformers`` ``PreTrainedModel``); if it carries peft adapters they
            are disabled while scoring, so the target always reads the base weights.
        tokenizer: Its tokenizer.
        verbalizer: One word per class; each must be a single token after the template.
        template: Target template with ``{prompt}`` and ``{input}``.
        batch_size: Rows per forward pass.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        verbalizer: Sequence[str],
        template: str = DEFAULT_TEMPLATE,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        self.model = model
        self.tokenizer = tokenizer
        self.verbalizer = tuple(verbalizer)
        self.template = template
        self.batch_size = batch_size
        self.verbalizer_ids = verbalizer_token_ids(tokenizer, self.verbalizer, template)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.num_evaluations = 0

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        import torch

        from prompt_gym.models import adapters_disabled

        texts = [render(self.template, prompt, source) for prompt, source in zip(prompts, inputs, strict=True)]
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        lengths = np.array([len(ids) for ids in encoded])
        out = np.empty((len(texts), len(self.verbalizer)), dtype=np.float32)
        device = next(self.model.parameters()).device
        class_ids = torch.tensor(self.verbalizer_ids, device=device)
        with torch.inference_mode(), adapters_disabled(self.model):
            for rows in _chunks(np.argsort(-lengths, kind="stable"), self.batch_size):
                batch = self._left_padded([encoded[i] for i in rows], device)
                logits = self.model(**batch, logits_to_keep=1).logits[:, -1, :]
                class_logits = logits.float().index_select(1, class_ids)
                out[rows] = torch.log_softmax(class_logits, dim=-1).cpu().numpy()
        self.num_evaluations += len(texts)
        return out

    def _left_padded(self, rows: list[list[int]], device: Any) -> dict[str, Any]:
        import torch

        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}


class RuleScorer(BaseScorer):
    """A deterministic stand-in target for the toy task; it loads no model.

    The rule: a prompt's *competence* ``k`` is how many of ``keywords`` it contains (whole words,
    case-insensitive). An input is answered correctly when ``crc32(input) % len(keywords) < k``;
    otherwise the target says the last class (a biased model). So the empty prompt gets the
    accuracy of always answering the last class, and every extra keyword helps: a good prompt is
    easy to find, which makes the toy task learnable in seconds.

    Args:
        answers: Maps each input text to its true class.
        verbalizer: Class words.
        keywords: Words that make the target competent.
    """

    def __init__(
        self,
        answers: dict[str, int],
        verbalizer: Sequence[str],
        keywords: Sequence[str] = ("sentiment", "review", "positive", "negative", "classify"),
    ) -> None:
        self.answers = dict(answers)
        self.verbalizer = tuple(verbalizer)
        self.keywords = tuple(word.lower() for word in keywords)
        self.num_evaluations = 0

    def competence(self, prompt: str) -> int:
        """Number of distinct keywords in ``prompt``."""
        words = set("".join(c if c.isalnum() else " " for c in prompt.lower()).split())
        return sum(keyword in words for keyword in self.keywords)

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        num_classes = len(self.verbalizer)
        out = np.empty((len(prompts), num_classes), dtype=np.float32)
        for row, (prompt, source) in enumerate(zip(prompts, inputs, strict=True)):
            if source not in self.answers:
                raise KeyError(f"RuleScorer knows no answer for input {source!r}.")
            k = self.competence(prompt)
            knows = zlib.crc32(source.encode()) % len(self.keywords) < k
            logits = np.zeros(num_classes)
            logits[self.answers[source] if knows else num_classes - 1] = 0.5 + 0.5 * k
            out[row] = logits - np.log(np.exp(logits).sum())
        self.num_evaluations += len(prompts)
        return out
