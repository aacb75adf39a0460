"""ROS bag import: bags written with rosbags' own writers (ROS 1, ROS 2 sqlite3, ROS 2 MCAP) read back into
trajectories by joint name, in stamp order, resampled and split as documented, and bad bags refused."""

from __future__ import annotations

import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.data import io
from bags import write_joint_state_bag
from fastadapt.data.rosbag import import_bag
from fastadapt.data.trajectory import DataError

NAMES = ["shoulder", "elbow", "wrist"]


def motion(t):
    q = np.stack([np.sin(t), np.cos(2 * t), 0.5 * np.sin(3 * t)], axis=1)
    qd = np.stack([np.cos(t), -2 * np.sin(2 * t), 1.5 * np.cos(3 * t)], axis=1)
    return q, qd, 4 * q + 0.5 * qd


def bag_path(tmp_path, kind):
    return tmp_path / ("log.bag" if kind == "ros1" else f"log-{kind}")


@pytest.mark.parametrize("kind", ["ros1", "ros2", "mcap"])
def test_each_bag_format_reads_back_exactly(tmp_path, kind):
    t = 1700000000.0 + np.arange(120) * 0.01
    q, qd, tau = motion(t - t[0])
    path = write_joint_state_bag(bag_path(tmp_path, kind), t, NAMES, q, qd, tau, kind=kind)
    dataset, notes = import_bag(path)
    (traj,) = dataset
    np.testing.assert_allclose(traj.t, t - t[0], atol=1e-6)
    np.testing.assert_array_equal(traj.q, q)
    np.testing.assert_array_equal(traj.qd, qd)
    np.testing.assert_array_equal(traj.tau, tau)
    assert traj.dt == pytest.approx(0.01, rel=1e-6)
    assert any("not resampled" in note for note in notes)


def test_joints_are_taken_by_name_in_the_order_asked(tmp_path):
    t = np.arange(50) * 0.01
    q, qd, tau = motion(t)
    path = write_joint_state_bag(tmp_path / "a.bag", t, NAMES, q, qd, tau, kind="ros1")
    (traj,), _ = import_bag(path, joints=("wrist", "shoulder"))
    np.testing.assert_array_equal(traj.q, q[:, [2, 0]])
    np.testing.assert_array_equal(traj.tau, tau[:, [2, 0]])


def test_messages_are_put_in_stamp_order_and_repeats_dropped(tmp_path):
    t = np.arange(60) * 0.01
    q, qd, tau = motion(t)
    order = np.arange(60)
    order[[10, 11]] = [11, 10]  # two messages recorded out of stamp order
    order = np.insert(order, 30, 30)  # one message recorded twice
    path = write_joint_state_bag(tmp_path / "b", t[order], NAMES, q[order], qd[order], tau[order],
                                 record_times=np.arange(len(order)) * 0.01)
    (traj,), notes = import_bag(path)
    np.testing.assert_allclose(traj.t, t, atol=1e-9)
    np.testing.assert_array_equal(traj.q, q)
    assert any("out of stamp order" in n for n in notes) and any("repeated stamp" in n for n in notes)


def test_irregular_sampling_is_resampled_at_the_median_rate_and_gaps_split(tmp_path):
    rng = np.random.default_rng(0)
    steps = 0.01 * (1 + rng.uniform(-0.2, 0.2, size=199))
    t = np.concatenate([[0.0], np.cumsum(steps)])
    t[100:] += 1.0  # a one-second gap
    q, qd, tau = motion(t)
    path = write_joint_state_bag(tmp_path / "c", t, NAMES, q, qd, tau, kind="mcap")
    dataset, notes = import_bag(path)
    assert len(dataset) == 2
    median = np.median(np.diff(t)[np.diff(t) < 0.5])
    for traj in dataset:
        np.testing.assert_allclose(np.diff(traj.t), median, rtol=1e-6)  # stamps are whole nanoseconds
        # linear interpolation of smooth motions at 100 Hz: close to the true values on the new grid
        true_q, _, true_tau = motion(traj.t + t[0])
        assert np.abs(traj.q - true_q).max() < 1e-3 and np.abs(traj.tau - true_tau).max() < 5e-3
    assert dataset[1].t[0] == pytest.approx(t[100])
    assert any("split at 1 gap" in n for n in notes) and any("resampled to" in n for n in notes)
    (fixed, *_), notes = import_bag(path, rate=50.0)
    assert fixed.dt == pytest.approx(0.02) and any("--rate 50" in n for n in notes)


