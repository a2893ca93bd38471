"""Run folders are safe: a new run writes only where it may, and a failed start leaves nothing behind.

A new run writes only into a folder that does not exist or is empty, unless ``overwrite`` (then
the previous run's outputs are deleted first and nothing else is touched). A start that fails
removes what it wrote, so the corrected command works as is (see ``docs/reliability.md``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prompt_gym.runs.settings import SETTINGS_FILE

TEST_TIME_PROMPTS_FILE = "test_time_prompts.json"
RUN_OUTPUTS = (SETTINGS_FILE, "log.jsonl", "checkpoints", "results.json", "best_prompts.json", "curves.png",
               TEST_TIME_PROMPTS_FILE, "events.out.tfevents.*")
"""What a training run writes into its folder (what ``overwrite`` deletes)."""


def check_run_folder(out: Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse to start a run in a folder it may not write into.

    Raises:
        FileExistsError: ``out`` holds a run (and neither ``resume`` nor ``overwrite``), or holds
            other files (and not ``overwrite``).
        NotADirectoryError: ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a run folder; pick another --out.")
    if resume or overwrite or not out.is_dir() or not any(out.iterdir()):
        return
    if (out / SETTINGS_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; continue it with --resume {out}, replace it with "
                              "--overwrite, or pick another --out.")
    raise FileExistsError(f"{out} is not empty and holds no prompt-gym run; pick a new or empty --out folder, or "
                          "pass --overwrite to write the run there (files with the names a run writes, such as "
                          "results.json and log.jsonl, are then replaced).")


def remove_outputs(out: Path) -> None:
    """Delete what a training run writes into ``out`` (:data:`RUN_OUTPUTS`), nothing else."""
    for pattern in RUN_OUTPUTS:
        for path in out.glob(pattern):
            _delete(path)


def _delete(path: Path) -> None:
    """Delete a file, a link or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@contextmanager
def clean_failed_start(out: Path, resume: bool) -> Iterator[None]:
    """If the start of a new run fails, leave ``out`` as it was when it was new or empty.

    A new folder is removed, an empty one emptied again. A folder started with ``overwrite`` keeps
    the earlier run when the failure came before its outputs were replaced; after that, the same
    command (with ``--overwrite``) starts again.
    """
    created = not out.exists()
    empty = created or not any(out.iterdir())
    try:
        yield
    except BaseException:
        if not resume and created:
            shutil.rmtree(out, ignore_errors=True)
        elif not resume and empty and out.is_dir():
            for path in out.iterdir():
                _delete(path)
        raise
