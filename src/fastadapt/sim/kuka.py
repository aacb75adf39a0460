"""KUKA iiwa 7-DoF in PyBullet, tracked by an inverse-dynamics + PD controller.

Two physics clients hold the arm (``kuka_iiwa/model.urdf`` from pybullet_data, gravity -9.81):

* the *plant*, which is stepped, and whose end-effector link carries the payload when one is held;
* the *controller's model*, never stepped, which always has the nominal (unloaded) dynamics.

At each step the controller computes the torque

    tau = ID_model(q, qd, qdd_des + Kp (q_des - q) + Kd (qd_des - qd)),

i.e. the model's inverse dynamics with a PD correction in acceleration space (computed-torque control),
applies it to the plant in torque mode and steps the plant by ``dt``. The recorded acceleration is the
realised one, ``qdd[t] = (qd[t+1] - qd[t]) / dt``, so each sample (q, qd, qdd, tau) is a true sample of
the plant's inverse dynamics. A payload changes the plant, not the labels: the model does not know it,
the PD term and the realised motion absorb the difference.

With a :class:`~fastadapt.sim.reality_gap.RealityGap` the plant becomes a "real" robot that differs from
the nominal one in that module's listed ways (masses and inertias, friction with stiction, a one-tick
delay, torque-sensor noise and offset); without one (the default) nothing changes.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pybullet
import pybullet_data

from fastadapt.data.trajectory import Trajectory
from fastadapt.sim.reality_gap import NONE, RealityGap

URDF = "kuka_iiwa/model.urdf"
NUM_JOINTS = 7
END_EFFECTOR = 6
ROBOT_NAME = "kuka_iiwa"
Q_REST = np.array([0.0, 0.6, 0.0, -1.3, 0.0, 0.8, 0.0])


@dataclasses.dataclass(frozen=True)
class ControllerGains:
    kp: float = 100.0  # 1/s^2, natural frequency 10 rad/s
    kd: float = 20.0  # 1/s, critical damping


@dataclasses.dataclass(frozen=True)
class Plan:
    """Desired joint trajectory of one phase: positions, velocities, accelerations [T, 7]."""

    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    label: str = ""
    payload: float = 0.0  # kg held at the end effector during this phase


def _load_arm(client: int) -> int:
    pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    robot = pybullet.loadURDF(URDF, useFixedBase=True, physicsClientId=client)
    for link in range(-1, NUM_JOINTS):
        pybullet.changeDynamics(
            robot, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0, physicsClientId=client
        )
    return robot


class KukaSim:
    """A plant and a controller's model; use as a context manager (it owns two physics clients)."""

    def __init__(self, dt: float = 1.0 / 240.0, gains: ControllerGains = ControllerGains(), gap: RealityGap = NONE):
        self.dt = dt
        self.gains = gains
        self.gap = gap
        self.plant_client = pybullet.connect(pybullet.DIRECT)
        self.model_client = pybullet.connect(pybullet.DIRECT)
        for client in (self.plant_client, self.model_client):
            pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
            pybullet.setTimeStep(dt, physicsClientId=client)
        pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.plant_client)
        self.floor = pybullet.loadURDF("plane.urdf", physicsClientId=self.plant_client)
        self.plant = _load_arm(self.plant_client)
        self.model = _load_arm(self.model_client)
        # torque control: switch off the default velocity motors
        pybullet.setJointMotorControlArray(
            self.plant, range(NUM_JOINTS), pybullet.VELOCITY_CONTROL, forces=[0.0] * NUM_JOINTS,
            physicsClientId=self.plant_client,
        )
        if gap.changes_masses:
            for link, scale in enumerate(gap.mass_scale):
                info = pybullet.getDynamicsInfo(self.plant, link, physicsClientId=self.plant_client)
                pybullet.changeDynamics(self.plant, link, mass=info[0] * scale,
                                        localInertiaDiagonal=(np.array(info[2]) * scale).tolist(),
                                        physicsClientId=self.plant_client)
        info = pybullet.getDynamicsInfo(self.plant, END_EFFECTOR, physicsClientId=self.plant_client)
        self._ee_mass, self._ee_inertia = info[0], np.array(info[2])
        self._payload = 0.0
        self._pending = None  # the command that reaches the plant at the next tick (one-tick delay)
        self._sensor_rng = np.random.default_rng(gap.seed)
        self._logs_exactly = gap == NONE  # no sensor offset or noise: log the command as it is

    def close(self) -> None:
        for client in (self.plant_client, self.model_client):
            with contextlib.suppress(pybullet.error):
                pybullet.disconnect(client)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- state -------------------------------------------------------------------------------------
    def reset(self, q, qd=None) -> None:
        qd = np.zeros(NUM_JOINTS) if qd is None else qd
        self._pending = None
        for j in range(NUM_JOINTS):
            pybullet.resetJointState(self.plant, j, q[j], qd[j], physicsClientId=self.plant_client)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        states = pybullet.getJointStates(self.plant, range(NUM_JOINTS), physicsClientId=self.plant_client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def set_payload(self, mass: float) -> None:
        """Add ``mass`` kg to the plant's end-effector link (a point mass at its centre: the link's
        inertia grows in proportion to its mass). The controller's model is unchanged."""
        if mass == self._payload:
            return
        scale = (self._ee_mass + mass) / self._ee_mass
        pybullet.changeDynamics(
            self.plant, END_EFFECTOR, mass=self._ee_mass + mass,
            localInertiaDiagonal=(self._ee_inertia * scale).tolist(), physicsClientId=self.plant_client,
        )
        self._payload = mass

    def min_link_height(self) -> float:
        """Lowest point of the arm's links above the floor (m), from the plant's collision shapes."""
        lowest = np.inf
        for link in range(NUM_JOINTS):
            aabb_min, _ = pybullet.getAABB(self.plant, link, physicsClientId=self.plant_client)
            lowest = min(lowest, aabb_min[2])
        return float(lowest)

    def end_effector_position(self) -> np.ndarray:
        return np.array(
            pybullet.getLinkState(self.plant, END_EFFECTOR, physicsClientId=self.plant_client)[4]
        )

    def inverse_kinematics(self, position, orientation_euler=(0.0, -np.pi, 0.0), rest=Q_REST) -> np.ndarray:
        """Joint angles that put the end effector at ``position`` (m) pointing down, near ``rest``."""
        self.reset(rest)
        lower = [-2.96, -2.09, -2.96, -2.09, -2.96, -2.09, -3.05]
        upper = [-v for v in lower]
        q = pybullet.calculateInverseKinematics(
            self.plant, END_EFFECTOR, list(position), pybullet.getQuaternionFromEuler(orientation_euler),
            lowerLimits=lower, upperLimits=upper, jointRanges=[2 * u for u in upper],
            restPoses=list(rest), maxNumIterations=200, residualThreshold=1e-5,
            physicsClientId=self.plant_client,
        )
        return np.array(q[:NUM_JOINTS])

    # --- control -----------------------------------------------------------------------------------
    def control_torque(self, q, qd, q_des, qd_des, qdd_des) -> np.ndarray:
        qdd_ref = qdd_des + self.gains.kp * (q_des - q) + self.gains.kd * (qd_des - qd)
        return np.array(
            pybullet.calculateInverseDynamics(
                self.model, q.tolist(), qd.tolist(), qdd_ref.tolist(), physicsClientId=self.model_client
            )
        )

    def _logged_torque(self, tau: np.ndarray) -> np.ndarray:
        """What the torque sensor logs for the command ``tau``: plus the gap's offset and noise."""
        if self._logs_exactly:
            return tau
        noise = self._sensor_rng.normal(0.0, self.gap.torque_noise, NUM_JOINTS) if self.gap.torque_noise else 0.0
        return tau + np.asarray(self.gap.torque_offset) + noise

    def track(self, plan: Plan, t0: float = 0.0, source: str | None = None) -> tuple[Trajectory, float]:
        """Run one phase from the current state; returns the recorded trajectory and the end time."""
        self.set_payload(plan.payload)
        steps = plan.q.shape[0]
        record = {name: np.zeros((steps, NUM_JOINTS)) for name in ("q", "qd", "qdd", "tau")}
        q, qd = self.state()
        gap = self.gap
        for k in range(steps):
            tau = self.control_torque(q, qd, plan.q[k], plan.qd[k], plan.qdd[k])
            applied = tau if (gap.delay_ticks == 0 or self._pending is None) else self._pending
            self._pending = tau
            if gap.has_friction:  # implicit friction: a velocity motor held at 0 with at most F(qd)
                pybullet.setJointMotorControlArray(
                    self.plant, range(NUM_JOINTS), pybullet.VELOCITY_CONTROL, targetVelocities=[0.0] * NUM_JOINTS,
                    forces=gap.friction_limit(qd).tolist(), physicsClientId=self.plant_client,
                )
            pybullet.setJointMotorControlArray(
                self.plant, range(NUM_JOINTS), pybullet.TORQUE_CONTROL, forces=applied.tolist(),
                physicsClientId=self.plant_client,
            )
            pybullet.stepSimulation(physicsClientId=self.plant_client)
            q_next, qd_next = self.state()
            record["q"][k], record["qd"][k], record["tau"][k] = q, qd, self._logged_torque(tau)
            record["qdd"][k] = (qd_next - qd) / self.dt
            q, qd = q_next, qd_next
        t = t0 + self.dt * np.arange(steps)
        traj = Trajectory(
            t=t, **record, robot=ROBOT_NAME, dt=self.dt, payload=plan.payload, phase=plan.label, source=source
        )
        return traj, t0 + self.dt * steps
