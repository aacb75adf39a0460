"""``key=value`` overrides for frozen-dataclass configs (nested with dots: ``meta.epochs=50``).

Values are parsed by the field's type: int, float, bool (true/false/1/0/yes/no), str, and tuples written
comma-separated (``losses=structured,state-dependent``, ``meta.hidden=128,128``), tuples of tuples with
semicolons between them (``train_targets="0.6,0.35;-0.6,0.35"``, ``architectures="64;64,64"``).

A key that does nothing is not offered. A config may name keys that never act in it (``inert_keys() ->
{key: reason}``, e.g. the pipeline's ``meta.loss``, which its ``losses`` key decides): those are neither
listed nor accepted. It may also name keys that act only in some settings (``unused_keys()``, e.g. the
pretraining keys, used with ``start=pretrained`` only): those are listed, but an override of one is
refused when the final config, after every override, does not use it.

A saved config (a run's ``config.json``) is read back with :func:`load_config`; overrides apply on top.
Each key's one line of help is its field's comment in the config dataclass (:func:`field_docs`), the one
place it is written; ``fastadapt keys`` prints them with the defaults and types.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import io
import json
import math
import re
import textwrap
import tokenize
import typing
from pathlib import Path

from fastadapt.errors import ConfigError  # noqa: F401  (raised here, defined with the others)

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


INT_RANGE = (-(2 ** 31), 2 ** 31 - 1)  # JAX computes in int32: a larger integer is refused, not wrapped


def tuple_items(kind) -> tuple[list, bool] | None:
    """For a tuple type: (its item types, whether it has exactly that many); None for other types.
    ``tuple[float, ...]`` -> ([float], False); ``tuple[float, float]`` -> ([float, float], True)."""
    if typing.get_origin(kind) not in (tuple, typing.Tuple):
        return None
    args = typing.get_args(kind)
    if len(args) == 2 and args[1] is Ellipsis:
        return [args[0]], False
    return list(args), True


def _check_int(value: int, where: str) -> int:
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ConfigError(f"{where}: {value} is out of range (an integer key takes {INT_RANGE[0]} to {INT_RANGE[1]})")
    return value


def _parse(text: str, kind, key: str):
    items = tuple_items(kind)
    if items is not None:
        types, fixed = items
        nested = tuple_items(types[0]) is not None
        separator = ";" if nested else ","
        if not text.strip():
            parts = []
        else:
            parts = [p.strip() for p in text.split(separator)]
            if any(not p for p in parts):
                raise ConfigError(f"'{key}={text}': an empty entry (entries are separated by '{separator}')")
        if fixed and len(parts) != len(types):
            raise ConfigError(f"'{key}={text}': expected exactly {len(types)} values separated by '{separator}', "
                              f"got {len(parts)}")
        return tuple(_parse(p, types[i] if fixed else types[0], key) for i, p in enumerate(parts))
    if origin_is_union(kind):
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
        if kind is int:
            _check_int(value, f"'{key}={text}'")
        return value
    raise ConfigError(f"'{key}': cannot be set from the command line")


def origin_is_union(kind) -> bool:
    return typing.get_origin(kind) is typing.Union or type(kind).__name__ == "UnionType"


def apply_overrides(config, overrides: list[str]):
    """A copy of ``config`` with every ``key=value`` applied, validated once: all values are parsed first,
    then each config (nested ones first) is built once from its final values, so a check that relates two
    keys (``frequency_min`` below ``frequency_max``) sees both new values, and its message names them."""
    given, items = {}, {}
    types = key_types(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"'{item}': expected key=value")
        key, value = item.split("=", 1)
        key, value = key.strip(), value.strip()
        reason = inert_keys(config).get(key)
        if reason:
            raise ConfigError(f"'{key}' has no effect here: {reason}")
        known = known_keys(config)
        if key not in known and not any(k.startswith(key + ".") for k in known):
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key '{key}'{hint} (`fastadapt keys` lists them all)")
        if key not in types:
            raise ConfigError(f"'{key}' is a group; set one of its keys, e.g. {key}.<key>=...")
        given[key] = _parse(value, types[key], key)
        items[key] = f"{key}={value}"
    config = _rebuild(config, given, items, "")
    unused = unused_keys(config)
    for key in given:
        if key in unused:
            raise ConfigError(f"'{key}' has no effect here: {unused[key]}")
    return config


def _rebuild(config, given: dict, items: dict, prefix: str):
    """``config`` with the values ``given`` ({full key: value}) under ``prefix``; one validation per level."""
    direct, nested = {}, {}
    for key, value in given.items():
        head, _, rest = key[len(prefix):].partition(".")
        if rest:
            nested.setdefault(head, {})[key] = value
        else:
            direct[head] = value
    changes = dict(direct)
    for head, sub in nested.items():
        changes[head] = _rebuild(getattr(config, head), sub, items, f"{prefix}{head}.")
    if not changes:
        return config
    try:
        return dataclasses.replace(config, **changes)
    except ConfigError:
        raise
    except ValueError as error:
        text = str(error)
        mine = [items[k] for k in given if k in items and k[len(prefix):].count(".") == 0]
        named = [item for item in mine if re.search(rf"\b{re.escape(item.split('=', 1)[0].rsplit('.', 1)[-1])}\b", text)]
        raise ConfigError(f"'{' '.join(named or mine or list(items.values()))}': {text}") from None


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


def key_types(config, prefix: str = "") -> dict:
    """Every key of ``config`` (nested ones with dots) and its field type."""
    hints, types = typing.get_type_hints(type(config)), {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            types.update(key_types(value, f"{prefix}{field.name}."))
        else:
            types[prefix + field.name] = hints[field.name]
    return types


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


# --- saved configs ---------------------------------------------------------------------------------------
def saved_config(config, command: str, inputs: dict) -> dict:
    """config.json's one shape: {"command": the command's words ("fastadapt ml3 sine"), "config": the
    config's keys (:func:`config_dict`), "inputs": the input files' identity ({name: {"path", "sha256"}})}."""
    return {"command": command, "config": config_dict(config), "inputs": inputs}


def build_config(default, overrides: list[str], saved=None, quick=None, paper=None):
    """A command's config: ``default`` made small by ``quick`` (if given), or the config saved in the
    config.json ``saved``, or ``default`` with the experiment's ``paper`` key set (the paper's own
    protocol, ``--paper``); then the key=value ``overrides`` on top, validated once. At most one of
    the three starts may be given."""
    given = [flag for flag, value in (("--quick", quick), ("--paper", paper), ("--config", saved)) if value is not None]
    if len(given) > 1:
        why = ("the saved config already sets every key (add key=value overrides to change some)" if "--config" in given
               else "--paper is the paper's full budget and --quick a small one; give one")
        raise ConfigError(f"{' and '.join(given)} together: {why}")
    if saved is not None:
        default = load_config(saved, default)
    elif quick is not None:
        default = quick(default)
    return apply_overrides(default, [*(paper or ()), *overrides])


def load_config(path, default):
    """The config saved in ``path`` (a run's config.json) as an instance of ``default``'s class.

    The file has the one shape :func:`saved_config` writes, ``{"command", "config", "inputs"}``; the shapes
    of earlier versions are read too: the config itself (experiments and the pipeline), and
    ``{"config": {"meta_train": ...}, "inputs"}`` (meta-train). Keys it lacks keep ``default``'s values (a
    file written before a key was added), keys the class does not know are refused by name.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a JSON config ({error})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a config (its JSON is nested too deeply)") from None
    names = {f.name for f in dataclasses.fields(default)}
    while isinstance(data, dict) and len(data) >= 1 and not set(data) & names:
        wrapped = [k for k in ("config", "meta_train") if k in data]
        if not wrapped:
            break
        data = data[wrapped[0]]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of config keys")
    try:
        return _from_dict(default, data, f"{path}")
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None


