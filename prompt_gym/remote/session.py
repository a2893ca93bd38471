"""One remote target in use: the client, the on-disk cache and the usage counters, shared by its scorers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from prompt_gym.models import cache_dir
from prompt_gym.remote.cache import ResultCache, cache_key
from prompt_gym.remote.client import RemoteClient
from prompt_gym.remote.spec import RemoteTarget
from prompt_gym.remote.usage import Usage

log = logging.getLogger("prompt_gym.remote")


def default_cache_path() -> str:
    """``<PROMPT_GYM_CACHE or ~/.cache/prompt-gym>/remote/cache.sqlite``."""
    return str(cache_dir() / "remote" / "cache.sqlite")


class RemoteSession:
    """Answers ``(prompt, input)`` pairs from the cache or, in concurrent batched requests, from the server.

    Args:
        target: The remote target.
        client: A ready client (default: one built from ``target``; the model name is checked).
    """

    def __init__(self, target: RemoteTarget, client: RemoteClient | None = None) -> None:
        self.target = target
        self.client = client or RemoteClient(target)
        if client is None:
            self.client.check_model()
        path = None if target.cache == "off" else (target.cache or default_cache_path())
        self.cache = ResultCache(path) if path else None

    @property
    def usage(self) -> Usage:
        """The usage counters."""
        return self.client.usage

    def answer(
        self, pairs: Sequence[tuple[str, str]], mode_key: str, template: str,
        compute: Callable[[list[tuple[str, str]]], list[Any]], rows_per_request: int,
    ) -> list[Any]:
        """Return one result per pair, computing only the pairs the cache lacks.

        Args:
            pairs: ``(prompt, input)`` pairs.
            mode_key: What the results are (part of the cache key).
            template: The target template (part of the cache key).
            compute: Computes the results of a batch of pairs with one request.
            rows_per_request: Pairs per request.

        Each computed batch is stored as soon as its request returns, so a failure later in the
        call loses nothing already paid for. Pairs from the cache (or repeated within the call)
        count in ``usage.cache_hits``; computed pairs in ``usage.evaluations``.
        """
        keys = [cache_key(self.target.server, self.target.model, mode_key, template, p, x) for p, x in pairs]
        found = self.cache.get_many(list(dict.fromkeys(keys))) if self.cache is not None else {}
        missing = {key: pair for key, pair in zip(keys, pairs, strict=True) if key not in found}
        self.usage.add(cache_hits=len(pairs) - len(missing))
        batches = [list(missing.items())[i : i + rows_per_request] for i in range(0, len(missing), rows_per_request)]

        def run(batch: list[tuple[str, tuple[str, str]]]) -> None:
            results = compute([pair for _, pair in batch])
            computed = [(key, value) for (key, _), value in zip(batch, results, strict=True)]
            if self.cache is not None:
                self.cache.put_many(computed)
            found.update(computed)
            self.usage.add(evaluations=len(batch))

        self.client.map(run, batches)
        return [found[key] for key in keys]

    def close(self) -> None:
        """Close the client and the cache."""
        self.client.close()
        if self.cache is not None:
            self.cache.close()
