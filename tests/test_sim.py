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


def test_payload_sine_motions_change_the_dynamics_mid_stream():
    """Payloads 0, m1, 0, m2 on four equal segments of one continuous sine motion: the unloaded model's
    inverse dynamics reproduces tau before the first attach and misses it while a payload is held."""
    (traj,) = motions.payload_sine_dataset((0.05,), duration=2.0, changes=3, seed=4)
    payloads = motions.payload_schedule(3, np.random.default_rng(4))
    assert payloads[0] == payloads[2] == 0.0 and all(0.3 <= m <= 1.5 for m in payloads[1::2])
    assert traj.payload == max(payloads) and traj.phase.endswith("/".join(f"{m:.2f}" for m in payloads))
    assert len(traj) == 480 and np.all(np.diff(traj.t) > 0)
    assert np.abs(np.diff(traj.q, axis=0)).max() < 0.01  # tracked straight through the changes, no reset
    plain = motions.sine_dataset((0.05,), duration=2.0)[0]
    np.testing.assert_allclose(traj.tau[:120], plain.tau[:120])  # nothing held in the first segment
    with KukaSim() as sim:
        def miss(k):
            tau = pybullet.calculateInverseDynamics(sim.model, traj.q[k].tolist(), traj.qd[k].tolist(),
                                                    traj.qdd[k].tolist(), physicsClientId=sim.model_client)
            return np.abs(np.array(tau) - traj.tau[k]).max()
        assert miss(60) < 0.05
        assert miss(180) > 1.0 and miss(420) > 1.0
    with pytest.raises(ValueError, match="at least 1 payload change, got changes=0"):
        motions.payload_sine_dataset((0.05,), duration=1.0, changes=0)


def test_the_lifting_tasks_hold_their_object_from_the_first_sample():
    """Table I's task data: each task's object is held from t = 0 (the arm has settled under it before the
    log starts), so A2's torque is flat over the first 100 ms and the tasks differ by the object's weight
    throughout; without the settling the heavy log starts with the arm sagging (a torque step of several Nm)."""
    from fastadapt.experiments.lrmem.common import REPORT_JOINT

    held = motions.lifting_datasets(trials=1, duration=3.5, noise=False)
    attached = motions.lifting_datasets(trials=1, duration=3.5, noise=False, payloads={"heavy": 1.5}, settle=0.0)
    first = {task: ds[0].tau[:100, REPORT_JOINT] for task, ds in held.items()}
    for task, torque in first.items():
        assert held[task][0].payload == motions.LIFT_PAYLOADS[task]
        assert np.ptp(torque) < 0.5, (task, np.ptp(torque))
    # 1.5 kg at about 0.6 m from A2: some 9 Nm more holding torque, from the first sample on
    shift = abs(first["heavy"][0] - first["no object"][0])
    assert 5.0 < shift < 12.0
    assert abs(first["light"][0] - first["no object"][0]) == pytest.approx(shift * 0.3 / 1.5, rel=0.2)
    assert np.ptp(attached["heavy"][0].tau[:100, REPORT_JOINT]) > 5.0  # the old data: the sag inside the window