def test_empty_velocities_are_derived_and_efforts_from_another_topic(tmp_path):
    t = np.arange(200) * 0.005
    q, qd, tau = motion(t)
    path = write_joint_state_bag(tmp_path / "d", t, NAMES, q, kind="ros2")  # no velocity, no effort
    with pytest.raises(DataError, match=r"effort is empty in every message on '/joint_states'.*--effort-topic"):
        import_bag(path)
    # the torques on their own topic, at half the rate: interpolated onto the positions' stamps
    path = write_joint_state_bag(tmp_path / "e", t, NAMES, q, kind="ros2",
                                 more={"/effort": (t[::2], q[::2], None, tau[::2])})
    (traj,), notes = import_bag(path, effort_topic="/effort")
    np.testing.assert_allclose(traj.tau[::2], tau[::2], atol=1e-9)
    assert len(traj) == len(t) - 1  # the last position is past the last torque: dropped, not extrapolated
    assert np.abs(traj.tau - tau[:-1]).max() < 1e-3  # midpoints linearly interpolated
    inner = slice(10, -10)  # inside, the smoothed derivative of these smooth motions is close to the truth
    assert np.abs(traj.qd[inner] - qd[10:-11]).max() < 2e-3
    assert any("qd derived from positions" in n for n in notes) and any("torques from /effort" in n for n in notes)


def test_bad_bags_get_clear_errors(tmp_path):
    t = np.arange(40) * 0.01
    q, qd, tau = motion(t)
    good = write_joint_state_bag(tmp_path / "g.bag", t, NAMES, q, qd, tau, kind="ros1")
    with pytest.raises(DataError, match=r"no topic '/arm/joint_states'; the bag's topics: /joint_states "
                                        r"\(sensor_msgs/msg/JointState\)"):
        import_bag(good, topic="/arm/joint_states")
    with pytest.raises(DataError, match=r"message 0 on '/joint_states' .* has no joint\(s\) 'gripper'"):
        import_bag(good, joints=("shoulder", "gripper"))
    backwards = 100 + t
    backwards[20:] -= 2.0  # the clock jumps back two seconds
    with pytest.raises(DataError, match=r"header stamps go backwards by 1.99 s at message 20 \(t=100.190000 -> 98.200000 s\)"):
        import_bag(write_joint_state_bag(tmp_path / "h", backwards, NAMES, q, qd, tau, record_times=100 + t))
    with pytest.raises(FileNotFoundError, match="ROS bag not found"):
        import_bag(tmp_path / "missing.bag")
    (tmp_path / "junk.bag").write_bytes(b"not a bag")
    with pytest.raises(DataError, match=r"junk.bag: not a readable ROS bag"):
        import_bag(tmp_path / "junk.bag")
    with pytest.raises(DataError, match=r"--rate must be a positive number of Hz, got -5"):
        import_bag(good, rate=-5.0)


def test_cli_imports_a_ros2_bag_and_never_overwrites(tmp_path, capsys):
    t = np.arange(100) * 0.01
    q, qd, tau = motion(t)
    bag = write_joint_state_bag(tmp_path / "arm", t, NAMES, q, qd, tau, kind="mcap")
    out = tmp_path / "arm.npz"
    assert main(["data", "import", str(bag), str(out), "--topic", "/joint_states", "--joints", "elbow,wrist"]) == 0
    assert "regular at 100 Hz" in capsys.readouterr().out
    loaded = io.load(out)
    np.testing.assert_allclose(loaded[0].q, q[:, 1:])
    before = out.read_bytes()
    assert main(["data", "import", str(bag), str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
