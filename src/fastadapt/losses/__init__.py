"""What does the learning: fixed and meta-learned losses."""

from fastadapt.losses.regression import LEARNED_LOSSES, LOSSES, make_loss

__all__ = ["LEARNED_LOSSES", "LOSSES", "make_loss"]
