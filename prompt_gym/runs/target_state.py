"""The target's part of a run's checkpoint: its evaluation counts and its score cache.

A resumed run must count and score exactly as the run would have without the interruption. The
agent's checkpoint restores the policy; this restores the target around it:

- **Counts** (``target/counts.json``): the run's :class:`~prompt_gym.budget.BudgetedScorer`
  counters (evaluations, pairs requested, the free streak that ends a stalled run) and the
  wrapped scorer's own (``cache_hits``, ``num_forward_tokens``, where it has them).
- **Score cache** (``target/score_cache.json`` + ``target/score_cache.safetensors``): an LM
  target's :class:`~prompt_gym.scoring.ScoreCache`, least recently used first, so that pairs cached
  before the interruption stay free (they do not count against the budget again) and keep their
  exact scores (rescoring them in another batch would move the float32 log-probs slightly, and
  with them the weights). The keys are JSON (prompts and inputs listed once, pairs as indices), the
  scores float32 safetensors: nothing is pickled.

A remote target needs no cache here: its SQLite cache is on disk already. The pipeline writes this
into every checkpoint through :func:`prompt_gym.checkpoint.extra_checkpoint_files`, so it is inside
the checkpoint's manifest and as atomic and verified as the agent's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prompt_gym.budget import BudgetedScorer
from prompt_gym.checkpoint import load_json, save_json
from prompt_gym.scoring import ScoreCache

TARGET_FOLDER = "target"
COUNTS_FILE = "counts.json"
CACHE_KEYS_FILE = "score_cache.json"
CACHE_SCORES_FILE = "score_cache.safetensors"
BUDGET_COUNTERS = ("num_evaluations", "num_requested", "free_streak")
""":class:`BudgetedScorer` counters kept in ``counts.json``."""
SCORER_COUNTERS = ("cache_hits", "num_forward_tokens")
"""Counters of the wrapped scorer kept in ``counts.json`` when it has them."""


def save_target_state(scorer: BudgetedScorer, checkpoint: Path) -> None:
    """Write the counts and (for an LM target) the score cache of ``scorer`` into ``checkpoint/target``."""
    # safetensors is imported here: the command line (``prompt-gym --help``) starts without it.
    from safetensors.numpy import save_file

    folder = Path(checkpoint) / TARGET_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    target = scorer.scorer
    cache = getattr(target, "cache", None)
    local = isinstance(cache, ScoreCache)  # a remote target keeps its counters in its own usage file
    counts = {name: int(getattr(scorer, name)) for name in BUDGET_COUNTERS}
    counts["scorer"] = {name: int(getattr(target, name)) for name in SCORER_COUNTERS if local and hasattr(target, name)}
    save_json(folder / COUNTS_FILE, counts)
    if not local:
        return
    entries = cache.items()
    prompts = list(dict.fromkeys(prompt for (prompt, _), _ in entries))
    inputs = list(dict.fromkeys(source for (_, source), _ in entries))
    prompt_index = {prompt: i for i, prompt in enumerate(prompts)}
    input_index = {source: i for i, source in enumerate(inputs)}
    save_json(folder / CACHE_KEYS_FILE, {
        "max_size": cache.max_size, "prompts": prompts, "inputs": inputs,
        "pairs": [[prompt_index[prompt], input_index[source]] for (prompt, source), _ in entries]})
    width = len(getattr(target, "verbalizer", ()))
    scores = np.stack([value for _, value in entries]) if entries else np.zeros((0, width))
    save_file({"scores": np.ascontiguousarray(scores, dtype=np.float32)}, str(folder / CACHE_SCORES_FILE))


def load_target_state(scorer: BudgetedScorer, checkpoint: Path) -> dict[str, Any] | None:
    """Restore what :func:`save_target_state` wrote; returns the counts, or ``None`` for a checkpoint without them.

    The budget's ``free_streak`` is returned but not set: setting the budget's limit restarts it,
    so the caller sets it after the limit (:meth:`prompt_gym.runs.pipeline.Run.execute`).

    Raises:
        ValueError: The saved cache does not fit the target (another number of classes).
    """
    # safetensors is imported here: the command line (``prompt-gym --help``) starts without it.
    from safetensors.numpy import load_file

    folder = Path(checkpoint) / TARGET_FOLDER
    if not (folder / COUNTS_FILE).is_file():
        return None
    counts = load_json(folder / COUNTS_FILE)
    scorer.num_evaluations = int(counts["num_evaluations"])
    scorer.num_requested = int(counts["num_requested"])
    target = scorer.scorer
    cache = getattr(target, "cache", None)
    if not isinstance(cache, ScoreCache):
        return counts
    for name, value in counts.get("scorer", {}).items():
        if name in SCORER_COUNTERS:
            setattr(target, name, int(value))
    if (folder / CACHE_KEYS_FILE).is_file():
        keys = load_json(folder / CACHE_KEYS_FILE)
        scores = load_file(str(folder / CACHE_SCORES_FILE))["scores"]
        width = len(getattr(target, "verbalizer", ()))
        if scores.shape != (len(keys["pairs"]), width):
            raise ValueError(f"{folder}: the saved score cache has shape {scores.shape}, but the target has {width} "
                             f"classes and the keys list {len(keys['pairs'])} pairs; the run was saved with another "
                             "target.")
        cache.clear()
        for (prompt, source), row in zip(keys["pairs"], scores, strict=True):
            cache.put((keys["prompts"][prompt], keys["inputs"][source]), row.copy())
    return counts
