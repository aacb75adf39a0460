import numpy as np
import pybullet
import pytest

from fastadapt.sim import motions
from fastadapt.sim.kuka import NUM_JOINTS, KukaSim, Q_REST


@pytest.fixture(scope="module")
def sine():
    return motions.sine_dataset((0.02, 0.09), duration=3.0)


def test_sine_tracks_the_paper_formula(sine):
    traj = sine[1]
    plan = motions.sine_plan(0.09, 3.0, traj.dt)
    k = np.arange(len(traj))
    expected = motions.SINE_AMPLITUDE * np.sin(2 * np.pi * 0.09 * traj.dt * k)[:, None] + Q_REST
    np.testing.assert_allclose(plan.q, expected)
    assert np.abs(traj.q - plan.q).max() < 0.01  # the ID + PD controller tracks within 10 mrad
    assert traj.phase == "sine-0.09" and traj.num_joints == NUM_JOINTS


def test_samples_are_true_inverse_dynamics(sine):
    """Without payload the plant's inverse dynamics at the recorded (q, qd, qdd) reproduces tau."""
    traj = sine[0]
    with KukaSim() as sim:
        for k in (10, 200, 500):
            tau = pybullet.calculateInverseDynamics(sim.model, traj.q[k].tolist(), traj.qd[k].tolist(),
                                                    traj.qdd[k].tolist(), physicsClientId=sim.model_client)
            np.testing.assert_allclose(tau, traj.tau[k], atol=0.05)


def test_sine_motions_stay_collision_free():
    with KukaSim() as sim:
        for f in (0.01, 0.05, 0.09):
            plan = motions.sine_plan(f, 10.0, sim.dt)
            heights = []
            for q in plan.q[::60]:
                sim.reset(q)
                heights.append(min(sim.end_effector_position()[2], sim.min_link_height()))
            assert min(heights) > 0.05


def test_payload_changes_dynamics_not_labels():
    (trial,) = motions.pick_and_place_dataset(trials=(0,), phase_duration=1.0)
    assert [t.phase for t in trial] == list(motions.PHASES)
    assert [t.payload for t in trial] == [0.0, 0.857, 0.857, 0.857, 0.0]
    with KukaSim() as sim:  # the unloaded model's torque misses what the loaded plant needed
        lift = trial[1]
        k = 100
        model_tau = pybullet.calculateInverseDynamics(sim.model, lift.q[k].tolist(), lift.qd[k].tolist(),
                                                      lift.qdd[k].tolist(), physicsClientId=sim.model_client)
        assert np.abs(np.array(model_tau) - lift.tau[k]).max() > 1.0
    (heavier,) = motions.pick_and_place_dataset(trials=(0,), phase_duration=1.0, object_mass=2.0)
    assert np.abs(heavier[1].tau[:, 1]).mean() > np.abs(trial[1].tau[:, 1]).mean()
    np.testing.assert_allclose(heavier[0].tau, trial[0].tau)  # reach carries nothing


def test_sensor_noise_option():
    clean = motions.sine_dataset((0.05,), duration=1.0)
    noisy = motions.sine_dataset((0.05,), duration=1.0, noise=True)
    diff = noisy[0].tau - clean[0].tau
    assert 0.05 < diff.std() < 0.2
