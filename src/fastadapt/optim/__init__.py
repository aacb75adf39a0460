"""Optimizers as optax GradientTransformations: the online memory of learning rates (MetaGD)."""

from fastadapt.optim.lr_memory import (
    LRMemoryState, MemoryConfig, adam_with_memory, find_memory, lr_memory, metagd, predict_rates,
    transfer_memory,
)

__all__ = ["LRMemoryState", "MemoryConfig", "adam_with_memory", "find_memory", "lr_memory", "metagd",
           "predict_rates", "transfer_memory"]
