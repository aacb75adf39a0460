"""Optimizees: the models that are learned."""

from fastadapt.models.mlp import InverseDynamicsMLP, apply_mlp, init_mlp

__all__ = ["InverseDynamicsMLP", "apply_mlp", "init_mlp"]
