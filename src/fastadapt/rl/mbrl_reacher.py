"""``fastadapt rl mbrl-reacher``: ML3 for model-based RL on ReacherGoal (Fig. 3c); see
:mod:`fastadapt.rl.mbrl`. Goals lie 0.4 to 0.9 m from the base (the arm reaches 1 m); meta-train goals in
the first quadrant, meta-test goals in the second."""

import dataclasses

from fastadapt.rl import mbrl
from fastadapt.rl.mbrl import quick, run  # noqa: F401


@dataclasses.dataclass(frozen=True)
class Config(mbrl.Config):
    env: str = "reacher"
    horizon: int = 40
    goal_radius: tuple[float, float] = (0.4, 0.9)
    train_degrees: tuple[float, float] = (0.0, 90.0)
    test_degrees: tuple[float, float] = (90.0, 180.0)
