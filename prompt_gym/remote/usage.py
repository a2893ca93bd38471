"""Usage counters of a remote target (requests, tokens, errors, cache hits), optionally kept on disk.

With a file, the counters are written atomically after every request and read back at start, so
the request and token budgets hold across a resumed run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_gym.checkpoint import save_json


@dataclass
class Usage:
    """What a remote target has cost so far.

    Attributes:
        requests: HTTP requests answered (retries of a failed request count once each).
        prompt_tokens: Prompt tokens the server reported.
        completion_tokens: Completion tokens the server reported.
        errors: Failed attempts (429, 5xx, timeouts, refused connections), retried or not.
        retries: Attempts made again after an error.
        cache_hits: Pairs answered from the on-disk cache (no request).
        evaluations: Pairs the server scored (the evaluation budget unit).
        topk_fallbacks: ``top_logprobs`` mode: labels missing from the top k (given the k-th logprob).
        unmatched_answers: ``generate`` mode: answers that matched no label (scored uniform).
        mode: The classification scoring mode of the run, kept so a resumed run never switches mode.
        path: Where the counters are kept (``None``: memory only).
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    retries: int = 0
    cache_hits: int = 0
    evaluations: int = 0
    topk_fallbacks: int = 0
    unmatched_answers: int = 0
    mode: str | None = None
    path: Path | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> Usage:
        """Read the counters from ``path`` when it exists; a new zero set otherwise."""
        if path is None:
            return cls()
        path = Path(path)
        counts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        known = {f.name for f in dataclasses.fields(cls)} - {"path", "mode"}
        return cls(**{k: int(v) for k, v in counts.items() if k in known}, mode=counts.get("mode"), path=path)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def set_mode(self, mode: str) -> None:
        """Record the scoring mode (and save)."""
        with self._lock:
            self.mode = mode
            self._save()

    def add(self, **counts: int) -> None:
        """Add to counters (thread-safe) and save them."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
            self._save()

    def as_dict(self) -> dict[str, Any]:
        """The counters, plus ``tokens``."""
        counts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}
        return counts | {"tokens": self.tokens}

    def _save(self) -> None:
        if self.path is None:
            return
        save_json(self.path, self.as_dict())
