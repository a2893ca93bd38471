"""A persistent on-disk cache of remote-target results, so reruns and resumed runs pay nothing twice.

Keys are ``(server, model, mode, template, prompt, input)``: a result is reused only when every
part that shapes it is the same. Values are JSON (a list of class log-probabilities or an answer
string). Each finished request is committed at once (SQLite, write-ahead log), so a run killed
mid-way keeps everything it paid for.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def cache_key(server: str, model: str, mode: str, template: str, prompt: str, source: str) -> str:
    """The hex SHA-256 of the six parts of a result's identity."""
    return hashlib.sha256(json.dumps([server, model, mode, template, prompt, source]).encode()).hexdigest()


class ResultCache:
    """A key-value store in one SQLite file, safe to share between threads and processes.

    Args:
        path: The SQLite file (its folder is created).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Return the stored values of those ``keys`` that are present."""
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk)
                found.update((key, json.loads(value)) for key, value in rows)
        return found

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Store ``(key, value)`` pairs and commit them."""
        rows = [(key, json.dumps(value)) for key, value in items]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
