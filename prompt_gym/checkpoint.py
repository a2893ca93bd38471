"""Atomic, verifiable training checkpoints.

Layout under a run's ``checkpoints/`` folder::

    step-000010/   one complete checkpoint (files written by the agent + manifest.json)
    step-000020/
    latest         the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder, its ``manifest.json`` (SHA-256 of every
file) is written last, and only then is the folder renamed into place and ``latest`` replaced
(``os.replace``). A crash leaves either the old checkpoint or the new one, never half of one.
Loading checks the manifest and raises :class:`CheckpointError` on any missing or changed file.

Nothing here unpickles arbitrary objects: tensors are read with ``torch.load(weights_only=True)``
or safetensors, everything else is JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
LATEST = "latest"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial or corrupt; the message says which file and what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(root: str | Path, step: int, write: Callable[[Path], None], keep: int = 2) -> Path:
    """Write a checkpoint atomically and point ``latest`` at it.

    Args:
        root: The checkpoints folder (created if needed).
        step: The update count; names the folder ``step-{step:06d}``.
        write: Writes the checkpoint's files into the folder it is given.
        keep: How many complete checkpoints to keep (older ones are deleted).

    Returns:
        The checkpoint folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    staging = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}-", dir=root))
    try:
        write(staging)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {"format": FORMAT_VERSION, "step": step,
                    "files": {str(p.relative_to(staging)): _sha256(p) for p in files}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name, encoding="utf-8")
    os.replace(pointer, root / LATEST)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path:
    """Return the newest complete checkpoint under ``root`` after verifying it.

    ``root`` may also be one ``step-*`` folder itself.

    Raises:
        CheckpointError: No checkpoint, a dangling ``latest`` pointer, or a corrupt checkpoint.
    """
    root = Path(root)
    if (root / MANIFEST).is_file() or root.name.startswith("step-"):
        return verify_checkpoint(root)
    pointer = root / LATEST
    if not pointer.is_file():
        raise CheckpointError(
            f"No checkpoint in {root} (no '{LATEST}' file). Train with --save-every K to write checkpoints, "
            "or start a new run without --resume."
        )
    path = root / pointer.read_text(encoding="utf-8").strip()
    return verify_checkpoint(path)


def verify_checkpoint(path: str | Path) -> Path:
    """Check that every file listed in the manifest exists with the recorded hash.

    Raises:
        CheckpointError: The folder, the manifest or a file is missing, or a file changed.
    """
    path = Path(path)
    hint = (f"Delete {path} and resume from an earlier checkpoint (pass its step-* folder to --resume), "
            "or start a new run.")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"Checkpoint {path} is incomplete: {MANIFEST} is missing. {hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(f"Checkpoint {path} has an unreadable {MANIFEST} ({error}). {hint}") from error
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"Checkpoint {path} has format {manifest.get('format')}, expected {FORMAT_VERSION}.")
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"Checkpoint {path} is incomplete: {name} is missing. {hint}")
        if _sha256(file) != digest:
            raise CheckpointError(f"Checkpoint {path} is corrupt: {name} does not match its recorded hash. {hint}")
    return path


def save_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")


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
