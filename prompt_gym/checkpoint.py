"""Atomic, verifiable training checkpoints.

Layout under a run's ``checkpoints/`` folder::

    step-000010/   one complete checkpoint (files written by the agent + manifest.json)
    step-000020/
    latest         the name of the newest complete checkpoint

A checkpoint is written into a hidden staging folder (``.step-*``), its ``manifest.json`` (SHA-256
of every file) is written last, and only then is the folder renamed into place and ``latest``
replaced (``os.replace``). A crash leaves either the old checkpoint or the new one, never half of
one; staging folders a kill left behind are deleted by the next save (reading never deletes,
so a checkpoint can be loaded while its run is still training). After a save,
step folders newer than the one just written (a previous timeline, when a run resumed from an
older checkpoint) are deleted, then all but the ``keep`` newest; the one just written always stays.

Loading checks the manifest and raises :class:`CheckpointError` on any missing or changed file.
:func:`latest_checkpoint` follows ``latest`` only to a ``step-*`` folder inside the same
``checkpoints/`` folder, and when that checkpoint is missing or corrupt it falls back, with a
warning, to the newest older checkpoint that verifies.

Files that belong to the run rather than to the agent (the target's score cache and counters, see
:mod:`prompt_gym.runs.target_state`) join every checkpoint saved inside :func:`extra_checkpoint_files`:
they are written into the same staging folder before the manifest, so they are as atomic and as
verified as the agent's own.

Nothing here unpickles arbitrary objects: tensors are read with ``torch.load(weights_only=True)``
or safetensors, everything else is JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
LATEST = "latest"
FORMAT_VERSION = 1
STEP_NAME = re.compile(r"step-(\d{6,})")
"""A checkpoint folder's name: ``step-`` and the update count, zero-padded to at least 6 digits."""
_EXTRA_WRITERS: ContextVar[tuple[Callable[[Path], None], ...]] = ContextVar("extra_checkpoint_writers", default=())


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial or corrupt; the message says which file and what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def extra_checkpoint_files(write: Callable[[Path], None]) -> Iterator[None]:
    """Within the block, every :func:`save_checkpoint` also calls ``write`` on its staging folder.

    ``write`` runs after the agent's own files and before the manifest, so what it writes is part
    of the atomic, verified checkpoint. The run pipeline uses it to save the target's state next to
    the agent's, without the agents knowing about it.
    """
    token = _EXTRA_WRITERS.set((*_EXTRA_WRITERS.get(), write))
    try:
        yield
    finally:
        _EXTRA_WRITERS.reset(token)


def save_checkpoint(root: str | Path, step: int, write: Callable[[Path], None], keep: int = 2) -> Path:
    """Write a checkpoint atomically and point ``latest`` at it.

    Args:
        root: The checkpoints folder (created if needed).
        step: The update count; names the folder ``step-{step:06d}``.
        write: Writes the checkpoint's files into the folder it is given (then the writers of any
            enclosing :func:`extra_checkpoint_files` run).
        keep: How many complete checkpoints to keep, the one just written included (at least 1).

    Returns:
        The checkpoint folder.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the checkpoint just written), got {keep}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _remove_staging(root)
    final = root / f"step-{step:06d}"
    staging = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}-", dir=root))
    try:
        write(staging)
        for extra in _EXTRA_WRITERS.get():
            extra(staging)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {"format": FORMAT_VERSION, "step": step,
                    "files": {str(p.relative_to(staging)): _sha256(p) for p in files}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_text_atomic(root / LATEST, final.name)
    _prune(root, step, keep)
    return final


def _step_folders(root: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``step-*`` folder directly under ``root``, oldest first."""
    return sorted((checkpoint_step(path), path) for path in root.iterdir()
                  if path.is_dir() and not path.is_symlink() and STEP_NAME.fullmatch(path.name))


