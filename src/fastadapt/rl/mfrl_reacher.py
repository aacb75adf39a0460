"""``fastadapt rl mfrl-reacher``: ML3 for model-free RL on ReacherGoal (gymnasium's Reacher-v5; Fig. 4 a, c);
see :mod:`fastadapt.rl.mfrl`."""

from fastadapt.rl.mfrl import Config, quick, run  # noqa: F401
