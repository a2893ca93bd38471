"""Scorers over a remote target: the same contract as the local ones, with usage counts and a disk cache.

Both answer ``score_examples`` like every target (see :class:`prompt_gym.scoring.Scorer`);
:func:`prompt_gym.targets.make_scorer` picks the one a task needs.

:class:`RemoteScorer` (classification) detects once, at construction, the best scoring mode the
server supports (see :mod:`prompt_gym.remote.modes`), logs it, and keeps it for the whole run:
a reply that stops fitting the mode is an error, never a silent switch. A run that resumes with a
usage file keeps the mode it started with. :class:`RemoteGenerationScorer` asks for greedy
completions (temperature 0) and scores the first line with the task metric.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from prompt_gym.generation import BaseGenerationScorer, extract_answer
from prompt_gym.metrics import check_metric
from prompt_gym.remote.client import RequestRefused
from prompt_gym.remote.errors import RemoteTargetError
from prompt_gym.remote.modes import AllowedTokenIds, BadReply, Echo, Generate, Labels, Mode, TopLogprobs
from prompt_gym.remote.session import RemoteSession
from prompt_gym.remote.spec import MODES, RemoteTarget, parse_remote_target
from prompt_gym.scoring import BaseScorer, render
from prompt_gym.template import DEFAULT_TEMPLATE

log = logging.getLogger("prompt_gym.remote")

_CAP = re.compile(r"max(?:imum)? allowed:?\s*(\d+)", re.IGNORECASE)


class _UsageCounts:
    """``num_evaluations`` and ``cache_hits`` read from the session's usage counters."""

    session: RemoteSession

    @property
    def num_evaluations(self) -> int:
        """Pairs the server scored (cache hits excluded); restored from the usage file on resume."""
        return self.session.usage.evaluations

    @num_evaluations.setter
    def num_evaluations(self, value: int) -> None:
        self.session.usage.add(evaluations=int(value) - self.session.usage.evaluations)

    @property
    def cache_hits(self) -> int:
        """Pairs answered from the on-disk cache."""
        return self.session.usage.cache_hits

    def usage(self) -> dict[str, Any]:
        """Requests, tokens, errors, retries, cache hits, evaluations and the mode (for logs and results.json)."""
        return self.session.usage.as_dict()

    def close(self) -> None:
        """Close the connections and the cache."""
        self.session.close()


class RemoteScorer(_UsageCounts, BaseScorer):
    """Class log-probabilities from an OpenAI-compatible server.

    Args:
        target: ``openai:<base_url>#<model>`` or a :class:`RemoteTarget`.
        verbalizer: One word per class; each must be one token on the server.
        template: Target template with ``{prompt}`` and ``{input}``.
        session: A ready session (tests); default: one built from ``target``.

    Raises:
        ServerUnavailable: The server does not answer.
        RemoteTargetError: Wrong model name, or no mode works (the message lists why each failed).
        ValueError: A label is several tokens (or two labels one token) on the server.
    """

    def __init__(self, target: str | RemoteTarget, verbalizer: Sequence[str], template: str = DEFAULT_TEMPLATE,
                 session: RemoteSession | None = None) -> None:
        self.target = parse_remote_target(target)
        self.session = session or RemoteSession(self.target)
        self.verbalizer = tuple(verbalizer)
        self.template = template
        lead = "" if template[-1:].isspace() else " "
        words = tuple(lead + word for word in self.verbalizer)
        self.labels = Labels(words, _server_ids(self.session, words))
        self.mode = self._choose_mode()
        self.session.usage.set_mode(self.mode.name)

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        pairs = list(zip(prompts, inputs, strict=True))
        rows = self.session.answer(pairs, self.mode.key, self.template, self._compute, self.target.batch_size)
        return np.array(rows, dtype=np.float32).reshape(len(pairs), len(self.verbalizer))

    def _compute(self, pairs: list[tuple[str, str]]) -> list[list[float]]:
        texts = [render(self.template, prompt, source) for prompt, source in pairs]
        return self._request(self.mode, texts)[0].tolist()

    def _request(self, mode: Mode, texts: list[str]) -> tuple[np.ndarray, dict[str, int]]:
        choices = self.session.client.complete(mode.prompts(texts), **mode.params())
        try:
            scores, counts = mode.read(choices)
        except BadReply as error:
            raise RemoteTargetError(f"Scoring mode {mode.name} stopped working mid-run: {error} The mode is not "
                                    "switched silently; fix the server and resume.") from None
        if counts:
            self.session.usage.add(**counts)
            if counts.get("topk_fallbacks"):
                log.warning("top_logprobs: %d label(s) outside the top %d got the %d-th log-prob as an upper bound.",
                            counts["topk_fallbacks"], self.target.top_logprobs, self.target.top_logprobs)
        return scores, counts

    def _choose_mode(self) -> Mode:
        """The pinned mode (target spec, or the mode a resumed run used), else the best one that works."""
        pinned = self.target.mode if self.target.mode != "auto" else self.session.usage.mode
        reasons: list[str] = []
        for name in [pinned] if pinned else MODES[1:]:
            mode = self._probe(name, reasons)
            if mode is not None:
                notes = f" (skipped: {'; '.join(reasons)})" if reasons else ""
                log.warning("remote target %s at %s: scoring mode %s%s", self.target.model,
                            ", ".join(self.target.base_urls), mode.describe(), notes)
                return mode
        raise RemoteTargetError(f"No scoring mode works on {self.target.base_urls[0]} for model {self.target.model!r}: "
                                + "; ".join(reasons))

    def _probe(self, name: str, reasons: list[str]) -> Mode | None:
        """Try mode ``name`` on one input; ``None`` (with the reason) when the server does not support it."""
        if name == "allowed_token_ids" and self.labels.ids is None:
            reasons.append("allowed_token_ids: the server has no /tokenize, so label ids are unknown")
            return None
        mode = _build(name, self.labels, self.target.top_logprobs)
        probe = [render(self.template, "", "a probe input")]
        try:
            mode.read(self.session.client.complete(mode.prompts(probe), **mode.params()))
        except RequestRefused as error:
            cap = _CAP.search(error.message)
            if name == "top_logprobs" and cap and 0 < int(cap.group(1)) < mode.k:
                log.warning("The server caps logprobs at %s (vLLM --max-logprobs), below top_logprobs=%d; using %s.",
                            cap.group(1), mode.k, cap.group(1))
                return self._probe_capped(int(cap.group(1)), reasons)
            reasons.append(f"{name}: the server refused it ({error})")
            return None
        except BadReply as error:
            reasons.append(f"{name}: {error}")
            return None
        return mode

    def _probe_capped(self, k: int, reasons: list[str]) -> Mode | None:
        mode = TopLogprobs(self.labels, k)
        try:
            mode.read(self.session.client.complete(mode.prompts([render(self.template, "", "a probe input")]),
                                                   **mode.params()))
        except (RequestRefused, BadReply) as error:
            reasons.append(f"top_logprobs with k={k}: {error}")
            return None
        return mode


