"""Handwritten digits for classification tasks: scikit-learn's bundled 8x8 digits (no download) or
MNIST in its IDX format from a directory the user gives.

``load_digits()`` returns :class:`Digits` (images [N, H, W] float32 in [0, 1], labels [N] int32);
``binary_task(digits, a, b)`` keeps the images of two classes and labels them 0 (a) and 1 (b).

IDX (http://yann.lecun.com/exdb/mnist/): big-endian; bytes 0-1 zero, byte 2 the type (0x08 = uint8),
byte 3 the number of dimensions, then one uint32 per dimension, then the data. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fastadapt.data.trajectory import DataError

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class Digits(NamedTuple):
    images: np.ndarray  # [N, H, W] float32 in [0, 1]
    labels: np.ndarray  # [N] int32
    source: str


def mnist_inputs(source: str) -> dict[str, str]:
    """The input files a digits experiment reads: {} for sklearn's digits, else {"source": the MNIST
    directory}, which must exist."""
    if source == "sklearn":
        return {}
    if not Path(source).is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {source} (or pass source=sklearn)")
    return {"source": source}


def load_digits(source: str = "sklearn", split: str = "train") -> Digits:
    """``source='sklearn'``: the 1797 8x8 digits bundled with scikit-learn (``split`` is ignored);
    otherwise ``source`` is a directory holding the MNIST IDX files (optionally .gz)."""
    if source == "sklearn":
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        return Digits((bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int32), "sklearn 8x8 digits")
    return load_mnist(source, split)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"MNIST file '{name}' (or '{name}.gz') not found in {directory}")


def read_idx(path) -> np.ndarray:
    """One IDX file as a numpy array (uint8 data only, as MNIST's)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: a damaged or truncated gzip file ({type(error).__name__}: {error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX data type 0x{raw[2]:02x} is not supported (expected 0x08, unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header != expected:
        raise DataError(f"{path}: header says shape {shape} ({expected} bytes) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(directory, split: str = "train") -> Digits:
    directory = Path(directory)
    if split not in MNIST_FILES:
        raise ValueError(f"unknown MNIST split '{split}', expected one of {sorted(MNIST_FILES)}")
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory} (or pass source='sklearn')")
    image_name, label_name = MNIST_FILES[split]
    images, labels = read_idx(_find(directory, image_name)), read_idx(_find(directory, label_name))
    if images.ndim != 3:
        raise DataError(f"{image_name}: expected images [N, rows, cols], got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{label_name}: {labels.shape} labels for {images.shape[0]} images")
    return Digits((images / 255.0).astype(np.float32), labels.astype(np.int32), f"MNIST {split} ({directory})")


def binary_task(digits: Digits, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of classes a and b with labels 0 (a) and 1 (b): (x [n, H, W, 1], y [n])."""
    present = set(np.unique(digits.labels).tolist())
    for c in (a, b):
        if c not in present:
            raise DataError(f"digit {c} is not in {digits.source} (it holds {sorted(present)})")
    keep = (digits.labels == a) | (digits.labels == b)
    return digits.images[keep][..., None], (digits.labels[keep] == b).astype(np.int32)
