"""Differentiable goal-reaching systems for ML3's model-based RL (paper section 4.1.2, Appendix B), in
pure JAX so that rollouts differentiate end to end.

Both are second-order systems with state s = (p, v) (positions p, velocities v, each ``dof`` long),
stepped with semi-implicit Euler at ``dt``:

    v' = v + dt * acc(s, a),      p' = p + dt * v'.

* **PointmassGoal**: s = (x, y, xd, yd), the action is the acceleration, a = (xdd, ydd), clipped to
  [-``max_action``, ``max_action``]: acc(s, a) = clip(a). The reached position is (x, y).
* **ReacherGoal**: a 2-link arm in the horizontal plane, s = (th1, th2, th1d, th2d), the action is the joint
  torques u = (u1, u2), clipped to [-``max_action``, ``max_action``]. Links of length l and mass m are thin
  uniform rods (centre of mass at l/2, inertia I = m l^2 / 12 about it), with joint damping b:

      M(q) qdd + c(q, qd) + b qd = u,
      M11 = I1 + I2 + m1 c1^2 + m2 (l1^2 + c2^2 + 2 l1 c2 cos th2),  M12 = M21 = I2 + m2 (c2^2 + l1 c2 cos th2),
      M22 = I2 + m2 c2^2,  c = h (-(2 th1d th2d + th2d^2), th1d^2),  h = m2 l1 c2 sin th2,

  (the same arm as :mod:`fastadapt.sim.rigid_body`'s ``planar``, l = 0.5 m, m = 1 kg), integrated in
  ``substeps`` steps of dt / substeps with the joint speeds limited to ``max_speed``. The reached
  position is the end effector's, (l1 cos th1 + l2 cos(th1 + th2), l1 sin th1 + l2 sin(th1 + th2)).

Networks (policies, the learned model, the meta-loss) see ``features(s)``: the state itself for the point
mass, (cos th, sin th, thd / 10) for the arm. Goals are positions in the plane. A goal outside the workspace (farther than ``max_goal_radius`` from
the start for the point mass; outside the annulus the arm's tip can reach) is refused with
:class:`GoalError`. Goal sets are drawn in a sector of the plane (angles in degrees), which is how the
meta-train (one quadrant) and meta-test (the opposite one) tasks of Fig. 3a are told apart.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


class GoalError(ValueError):
    """A goal the system cannot reach."""


class PlanarSystem:
    """What both systems share: two degrees of freedom, s = (p, v), one action per degree of freedom."""

    dof = 2

    @property
    def state_dim(self) -> int:
        return 2 * self.dof

    @property
    def action_dim(self) -> int:
        return self.dof


@dataclasses.dataclass(frozen=True)
class PointmassGoal(PlanarSystem):
    dt: float = 0.1
    max_action: float = 1.0
    max_goal_radius: float = 2.0
    max_speed: float = 5.0  # the learned model's velocities are clipped here (rl.rollout.DynamicsModel)

    name = "pointmass"

    def initial_state(self):
        return jnp.zeros(4)

    feature_dim = 4

    def features(self, state):
        """What a network sees of the state: the state itself."""
        return state

    def acceleration(self, state, action):
        return jnp.clip(action, -self.max_action, self.max_action)

    def step(self, state, action):
        return euler_step(self.dt, state, self.acceleration(state, action))

    def position(self, state):
        """The point reached: (x, y)."""
        return state[..., :2]

    def target_state(self, goal):
        """The state at rest at ``goal``: (x, y, 0, 0)."""
        return jnp.concatenate([goal, jnp.zeros_like(goal)], -1)

    def radius_range(self) -> tuple[float, float]:
        return 0.0, self.max_goal_radius


@dataclasses.dataclass(frozen=True)
class ReacherGoal(PlanarSystem):
    dt: float = 0.05
    max_action: float = 2.0
    link_length: float = 0.5
    link_mass: float = 1.0
    damping: float = 0.1
    start_angles: tuple[float, float] = (0.0, 1.5)
    max_speed: float = 20.0
    substeps: int = 5

    name = "reacher"

    def initial_state(self):
        return jnp.asarray([*self.start_angles, 0.0, 0.0])

    feature_dim = 6

    def features(self, state):
        """What a network sees of the state: (cos th, sin th, thd / 10), angles on the circle and speeds
        of order one."""
        q, qd = state[..., :2], state[..., 2:]
        return jnp.concatenate([jnp.cos(q), jnp.sin(q), qd / 10.0], -1)

    def mass_matrix(self, q):
        l, m = self.link_length, self.link_mass
        c, inertia = l / 2, m * l ** 2 / 12
        cos2 = jnp.cos(q[..., 1])
        m11 = 2 * inertia + m * c ** 2 + m * (l ** 2 + c ** 2 + 2 * l * c * cos2)
        m12 = inertia + m * (c ** 2 + l * c * cos2)
        m22 = inertia + m * c ** 2 + 0 * cos2
        return jnp.stack([jnp.stack([m11, m12], -1), jnp.stack([m12, m22], -1)], -2)

    def bias_forces(self, q, qd):
        """c(q, qd): the Coriolis and centrifugal torques."""
        l, m = self.link_length, self.link_mass
        h = m * l * (l / 2) * jnp.sin(q[..., 1])
        return jnp.stack([-h * (2 * qd[..., 0] * qd[..., 1] + qd[..., 1] ** 2), h * qd[..., 0] ** 2], -1)

    def inverse_dynamics(self, q, qd, qdd):
        """u = M(q) qdd + c(q, qd) + b qd."""
        return jnp.einsum("...ij,...j->...i", self.mass_matrix(q), qdd) + self.bias_forces(q, qd) + self.damping * qd

    def acceleration(self, state, action):
        q, qd = state[:2], state[2:]
        u = jnp.clip(action, -self.max_action, self.max_action)
        return jnp.linalg.solve(self.mass_matrix(q), u - self.bias_forces(q, qd) - self.damping * qd)

    def step(self, state, action):
        """``substeps`` Euler steps of dt / substeps with the action held, each velocity clipped to
        +-``max_speed`` (a joint's speed limit: a feedback policy switching torques every step can
        otherwise pump energy into the explicit integration until it overflows, seen in meta-training)."""

        def substep(_, s):
            s = euler_step(self.dt / self.substeps, s, self.acceleration(s, action))
            return s.at[2:].set(jnp.clip(s[2:], -self.max_speed, self.max_speed))

        return jax.lax.fori_loop(0, self.substeps, substep, state)

    def position(self, state):
        l = self.link_length
        th1, th12 = state[..., 0], state[..., 0] + state[..., 1]
        return jnp.stack([l * jnp.cos(th1) + l * jnp.cos(th12), l * jnp.sin(th1) + l * jnp.sin(th12)], -1)

    def radius_range(self) -> tuple[float, float]:
        return 0.0, 2 * self.link_length

    def inverse_kinematics(self, goal):
        """The joint angles that put the tip at ``goal`` [..., 2], elbow angle >= 0:
        cos th2 = (x^2 + y^2 - 2 l^2) / (2 l^2), th1 = atan2(y, x) - atan2(l sin th2, l + l cos th2)
        (goals beyond the reach get the stretched arm pointing at them)."""
        l = self.link_length
        x, y = goal[..., 0], goal[..., 1]
        th2 = jnp.arccos(jnp.clip((x * x + y * y - 2 * l * l) / (2 * l * l), -1.0, 1.0))
        th1 = jnp.arctan2(y, x) - jnp.arctan2(l * jnp.sin(th2), l + l * jnp.cos(th2))
        return jnp.stack([th1, th2], -1)

    def target_state(self, goal):
        """The state at rest with the tip at ``goal``: (inverse_kinematics(goal), 0, 0)."""
        return jnp.concatenate([self.inverse_kinematics(goal), jnp.zeros(goal.shape[:-1] + (2,))], -1)


def euler_step(dt: float, state, acceleration):
    """Semi-implicit Euler on s = (p, v): v' = v + dt acc, p' = p + dt v'."""
    half = state.shape[-1] // 2
    velocity = state[..., half:] + dt * acceleration
    return jnp.concatenate([state[..., :half] + dt * velocity, velocity], -1)


