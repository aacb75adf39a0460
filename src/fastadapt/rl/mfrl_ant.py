"""``fastadapt rl mfrl-ant``: ML3 for model-free RL on AntGoal (gymnasium's Ant-v5; Fig. 4 b, d); see
:mod:`fastadapt.rl.mfrl`.

Scaled down to fit a 2-core machine (``scale=small``, the default): episodes of 100 steps (5 s) instead of
Ant-v5's 1000, goals on a circle of 1 m, 5 episodes per update, 10 meta-epochs of 4 goals. ``scale=full``
is the paper-sized setting for a bigger machine: 1000-step episodes, goals on a circle of 2 m (our choice:
the paper gives no radius), 10 episodes per update, 100 meta-epochs and 50 updates at meta-test. ``scale``
sets those keys; the other keys apply on top.
"""

import dataclasses

from fastadapt.experiments.validation import require_choice
from fastadapt.rl import mfrl
from fastadapt.rl.mfrl import quick, run  # noqa: F401

SCALES = {
    "small": {"horizon": 100, "goal_radius": 1.0, "episodes": 5, "epochs": 10, "batches_per_epoch": 4,
              "eval_steps": 20, "eval_every": 5},
    "full": {"horizon": 1000, "goal_radius": 2.0, "episodes": 10, "epochs": 100, "batches_per_epoch": 10,
             "eval_steps": 50, "eval_every": 10},
}


@dataclasses.dataclass(frozen=True)
class Config(mfrl.Config):
    env: str = "ant"
    # small (a budget this machine runs in minutes) or full (the paper's); 0-valued keys take the scale's
    scale: str = "small"
    horizon: int = 0  # 0: the scale's
    goal_radius: float = 0.0
    episodes: int = 0
    epochs: int = 0
    batches_per_epoch: int = 0
    eval_steps: int = 0
    eval_every: int = 0
    loss_hidden: tuple[int, ...] = (128, 128)

    def __post_init__(self):
        require_choice(self, "scale", tuple(SCALES))
        for key, value in SCALES[self.scale].items():
            if not getattr(self, key):
                object.__setattr__(self, key, value)
        super().__post_init__()
