"""``fastadapt rl mbrl-pointmass``: ML3 for model-based RL on PointmassGoal (Fig. 3 a, b); see
:mod:`fastadapt.rl.mbrl`."""

from fastadapt.rl.mbrl import Config, quick, run  # noqa: F401
