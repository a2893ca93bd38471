"""How class probabilities are read from a server: one class per scoring mode, best first.

Every mode turns rendered target inputs (``template(prompt, input)``) into log-probabilities over
the verbalizer classes, normalised over the classes exactly like the local scorer (the local
scorer's log-softmax over the label logits equals a log-softmax over the labels' full-vocabulary
log-probabilities):

* ``allowed_token_ids`` (vLLM with ``--logprobs-mode processed_logprobs``): one generated token
  restricted to the label ids; the returned log-probs are already normalised over the labels.
* ``echo``: each input with each label appended, ``echo=True``; the label token's prompt log-prob.
  ``len(verbalizer)`` prompts per input.
* ``top_logprobs``: the next token's top ``k`` log-probs. A label outside the top ``k`` gets the
  ``k``-th log-prob (an upper bound), counted in ``topk_fallbacks`` and logged.
* ``generate``: engines without log-probs. The greedy answer's first word is matched to a label
  (case-insensitive): the matched class gets probability ``1 - 1e-6 (C - 1)``; an answer that
  matches no label gets uniform scores (counted in ``unmatched_answers``; ties go to class 0).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prompt_gym.generation import extract_answer
from prompt_gym.remote.errors import RemoteTargetError

MATCH_EPSILON = 1e-6
"""``generate`` mode: probability left to each unmatched class."""


class BadReply(RemoteTargetError):
    """A reply lacks what the scoring mode needs (no log-probs, a label missing, a label split in tokens)."""


@dataclass(frozen=True)
class Labels:
    """The verbalizer as the server sees it.

    Attributes:
        words: Each class word as it follows the template (``" positive"``).
        ids: Their single token ids on the server (``/tokenize``), or ``None`` when it cannot tokenize.
    """

    words: tuple[str, ...]
    ids: tuple[int, ...] | None

    def keys(self) -> tuple[str, ...]:
        """How the labels appear as log-prob keys (``token_id:N`` when ids are known, else the text)."""
        return tuple(f"token_id:{i}" for i in self.ids) if self.ids is not None else self.words

    def vllm_extras(self) -> dict[str, Any]:
        """Ask for vLLM's ``return_tokens_as_token_ids`` when ids are known (exact matching); else nothing."""
        return {"return_tokens_as_token_ids": True} if self.ids is not None else {}


def normalized(values: Sequence[float]) -> list[float]:
    """Log-softmax of ``values``."""
    top = max(values)
    total = top + math.log(sum(math.exp(v - top) for v in values))
    return [float(v - total) for v in values]


def _logprobs(choice: Any) -> Any:
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None or not getattr(logprobs, "top_logprobs", None) and not getattr(logprobs, "token_logprobs", None):
        raise BadReply("The server returned no logprobs although they were requested (transformers serve drops "
                       "them); this mode cannot run on it. Use mode=generate, or serve the model with vLLM.")
    return logprobs


class Mode:
    """A scoring mode: the requests it sends for some rendered inputs and how it reads the replies.

    Attributes:
        name: The mode's name (one of :data:`prompt_gym.remote.spec.MODES`).
        key: Identifies the mode's results in the cache (name plus settings that change them).
        prompts_per_input: Prompts sent per rendered input.
    """

    name = ""
    prompts_per_input = 1

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.key = self.name

    def prompts(self, texts: Sequence[str]) -> list[str]:
        """The prompts of one request for ``texts``."""
        return list(texts)

    def params(self) -> dict[str, Any]:
        """Completion parameters of the request."""
        raise NotImplementedError

    def read(self, choices: Sequence[Any]) -> tuple[np.ndarray, dict[str, int]]:
        """Class log-probs of shape ``(len(texts), C)`` and counts to add to the usage."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the log."""
        return self.name


class AllowedTokenIds(Mode):
    """vLLM: the next token restricted to the label ids, log-probs normalised over them."""

    name = "allowed_token_ids"

    def params(self) -> dict[str, Any]:
        """Completion parameters of the request."""
        extras = {"allowed_token_ids": list(self.labels.ids or ())} | self.labels.vllm_extras()
        return {"max_tokens": 1, "temperature": 0.0, "logprobs": len(self.labels.words), "extra_body": extras}

    def read(self, choices: Sequence[Any]) -> tuple[np.ndarray, dict[str, int]]:
        """Class log-probs of shape ``(len(texts), C)`` and counts to add to the usage."""
        rows = []
        for choice in choices:
            top = _logprobs(choice).top_logprobs[0] or {}
            missing = [word for word, key in zip(self.labels.words, self.labels.keys(), strict=True) if key not in top]
            if missing:
                raise BadReply(f"allowed_token_ids: labels {missing} are missing from the reply {dict(top)}.")
            values = [top[key] for key in self.labels.keys()]
            if abs(math.log(sum(math.exp(v) for v in values))) > 1e-3:
                raise BadReply("allowed_token_ids: the label log-probs are not normalised over the labels (the server "
                               "returns raw log-probs); start vLLM with --logprobs-mode processed_logprobs.")
            rows.append(normalized(values))
        return np.array(rows, dtype=np.float32), {}

    def describe(self) -> str:
        """One line for the log."""
        return "allowed_token_ids (label probabilities from vLLM, normalised over the labels, one call)"


