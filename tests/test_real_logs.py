"""Real logs as users bring them (issue 27): irregular stamps, arrays with named columns, rows without
time order, joints that barely move, a loss from another robot, and errors in physical units."""

import csv

import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.data import io
from fastadapt.data.arrays import import_arrays
from fastadapt.data.batches import Normalizer, sequential_stream
from fastadapt.data.trajectory import DataError, Dataset, Trajectory


def irregular_stamps(steps: int = 400, seed: int = 0) -> np.ndarray:
    """Stamps around 4 ms whose steps jitter by up to +-40%: most are more than 5% off the median."""
    rng = np.random.default_rng(seed)
    return np.concatenate([[0.0], np.cumsum(0.004 * (1 + rng.uniform(-0.4, 0.4, steps - 1)))])


def sine_arrays(t: np.ndarray, joints: int = 2) -> dict:
    phase = np.arange(1, joints + 1)[None, :] * t[:, None]
    return {"t": t, "q": np.sin(phase), "qd": np.arange(1, joints + 1) * np.cos(phase), "tau": 2 * np.sin(phase) + 1}


def test_an_irregular_npz_or_csv_is_refused_with_the_count_and_the_fix(tmp_path):
    t = irregular_stamps()
    arrays = sine_arrays(t)
    bad = int(np.sum(np.abs(np.diff(t) - np.median(np.diff(t))) > 0.05 * np.median(np.diff(t))))
    traj = Trajectory(t=t, q=arrays["q"], qd=arrays["qd"], qdd=np.zeros_like(arrays["q"]), tau=arrays["tau"])
    for suffix in (".npz", ".csv"):
        path = io.save(Dataset((traj,)), tmp_path / f"log{suffix}")
        with pytest.raises(DataError, match=rf"{bad} of 399 time steps are more than 5% off the median step "
                                            r"\(.* ms\).*fastadapt data import FILE OUT.npz"):
            io.load(path)


def test_import_resamples_irregular_stamps_and_derives_qdd_on_the_grid(tmp_path):
    t = irregular_stamps(1500)
    np.savez(tmp_path / "panda.npz", **sine_arrays(t))
    (traj,), notes = import_arrays(tmp_path / "panda.npz", robot="panda")
    assert any("resampled to" in note and "steps are more than 5% off the median" in note for note in notes)
    steps = np.diff(traj.t)
    assert np.allclose(steps, steps[0]) and traj.robot == "panda" and traj.ordered
    inside = slice(20, -20)  # the smoothed derivative's ends
    exact = -np.arange(1, 3) ** 2 * np.sin(np.arange(1, 3)[None, :] * traj.t[:, None])
    error = np.sqrt(np.mean((traj.qdd[inside] - exact[inside]) ** 2)) / np.sqrt(np.mean(exact[inside] ** 2))
    assert error < 0.02
    assert main(["data", "import", str(tmp_path / "panda.npz"), str(tmp_path / "out.npz")]) == 0
    assert len(io.load(tmp_path / "out.npz")[0]) == len(traj)  # the resampled file loads


