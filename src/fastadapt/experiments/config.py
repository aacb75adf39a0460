"""``key=value`` overrides for frozen-dataclass configs (nested with dots: ``meta.epochs=50``).

Values are parsed by the field's type: int, float, bool (true/false/1/0/yes/no), str, and tuples written
comma-separated (``losses=structured,state-dependent``, ``meta.hidden=128,128``), tuples of tuples with
semicolons between them (``train_targets="0.6,0.35;-0.6,0.35"``, ``architectures="64;64,64"``).

A key that does nothing is not offered. A config may name keys that never act in it (``inert_keys() ->
{key: reason}``, e.g. the pipeline's ``meta.loss``, which its ``losses`` key decides): those are neither
listed nor accepted. It may also name keys that act only in some settings (``unused_keys()``, e.g. the
pretraining keys, used with ``start=pretrained`` only): those are listed, but an override of one is
refused when the final config, after every override, does not use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ConfigError(ValueError):
    """A bad override: unknown key or a value of the wrong type."""


def _parse(text: str, kind, key: str):
    origin = typing.get_origin(kind)
    if origin in (tuple, typing.Tuple):
        inner = typing.get_args(kind)[0]
        nested = typing.get_origin(inner) in (tuple, typing.Tuple)
        parts = [p for p in text.split(";" if nested else ",") if p.strip()]
        return tuple(_parse(p.strip(), inner, key) for p in parts)
    if origin is typing.Union or type(kind).__name__ == "UnionType":
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _parse(text, options[0], key)
    try:
        if kind is bool:
            return _BOOLS[text.lower()]
        if kind in (int, float, str):
            value = kind(text)
    except (KeyError, ValueError):
        raise ConfigError(f"'{key}={text}': expected a value of type {kind.__name__}") from None
    if kind in (int, float, str):
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"'{key}={text}': expected a finite number")
        return value
    raise ConfigError(f"'{key}': cannot be set from the command line")


def apply_overrides(config, overrides: list[str]):
    """Return a copy of ``config`` with each ``key=value`` applied."""
    given = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"'{item}': expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        reason = inert_keys(config).get(key)
        if reason:
            raise ConfigError(f"'{key}' has no effect here: {reason}")
        known = known_keys(config)
        if key not in known and not any(k.startswith(key + ".") for k in known):
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key '{key}'{hint} (`fastadapt keys` lists them all)")
        config = _set(config, key.split("."), value.strip(), key)
        given.append(key)
    unused = unused_keys(config)
    for key in given:
        if key in unused:
            raise ConfigError(f"'{key}' has no effect here: {unused[key]}")
    return config


def config_dict(config) -> dict:
    """A config as plain JSON types (tuples become lists), as stored in config.json and checkpoints."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def inert_keys(config) -> dict[str, str]:
    return config.inert_keys() if hasattr(config, "inert_keys") else {}


def unused_keys(config, prefix: str = "") -> dict[str, str]:
    """Keys (of ``config`` and the configs nested in it) that its current settings do not use."""
    found = {prefix + k: v for k, v in (config.unused_keys() if hasattr(config, "unused_keys") else {}).items()}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            found.update(unused_keys(value, f"{prefix}{field.name}."))
    return found


def _set(config, path: list[str], value: str, full_key: str):
    names = {f.name for f in dataclasses.fields(config)}
    head = path[0]
    if head not in names:
        raise ConfigError(f"unknown config key '{full_key}'; `fastadapt keys` lists the known ones")
    current = getattr(config, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"unknown config key '{full_key}'")
        return dataclasses.replace(config, **{head: _set(current, path[1:], value, full_key)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"'{full_key}' is a group; set one of its keys, e.g. {full_key}.<key>=...")
    kind = typing.get_type_hints(type(config))[head]
    try:
        return dataclasses.replace(config, **{head: _parse(value, kind, full_key)})
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"'{full_key}={value}': {error}") from None


def known_keys(config, prefix: str = "") -> list[str]:
    """Every key that can be set on ``config`` (nested ones with dots), less its inert keys."""
    keys = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            keys += known_keys(value, f"{prefix}{field.name}.")
        else:
            keys.append(prefix + field.name)
    inert = inert_keys(config) if not prefix else {}
    return [key for key in keys if key not in inert]
