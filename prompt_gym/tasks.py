"""Tasks: splits, input formatting, verbalizer, template and metric, plus the task registry.

A :class:`Task` is plain data. Tasks are registered as factories and built on demand by
:func:`get_task`, so registering reads no file. The built-in tasks register themselves when
``prompt_gym`` is imported: the toy task in :mod:`prompt_gym.toy`, the paper's suite (SST-2 and
the rest) in :mod:`prompt_gym.task_suite`. Adding a GLUE-style classification task is one
:class:`ClassificationSpec` there (see ``docs/tasks.md``).

Example:
    >>> from prompt_gym.tasks import get_task
    >>> task = get_task("toy")
    >>> task.verbalizer
    ('negative', 'positive')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prompt_gym import data as _data
from prompt_gym.data import DataError, Example
from prompt_gym.metrics import check_metric
from prompt_gym.template import DEFAULT_TEMPLATE


@dataclass
class Task:
    """A prompt-tuning task.

    Attributes:
        name: Registry name (``"sst2"``).
        splits: ``train`` (reward batches), ``validation`` (demonstrations and prompt selection)
            and ``test`` (reporting only).
        verbalizer: One word per class, indexed by label; ``None`` for generation tasks.
        template: Target input template with ``{prompt}`` and ``{input}`` fields.
        manual_prompt: A hand-written prompt, the baseline every learned prompt is compared with.
        metric: ``"accuracy"`` for classification; for generation tasks (``verbalizer=None``) a
            key of :data:`prompt_gym.metrics.METRICS` (``"exact_match"``, ``"f1"``,
            ``"contains"``, ``"set_match"``) comparing the target's answer with
            :attr:`Example.outputs`.
        label_names: Human-readable class names (for logs).
        default_scorer: Builds the task's own model-free target when the user gives none (the toy
            task's rule target); ``None`` means the default language model.
        default_tokenizer: Builds the env (agent) tokenizer that goes with :attr:`default_scorer`
            (the toy task's word tokenizer); ``None`` means the target model's tokenizer.
        max_new_tokens: Generation tasks: the longest answer the target writes, in tokens.
    """

    name: str
    splits: dict[str, list[Example]]
    verbalizer: tuple[str, ...] | None
    template: str = DEFAULT_TEMPLATE
    manual_prompt: str = ""
    metric: str = "accuracy"
    label_names: tuple[str, ...] = ()
    default_scorer: Callable[[Task], Any] | None = None
    default_tokenizer: Callable[[], Any] | None = None
    max_new_tokens: int = 16

    def __post_init__(self) -> None:
        if "{prompt}" not in self.template or "{input}" not in self.template:
            raise ValueError(f"Task {self.name!r}: the template must contain {{prompt}} and {{input}}.")
        if self.verbalizer is None:
            check_metric(self.metric)
        elif self.metric != "accuracy":
            raise ValueError(f"Task {self.name!r}: a classification task (with a verbalizer) uses metric "
                             f"'accuracy', got {self.metric!r}; pass verbalizer=None for a generation task.")
        else:
            _check_verbalizer(self.name, self.verbalizer)
        for split, examples in self.splits.items():
            if not examples:
                raise DataError(f"Task {self.name!r}: the {split!r} split is empty.")

    @property
    def has_own_target(self) -> bool:
        """Whether the task brings its own model-free target (:attr:`default_scorer`), as the toy task does."""
        return self.default_scorer is not None

    @property
    def is_generation(self) -> bool:
        """Whether the target writes answers (scored by :attr:`metric`) instead of picking a class."""
        return self.verbalizer is None

    def split(self, name: str) -> list[Example]:
        """Return one split's examples.

        Raises:
            KeyError: The task has no such split (the message lists those it has).
        """
        if name not in self.splits:
            raise KeyError(f"Task {self.name!r} has no {name!r} split; it has {sorted(self.splits)}.")
        return self.splits[name]

    def answer(self, example: Example) -> str:
        """Return the output a demonstration shows for ``example`` (its verbalizer word)."""
        if self.verbalizer is not None and example.label is not None:
            return self.verbalizer[example.label]
        return example.outputs[0]


def _check_verbalizer(name: str, verbalizer: Sequence[str]) -> None:
    """A classification task needs two or more distinct, non-empty class words."""
    words = list(verbalizer)
    if not all(isinstance(word, str) and word.strip() for word in words):
        raise ValueError(f"Task {name!r}: every verbalizer word must be a non-empty string, got {words!r}.")
    if len(words) < 2 or len(set(words)) != len(words):
        raise ValueError(f"Task {name!r}: the verbalizer needs two or more distinct words (one per class), got "
                         f"{words!r}; with one class every answer is right and the reward's margin is infinite.")


@dataclass(frozen=True)
class ClassificationSpec:
    """How to build a few-shot classification task from the data folder or the hub.

    Attributes:
        name: Registry name.
        folder: Sub-folder of ``$PROMPT_GYM_DATA_DIR``.
        verbalizer: One word per label.
        input_format: ``str.format`` template over a record's fields.
        manual_prompt: The hand-written baseline prompt.
        test_file: Default test split file (``"validation"`` where the official test has no labels).
        label_names: Class names.
        hub: ``(path, config, {our_field: hub_field}, test_split)`` for ``datasets.load_dataset``,
            or ``None`` when the task has no hub fallback.
    """

    name: str
    folder: str
    verbalizer: tuple[str, ...]
    input_format: str
    manual_prompt: str
    test_file: str = "test"
    label_names: tuple[str, ...] = ()
    hub: tuple[str, str | None, Mapping[str, str], str] | None = None

    def build(self, seed: int = 13, test_split: str | None = None, shots: int = 16) -> Task:
        """Load the splits (LM-BFF protocol) and return the task.

        Args:
            seed: Few-shot seed. The LM-BFF files exist for 13, 21, 42, 87 and 100; any other seed
                draws a balanced sample from the full train split instead.
            test_split: Which file serves as test; defaults to :attr:`test_file`.
            shots: Examples per label in the train and the validation split.
        """
        test_name = test_split or self.test_file
        root = _data.data_dir()
        if root is None:
            hub_train, test = self._from_hub(test_name)
            few_train = few_dev = None
            full_train = lambda: hub_train  # noqa: E731
        else:
            folder = root / self.folder
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"Task {self.name!r}: no folder {folder}. Point ${_data.DATA_DIR_ENV} at a data folder "
                    f"with a {self.folder}/ sub-folder (see the README), or unset it to use the hub."
                )
            # the full train file is read only when a few-shot file is missing (SST-2's is 67k rows)
            full_train = functools.cache(lambda: self._examples(self._split_file(folder, "train")))
            test = self._examples(self._split_file(folder, test_name))
            shot_dir = folder / f"{shots}-shot" / str(seed)
            few_train = self._examples(shot_dir / "train.jsonl") if (shot_dir / "train.jsonl").is_file() else None
            few_dev = self._examples(shot_dir / "dev.jsonl") if (shot_dir / "dev.jsonl").is_file() else None
        rng = np.random.default_rng(seed)
        train = few_train or _data.balanced_draw(full_train(), shots, rng)
        validation = few_dev or _data.balanced_draw(full_train(), shots, rng, exclude=(e.uid for e in train))
        return Task(
            name=self.name,
            splits={"train": train, "validation": validation, "test": test},
            verbalizer=self.verbalizer,
            manual_prompt=self.manual_prompt,
            label_names=self.label_names,
        )

    def _split_file(self, folder: Path, split: str) -> Path:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            have = sorted(p.stem for p in folder.glob("*.jsonl"))
            raise FileNotFoundError(f"Task {self.name!r}: no {split!r} split ({path} is missing); have {have}.")
        return path

    def _examples(self, path: Path) -> list[Example]:
        return _data.to_examples(_data.read_jsonl(path), self.input_format, str(path), len(self.verbalizer))

    def _from_hub(self, test_name: str) -> tuple[list[Example], list[Example]]:
        if self.hub is None:
            raise FileNotFoundError(
                f"Task {self.name!r} has no hub source: set ${_data.DATA_DIR_ENV} to the data folder."
            )
        path, config, fields, hub_test = self.hub
        if test_name != self.test_file:
            raise ValueError(
                f"Task {self.name!r}: test split {test_name!r} is only available from "
                f"${_data.DATA_DIR_ENV} (the hub copy has no labels for it)."
            )
        import datasets  # heavy and optional here: only the hub fallback needs it

        loaded = datasets.load_dataset(path, config)

        def convert(split: str) -> list[Example]:
            rows = [{ours: row[theirs] for ours, theirs in fields.items()} | {"label": row["label"]}
                    for row in loaded[split]]
            return _data.to_examples(rows, self.input_format, f"hub:{path}/{split}", len(self.verbalizer))

        return convert("train"), convert(hub_test)


TaskFactory = Callable[..., Task]
"""Builds a task; called as ``factory(seed=..., test_split=...)``."""

_REGISTRY: dict[str, TaskFactory] = {}


def register_task(name: str, factory: TaskFactory | Task, *, overwrite: bool = False) -> None:
    """Register a task under ``name`` so environments can use it (``gym.make(..., task=name)``).

    Args:
        name: The registry name.
        factory: A ready :class:`Task`, or a callable ``(seed=..., test_split=...) -> Task``.
        overwrite: Replace an existing registration instead of raising.
    """
    if not isinstance(factory, Task) and not callable(factory):
        raise TypeError(f"register_task needs a Task or a callable that returns one, got {factory!r}.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"Task {name!r} is already registered; pass overwrite=True to replace it.")
    _REGISTRY[name] = (lambda **_: factory) if isinstance(factory, Task) else factory


def list_tasks() -> list[str]:
    """Return the registered task names."""
    return sorted(_REGISTRY)


def get_task(name: str, **kwargs: Any) -> Task:
    """Build a registered task.

    Args:
        name: A name from :func:`list_tasks`.
        **kwargs: Passed to the task's factory (``seed``, ``test_split`` for classification tasks).

    Raises:
        KeyError: Unknown task (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise KeyError(f"Unknown task {name!r}. Known tasks: {', '.join(list_tasks())}.")
    return _REGISTRY[name](**kwargs)


def make_task(
    name: str,
    *,
    train: str | Sequence[Mapping[str, Any]] | Any,
    validation: str | Sequence[Mapping[str, Any]] | Any,
    test: str | Sequence[Mapping[str, Any]] | Any,
    verbalizer: Sequence[str] | None = None,
    metric: str | None = None,
    input_format: str = "{text}",
    output_field: str = "output",
    template: str = DEFAULT_TEMPLATE,
    manual_prompt: str = "",
    max_new_tokens: int = 16,
) -> Task:
    """Build a task from your own data: classification (give ``verbalizer``) or generation (give ``metric``).

    Each split is a path to a JSON Lines file, a list of dicts, or a ``datasets.Dataset``. Every
    row needs the fields named in ``input_format``, plus an integer ``label`` indexing
    ``verbalizer`` (classification) or ``output_field``, a string or a list of acceptable answers
    (generation; the target writes an answer after the template and ``metric`` scores it).

    Raises:
        ValueError: Neither or both of ``verbalizer`` and ``metric`` given, or an unknown metric.
        DataError: A row lacks a field, has a label outside the verbalizer or a bad answer list
            (the message names file and line), or a split is empty.
    """
    if (verbalizer is None) == (metric is None):
        raise ValueError(f"Task {name!r}: give either verbalizer=[...] (classification) or metric=... "
                         f"(generation: one of 'exact_match', 'f1', 'contains', 'set_match').")
    if metric is not None:
        check_metric(metric)
    if isinstance(verbalizer, str):
        raise ValueError(f"Task {name!r}: verbalizer is a list of class words, one per label, got the string "
                         f"{verbalizer!r}; write verbalizer=[{verbalizer!r}, ...].")
    if verbalizer is not None:
        _check_verbalizer(name, verbalizer)
    splits = {}
    for split, source in (("train", train), ("validation", validation), ("test", test)):
        if isinstance(source, (str, Path)):
            rows, origin = _data.read_jsonl(source), str(source)
        else:
            origin, rows = f"{name}/{split}", list(source)
            if not all(isinstance(row, Mapping) for row in rows):
                raise DataError(f"Task {name!r}: every row of the {split!r} split ({origin}) must be a dict of fields.")
            rows = [dict(row) for row in rows]
        if not rows:
            raise DataError(f"Task {name!r}: the {split!r} split ({origin}) is empty.")
        if verbalizer is not None:
            splits[split] = _data.to_examples(rows, input_format, origin, len(verbalizer))
        else:
            splits[split] = _data.to_examples(rows, input_format, origin, outputs_field=output_field)
    return Task(name=name, splits=splits, verbalizer=tuple(verbalizer) if verbalizer is not None else None,
                template=template, manual_prompt=manual_prompt, metric=metric or "accuracy",
                label_names=tuple(verbalizer or ()), max_new_tokens=max_new_tokens)