def test_a_csv_with_named_columns_and_a_mat_file_import(tmp_path):
    import scipy.io

    t = 0.01 * np.arange(50)
    arrays = sine_arrays(t, joints=2)
    with open(tmp_path / "log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "q_1", "q_2", "QD1", "QD2", "tau[1]", "tau[2]"])
        for k in range(50):
            writer.writerow([t[k], *arrays["q"][k], *arrays["qd"][k], *arrays["tau"][k]])
    (from_csv,), notes = import_arrays(tmp_path / "log.csv")
    assert any("regular at 100 Hz" in n for n in notes) and any("no qdd: derived" in n for n in notes)
    np.testing.assert_allclose(from_csv.tau, arrays["tau"])
    scipy.io.savemat(tmp_path / "log.mat", {**arrays, "qdd": np.zeros((50, 2)), "notes": np.zeros(3)})
    (from_mat,), notes = import_arrays(tmp_path / "log.mat")
    np.testing.assert_allclose(from_mat.q, arrays["q"])
    np.testing.assert_array_equal(from_mat.qdd, 0)
    assert "ignored variable(s) notes (known: q, qd, qdd, tau, t)" in notes
    np.testing.assert_allclose(from_mat.t, t, atol=1e-12)


def test_bad_array_files_get_one_line_naming_the_problem(tmp_path):
    def write(name, header, rows):
        with open(tmp_path / name, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
        return tmp_path / name

    with pytest.raises(DataError, match=r"unknown column\(s\) \['force1'\]"):
        import_arrays(write("a.csv", ["q1", "qd1", "tau1", "force1"], [[0, 0, 0, 0]]))
    with pytest.raises(DataError, match=r"no 'tau' found \(found: q, qd\)"):
        import_arrays(write("b.csv", ["q1", "qd1"], [[0, 0]]))
    with pytest.raises(DataError, match=r"the q columns are numbered \[1, 3\]"):
        import_arrays(write("c.csv", ["q1", "q3", "qd1", "qd2", "tau1", "tau2"], [[0] * 6]))
    with pytest.raises(DataError, match=r"without time stamps, 'qdd' must be given"):
        import_arrays(write("d.csv", ["q1", "qd1", "tau1"], [[0, 0, 0]] * 3))
    with pytest.raises(DataError, match=r"column 'tau1', row 2: 'x' is not a number"):
        import_arrays(write("e.csv", ["t", "q1", "qd1", "tau1"], [[0, 0, 0, 0], [1, 0, 0, "x"]]))
    with pytest.raises(DataError, match=r"unknown array format '.txt'"):
        (tmp_path / "f.txt").write_text("q1\n")
        import_arrays(tmp_path / "f.txt")


def test_rows_without_time_order_meta_train_offline_but_are_refused_as_a_stream(tmp_path):
    """SARCOS-like: shuffled rows, no time column, qdd given."""
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, inverse_dynamics_task

    rng = np.random.default_rng(1)
    rows = rng.normal(size=(120, 8))  # q, qd, qdd, tau for 2 joints
    header = ["q1", "q2", "qd1", "qd2", "qdd1", "qdd2", "tau1", "tau2"]
    with open(tmp_path / "sarcos.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows.tolist()])
    dataset, notes = import_arrays(tmp_path / "sarcos.csv")
    assert not dataset.ordered and any("no time column: 120 rows kept in no time order" in n for n in notes)
    for suffix in (".npz", ".csv"):  # the flag survives a round trip through either format
        again = io.load(io.save(dataset, tmp_path / f"sarcos_saved{suffix}"))
        assert not again.ordered
        np.testing.assert_allclose(again[0].qdd, rows[:, 4:6])
    normalizer = Normalizer.fit(dataset)
    with pytest.raises(DataError, match=r"sarcos.csv: its rows have no time order \(imported without time stamps\); "
                                        r"it can meta-train a loss offline"):
        sequential_stream(dataset, normalizer, 5)
    task = inverse_dynamics_task(InverseDynamicsConfig(batch_size=10), dataset, dataset)
    assert task.train.x.shape == (120, 6)
    with pytest.raises(DataError, match=r"update=online meta-trains on streams, which need time order"):
        inverse_dynamics_task(InverseDynamicsConfig(update="online", batch_size=10, eval_steps=2), dataset, dataset)


def test_joints_that_barely_move_are_warned_about(tmp_path, capsys):
    from fastadapt.experiments.user_data import data_warnings

    t = 0.01 * np.arange(40)
    q = np.stack([np.sin(t), 3e-6 * np.sin(t)], 1)
    still = Dataset((Trajectory(t=t, q=q, qd=q, qdd=q, tau=q, dt=0.01),))
    assert data_warnings(still, "log.npz") == [
        "log.npz: joint(s) 2 (1.1e-06 rad) move less than 0.001 rad over the whole file; a model or loss fitted to "
        "it learns nothing about them, and scores on a moving stream will be meaningless"]
    assert data_warnings(Dataset((Trajectory(t=t, q=q[:, :1], qd=q[:, :1], qdd=q[:, :1], tau=q[:, :1], dt=0.01),)),
                         "x") == []
    io.save(still, tmp_path / "still.npz")
    assert main(["data", "inspect", str(tmp_path / "still.npz")]) == 0
    assert "fastadapt: warning: " in capsys.readouterr().err


def test_a_loss_records_its_robot_and_another_robots_stream_is_warned_about(tmp_path):
    import jax

    from fastadapt.experiments.user_data import robot_warnings
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, loss_robot, save_loss

    config = InverseDynamicsConfig(loss="structured")
    normalizer = Normalizer(jnp.zeros(6), jnp.ones(6), jnp.zeros(2), jnp.ones(2))
    path = save_loss(tmp_path / "loss.npz", config, config.make_loss(2).init(jax.random.PRNGKey(0)), normalizer, "schunk")
    assert loss_robot(path) == "schunk"
    t = 0.01 * np.arange(10)
    q = np.ones((10, 2))
    panda = Dataset((Trajectory(t=t, q=q, qd=q, qdd=q, tau=q, robot="panda"),))
    assert robot_warnings("schunk", panda, "stream s.npz") == [
        "the loss was meta-trained on robot 'schunk', stream s.npz is robot 'panda': its normaliser and weights are "
        "'schunk''s (same joint count, so it runs)"]
    assert robot_warnings("panda", panda, "s") == [] and robot_warnings(None, panda, "s") == []


def test_adapt_reports_nm2_and_rms_nm_per_joint_beside_normalised_units():
    import jax

    from fastadapt.adapt.online import Method, initial_models, joint_errors, online_scores
    from fastadapt.adapt.rls import RLSConfig
    from fastadapt.experiments.user_data import AdaptConfig, adapt_summary, physical_table
    from fastadapt.losses import make_loss
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig

    t = 0.01 * np.arange(60)
    arrays = sine_arrays(t)
    dataset = Dataset((Trajectory(t=t, q=arrays["q"], qd=arrays["qd"], qdd=-arrays["q"], tau=arrays["tau"]),))
    normalizer = Normalizer(jnp.zeros(6), jnp.ones(6), jnp.zeros(2), jnp.full(2, 3.0))  # y_std 3 Nm
    meta = InverseDynamicsConfig(hidden=(8,))
    loss = make_loss("structured", 2)
    config = AdaptConfig(seeds=2, rate=0.01, rls=RLSConfig(features=10))
    summary = adapt_summary(config, meta, loss, loss.init(jax.random.PRNGKey(0)), normalizer, dataset)
    assert len(summary) == 4  # the loss, MSE, RLS and linear RLS
    for name, v in summary.items():
        assert v["overall_nm2"] == pytest.approx(9.0 * v["overall"], rel=1e-5)
        assert np.mean(np.square(v["rms_nm"])) == pytest.approx(v["overall_nm2"], rel=1e-5)
    model = meta.model(2)
    starts = initial_models(model, 2, 0)
    stream = sequential_stream(dataset, normalizer, 5)
    mse = Method("mse", make_loss("mse", 2), {}, "sgd", 0.01)
    np.testing.assert_allclose(joint_errors(model, mse, starts, [stream]).mean(-1), online_scores(model, mse, starts, [stream]),
                               rtol=1e-5)
    table = physical_table(summary)
    assert table.splitlines()[0] == "| method | online MSE (normalised) | Nm^2 | RMS Nm per joint (1, 2) |"
    assert len(table.splitlines()) == 2 + len(summary)
