"""The simulated reality gap: the gap robot differs from the nominal one only in the listed ways."""

import dataclasses

import numpy as np
import pybullet
import pytest

from fastadapt.sim import motions
from fastadapt.sim.kuka import END_EFFECTOR, NUM_JOINTS, KukaSim
from fastadapt.sim.reality_gap import NONE, RealityGap, sample_reality_gap

GAP = sample_reality_gap(0)
DURATION = 1.0


def sine(gap):
    return motions.sine_dataset((0.05,), duration=DURATION, gap=gap)[0]


def model_torque(sim, traj, k):
    """The nominal arm's inverse dynamics at logged sample k."""
    return np.array(pybullet.calculateInverseDynamics(sim.model, traj.q[k].tolist(), traj.qd[k].tolist(),
                                                      traj.qdd[k].tolist(), physicsClientId=sim.model_client))


@pytest.fixture(scope="module")
def nominal():
    return sine(NONE)


def test_sampled_gap_is_within_the_stated_ranges():
    error = np.abs(np.asarray(GAP.mass_scale) - 1.0)
    assert np.all((error >= 0.1) & (error <= 0.3))
    assert np.all(np.asarray(GAP.stiction) >= np.asarray(GAP.coulomb)) and GAP.delay_ticks == 1
    assert GAP.torque_noise > 0 and np.all(np.abs(GAP.torque_offset) <= 1.0)
    assert sample_reality_gap(0) == GAP and sample_reality_gap(1) != GAP


def test_no_gap_is_the_nominal_robot_bit_for_bit(nominal):
    explicit = sine(RealityGap())  # the machinery with every gap switched off changes nothing
    for field in ("q", "qd", "qdd", "tau"):
        np.testing.assert_array_equal(getattr(explicit, field), getattr(nominal, field))


def test_masses_and_inertias_change_on_the_plant_only():
    with KukaSim() as plain, KukaSim(gap=GAP) as gapped:
        for link in range(NUM_JOINTS):
            a = pybullet.getDynamicsInfo(plain.plant, link, physicsClientId=plain.plant_client)
            b = pybullet.getDynamicsInfo(gapped.plant, link, physicsClientId=gapped.plant_client)
            scale = GAP.mass_scale[link]
            assert b[0] == pytest.approx(a[0] * scale)
            np.testing.assert_allclose(b[2], np.array(a[2]) * scale, rtol=1e-6)
            assert b[1:2] + b[3:] == a[1:2] + a[3:]  # friction, restitution, damping, frames: unchanged
            m = pybullet.getDynamicsInfo(gapped.model, link, physicsClientId=gapped.model_client)
            assert m[0] == a[0] and m[2] == a[2]  # the controller's model stays nominal
        gapped.set_payload(1.0)  # a payload adds to the gap robot's end-effector mass
        info = pybullet.getDynamicsInfo(gapped.plant, END_EFFECTOR, physicsClientId=gapped.plant_client)
        plain_ee = pybullet.getDynamicsInfo(plain.plant, END_EFFECTOR, physicsClientId=plain.plant_client)[0]
        assert info[0] == pytest.approx(plain_ee * GAP.mass_scale[END_EFFECTOR] + 1.0)


def test_delay_alone_pairs_each_state_with_the_next_command():
    delayed = sine(RealityGap(delay_ticks=1))
    with KukaSim() as sim:
        for k in (5, 100, 200):  # the acceleration at k came from the command logged at k - 1
            np.testing.assert_allclose(model_torque(sim, delayed, k), delayed.tau[k - 1], atol=0.05)
            assert np.abs(model_torque(sim, delayed, k) - delayed.tau[k]).max() > 1e-3
        np.testing.assert_allclose(model_torque(sim, delayed, 0), delayed.tau[0], atol=0.05)  # first tick: its own


def test_friction_alone_is_the_stribeck_model():
    gap = dataclasses.replace(NONE, coulomb=GAP.coulomb, stiction=GAP.stiction, viscous=GAP.viscous)
    rough = motions.sine_dataset((0.05,), duration=2.0, gap=gap)[0]
    limit = np.stack([gap.friction_limit(qd) for qd in rough.qd])
    with KukaSim() as sim:
        friction = rough.tau - np.stack([model_torque(sim, rough, k) for k in range(len(rough))])
    assert np.all(np.abs(friction) <= limit + 0.05)  # never more than F(qd)
    moving = (np.abs(rough.qd) > 0.05) & (np.abs(rough.qd + rough.qdd * rough.dt) > 0.05)
    moving &= np.sign(rough.qd) == np.sign(rough.qd + rough.qdd * rough.dt)
    assert moving.sum() > 1000  # against a joint that keeps moving it is exactly F(qd), against the motion
    np.testing.assert_allclose(friction[moving], (limit * np.sign(rough.qd))[moving], atol=0.05)
    c, s, b = (np.asarray(x) for x in (gap.coulomb, gap.stiction, gap.viscous))
    np.testing.assert_allclose(gap.friction_limit(np.zeros(7)), s)  # breakaway at rest
    np.testing.assert_allclose(gap.friction_limit(np.full(7, -1.0)), c + (s - c) * np.exp(-400) + b)


def test_sensor_noise_and_offset_touch_the_log_only(nominal):
    gap = dataclasses.replace(NONE, torque_noise=0.2, torque_offset=GAP.torque_offset, seed=3)
    logged = sine(gap)
    for field in ("q", "qd", "qdd"):
        np.testing.assert_array_equal(getattr(logged, field), getattr(nominal, field))
    error = logged.tau - nominal.tau
    np.testing.assert_allclose(error.mean(0), GAP.torque_offset, atol=0.04)
    np.testing.assert_allclose(error.std(0), 0.2, rtol=0.15)


@pytest.mark.parametrize("field, value, message", [
    ("mass_scale", (1.0,) * 6, "'mass_scale' needs 7 finite values"),
    ("mass_scale", (0.0,) * 7, "'mass_scale' must be > 0"),
    ("coulomb", (1.0,) * 7, "stiction .* must be at least the Coulomb friction"),
    ("delay_ticks", 2, "'delay_ticks' must be 0 or 1, got 2"),
    ("viscous", (np.nan,) * 7, "'viscous' needs 7 finite values"),
])
def test_bad_gap_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        RealityGap(**{field: value})
