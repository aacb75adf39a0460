"""A simulated reality gap: a "real" KUKA iiwa that differs from the nominal simulated one in listed ways.

This is *not* real hardware. It stands in for it in the Sim2Real comparison (the state-dependent paper,
Fig. 6 row 2): losses meta-trained on the nominal simulator are used on the gap robot's streams. The gap
robot differs from the nominal one in exactly these ways, and in no other:

* **link masses and inertias**: link i's mass and inertia diagonal are the nominal ones times
  ``mass_scale[i]`` (the plant only; the controller's model keeps the nominal values, as a real
  controller's CAD model would);
* **joint friction with stiction** (a Stribeck model): each joint's friction opposes its motion with
  up to

      F(qd) = F_c + (F_s - F_c) exp(-(qd / v_s)^2) + b |qd|   (Nm),

  Coulomb friction F_c, a breakaway (stiction) level F_s >= F_c near rest, viscous friction b. It is
  applied by PyBullet's constraint solver (a velocity motor with target 0 and maximum torque F(qd) at
  the step's velocity), so it is implicit: it never reverses a joint within a step, holds a joint at
  rest against up to F_s, and is exactly F(qd) against a joint that keeps moving. (Friction added
  explicitly as -F sign(qd) chatters and diverges on the iiwa's light wrist links at 240 Hz.)
* **a one-tick delay**: the torque the controller commands at tick k reaches the plant at tick k + 1
  (the first tick of a motion receives its own command);
* **torque-sensor noise and offset**: the logged torque is the command plus a constant per-joint offset
  plus Gaussian noise (the plant is unaffected).

A logged sample (q_k, qd_k, qdd_k, tau_k) therefore pairs the state with the command issued at k, while
the realised acceleration came from the command of k - 1, less friction.
"""

from __future__ import annotations

import dataclasses

import numpy as np

NUM_JOINTS = 7
MAX_TORQUE = np.array([176.0, 176.0, 110.0, 110.0, 110.0, 40.0, 40.0])  # Nm, the iiwa 7's rated joint torques


@dataclasses.dataclass(frozen=True)
class RealityGap:
    mass_scale: tuple[float, ...] = (1.0,) * NUM_JOINTS  # per link, mass and inertia multiplier
    coulomb: tuple[float, ...] = (0.0,) * NUM_JOINTS  # Nm
    stiction: tuple[float, ...] = (0.0,) * NUM_JOINTS  # Nm, breakaway level near zero velocity
    viscous: tuple[float, ...] = (0.0,) * NUM_JOINTS  # Nm s / rad
    stribeck_velocity: float = 0.05  # rad/s: v_s
    delay_ticks: int = 0
    torque_noise: float = 0.0  # Nm, std of the logged torque's noise
    torque_offset: tuple[float, ...] = (0.0,) * NUM_JOINTS  # Nm, logged torque's constant offset
    seed: int = 0  # of the sensor noise

    def __post_init__(self):
        for name in ("mass_scale", "coulomb", "stiction", "viscous", "torque_offset"):
            values = np.asarray(getattr(self, name), float)
            if values.shape != (NUM_JOINTS,) or not np.all(np.isfinite(values)):
                raise ValueError(f"reality gap field '{name}' needs {NUM_JOINTS} finite values, got {getattr(self, name)}")
        if np.any(np.asarray(self.mass_scale) <= 0):
            raise ValueError(f"reality gap field 'mass_scale' must be > 0, got {self.mass_scale}")
        for name in ("coulomb", "stiction", "viscous"):
            if np.any(np.asarray(getattr(self, name)) < 0):
                raise ValueError(f"reality gap field '{name}' must be >= 0, got {getattr(self, name)}")
        if np.any(np.asarray(self.stiction) < np.asarray(self.coulomb)):
            raise ValueError(f"reality gap: stiction {self.stiction} must be at least the Coulomb friction {self.coulomb}")
        if self.delay_ticks not in (0, 1):
            raise ValueError(f"reality gap field 'delay_ticks' must be 0 or 1, got {self.delay_ticks}")
        if not (self.torque_noise >= 0 and self.stribeck_velocity > 0):
            raise ValueError("reality gap: torque_noise must be >= 0 and stribeck_velocity > 0")

    def friction_limit(self, qd: np.ndarray) -> np.ndarray:
        """F(qd) of the Stribeck model above: the most friction each joint exerts at velocity qd (Nm)."""
        coulomb, stiction = np.asarray(self.coulomb), np.asarray(self.stiction)
        level = coulomb + (stiction - coulomb) * np.exp(-((np.asarray(qd) / self.stribeck_velocity) ** 2))
        return level + np.asarray(self.viscous) * np.abs(qd)

    @property
    def has_friction(self) -> bool:
        return bool(np.any(np.asarray(self.stiction) > 0) or np.any(np.asarray(self.viscous) > 0))

    @property
    def changes_masses(self) -> bool:
        return bool(np.any(np.asarray(self.mass_scale) != 1.0))


NONE = RealityGap()


def sample_reality_gap(seed: int = 0, mass_error=(0.1, 0.3)) -> RealityGap:
    """A gap robot: each link's mass and inertia off by a factor 1 +- U(mass_error) (random sign); per
    joint, Coulomb friction U(0.25, 0.75)% of its rated torque (MAX_TORQUE) with a breakaway level 1.5x
    that, viscous friction U(0.2, 1)% of it per rad/s; the logged torque offset by U(-1, 1) Nm per joint,
    with noise of std 0.2 Nm; a one-tick delay."""
    rng = np.random.default_rng(seed)
    low, high = mass_error
    scale = 1.0 + rng.choice([-1.0, 1.0], NUM_JOINTS) * rng.uniform(low, high, NUM_JOINTS)
    coulomb = rng.uniform(0.0025, 0.0075, NUM_JOINTS) * MAX_TORQUE

    def values(array):
        return tuple(float(v) for v in np.round(array, 4))

    return RealityGap(
        mass_scale=values(scale), coulomb=values(coulomb), stiction=values(1.5 * coulomb),
        viscous=values(rng.uniform(0.002, 0.01, NUM_JOINTS) * MAX_TORQUE), delay_ticks=1, torque_noise=0.2,
        torque_offset=values(rng.uniform(-1.0, 1.0, NUM_JOINTS)), seed=seed,
    )
