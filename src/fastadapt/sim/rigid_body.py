"""Exact rigid-body dynamics of simulated arms from PyBullet: the inverse dynamics
u = M(q) qdd + F(q, qd) and the inertia matrix M(q), the ground truth of ML3's physics prior (4.2.2).

Arms: ``iiwa`` (the KUKA iiwa 7-DoF of ``pybullet_data``, gravity -9.81 along z, in place of the
paper's Sawyer) and ``planar`` (a 2-link arm moving in the horizontal plane, the paper's ReacherGoal:
links of 0.5 m and 1 kg, thin rods, joints about z, so gravity does no work and F is the Coriolis and
centrifugal force). M(q) is from ``calculateMassMatrix``, u from ``calculateInverseDynamics``; the
links' inertias are the URDF's (``URDF_USE_INERTIA_FROM_FILE``), not PyBullet's estimate from shapes.

Trajectories are random sums of sines per joint,

    q_j(t) = q_rest_j + sum_k a_jk sin(2 pi f_jk t + p_jk),  a_jk ~ U[0, A_j / K], f_jk ~ U[f_lo, f_hi],

with qd and qdd their exact derivatives, so every sample is an exact sample of the arm's dynamics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from fastadapt.sim.kuka import Q_REST, URDF as IIWA_URDF

PLANAR_LINK_LENGTH, PLANAR_LINK_MASS = 0.5, 1.0


def _planar_link(name: str, length: float, mass: float) -> str:
    inertia = mass * length ** 2 / 12.0
    return f"""  <link name="{name}">
    <inertial><origin xyz="{length / 2} 0 0"/><mass value="{mass}"/>
      <inertia ixx="1e-4" iyy="{inertia}" izz="{inertia}" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>"""


def planar_arm_urdf(length: float = PLANAR_LINK_LENGTH, mass: float = PLANAR_LINK_MASS) -> str:
    """A fixed base and two revolute joints about z, each link a thin rod of ``length`` and ``mass``."""
    joint = lambda name, parent, child, x: f"""  <joint name="{name}" type="revolute">
    <parent link="{parent}"/><child link="{child}"/><origin xyz="{x} 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3.14" upper="3.14" effort="100" velocity="10"/>
  </joint>"""
    return "\n".join([
        '<?xml version="1.0"?>', '<robot name="planar_arm">',
        '  <link name="base"><inertial><mass value="0"/><inertia ixx="0" iyy="0" izz="0" ixy="0" ixz="0" iyz="0"/>'
        "</inertial></link>",
        _planar_link("link1", length, mass), _planar_link("link2", length, mass),
        joint("joint1", "base", "link1", 0.0), joint("joint2", "link1", "link2", length),
        "</robot>",
    ])


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    num_joints: int
    q_rest: np.ndarray
    amplitude: np.ndarray  # rad, per joint: the range of the random sines


ARMS = {
    "iiwa": ArmSpec(7, Q_REST, np.array([0.8, 0.4, 0.8, 0.5, 0.8, 0.6, 0.8])),
    "planar": ArmSpec(2, np.array([0.0, 1.0]), np.array([1.5, 1.0])),
}


class RigidBodyArm:
    """One PyBullet client holding ``arm``; use as a context manager."""

    def __init__(self, arm: str):
        if arm not in ARMS:
            raise ValueError(f"unknown arm '{arm}', expected one of {sorted(ARMS)}")
        self.spec = ARMS[arm]
        self.client = pybullet.connect(pybullet.DIRECT)
        pybullet.setGravity(0, 0, -9.81, physicsClientId=self.client)
        if arm == "iiwa":
            pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
            self.body = pybullet.loadURDF(IIWA_URDF, useFixedBase=True, flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                           physicsClientId=self.client)
        else:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "planar_arm.urdf"
                path.write_text(planar_arm_urdf())
                self.body = pybullet.loadURDF(str(path), useFixedBase=True, flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                               physicsClientId=self.client)
        for link in range(-1, self.spec.num_joints):
            pybullet.changeDynamics(self.body, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                                    physicsClientId=self.client)

    def close(self) -> None:
        with contextlib.suppress(pybullet.error):
            pybullet.disconnect(self.client)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def mass_matrix(self, q) -> np.ndarray:
        return np.asarray(pybullet.calculateMassMatrix(self.body, [float(v) for v in q], physicsClientId=self.client))

    def inverse_dynamics(self, q, qd, qdd) -> np.ndarray:
        as_list = lambda a: [float(v) for v in a]
        return np.asarray(pybullet.calculateInverseDynamics(self.body, as_list(q), as_list(qd), as_list(qdd),
                                                            physicsClientId=self.client))


def random_sine_trajectory(spec: ArmSpec, rng, steps: int, dt: float, sines: int = 3,
                           frequency_range=(0.2, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q, qd, qdd [steps, J] of one random sum of ``sines`` sines per joint (module docstring)."""
    t = dt * np.arange(steps)[:, None, None]
    shape = (1, spec.num_joints, sines)
    amplitude = rng.uniform(0.0, 1.0, shape) * spec.amplitude[None, :, None] / sines
    omega = 2 * np.pi * rng.uniform(*frequency_range, shape)
    phase = rng.uniform(-np.pi, np.pi, shape)
    angle = omega * t + phase
    q = spec.q_rest + np.sum(amplitude * np.sin(angle), -1)
    qd = np.sum(amplitude * omega * np.cos(angle), -1)
    qdd = -np.sum(amplitude * omega ** 2 * np.sin(angle), -1)
    return q, qd, qdd


def dynamics_dataset(arm: str, trajectories: int, steps: int, dt: float, seed: int) -> dict[str, np.ndarray]:
    """``trajectories`` random sine trajectories of ``steps`` samples: q, qd, qdd, u [n, T, J] and the
    inertia matrices M [n, T, J, J]."""
    rng = np.random.default_rng(seed)
    data = {k: [] for k in ("q", "qd", "qdd", "u", "M")}
    with RigidBodyArm(arm) as sim:
        for _ in range(trajectories):
            q, qd, qdd = random_sine_trajectory(sim.spec, rng, steps, dt)
            data["q"].append(q)
            data["qd"].append(qd)
            data["qdd"].append(qdd)
            data["u"].append(np.stack([sim.inverse_dynamics(*s) for s in zip(q, qd, qdd)]))
            data["M"].append(np.stack([sim.mass_matrix(s) for s in q]))
    return {k: np.asarray(v, np.float32) for k, v in data.items()}
