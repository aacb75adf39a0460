"""Checks that configs run in ``__post_init__``, so a bad value fails before any work (or any run
directory) is made, with a message that names the field. Tuples are checked element by element."""

from __future__ import annotations

import math


def _values(config, name):
    value = getattr(config, name)
    return value if isinstance(value, (tuple, list)) else (value,)


def require_at_least(config, minimum: int, *names: str) -> None:
    """Integer fields (or tuples of them) that must be >= ``minimum``."""
    for name in names:
        for value in _values(config, name):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"config field '{name}' must be an integer >= {minimum}, got {getattr(config, name)!r}")


def require_positive_rates(config, *names: str, allow_zero: bool = False) -> None:
    """Float fields (or tuples of them) that must be finite and > 0 (>= 0 with ``allow_zero``)."""
    for name in names:
        for value in _values(config, name):
            ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
            if not ok:
                raise ValueError(f"config field '{name}' must be a finite number {'>=' if allow_zero else '>'} 0, "
                                 f"got {getattr(config, name)!r}")


def require_in_range(config, name: str, low: float, high: float) -> None:
    """Float fields (or tuples of them) in the closed interval [low, high]."""
    for value in _values(config, name):
        if not (isinstance(value, (int, float)) and low <= value <= high):
            raise ValueError(f"config field '{name}' must lie in [{low:g}, {high:g}], got {getattr(config, name)!r}")


def require_nonempty(config, *names: str) -> None:
    for name in names:
        if not getattr(config, name):
            raise ValueError(f"config field '{name}' must not be empty")


def require_choice(config, name: str, choices) -> None:
    for value in _values(config, name):
        if value not in choices:
            raise ValueError(f"config field '{name}': unknown value '{value}', expected one of {', '.join(map(str, choices))}")
