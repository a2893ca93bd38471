"""Command-line flags generated from config dataclasses, so each default is written once: in the dataclass.

Every field becomes ``--field-name`` (a few keep the spelling the CLI always had, :data:`SPELLINGS`),
its help is the field's entry in the class docstring's ``Attributes:`` section, and its argparse
default is ``None``, meaning "the config's default" (shown in the help, read from the dataclass).
Numbers are checked where they are typed (finite, not negative); every other rule is the config's
own ``__post_init__``, which runs before any model loads.

Example:
    >>> import argparse
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Config:
    ...     '''Settings.
    ...
    ...     Attributes:
    ...         batch_size: Prompts per update.
    ...     '''
    ...     batch_size: int = 8
    >>> parser = argparse.ArgumentParser()
    >>> dests = add_config_flags(parser, Config)
    >>> parser.parse_args(["--batch-size", "4"]).batch_size, parser.parse_args([]).batch_size
    (4, None)
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Collection
from typing import Any

from prompt_gym.runs.cli_types import non_negative_float, non_negative_int

SPELLINGS = {"learning_rate": "lr", "model": "agent-model"}
"""Fields whose flag is not the field name (the spellings ``prompt-gym train`` always had)."""


def flag_name(field_name: str) -> str:
    """``learning_rate`` -> ``--lr``, ``kl_coef`` -> ``--kl-coef``."""
    return "--" + SPELLINGS.get(field_name, field_name.replace("_", "-"))


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description from the ``Attributes:`` section of ``cls``'s docstring (and its bases')."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = inspect.cleandoc(klass.__doc__ or "")
        section = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)*)", text, re.MULTILINE)
        if section is None:
            continue
        name = None
        for line in section.group(1).splitlines():
            entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
            if entry:
                name = entry.group(1)
                docs[name] = entry.group(2).strip()
            elif name and line.strip():
                docs[name] += " " + line.strip()
    return docs


def field_default(item: dataclasses.Field) -> Any:
    """A dataclass field's default value (``default_factory`` called)."""
    return item.default_factory() if item.default is dataclasses.MISSING else item.default


def json_object(text: str) -> dict[str, Any]:
    """An ``argparse`` type: a JSON object (``'{"n_steps": 16}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


_PARSERS = {int: non_negative_int, float: non_negative_float, str: str}


def _argument(annotation: Any) -> dict[str, Any]:
    """``add_argument`` keywords for a field of type ``annotation`` (``X | None`` reads as ``X``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"cannot make a flag for a field of type {annotation}")
        annotation = kinds[0]
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return {"type": _PARSERS[item], "nargs": "+"}
    if origin is dict or annotation is dict:
        return {"type": json_object}
    return {"type": _PARSERS[annotation]}


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, skip: Collection[str] = (),
    prefix: str = "",
) -> dict[str, str]:
    """Add one flag per field of the dataclass ``cls`` (``None`` default: the config's own).

    Args:
        parser: Where the flags go (a parser or an argument group).
        cls: The config dataclass.
        skip: Fields that get no flag (set by the name, or a flag of another setting).
        prefix: Prepended to each ``dest`` (keeps two configs' fields apart in one namespace).

    Returns:
        ``{dest: field name}`` of the flags added.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    added = {}
    for item in dataclasses.fields(cls):
        if item.name in skip:
            continue
        default = field_default(item)
        help_text = f"{docs.get(item.name, item.name)} (default: {default!r})".replace("%", "%%")
        dest = prefix + item.name
        parser.add_argument(flag_name(item.name), dest=dest, default=None, help=help_text,
                            **_argument(hints[item.name]))
        added[dest] = item.name
    return added


def given(namespace: argparse.Namespace, dests: dict[str, str]) -> dict[str, Any]:
    """``{field name: value}`` of the flags among ``dests`` that were given (not ``None``)."""
    return {name: getattr(namespace, dest) for dest, name in dests.items() if getattr(namespace, dest) is not None}