def _prune(root: Path, current: int, keep: int) -> None:
    """Delete checkpoints newer than ``current`` (a stale timeline) and all but the ``keep`` newest others."""
    folders = _step_folders(root)
    stale = [path for step, path in folders if step > current]
    older = [path for step, path in folders if step <= current]
    for path in stale + older[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def _remove_staging(root: Path) -> None:
    """Delete the staging folders and pointer files that an interrupted save left in ``root``."""
    for path in root.iterdir():
        if path.name.startswith(".step-") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{LATEST}.") and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def latest_checkpoint(root: str | Path) -> Path:
    """Return the newest checkpoint under ``root`` that verifies.

    ``latest`` is tried first; it must name a ``step-*`` folder inside ``root``. When it is
    missing, points elsewhere or names a checkpoint that does not verify, the ``step-*`` folders
    are tried from the newest down and the first that verifies is returned, with a warning that
    names what was skipped. ``root`` may also be one ``step-*`` folder itself (verified, no
    fallback).

    Raises:
        CheckpointError: No checkpoint at all, or none that verifies.
    """
    root = Path(root)
    if (root / MANIFEST).is_file() or STEP_NAME.fullmatch(root.name):
        try:
            return verify_checkpoint(root)
        except CheckpointError as error:
            raise CheckpointError(f"{error}. Resume the run folder instead: it falls back to the newest older "
                                  "checkpoint that verifies.") from error
    if not root.is_dir() or not _step_folders(root):
        raise CheckpointError(
            f"No checkpoint in {root}: the run stopped before writing one (--save-every K sets how often). "
            "Start it again (prompt-gym train: the same command with --overwrite instead of --resume), or in a "
            "new folder."
        )
    candidates = [path for _, path in reversed(_step_folders(root))]
    pointed = _pointed(root)
    problems = [f"'{LATEST}' in {root} is missing or does not name a step-* folder of this run"]
    if pointed in candidates:
        candidates.remove(pointed)
        candidates.insert(0, pointed)
        problems = []
    for path in candidates:
        try:
            verify_checkpoint(path)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        if problems:
            warnings.warn(f"Resuming from {path}, an older checkpoint: " + "; ".join(problems), stacklevel=2)
        return path
    raise CheckpointError(f"No checkpoint in {root} verifies: " + "; ".join(problems) +
                          ". Start a new run in a new folder.")


def _pointed(root: Path) -> Path | None:
    """The checkpoint ``latest`` names, or ``None`` when it is missing or names anything but a ``step-*`` folder here."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return root / name if STEP_NAME.fullmatch(name) else None


def verify_checkpoint(path: str | Path) -> Path:
    """Check that every file listed in the manifest exists inside ``path`` with the recorded hash.

    Raises:
        CheckpointError: The folder, the manifest or a file is missing, a file changed, or the
            manifest names a file outside the folder.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"Checkpoint {path} is incomplete: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"Checkpoint {path} has an unreadable {MANIFEST} ({error})") from error
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"Checkpoint {path} has format {manifest.get('format')}, expected {FORMAT_VERSION}")
    inside = path.resolve()
    for name, digest in files.items():
        file = path / name
        if not file.resolve().is_relative_to(inside):
            raise CheckpointError(f"Checkpoint {path} lists {name!r}, a file outside its folder")
        if not file.is_file():
            raise CheckpointError(f"Checkpoint {path} is incomplete: {name} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(f"Checkpoint {path} is corrupt: {name} does not match its recorded hash")
    return path


def checkpoint_step(path: str | Path) -> int:
    """The update count a checkpoint folder is named for (``step-000010`` -> 10).

    Raises:
        ValueError: The name is not a checkpoint folder's.
    """
    match = STEP_NAME.fullmatch(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint folder (step-NNNNNN).")
    return int(match.group(1))


def has_checkpoints(root: str | Path) -> bool:
    """Whether ``root`` holds at least one ``step-*`` folder (verified or not)."""
    root = Path(root)
    return root.is_dir() and bool(_step_folders(root))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace`` (never half a file).

    The folder is created if needed; a failed write leaves ``path`` as it was and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically: the project's one JSON writer (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=1))


def load_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_tensors(path: str | Path, data: Any) -> None:
    """Save tensors and plain containers (an optimizer ``state_dict``...) with ``torch.save``."""
    import torch

    torch.save(data, path)


def load_tensors(path: str | Path) -> Any:
    """Load what :func:`save_tensors` wrote, refusing arbitrary pickled objects (``weights_only=True``)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def global_rng_state() -> dict[str, Any]:
    """The states of python's ``random``, numpy's global generator and torch (CPU and CUDA).

    Returns:
        ``{"python": ..., "numpy": ...}`` (JSON-ready) and ``"torch"``/``"cuda"`` tensors: save
        the first two with :func:`save_json` and the rest with :func:`save_tensors`.
    """
    import torch

    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state: dict[str, Any] = {"python": [version, list(internal), gauss], "numpy": numpy_state,
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = dict(numpy_state["state"])
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
