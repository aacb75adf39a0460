"""fastadapt: meta-learned losses and learning-rate memories for fast online adaptation."""

__version__ = "0.1.0"
