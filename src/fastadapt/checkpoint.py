"""Pytrees to and from .npz files, written atomically (temp file + rename).

Leaves are stored under their key path (``loss_params/net/0/w``); loading needs a template pytree of the
same structure, which the caller builds from its config (``loss.init``, ``optimizer.init``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from fastadapt.data.io import atomic_write


def _flatten(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def save_pytree(path, tree, metadata: dict | None = None) -> Path:
    path = Path(path)
    arrays = _flatten(tree)
    arrays["__metadata__"] = np.array(json.dumps(metadata or {}))

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)
    return path


def load_pytree(path, template):
    """Fill ``template``'s structure with the arrays saved at ``path``; returns (tree, metadata)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with np.load(path, allow_pickle=False) as archive:
        stored = {key: archive[key] for key in archive.files}
    metadata = json.loads(str(stored.pop("__metadata__"))) if "__metadata__" in stored else {}
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for key_path, like in paths:
        key = jax.tree_util.keystr(key_path)
        if key not in stored:
            raise ValueError(f"{path}: checkpoint has no entry '{key}'; was it written by another config?")
        value = stored[key]
        if np.shape(value) != np.shape(like):
            raise ValueError(f"{path}: entry '{key}' has shape {value.shape}, expected {np.shape(like)}")
        leaves.append(jax.numpy.asarray(value, dtype=np.asarray(like).dtype))
    return jax.tree_util.tree_unflatten(treedef, [leaf for leaf in leaves]), metadata


def write_json(path, payload) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, default=float)))
    return path
