"""Pytrees to and from .npz files, written atomically (temp file + rename).

Leaves are stored under their key path (``loss_params/net/0/w``); loading needs a template pytree of the
same structure, which the caller builds from its config (``loss.init``, ``optimizer.init``).

A file that cannot be read back exactly (truncated, empty, bit-flipped, another kind of file, another
config's tree) raises :class:`CheckpointError` naming the file and what is wrong. Each member of the
archive carries a CRC-32 that ``zipfile`` checks, and the metadata stores a SHA-256 of every array, so a
flipped bit is reported instead of loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path

import jax
import numpy as np

from fastadapt.files import atomic_write, atomic_write_text
from fastadapt.errors import CheckpointError  # noqa: F401  (raised here, defined with the others)


def _flatten(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def save_pytree(path, tree, metadata: dict | None = None, keep_previous: bool = False) -> Path:
    """Write ``tree`` (and JSON ``metadata``) to ``path`` atomically. With ``keep_previous`` the file that
    was there is kept as ``<name>.prev.npz`` (a second restore point if the newest one is damaged)."""
    path = Path(path)
    arrays = _flatten(tree)
    meta = dict(metadata or {}, __sha256__={key: _digest(value) for key, value in arrays.items()})
    arrays["__metadata__"] = np.array(json.dumps(meta))

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    if keep_previous and path.exists():
        previous = previous_path(path)
        atomic_write(previous, lambda tmp: _link_or_copy(path, tmp))
    atomic_write(path, write)
    return path


def previous_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def _link_or_copy(source: Path, target) -> None:
    os.unlink(target)
    try:
        os.link(source, target)  # the old file's bytes stay where they are; no copy
    except OSError:
        shutil.copyfile(source, target)


def read_archive(path, what: str = "checkpoint") -> tuple[dict[str, np.ndarray], dict]:
    """All arrays and the metadata of a file written by :func:`save_pytree`, verified."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file (expected a {what} .npz)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {key: archive[key] for key in archive.files}
    except AttributeError:
        raise CheckpointError(f"{path}: holds a single array, not a fastadapt {what}") from None
    except Exception as error:  # BadZipFile, bad CRC, EOFError, zlib errors, pickled objects, ...
        raise CheckpointError(f"{path}: damaged or not an .npz file ({type(error).__name__}: {error})") from None
    if "__metadata__" not in stored:
        raise CheckpointError(f"{path}: not a fastadapt {what} (no '__metadata__' entry; is it a data file?)")
    try:
        metadata = json.loads(str(stored.pop("__metadata__")))
        if not isinstance(metadata, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise CheckpointError(f"{path}: damaged metadata ({error})") from None
    digests = metadata.pop("__sha256__", None)
    if digests is not None:
        for key, value in stored.items():
            if digests.get(key) != _digest(value):
                raise CheckpointError(f"{path}: entry '{key}' does not match its checksum; the file is damaged")
    return stored, metadata


def load_pytree(path, template, what: str = "checkpoint"):
    """Fill ``template``'s structure with the arrays saved at ``path``; returns (tree, metadata)."""
    stored, metadata = read_archive(path, what)
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for key_path, like in paths:
        key = jax.tree_util.keystr(key_path)
        if key not in stored:
            raise CheckpointError(f"{path}: {what} has no entry '{key}'; was it written by another config?")
        value = stored[key]
        if np.shape(value) != np.shape(like):
            raise CheckpointError(f"{path}: entry '{key}' has shape {value.shape}, expected {np.shape(like)}")
        leaves.append(jax.numpy.asarray(value, dtype=np.asarray(like).dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves), metadata


def strict_json(payload):
    """``payload`` with every non-finite float replaced by None (strict JSON has no NaN or Infinity);
    returns (clean payload, the replaced entries' paths, e.g. ``online.mse, sgd 0.3.overall``; list
    positions are left out, so a diverged curve is named once)."""
    replaced = []

    def clean(value, where):
        if isinstance(value, dict):
            return {k: clean(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__jax_array__") or isinstance(value, jax.Array):
            return clean(np.asarray(value).tolist(), where)
        if isinstance(value, float) and not math.isfinite(value):
            replaced.append(re.sub(r"\[\d+\]", "", where))
            return None
        return value

    return clean(payload, ""), replaced


def write_json(path, payload) -> Path:
    """Strict JSON, written atomically. A non-finite number (a diverged run) is written as null, and the
    paths of such entries are listed under ``"diverged"``."""
    path = Path(path)
    payload, replaced = strict_json(payload)
    if replaced and isinstance(payload, dict):
        payload["diverged"] = sorted(set(payload.get("diverged") or []) | set(replaced))
    return atomic_write_text(path, json.dumps(payload, indent=2, allow_nan=False, default=float))
