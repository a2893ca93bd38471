"""Checks of user-given values at the boundary (``gym.make`` arguments, configs), with errors that say what to do.

Each check raises ``TypeError`` for a value of the wrong type and ``ValueError`` for one out of
range; the message names the argument, shows what was given and what is expected.

Example:
    >>> check_int("num_demos", 3, minimum=0)
    3
    >>> check_int("num_demos", 1.5, minimum=0)
    Traceback (most recent call last):
    ...
    TypeError: num_demos must be an integer, got 1.5 (float); pass a whole number such as 1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` when it is a whole number (not a bool) of at least ``minimum``.

    Raises:
        TypeError: ``value`` is not an integer (a float, a string, a bool...).
        ValueError: ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        example = minimum if minimum is not None and minimum > 0 else 1
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}); "
                        f"pass a whole number such as {example}.")
    if minimum is not None and value < minimum:
        bound = {0: "non-negative", 1: "positive"}.get(minimum, f"at least {minimum}")
        raise ValueError(f"{name} must be {bound}, got {value}.")
    return int(value)


def check_optional_int(name: str, value: Any, minimum: int | None = None) -> int | None:
    """:func:`check_int`, with ``None`` allowed (and returned)."""
    return None if value is None else check_int(name, value, minimum)


def check_number(name: str, value: Any, minimum: float | None = None) -> float:
    """Return ``value`` as a finite ``float`` of at least ``minimum``.

    Raises:
        TypeError: ``value`` is not a real number (or is a bool).
        ValueError: ``value`` is NaN, infinite or below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` when it is one of ``choices``.

    Raises:
        ValueError: It is not (the message lists the choices).
    """
    if not any(value is choice or (type(value) is type(choice) and value == choice) for choice in choices):
        raise ValueError(f"{name} must be one of {tuple(choices)!r}, got {value!r}.")
    return value


def check_type(name: str, value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """Return ``value`` when it is an instance of ``kinds``; ``what`` describes them for the message.

    Raises:
        TypeError: It is not.
    """
    if not isinstance(value, kinds):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).")
    return value
