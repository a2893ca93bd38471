"""``argparse`` types that check numbers where they are typed, so a bad flag fails before any work starts.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--kl-coef", type=non_negative_float)
    >>> parser.parse_args(["--kl-coef", "0.2"]).kl_coef
    0.2
"""

from __future__ import annotations

import argparse
import math


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    return _integer(text, 0, "an integer of at least 0")


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (not inf, not nan)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of at least 0, got {text!r}")
    return value


def comma_separated(text: str) -> list[str]:
    """Comma-separated names, blanks dropped (``"appo, ppo,"`` -> ``["appo", "ppo"]``)."""
    return [item.strip() for item in text.split(",") if item.strip()]