class RemoteGenerationScorer(_UsageCounts, BaseGenerationScorer):
    """Greedy answers (temperature 0) from an OpenAI-compatible server, scored by the task metric.

    Args:
        target: ``openai:<base_url>#<model>`` or a :class:`RemoteTarget`.
        metric: The task metric.
        template: Target template with ``{prompt}`` and ``{input}``.
        max_new_tokens: Longest answer in tokens.
        session: A ready session (tests); default: one built from ``target``.
    """

    def __init__(self, target: str | RemoteTarget, metric: str, template: str = DEFAULT_TEMPLATE,
                 max_new_tokens: int = 16, session: RemoteSession | None = None) -> None:
        # not BaseGenerationScorer.__init__: it would zero num_evaluations, which the usage counters hold
        self.metric = check_metric(metric)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}.")
        self.target = parse_remote_target(target)
        self.session = session or RemoteSession(self.target)
        self.template = template
        self.max_new_tokens = max_new_tokens
        self.session.usage.set_mode("generate")

    def generate_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> list[str]:
        """Return the target's answer (first line of its greedy continuation) for each pair."""
        pairs = list(zip(prompts, inputs, strict=True))
        return self.session.answer(pairs, f"generate:{self.max_new_tokens}", self.template, self._compute,
                                   self.target.batch_size)

    def _compute(self, pairs: list[tuple[str, str]]) -> list[str]:
        texts = [render(self.template, prompt, source) for prompt, source in pairs]
        choices = self.session.client.complete(texts, max_tokens=self.max_new_tokens, temperature=0.0)
        return [extract_answer(getattr(choice, "text", "") or "") for choice in choices]


def _build(name: str, labels: Labels, k: int) -> Mode:
    if name == "top_logprobs":
        return TopLogprobs(labels, k)
    return {"allowed_token_ids": AllowedTokenIds, "echo": Echo, "generate": Generate}[name](labels)


def _server_ids(session: RemoteSession, words: Sequence[str]) -> tuple[int, ...] | None:
    """Each label's single token id on the server; ``None`` when the server cannot tokenize.

    Raises:
        ValueError: A label is several tokens, or two labels share one.
    """
    ids = []
    for word in words:
        pieces = session.client.tokenize(word)
        if pieces is None:
            return None
        if len(pieces) != 1:
            raise ValueError(f"Verbalizer word {word.strip()!r} is {len(pieces)} tokens on the server ({word!r} -> "
                             f"{pieces}); each class word must be one token of the served model's tokenizer. Pick "
                             "another word (for example a common lower-case word).")
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"Verbalizer words {[w.strip() for w in words]} map to repeated token ids {ids} on the server.")
    return tuple(ids)

