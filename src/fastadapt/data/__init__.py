"""Robot data: trajectories, datasets, loaders, derivatives, batches and streams."""

from fastadapt.data.batches import Normalizer, Samples, Stream, normalised_samples, sequential_stream
from fastadapt.data.io import load, load_csv, load_npz, save, save_csv, save_npz
from fastadapt.data.trajectory import DataError, Dataset, Trajectory, concatenate

__all__ = [
    "DataError", "Dataset", "Normalizer", "Samples", "Stream", "Trajectory", "concatenate", "load",
    "load_csv", "load_npz", "normalised_samples", "save", "save_csv", "save_npz", "sequential_stream",
]
