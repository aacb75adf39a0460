import numpy as np
import pytest

from fastadapt.data import io
from fastadapt.data.batches import Normalizer, normalised_samples, sequential_stream, window_starts
from fastadapt.data.derivatives import smoothed_derivative
from fastadapt.data.schunk import load_schunk, schunk_path, split_halves
from fastadapt.data.trajectory import DataError, Dataset

from conftest import make_trajectory


def test_wrong_shape_names_field():
    with pytest.raises(DataError, match=r"field 'tau' must have shape \[T, J\] = \(40, 3\).*got \(40, 2\)"):
        make_trajectory(tau=np.zeros((40, 2)))


def test_nan_names_field_and_sample():
    q = np.zeros((40, 3))
    q[7, 1] = np.nan
    with pytest.raises(DataError, match=r"field 'q' holds 1 NaN/inf value\(s\), first at sample 7"):
        make_trajectory(q=q)


def test_non_increasing_time():
    t = np.arange(40) * 0.01
    t[10] = t[9]
    with pytest.raises(DataError, match=r"'t' must be strictly increasing; t\[10\]"):
        make_trajectory(t=t)


def test_missing_field():
    with pytest.raises(DataError, match="missing field 'qdd'"):
        make_trajectory(qdd=None)


def test_joint_count_mismatch_in_dataset():
    with pytest.raises(DataError, match="trajectory 1 has 4 joints, trajectory 0 has 3"):
        Dataset((make_trajectory(J=3), make_trajectory(J=4)))


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_round_trip(tmp_path, dataset, suffix):
    path = io.save(dataset, tmp_path / f"d{suffix}")
    loaded = io.load(path)
    assert len(loaded) == 2 and loaded.num_joints == 3
    for a, b in zip(dataset, loaded):
        for name in ("t", "q", "qd", "qdd", "tau"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.robot, a.phase, a.dt, a.payload) == (b.robot, b.phase, b.dt, b.payload)


def test_save_refuses_to_overwrite(tmp_path, dataset):
    path = io.save(dataset, tmp_path / "d.npz")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        io.save(dataset, path)
    assert path.read_bytes() == before


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found: .*nope.npz"):
        io.load(tmp_path / "nope.npz")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(DataError, match="unknown data format '.txt'"):
        io.load(tmp_path / "x.txt")


def test_npz_missing_torque_key(tmp_path):
    np.savez(tmp_path / "bad.npz", traj000_t=np.arange(5.0), traj000_q=np.zeros((5, 2)), traj000_qd=np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"traj000\]: missing field 'tau' \(key traj000_tau\)"):
        io.load(tmp_path / "bad.npz")


def test_csv_bad_header(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="header does not match"):
        io.load(tmp_path / "bad.csv")


def test_smoothed_derivative_exact_for_quadratic_velocity():
    dt = 0.004
    t = np.arange(200) * dt
    qd = np.stack([3 * t**2 - t + 2, -0.5 * t**2], axis=1)
    expected = np.stack([6 * t - 1, -1.0 * t], axis=1)
    np.testing.assert_allclose(smoothed_derivative(qd, dt), expected, atol=1e-8)


def test_smoothed_derivative_attenuates_noise():
    dt = 0.004
    rng = np.random.default_rng(0)
    qd = np.sin(np.arange(1000) * dt)[:, None] + rng.normal(0, 1e-3, (1000, 1))
    naive = np.diff(qd, axis=0) / dt
    smooth = smoothed_derivative(qd, dt)
    truth = np.cos(np.arange(1000) * dt)[:, None]
    assert np.abs(smooth - truth).std() < 0.1 * np.abs(naive - truth[:-1]).std()


def test_npz_without_accelerations_derives_them(tmp_path):
    dt = 0.004
    t = np.arange(100) * dt
    qd = np.stack([2 * t, t**2], axis=1)
    np.savez(tmp_path / "log.npz", traj000_t=t, traj000_q=np.zeros((100, 2)), traj000_qd=qd, traj000_tau=np.ones((100, 2)))
    traj = io.load(tmp_path / "log.npz")[0]
    np.testing.assert_allclose(traj.qdd, np.stack([np.full(100, 2.0), 2 * t], axis=1), atol=1e-8)
    assert traj.dt == pytest.approx(dt)


def test_normalizer_shared_scales(dataset):
    norm = Normalizer.fit(dataset)
    x, y = dataset.arrays()
    samples = normalised_samples(dataset, norm)
    np.testing.assert_allclose(np.asarray(samples.y).mean(0), 0, atol=1e-5)
    assert np.mean(np.asarray(samples.y).var(0)) == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(norm.torques(samples.y), y, atol=1e-4)


def test_windows_stay_inside_trajectories(dataset):
    starts = window_starts(dataset, 35)
    np.testing.assert_array_equal(starts, np.arange(6))  # only the first trajectory (40) fits 35
    with pytest.raises(DataError, match="41 consecutive samples"):
        window_starts(dataset, 41)


def test_sequential_stream_order(dataset):
    norm = Normalizer.fit(dataset)
    stream = sequential_stream(dataset, norm, 5)
    assert stream.batches.x.shape == (8 + 6, 5, 9)
    assert list(stream.segment) == [0] * 8 + [1] * 6
    expected = norm.inputs(dataset[1].inputs()[:5])
    np.testing.assert_allclose(stream.batches.x[8], expected, rtol=1e-5)
    assert stream.segment_names == ("p", "q")


def test_schunk_loader():
    try:
        path = schunk_path()
    except FileNotFoundError:
        pytest.skip("schunk_dev.npz not available")
    data = load_schunk(path)
    assert len(data) == 40 and data.num_joints == 6 and data[0].dt == pytest.approx(0.004)
    train, held_out = split_halves(data)
    assert len(train) == len(held_out) == 20
