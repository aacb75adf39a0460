"""Motions recorded on the simulated KUKA: sine motions (meta-training data) and pick-and-place.

Sine motion of frequency f (the paper's Section IV-A.1), at step k of length dt:

    q_des(k) = A sin(2 pi f dt k) + q_rest,   qd_des = 2 pi f A cos(.),   qdd_des = -(2 pi f)^2 A sin(.)

Pick-and-place (Section V-B): five phases, reach, lift, move-over, move-down, retract, each a
minimum-jerk joint-space move between inverse-kinematics solutions, with an 857 g object held at the end
effector from the start of lift to the end of move-down. Trials differ in the object's position.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fastadapt.data.derivatives import smoothed_derivative
from fastadapt.data.trajectory import Dataset, Trajectory
from fastadapt.sim.kuka import Q_REST, KukaSim, Plan
from fastadapt.sim.reality_gap import NONE, RealityGap

SINE_AMPLITUDE = np.array([0.8, 0.4, 0.8, 0.5, 0.8, 0.6, 0.8])
SINE_FREQUENCIES = tuple(round(0.01 * k, 2) for k in range(1, 10))
META_TRAIN_FREQUENCIES = (0.01, 0.03, 0.05, 0.06, 0.07, 0.08)
META_TEST_FREQUENCIES = (0.02, 0.04, 0.09)
PHASES = ("reach", "lift", "move-over", "move-down", "retract")
OBJECT_MASS = 0.857
# object position (x, y) per trial on a 20 cm high table; it is placed at the mirrored y
TRIAL_OBJECTS = ((0.55, 0.25), (0.50, 0.35), (0.60, 0.15))
TABLE_HEIGHT = 0.20
LIFT_HEIGHT = 0.25


def sine_plan(frequency: float, duration: float, dt: float, amplitude=SINE_AMPLITUDE, q_rest=Q_REST) -> Plan:
    steps = int(round(duration / dt))
    phase = 2 * np.pi * frequency * dt * np.arange(steps)[:, None]
    omega = 2 * np.pi * frequency
    return Plan(
        q=amplitude * np.sin(phase) + q_rest,
        qd=amplitude * omega * np.cos(phase),
        qdd=-amplitude * omega**2 * np.sin(phase),
        label=f"sine-{frequency:.2f}",
    )


def minimum_jerk(q_start, q_end, duration: float, dt: float, label: str = "", payload: float = 0.0) -> Plan:
    """s(u) = 10u^3 - 15u^4 + 6u^5, u = t/duration: zero velocity and acceleration at both ends."""
    steps = int(round(duration / dt))
    u = (np.arange(steps) * dt / duration)[:, None]
    delta = (np.asarray(q_end) - np.asarray(q_start))[None, :]
    s = 10 * u**3 - 15 * u**4 + 6 * u**5
    sd = (30 * u**2 - 60 * u**3 + 30 * u**4) / duration
    sdd = (60 * u - 180 * u**2 + 120 * u**3) / duration**2
    return Plan(q=q_start + s * delta, qd=sd * delta, qdd=sdd * delta, label=label, payload=payload)


def add_sensor_noise(traj: Trajectory, rng: np.random.Generator, q_std=1e-3, qd_std=1e-2, tau_std=0.1) -> Trajectory:
    """Gaussian noise on the measured q, qd and tau; qdd is then re-derived from the noisy qd by the
    smoothed finite difference, as it would be on a real robot."""
    shape = traj.q.shape
    qd = traj.qd + rng.normal(0, qd_std, shape)
    return dataclasses.replace(
        traj,
        q=traj.q + rng.normal(0, q_std, shape),
        qd=qd,
        qdd=smoothed_derivative(qd, traj.dt),
        tau=traj.tau + rng.normal(0, tau_std, shape),
    )


def sine_dataset(frequencies=SINE_FREQUENCIES, duration: float = 10.0, dt: float = 1.0 / 240.0,
                 noise: bool = False, seed: int = 0, progress=None, gap: RealityGap = NONE) -> Dataset:
    """One sine-motion trajectory per frequency, each started at rest posture with the desired velocity
    (on the robot with the simulated reality gap ``gap``, if one is given)."""
    rng = np.random.default_rng(seed)
    trajectories = []
    with KukaSim(dt=dt, gap=gap) as sim:
        for frequency in frequencies:
            plan = sine_plan(frequency, duration, dt)
            sim.set_payload(0.0)
            sim.reset(plan.q[0], plan.qd[0])
            traj, _ = sim.track(plan, source=f"sim sine f={frequency}")
            trajectories.append(add_sensor_noise(traj, rng) if noise else traj)
            if progress is not None:
                progress()
    return Dataset(tuple(trajectories))


PAYLOAD_RANGE = (0.3, 1.5)  # kg: the random payloads of the meta-train sine motions


def payload_schedule(changes: int, rng: np.random.Generator, payload_range=PAYLOAD_RANGE) -> list[float]:
    """``changes + 1`` payloads that alternate between none and a mass drawn uniformly from
    ``payload_range``, starting with none: 0, m1, 0, m2, ..."""
    low, high = payload_range
    return [float(rng.uniform(low, high)) if i % 2 else 0.0 for i in range(changes + 1)]


def payload_sine_dataset(frequencies=META_TRAIN_FREQUENCIES, duration: float = 10.0, dt: float = 1.0 / 240.0,
                         changes: int = 3, payload_range=PAYLOAD_RANGE, noise: bool = False, seed: int = 0,
                         progress=None, gap: RealityGap = NONE) -> Dataset:
    """Sine motions during which a random payload is attached and detached mid-stream (meta-train data
    for dynamics changes; the pick-and-place trials stay held out).

    Each frequency's sine motion is cut into ``changes + 1`` equal segments carrying the payloads of
    :func:`payload_schedule`. The plant carries the segment's payload, the controller's model never
    does, and the motion is tracked straight through the changes (no reset), so the segments join into
    one trajectory. Its ``payload`` field is the largest mass held; the phase label lists them all."""
    if changes < 1:
        raise ValueError(f"payload sine motions need at least 1 payload change, got changes={changes}")
    rng = np.random.default_rng(seed)
    trajectories = []
    with KukaSim(dt=dt, gap=gap) as sim:
        for frequency in frequencies:
            plan = sine_plan(frequency, duration, dt)
            payloads = payload_schedule(changes, rng, payload_range)
            bounds = np.linspace(0, len(plan.q), changes + 2).round().astype(int)
            sim.set_payload(0.0)
            sim.reset(plan.q[0], plan.qd[0])
            t0, segments = 0.0, []
            for mass, start, stop in zip(payloads, bounds[:-1], bounds[1:]):
                segment = Plan(plan.q[start:stop], plan.qd[start:stop], plan.qdd[start:stop], plan.label, mass)
                traj, t0 = sim.track(segment, t0=t0)
                segments.append(traj)
            joined = {name: np.concatenate([getattr(s, name) for s in segments]) for name in ("t", "q", "qd", "qdd", "tau")}
            label = f"{plan.label} payloads " + "/".join(f"{m:.2f}" for m in payloads)
            traj = dataclasses.replace(segments[0], **joined, payload=max(payloads), phase=label,
                                       source=f"sim sine f={frequency} with payloads {label.split()[-1]} kg")
            trajectories.append(add_sensor_noise(traj, rng) if noise else traj)
            if progress is not None:
                progress()
    return Dataset(tuple(trajectories))


def pick_and_place_plans(sim: KukaSim, object_xy, phase_duration: float, dt: float) -> list[Plan]:
    x, y = object_xy
    grasp = sim.inverse_kinematics((x, y, TABLE_HEIGHT))
    lifted = sim.inverse_kinematics((x, y, TABLE_HEIGHT + LIFT_HEIGHT), rest=grasp)
    over = sim.inverse_kinematics((x, -y, TABLE_HEIGHT + LIFT_HEIGHT), rest=lifted)
    place = sim.inverse_kinematics((x, -y, TABLE_HEIGHT), rest=over)
    waypoints = [Q_REST, grasp, lifted, over, place, Q_REST]
    payloads = [0.0, OBJECT_MASS, OBJECT_MASS, OBJECT_MASS, 0.0]
    return [
        minimum_jerk(waypoints[i], waypoints[i + 1], phase_duration, dt, label=PHASES[i], payload=payloads[i])
        for i in range(len(PHASES))
    ]


def pick_and_place_dataset(trials=(0, 1, 2), phase_duration: float = 3.0, dt: float = 1.0 / 240.0,
                           noise: bool = False, seed: int = 0, object_mass: float = OBJECT_MASS,
                           progress=None, gap: RealityGap = NONE) -> list[Dataset]:
    """One Dataset of five phase trajectories per trial, in order (the model warm-starts across them)."""
    rng = np.random.default_rng(seed)
    result = []
    with KukaSim(dt=dt, gap=gap) as sim:
        for trial in trials:
            plans = pick_and_place_plans(sim, TRIAL_OBJECTS[trial], phase_duration, dt)
            plans = [dataclasses.replace(p, payload=object_mass if p.payload else 0.0) for p in plans]
            sim.set_payload(0.0)
            sim.reset(Q_REST)
            t0, phases = 0.0, []
            for plan in plans:
                traj, t0 = sim.track(plan, t0=t0, source=f"sim pick-and-place trial {trial} {plan.label}")
                phases.append(add_sensor_noise(traj, rng) if noise else traj)
            result.append(Dataset(tuple(phases)))
            if progress is not None:
                progress()
    return result




# --- the learning-rate memory paper's tasks (1 kHz) ----------------------------------------------------
LIFT_PAYLOADS = {"no object": 0.0, "light": 0.3, "heavy": 1.5}  # kg
LIFT_OBJECT = (0.55, 0.0)
RECTANGLE_CENTRE = (0.5, 0.0, 0.45)
RECTANGLE_SIZE = (0.2, 0.3)  # m: the two side lengths
RECTANGLE_PAYLOAD = 1.0  # kg on the plant only: the controller's model is strongly perturbed


def lifting_plan(sim: KukaSim, object_xy, duration: float, dt: float, payload: float, label: str) -> Plan:
    """Lift an object held at the end effector from table height by LIFT_HEIGHT (minimum jerk)."""
    x, y = object_xy
    grasp = sim.inverse_kinematics((x, y, TABLE_HEIGHT))
    lifted = sim.inverse_kinematics((x, y, TABLE_HEIGHT + LIFT_HEIGHT), rest=grasp)
    return minimum_jerk(grasp, lifted, duration, dt, label=label, payload=payload)


def hold_plan(q, duration: float, dt: float, payload: float = 0.0, label: str = "hold") -> Plan:
    """Stand still at ``q`` for ``duration`` seconds while holding ``payload`` kg."""
    steps = max(1, int(round(duration / dt)))
    still = np.repeat(np.asarray(q, dtype=float)[None], steps, axis=0)
    return Plan(q=still, qd=np.zeros_like(still), qdd=np.zeros_like(still), label=label, payload=payload)


def lifting_datasets(trials: int = 10, duration: float = 3.5, dt: float = 1e-3, payloads=None,
                     noise: bool = True, seed: int = 0, progress=None, settle: float = 1.0) -> dict[str, Dataset]:
    """The sequential online tasks of the memory paper (Section IV-D.2): lifting with no, a light and a
    heavy object, at 1 kHz. Per task a Dataset of ``trials`` trajectories; trial i lifts from an object
    position jittered by up to 5 cm (the same for every task), with sensor noise if ``noise``.

    The object is held from the first recorded sample: before each trial the arm holds it at the grasp
    pose for ``settle`` seconds, not recorded, so the controller (PD on the nominal model, which does not
    know the payload) has already taken up its weight. With ``settle=0`` the log starts at the moment the
    object is attached, and the first ~0.5 s of the heavy task carry the arm sagging under it (a torque
    step of ~9 Nm on A2: the data of Table I before issue 25)."""
    payloads = payloads or LIFT_PAYLOADS
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-0.05, 0.05, size=(trials, 2))
    noise_rng = np.random.default_rng(seed + 1)
    result = {}
    with KukaSim(dt=dt) as sim:
        for task, mass in payloads.items():
            trajectories = []
            for i in range(trials):
                xy = (LIFT_OBJECT[0] + offsets[i, 0], LIFT_OBJECT[1] + offsets[i, 1])
                plan = lifting_plan(sim, xy, duration, dt, mass, task)
                sim.set_payload(mass)
                sim.reset(plan.q[0])
                if settle > 0:
                    sim.track(hold_plan(plan.q[0], settle, dt, mass))
                traj, _ = sim.track(plan, source=f"sim lifting {task} trial {i}")
                trajectories.append(add_sensor_noise(traj, noise_rng) if noise else traj)
                if progress is not None:
                    progress()
            result[task] = Dataset(tuple(trajectories))
    return result


def rectangle_plans(sim: KukaSim, plane: str, points: int, dt: float) -> list[Plan]:
    """The end effector around a rectangle (horizontal: x-y plane, vertical: x-z plane), corner to corner
    by minimum-jerk joint motions, ``points`` samples in all."""
    cx, cy, cz = RECTANGLE_CENTRE
    a, b = RECTANGLE_SIZE[0] / 2, RECTANGLE_SIZE[1] / 2
    if plane == "horizontal":
        corners = [(cx - a, cy - b, cz), (cx + a, cy - b, cz), (cx + a, cy + b, cz), (cx - a, cy + b, cz)]
    elif plane == "vertical":
        corners = [(cx - a, cy, cz - b), (cx + a, cy, cz - b), (cx + a, cy, cz + b), (cx - a, cy, cz + b)]
    else:
        raise ValueError(f"unknown plane '{plane}', expected 'horizontal' or 'vertical'")
    joints, rest = [], Q_REST
    for corner in corners + corners[:1]:
        rest = sim.inverse_kinematics(corner, rest=rest)
        joints.append(rest)
    side = points // 4
    plans = []
    for i in range(4):
        steps = side if i < 3 else points - 3 * side
        plans.append(minimum_jerk(joints[i], joints[i + 1], steps * dt, dt, label=f"{plane} side {i + 1}",
                                  payload=RECTANGLE_PAYLOAD))
    return plans


def rectangle_dataset(plane: str, points: int = 10_000, dt: float = 1e-3) -> Dataset:
    """The batch tasks of the memory paper (Section IV-D.1): one lap of a rectangle at 1 kHz, ``points``
    samples, tracked with a controller whose model lacks the RECTANGLE_PAYLOAD the plant carries."""
    with KukaSim(dt=dt) as sim:
        plans = rectangle_plans(sim, plane, points, dt)
        sim.set_payload(RECTANGLE_PAYLOAD)
        sim.reset(plans[0].q[0])
        t0, sides = 0.0, []
        for plan in plans:
            traj, t0 = sim.track(plan, t0=t0, source=f"sim rectangle {plane}")
            sides.append(traj)
    joined = {name: np.concatenate([getattr(side, name) for side in sides]) for name in ("t", "q", "qd", "qdd", "tau")}
    return Dataset((dataclasses.replace(sides[0], **joined, phase=f"rectangle-{plane}"),))
