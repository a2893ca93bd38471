"""Task data: examples, JSON Lines files, few-shot splits.

Data comes from ``$PROMPT_GYM_DATA_DIR`` when it is set. That folder holds one sub-folder per task
in this layout (the layout of the project's shared data)::

    <task>/train.jsonl  <task>/validation.jsonl  <task>/test.jsonl      (where the split exists)
    <task>/16-shot/<seed>/train.jsonl  <task>/16-shot/<seed>/dev.jsonl  (LM-BFF splits, seeds 13 21 42 87 100)

One JSON object per line: ``{"text": ..., "label": int}`` for single-text classification,
``{"text_a": ..., "text_b": ..., "label": int}`` for sentence pairs. Without the variable, tasks
that name a Hugging Face dataset load it through ``datasets`` instead.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR_ENV = "PROMPT_GYM_DATA_DIR"
"""The environment variable that names the data folder."""


@dataclass(frozen=True)
class Example:
    """One task example, already formatted for the target.

    Attributes:
        input: The text the target reads after ``Input:``.
        label: Class index for classification tasks, ``None`` otherwise.
        outputs: Acceptable answers for generation tasks.
        uid: A stable id (``"<source>:<line>"``), used as a cache key.
    """

    input: str
    label: int | None = None
    outputs: tuple[str, ...] = field(default=())
    uid: str = ""


class DataError(ValueError):
    """Task data is missing or malformed; the message names the file and line."""


def data_dir() -> Path | None:
    """Return ``$PROMPT_GYM_DATA_DIR`` as a path, or ``None`` when it is not set."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON Lines file; every line must be a JSON object.

    Raises:
        FileNotFoundError: The file does not exist.
        DataError: A line is not UTF-8 or not a JSON object (the message gives file and line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}")
    records = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: not valid UTF-8 (byte {error.start}: {error.reason}); "
                                "save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    if not records:
        raise DataError(f"{path}: the file has no examples")
    return records


def to_examples(
    records: Sequence[Mapping[str, Any]],
    input_format: str,
    source: str,
    num_labels: int | None = None,
    outputs_field: str | None = None,
) -> list[Example]:
    """Format raw records into :class:`Example` objects.

    Args:
        records: Raw rows (dicts).
        input_format: A ``str.format`` template over the record's fields, e.g. ``"{text}"``.
        source: Where the rows came from (a path), used in error messages and uids.
        num_labels: For classification, the number of classes; labels must lie in ``[0, num_labels)``.
        outputs_field: For generation tasks, the field holding the list of acceptable answers.

    Raises:
        DataError: A field is missing, null or not text, or a label is out of range (names source and row).
    """
    examples = []
    for row, record in enumerate(records, start=1):
        where = f"{source}:{row}"
        _check_text_fields(record, input_format, where)
        try:
            text = input_format.format(**record)
        except KeyError as error:
            raise DataError(f"{where}: missing field {error.args[0]!r} (needed by {input_format!r})") from None
        label = None
        outputs: tuple[str, ...] = ()
        if num_labels is not None:
            label = record.get("label")
            if isinstance(label, bool) or not isinstance(label, int):
                raise DataError(f"{where}: 'label' must be an integer, got {label!r}")
            if not 0 <= label < num_labels:
                raise DataError(f"{where}: label {label} is outside the verbalizer's 0..{num_labels - 1}")
        if outputs_field is not None:
            value = record.get(outputs_field)
            values = [value] if isinstance(value, str) else value
            if not values or not all(isinstance(v, str) for v in values):
                raise DataError(f"{where}: {outputs_field!r} must be a string or a non-empty list of strings")
            outputs = tuple(values)
        examples.append(Example(input=text, label=label, outputs=outputs, uid=where))
    return examples


def _check_text_fields(record: Mapping[str, Any], input_format: str, where: str) -> None:
    """Every field the input format reads must be text or a number (JSON ``null`` would become "None")."""
    for _, name, _, _ in string.Formatter().parse(input_format):
        if name is None or name not in record:
            continue  # a missing field is reported by the formatting itself
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise DataError(f"{where}: field {name!r} must be text, got {json.dumps(value)}; give every example "
                            f"its {name!r} as a string")


def balanced_draw(
    examples: Sequence[Example], per_label: int, rng: np.random.Generator, exclude: Iterable[str] = ()
) -> list[Example]:
    """Draw ``per_label`` examples of every label, without replacement, skipping uids in ``exclude``.

    Raises:
        DataError: Some label has fewer than ``per_label`` examples left.
    """
    excluded = set(exclude)
    by_label: dict[int, list[Example]] = {}
    for example in examples:
        if example.uid not in excluded and example.label is not None:
            by_label.setdefault(example.label, []).append(example)
    drawn = []
    for label in sorted(by_label):
        pool = by_label[label]
        if len(pool) < per_label:
            raise DataError(f"Label {label} has {len(pool)} examples, fewer than the {per_label} requested.")
        drawn.extend(pool[i] for i in sorted(rng.choice(len(pool), size=per_label, replace=False)))
    return drawn