ENVIRONMENTS = {"pointmass": PointmassGoal, "reacher": ReacherGoal}


def make_env(name: str, **settings):
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment '{name}', expected one of {sorted(ENVIRONMENTS)}")
    return ENVIRONMENTS[name](**settings)


def check_goals(env, goals) -> np.ndarray:
    """``goals`` [N, 2] as an array, or :class:`GoalError` naming the first one outside the workspace."""
    goals = np.asarray(goals, dtype=np.float64)
    if goals.ndim != 2 or goals.shape[1] != 2:
        raise GoalError(f"goals must be an array [N, 2] of (x, y) positions, got shape {goals.shape}")
    if not np.all(np.isfinite(goals)):
        raise GoalError(f"goal {goals[~np.all(np.isfinite(goals), 1)][0].tolist()} is not finite")
    low, high = env.radius_range()
    radius = np.linalg.norm(goals, axis=1)
    bad = np.nonzero((radius < low) | (radius > high))[0]
    if bad.size:
        g = goals[bad[0]]
        raise GoalError(f"goal ({g[0]:.3g}, {g[1]:.3g}) is outside the {env.name} workspace: it is {radius[bad[0]]:.3g} "
                        f"from the base, and reachable goals lie {low:.3g} to {high:.3g} from it")
    return goals


def sector_goals(key, count: int, radius: tuple[float, float], degrees: tuple[float, float]):
    """``count`` goals uniform in radius within ``radius`` and in angle within ``degrees`` [count, 2]."""
    r_key, a_key = jax.random.split(key)
    r = jax.random.uniform(r_key, (count,), minval=radius[0], maxval=radius[1])
    angle = jnp.deg2rad(jax.random.uniform(a_key, (count,), minval=degrees[0], maxval=degrees[1]))
    return jnp.stack([r * jnp.cos(angle), r * jnp.sin(angle)], -1)


def check_sector(env, radius: tuple[float, float], degrees: tuple[float, float], what: str) -> None:
    """Refuse a goal sector that reaches outside the workspace (its corners are checked: the workspace is
    a disc or an annulus around the base)."""
    if not radius[0] < radius[1]:
        raise ValueError(f"{what}: the goal radius range {radius} must be increasing")
    if not degrees[0] < degrees[1]:
        raise ValueError(f"{what}: the goal angle range {degrees} must be increasing")
    corners = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for r in radius for a in degrees]
    try:
        check_goals(env, corners)
    except GoalError as error:
        raise GoalError(f"{what}: {error}") from None
