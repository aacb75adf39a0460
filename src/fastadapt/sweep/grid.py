"""A sweep's grid: the points (the swept keys' values x seeds), their names, and the checks that refuse a
grid before anything runs (unknown keys, bad values, two points that are one config)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import typing

from fastadapt.config import ConfigError, apply_overrides, config_dict, key_types, known_keys

NAME_PREFIX = 80  # characters of a point's readable name (a file name may have 255 bytes)


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of the sweep: the swept keys' values (text, as given) and the seed (None: the config's)."""

    values: tuple[tuple[str, str], ...]
    seed: int | None

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values]

    @property
    def label(self) -> str:
        """The point as the user wrote it: ``meta.alpha=0.001 seed=1``."""
        parts = [f"{k}={v}" for k, v in self.values] + ([f"seed={self.seed}"] if self.seed is not None else [])
        return " ".join(parts) or "base"

    @property
    def name(self) -> str:
        """Its run directory's name: a readable prefix (characters a file name cannot safely hold replaced,
        at most :data:`NAME_PREFIX` of them) and a hash of the exact values, so two points never share a
        name; ``points.json`` in the sweep directory maps each name back to its values."""
        parts = [f"{k}={v}" for k, v in self.values] + ([f"seed={self.seed}"] if self.seed is not None else [])
        readable = re.sub(r"[^A-Za-z0-9._=,+-]", "_", "__".join(parts) or "base")[:NAME_PREFIX]
        exact = json.dumps([list(map(list, self.values)), self.seed], ensure_ascii=False)
        return f"{readable}-{hashlib.sha256(exact.encode()).hexdigest()[:10]}"

    @property
    def group(self) -> tuple[tuple[str, str], ...]:
        """The grid point, seeds pooled."""
        return self.values


def parse_grid(items: list[str], config) -> tuple[dict[str, list[str]], list[str]]:
    """``key=v1,v2`` items as {swept key: values} and the single-valued ones as plain overrides.

    A tuple-valued key (``meta.hidden=64,64``) takes its values separated by ``|``
    (``meta.hidden=32,32|64,64``); every other key by commas. Every value is checked against the config
    before anything runs."""
    grid, fixed = {}, []
    hints = key_types(config)
    for item in items:
        if "=" not in item:
            raise ConfigError(f"'{item}': expected key=v1,v2,...")
        key, text = (part.strip() for part in item.split("=", 1))
        if key in grid or any(f.split("=", 1)[0] == key for f in fixed):
            raise ConfigError(f"'{key}' is given twice")
        separator = "|" if typing.get_origin(hints.get(key)) in (tuple, typing.Tuple) else ","
        values = [v.strip() for v in text.split(separator)]
        if any(not v for v in values):
            raise ConfigError(f"'{item}': an empty value (values are separated by '{separator}')")
        if len(set(values)) != len(values):
            raise ConfigError(f"'{item}': a value is given twice")
        for value in values:
            apply_overrides(config, [*fixed, f"{key}={value}"])
        if len(values) == 1:
            fixed.append(f"{key}={values[0]}")
        else:
            grid[key] = values
    return grid, fixed


def seed_keys(config) -> list[str]:
    """The config's seed keys: every key named ``seed`` (nested ones too)."""
    return [k for k in known_keys(config) if k.rsplit(".", 1)[-1] == "seed"]


def grid_points(grid: dict[str, list[str]], seeds: int | None) -> list[Point]:
    """The Cartesian product of the grid, each with seeds 0..seeds-1 (innermost), in the order given."""
    combos = itertools.product(*[[(k, v) for v in values] for k, values in grid.items()])
    return [Point(tuple(combo), seed) for combo in combos for seed in (range(seeds) if seeds else [None])]


def point_overrides(point: Point, config, fixed: list[str]) -> list[str]:
    seeds = [f"{k}={point.seed}" for k in seed_keys(config)] if point.seed is not None else []
    return [*fixed, *point.overrides, *seeds]


def refuse_collisions(points: list[Point], config, fixed: list[str]) -> None:
    """Refuse a grid two of whose points are one config (``steps=100,١٠٠``: two spellings of 100): the second
    would only repeat the first."""
    seen = {}
    for point in points:
        final = json.dumps(config_dict(apply_overrides(config, point_overrides(point, config, fixed))), sort_keys=True)
        if final in seen:
            raise ConfigError(f"the grid points '{seen[final].label}' and '{point.label}' are the same config; "
                              "give each value once")
        seen[final] = point