def _from_dict(default, data: dict, source: str, prefix: str = ""):
    fields = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(data) - fields)
    if unknown:
        listed = ", ".join(repr(prefix + k) for k in unknown)
        raise ConfigError(f"{source}: unknown config key(s) {listed} for {type(default).__name__} (is it another "
                          "experiment's config.json? `fastadapt keys EXPERIMENT` lists the keys)")
    hints = typing.get_type_hints(type(default))
    changes = {}
    for name, value in data.items():
        current = getattr(default, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{prefix}{name}' is a group of keys, got {json.dumps(value)}")
            changes[name] = _from_dict(current, value, source, f"{prefix}{name}.")
        else:
            changes[name] = _from_json(value, hints[name], f"{source}: '{prefix}{name}'")
    return dataclasses.replace(default, **changes)


def _from_json(value, kind, where: str):
    """A JSON value as the field type ``kind`` (lists become tuples), or a ConfigError naming the key."""
    items = tuple_items(kind)
    if items is not None:
        types, fixed = items
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {json.dumps(value)}")
        if fixed and len(value) != len(types):
            raise ConfigError(f"{where}: expected a list of exactly {len(types)} values, got {json.dumps(value)}")
        return tuple(_from_json(v, types[i] if fixed else types[0], where) for i, v in enumerate(value))
    if origin_is_union(kind):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if value is None else _from_json(value, options[0], where)
    accepted = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(kind)
    if accepted is None:
        raise ConfigError(f"{where}: cannot be read from a config file")
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected a value of type {kind.__name__}, got {json.dumps(value)}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number")
    if kind is int:
        _check_int(value, where)
    return kind(value)


# --- help ------------------------------------------------------------------------------------------------
def field_docs(cls) -> dict[str, str]:
    """Each field's help: the comment on its line (``epochs: int = 300  # meta-training epochs``) or the
    comment lines right above it, from the class and its dataclass bases (a subclass that redeclares a
    field without a comment keeps the base's). Comment lines between two fields belong to the one below,
    unless it has a comment on its own line: then they continue the comment of the one above."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_class_field_docs(klass))
    return docs


def _class_field_docs(cls) -> dict[str, str]:
    try:
        source = textwrap.dedent("".join(inspect.getsourcelines(cls)[0]))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments = {tok.start[0]: tok for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}

    def text(number):
        return comments[number].string.lstrip("#").strip()

    def comment_only(number):
        return number in comments and not lines[number - 1][:comments[number].start[1]].strip()

    fields = [n for n in ast.parse(source).body[0].body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    trailing = {node.target.id: [text(n) for n in range(node.lineno, node.end_lineno + 1) if n in comments and not comment_only(n)]
                for node in fields}
    docs = {}
    for previous, node, following in zip([None, *fields], fields, [*fields[1:], None]):
        above, number = [], node.lineno - 1
        while comment_only(number):
            above.insert(0, text(number))
            number -= 1
        # comment lines between two fields belong to the one below, unless it has its own trailing comment:
        # then they go on the trailing comment of the one above
        if trailing[node.target.id]:
            below, number = [], node.end_lineno + 1
            if following is not None and trailing[following.target.id]:
                while comment_only(number):
                    below.append(text(number))
                    number += 1
            docs[node.target.id] = " ".join(trailing[node.target.id] + below)
        elif above:
            docs[node.target.id] = " ".join(above)
    return docs


def one_line(doc: str) -> str:
    """The first sentence of a field's help: up to the first '. ' or '; ' outside parentheses."""
    doc = " ".join(doc.split())
    depth = 0
    for i, char in enumerate(doc):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".;" and doc[i + 1:i + 2] == " ":
            return doc[:i]
    return doc.rstrip(".")


def describe_keys(config) -> list[dict]:
    """Every key ``known_keys`` offers, in declaration order: {"key", "default", "type", "help", "group"}, the
    group being the nested config it is in (``meta``, ``online``) or, at the top, the class that first
    declares it (the trainer's keys apart from the experiment's own)."""
    offered = set(known_keys(config))
    return [row for row in _rows(config, "") if row["key"] in offered]


def _rows(config, prefix: str) -> list[dict]:
    docs = field_docs(type(config))
    hints = typing.get_type_hints(type(config))
    rows = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            rows += _rows(value, f"{prefix}{field.name}.")
            continue
        declared = next(k for k in reversed(type(config).__mro__) if field.name in k.__dict__.get("__annotations__", {}))
        group = prefix.rstrip(".") or declared.__name__
        rows.append({"key": prefix + field.name, "default": _show(value), "type": _type_name(hints[field.name]),
                     "help": one_line(docs.get(field.name, "")), "group": group})
    return rows


def _show(value) -> str:
    if isinstance(value, tuple):
        nested = any(isinstance(v, tuple) for v in value)
        return (";" if nested else ",").join(_show(v) for v in value) or "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "(unset)"
    return f"{value!r}" if isinstance(value, str) and not value else str(value)


def _type_name(kind) -> str:
    items = tuple_items(kind)
    if items is not None:
        types, fixed = items
        return f"{_type_name(types[0])} x{len(types)}" if fixed else f"{_type_name(types[0])} list"
    if origin_is_union(kind):
        named = [_type_name(a) for a in typing.get_args(kind) if a is not type(None)]
        return " or ".join(named) + (" or unset" if type(None) in typing.get_args(kind) else "")
    return getattr(kind, "__name__", str(kind))