class Echo(Mode):
    """Prompt log-probs: each label appended to the input, its token's log-prob read back (``echo``)."""

    name = "echo"

    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.prompts_per_input = len(labels.words)

    def prompts(self, texts: Sequence[str]) -> list[str]:
        """The prompts of one request for ``texts``."""
        return [text + word for text in texts for word in self.labels.words]

    def params(self) -> dict[str, Any]:
        """Completion parameters of the request."""
        extras = self.labels.vllm_extras()
        return {"max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1, "extra_body": extras}

    def read(self, choices: Sequence[Any]) -> tuple[np.ndarray, dict[str, int]]:
        """Class log-probs of shape ``(len(texts), C)`` and counts to add to the usage."""
        per_label = len(self.labels.words)
        values = [self._label_logprob(choice, index % per_label) for index, choice in enumerate(choices)]
        rows = [normalized(values[i : i + per_label]) for i in range(0, len(values), per_label)]
        return np.array(rows, dtype=np.float32), {}

    def _label_logprob(self, choice: Any, label: int) -> float:
        logprobs = _logprobs(choice)
        tokens, offsets = list(logprobs.tokens or []), list(logprobs.text_offset or [])
        text = getattr(choice, "text", "") or ""
        word, key = self.labels.words[label], self.labels.keys()[label]
        # the label starts where the echoed prompt ends minus the word; the generated token follows it
        start = self._prompt_end(text, tokens, offsets, word)
        index = offsets.index(start) if start in offsets else len(tokens) - 2
        if index < 0 or tokens[index] not in (word, key):
            raise BadReply(f"echo: the label {word!r} is not one token at the end of the prompt on this server "
                           f"(tokens there: {tokens[max(index, 0):]}); pick single-token label words.")
        value = logprobs.token_logprobs[index]
        if value is None:
            raise BadReply("echo: the server returned no log-prob for the label token.")
        return float(value)

    @staticmethod
    def _prompt_end(text: str, tokens: list[str], offsets: list[int], word: str) -> int:
        """Character offset of the appended label in the echoed text (-1 when unknown)."""
        if not offsets:
            return -1
        generated = offsets[-1] if len(tokens) >= 2 else len(text)
        return generated - len(word)

    def describe(self) -> str:
        """One line for the log."""
        return f"echo (prompt log-prob of each appended label, {len(self.labels.words)} prompts per input)"


class TopLogprobs(Mode):
    """The next token's top-k log-probs; a missing label gets the k-th value (counted, logged)."""

    name = "top_logprobs"

    def __init__(self, labels: Labels, k: int) -> None:
        super().__init__(labels)
        self.k = k
        self.key = f"{self.name}:{k}"

    def params(self) -> dict[str, Any]:
        """Completion parameters of the request."""
        return {"max_tokens": 1, "temperature": 0.0, "logprobs": self.k, "extra_body": self.labels.vllm_extras()}

    def read(self, choices: Sequence[Any]) -> tuple[np.ndarray, dict[str, int]]:
        """Class log-probs of shape ``(len(texts), C)`` and counts to add to the usage."""
        rows, fallbacks = [], 0
        for choice in choices:
            top = _logprobs(choice).top_logprobs[0] or {}
            floor = min(top.values()) if top else math.log(1e-9)
            values = []
            for key in self.labels.keys():
                fallbacks += key not in top
                values.append(top.get(key, floor))
            rows.append(normalized(values))
        return np.array(rows, dtype=np.float32), {"topk_fallbacks": fallbacks}

    def describe(self) -> str:
        """One line for the log."""
        return (f"top_logprobs (top {self.k} next-token log-probs; a label outside them gets the {self.k}-th value, "
                "counted in topk_fallbacks)")


class Generate(Mode):
    """No log-probs: the greedy answer's first word matched to a label."""

    name = "generate"
    max_tokens = 4

    def params(self) -> dict[str, Any]:
        """Completion parameters of the request."""
        return {"max_tokens": self.max_tokens, "temperature": 0.0}

    def read(self, choices: Sequence[Any]) -> tuple[np.ndarray, dict[str, int]]:
        """Class log-probs of shape ``(len(texts), C)`` and counts to add to the usage."""
        words = [word.strip().lower() for word in self.labels.words]
        classes = len(words)
        rows, unmatched = [], 0
        for choice in choices:
            answer = extract_answer(getattr(choice, "text", "") or "").split()
            first = answer[0].strip(string.punctuation).lower() if answer else ""
            if first in words:
                probs = np.full(classes, MATCH_EPSILON)
                probs[words.index(first)] = 1 - MATCH_EPSILON * (classes - 1)
            else:
                unmatched += 1
                probs = np.full(classes, 1 / classes)
            rows.append(np.log(probs))
        return np.array(rows, dtype=np.float32), {"unmatched_answers": unmatched}

    def describe(self) -> str:
        """One line for the log."""
        return ("generate (no log-probs on this server: the greedy answer is matched to a label; the reward "
                "keeps accuracy, its gap term becomes +-1)")
