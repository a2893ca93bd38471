"""A small metrics logger: ``record(key, value)`` then ``dump(step)``, written to JSON Lines, stdout and TensorBoard.

Keys are namespaced like Stable-Baselines3's: ``rollout/reward``, ``rollout/accuracy``,
``train/approx_kl``, ``train/clip_fraction``, ``anchor/kl``, ``anchor/promotions``,
``anchor/rollbacks``, ``eval/val_accuracy``, ``time/target_evaluations``. The TensorBoard writer
is used when ``tensorboard`` is installed (``pip install prompt-gym[tensorboard]``).

A resumed run cuts ``log.jsonl`` back to its checkpoint (:func:`truncate_log`) and opens its
TensorBoard writer with ``purge_step`` (the checkpoint's update + 1): the new events file starts with
a marker that tells TensorBoard to drop the earlier files' events from that step on, so the updates
replayed after a resume are not shown twice. TensorBoard reads a folder's events files in name order,
and a name starts with the second it was created in, so a resume waits (two seconds at most) until its
file's name sorts after every earlier one.

``log.jsonl`` survives a kill: a last line cut short by the kill (no newline, not valid JSON) is
dropped with a warning when the log is read or reopened; a bad line anywhere else is an error
that names the file and the line.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

from prompt_gym.checkpoint import write_text_atomic

LOG_FILE = "log.jsonl"
_EVENTS_FILE_SECOND = re.compile(r"events\.out\.tfevents\.(\d+)\.")
_MAX_WAIT_FOR_A_LATER_NAME_S = 2.0


def _wait_until_a_new_events_file_sorts_last(folder: Path) -> None:
    """Waits until an events file created now is named after every events file already in ``folder``.

    Names tie on the creation second and then compare host name and process id, which can put a
    resumed run's file before the killed run's file; TensorBoard would then apply the purge marker
    first and show the replayed updates twice.
    """
    seconds = [int(match.group(1)) for path in folder.glob("events.out.tfevents.*")
               if (match := _EVENTS_FILE_SECOND.match(path.name))]
    if not seconds:
        return
    wait = max(seconds) + 1 - time.time()
    if wait > _MAX_WAIT_FOR_A_LATER_NAME_S:
        warnings.warn(
            f"An events file in {folder} is dated {wait:.0f} s ahead of this machine's clock, so TensorBoard "
            "may show this resumed run's updates before the earlier ones. Fix the clock, or view log.jsonl.",
            stacklevel=3)
    elif wait > 0:
        time.sleep(wait)


def _tensorboard_writer(folder: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    if purge_step is not None:
        _wait_until_a_new_events_file_sorts_last(folder)
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


class Logger:
    """Collects scalars for one step and writes them out together.

    Args:
        folder: Where ``log.jsonl`` and the TensorBoard events go; ``None`` keeps records in memory only.
        stdout: Also print each dump as a small table.
        tensorboard: Write TensorBoard events when tensorboard is importable.
        stream: Where the table goes (default ``sys.stdout``).
        purge_step: A resumed run's first new step: TensorBoard hides the events that earlier files
            logged at this step or later (``None``: a fresh run, nothing to hide).

    Attributes:
        history: Every dumped record (``{"step": ..., key: value, ...}``), in order.
    """

    def __init__(
        self, folder: str | Path | None = None, stdout: bool = False, tensorboard: bool = True,
        stream: TextIO | None = None, purge_step: int | None = None,
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.stdout = stdout
        self.stream = stream or sys.stdout
        self.history: list[dict[str, Any]] = []
        self._values: dict[str, float] = {}
        self._jsonl: TextIO | None = None
        self._tb: Any = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            log_file = self.folder / LOG_FILE
            if log_file.is_file():
                write_log(log_file, read_log(log_file))  # drop a torn last line before appending
            self._jsonl = log_file.open("a", encoding="utf-8")
            self._tb = _tensorboard_writer(self.folder, purge_step) if tensorboard else None

    def record(self, key: str, value: float) -> None:
        """Set ``key`` to ``value`` for the next :meth:`dump` (a later record of the same key wins)."""
        if "/" not in key:
            raise ValueError(f"Log keys are namespaced 'group/name' (e.g. 'train/approx_kl'), got {key!r}.")
        self._values[key] = float(value)

    def dump(self, step: int) -> dict[str, Any]:
        """Write the recorded values for ``step`` everywhere and clear them; returns the record."""
        record = {"step": int(step)} | {k: (None if math.isnan(v) else v) for k, v in sorted(self._values.items())}
        self._values.clear()
        self.history.append(record)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and value is not None:
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self.stdout:
            width = max(len(k) for k in record)
            lines = [f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in record.items()]
            print("\n".join(["-" * (width + 12), *lines]), file=self.stream)
        return record

    def close(self) -> None:
        """Close the files."""
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``log.jsonl`` file back into records.

    A last line that a kill cut short is dropped with a warning.

    Raises:
        ValueError: A line other than the last is not a JSON record with a ``step`` (names file and line).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            int(record["step"])
        except (ValueError, KeyError, TypeError) as error:
            if number == len(lines):  # no newline after it: the write was cut short
                warnings.warn(f"{path}:{number}: dropped a last line cut short by an interrupted write.", stacklevel=2)
                break
            raise ValueError(f"{path}:{number}: not a log record ({error}); repair or delete that line.") from None
        records.append(record)
    return records


def write_log(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` with ``records``, one JSON line each (written to a temporary file, then renamed)."""
    write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in records))


def truncate_log(path: str | Path, last_step: int) -> list[dict[str, Any]]:
    """Drop the records logged after ``last_step`` (a resumed run logs them again); returns those kept."""
    path = Path(path)
    if not path.is_file():
        return []
    kept = [record for record in read_log(path) if int(record["step"]) <= last_step]
    write_log(path, kept)
    return kept


def logged_value(records: list[dict[str, Any]], step: int, key: str) -> float | None:
    """The last value of ``key`` logged at ``step``, or ``None`` when there is none."""
    values = [record[key] for record in records if record["step"] == step and record.get(key) is not None]
    return values[-1] if values else None
