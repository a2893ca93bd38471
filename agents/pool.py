"""The best-prompt pool: the top prompts by validation accuracy, without duplicates."""

from __future__ import annotations

from typing import Any

from prompt_gym.agents.configs import SELECT_BY


class PromptPool:
    """Keeps the ``max_size`` prompts with the highest validation accuracy (ties: higher gap).

    Prompts are deduplicated on their stripped text; a prompt seen again keeps its first score
    (validation scoring is deterministic, so a second score would be the same).

    Args:
        max_size: How many prompts to keep.
    """

    def __init__(self, max_size: int = 5) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be positive, got {max_size}.")
        self.max_size = max_size
        self.entries: list[dict[str, Any]] = []

    def add(self, prompt: str, val_accuracy: float, val_gap: float = 0.0, update: int = 0) -> None:
        """Offer a prompt with its validation scores (found at ``update``)."""
        prompt = prompt.strip()
        if any(entry["prompt"] == prompt for entry in self.entries):
            return
        self.entries.append({"prompt": prompt, "val_accuracy": float(val_accuracy), "val_gap": float(val_gap),
                             "update": int(update)})
        self.entries.sort(key=lambda e: (-e["val_accuracy"], -e["val_gap"], e["update"]))
        del self.entries[self.max_size :]

    def best(self, by: str = "accuracy") -> dict[str, Any] | None:
        """The best entry, or ``None`` when the pool is empty.

        Args:
            by: ``"accuracy"``: the top entry (highest validation accuracy, ties: higher gap);
                ``"gap"``: the entry with the highest mean validation gap (ties: higher accuracy, then
                the earlier found). The pool keeps its prompts by accuracy either way.

        Raises:
            ValueError: ``by`` is neither.
        """
        if by not in SELECT_BY:
            raise ValueError(f"by must be one of {', '.join(SELECT_BY)}, got {by!r}.")
        if not self.entries:
            return None
        if by == "gap":
            return min(self.entries, key=lambda e: (-e["val_gap"], -e["val_accuracy"], e["update"]))
        return self.entries[0]

    def to_list(self) -> list[dict[str, Any]]:
        """The entries, best first (JSON-ready)."""
        return [dict(entry) for entry in self.entries]

    @classmethod
    def from_list(cls, entries: list[dict[str, Any]], max_size: int) -> PromptPool:
        """Rebuild a pool from :meth:`to_list` output."""
        pool = cls(max_size)
        for entry in entries:
            pool.add(entry["prompt"], entry["val_accuracy"], entry.get("val_gap", 0.0), entry.get("update", 0))
        return pool
