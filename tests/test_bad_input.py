"""Every bad input and fault of the catalogue in bad_inputs.py gives its exact error, on one line, and
leaves the user's files as they were."""

import json

import numpy as np
import pytest

from bad_inputs import all_cases, make_fixtures, meta_train, run_case, spoiled_csv, trajectory
from fastadapt import cli
from fastadapt.data import io
from fastadapt.data.trajectory import Dataset
from fastadapt.rundir import MARKER

CASES = all_cases()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return make_fixtures(tmp_path_factory.mktemp("fixtures"))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gives_its_exact_error_and_keeps_the_users_files(case, fixtures, tmp_path):
    outcome = run_case(case, fixtures, tmp_path / "work")
    assert outcome.verdict == "clear", f"{outcome.verdict}: {outcome.detail}"


def test_the_catalogue_covers_every_verb_and_file_format():
    names = " ".join(case.name for case in CASES)
    for verb in ("data inspect", "data convert", "data sine", "meta-train", "adapt", "demo", "run sim", "run schunk",
                 "lrmem", "keys", "Adapter"):
        assert verb in names
    for fmt in ("npz", "csv", "--loss", "checkpoint", "marker"):
        assert fmt in names
    assert len(CASES) >= 150


def test_main_turns_an_error_into_one_line_and_status_2(fixtures, tmp_path, capsys):
    assert cli.main(["adapt", "--loss", str(fixtures["train"]), "--stream", str(fixtures["test"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastadapt: error: ") and "not a fastadapt trained loss" in err


@pytest.mark.slow
def test_force_removes_only_what_fastadapt_wrote(fixtures, tmp_path):
    out = tmp_path / "run"
    argv = meta_train(fixtures["train"], fixtures["test"], out)
    assert cli.run(argv) == 0
    (out / "my_notes.txt").write_text("keep me")
    (out / "losses_by_me").mkdir()
    (out / "losses_by_me" / "a.txt").write_text("mine too")
    fastadapt_files = {p.name for p in out.iterdir()} - {"my_notes.txt", "losses_by_me"}
    assert {"config.json", "checkpoint.npz", "loss.npz", "history.json", MARKER} <= fastadapt_files
    # another config replaces the run, and only fastadapt's files
    assert cli.run(argv[:-1] + ["eta=0.02", "--force"]) == 0
    assert (out / "my_notes.txt").read_text() == "keep me"
    assert (out / "losses_by_me" / "a.txt").read_text() == "mine too"
    saved = json.loads((out / "config.json").read_text())
    assert saved["command"] == "fastadapt meta-train" and saved["config"]["eta"] == 0.02


def test_a_rerun_with_the_same_config_and_data_resumes_and_a_moved_copy_is_the_same_data(fixtures, tmp_path):
    out = tmp_path / "run"
    assert cli.run(meta_train(fixtures["train"], fixtures["test"], out)) == 0
    before = (out / "loss.npz").read_bytes()
    moved = tmp_path / "elsewhere.npz"
    moved.write_bytes(fixtures["train"].read_bytes())
    assert cli.run(meta_train(moved, fixtures["test"], out)) == 0  # same content: resumes, nothing to do
    assert (out / "loss.npz").read_bytes() == before


@pytest.mark.parametrize("fault", ["activation=bogus", "too short", "other joints", "diverges"])
def test_a_run_that_fails_leaves_nothing_that_blocks_the_corrected_rerun(fixtures, tmp_path, fault):
    out = tmp_path / "run"
    train, test, extra = fixtures["train"], fixtures["test"], []
    if fault == "activation=bogus":
        extra = ["activation=bogus"]
    elif fault == "too short":
        train = fixtures["short"]
    elif fault == "other joints":
        test = fixtures["three_joints"]
    else:
        extra = ["eta=1e30", "alpha=1e30"]
    assert cli.main(meta_train(train, test, out, *extra)) == 2
    assert not out.exists()
    assert cli.main(meta_train(fixtures["train"], fixtures["test"], out)) == 0


def test_a_failed_run_in_an_empty_folder_the_user_made_leaves_the_folder(fixtures, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    assert cli.main(meta_train(fixtures["short"], fixtures["test"], out)) == 2
    assert out.is_dir() and not any(out.iterdir())


def test_a_csv_with_a_byte_order_mark_is_read(fixtures, tmp_path):
    path = spoiled_csv(fixtures, tmp_path, lambda lines: lines, prefix=b"\xef\xbb\xbf")
    loaded, plain = io.load(path), io.load(fixtures["train_csv"])
    np.testing.assert_array_equal(loaded[0].tau, plain[0].tau)


def test_limits_can_be_raised_for_data_beyond_the_defaults(tmp_path, capsys):
    from fastadapt.data.trajectory import Limits

    traj = trajectory()
    path = tmp_path / "big.csv"
    io.save(Dataset((type(traj)(t=traj.t, q=traj.q, qd=traj.qd, qdd=traj.qdd, tau=traj.tau * 1e5, dt=traj.dt,
                                limits=Limits(tau=1e7)),)), path)
    assert cli.main(["data", "inspect", str(path)]) == 2
    assert "beyond the physical limit 100000 Nm" in capsys.readouterr().err
    assert cli.main(["data", "inspect", str(path), "--limit", "tau=1e7"]) == 0


def test_a_derived_acceleration_uses_the_time_stamps(tmp_path):
    """qd = cos t without qdd in the file: the loader derives qdd = -sin t with the stamps' step."""
    from bad_inputs import write_npz

    t = np.arange(300) * 0.004
    q = np.stack([np.sin(t), np.sin(2 * t)], 1)
    qd = np.stack([np.cos(t), 2 * np.cos(2 * t)], 1)
    path = write_npz(tmp_path / "a.npz", {"traj000_t": t, "traj000_q": q, "traj000_qd": qd, "traj000_tau": q,
                                          "meta": np.array(json.dumps([{"dt": 0.004}]))})
    loaded = io.load(path)[0]
    expected = np.stack([-np.sin(t), -4 * np.sin(2 * t)], 1)
    np.testing.assert_allclose(loaded.qdd[10:-10], expected[10:-10], rtol=2e-3, atol=1e-3)


def _refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def test_a_diverged_result_is_written_as_strict_json_null_with_a_diverged_flag(tmp_path):
    from fastadapt.experiments.output import finish

    metrics = {"runs": {"GD": {"final_f": float("inf"), "curve": [1.0, float("nan")]}, "MetaGD": {"final_f": 0.5}}}
    finish(tmp_path, "t", metrics, ["body"], [], log=lambda *_: None)
    saved = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=_refuse_constant)
    assert saved["runs"]["GD"] == {"final_f": None, "curve": [1.0, None]} and saved["runs"]["MetaGD"]["final_f"] == 0.5
    assert saved["diverged"] == ["runs.GD.curve", "runs.GD.final_f"]


def test_a_damaged_checkpoint_names_the_previous_one_and_following_the_hint_resumes_exactly(fixtures, tmp_path):
    """Two epochs leave checkpoint.npz (epoch 2) and checkpoint.prev.npz (epoch 1). Damage the newest:
    the error says how to resume from the previous one, and doing so gives the uninterrupted result."""
    import re
    import shutil

    from fastadapt.checkpoint import CheckpointError, read_archive

    reference, out = tmp_path / "reference", tmp_path / "run"
    argv = lambda directory: meta_train(fixtures["train"], fixtures["test"], directory, "epochs=2")
    assert cli.run(argv(reference)) == 0
    shutil.copytree(reference, out)
    (out / "loss.npz").unlink()
    data = bytearray((out / "checkpoint.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "checkpoint.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"To resume from the previous checkpoint \(epoch 1\), replace it: mv ") as caught:
        cli.run(argv(out))
    source, target = re.search(r"mv (\S+) (\S+);", str(caught.value)).groups()
    shutil.move(source, target)
    assert cli.run(argv(out)) == 0
    expected, got = read_archive(reference / "loss.npz")[0], read_archive(out / "loss.npz")[0]
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_restarting_with_force_as_the_hint_says_gives_the_uninterrupted_result(fixtures, tmp_path):
    import shutil

    from fastadapt.checkpoint import CheckpointError, read_archive

    out = tmp_path / "run"
    shutil.copytree(fixtures["run"], out)
    (out / "checkpoint.npz").write_bytes((out / "checkpoint.npz").read_bytes()[:100])
    argv = meta_train(fixtures["train"], fixtures["test"], out)
    with pytest.raises(CheckpointError, match="No whole previous checkpoint is left: restart the run with --force"):
        cli.run(argv)
    assert cli.run(argv + ["--force"]) == 0
    expected, got = read_archive(fixtures["loss"])[0], read_archive(out / "loss.npz")[0]
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


@pytest.mark.slow
def test_a_file_the_user_adds_while_meta_training_runs_survives_force(fixtures, tmp_path, monkeypatch):
    """The user writes into the run directory between two checkpoints; the next --force keeps it."""
    from fastadapt.meta import trainer

    out = tmp_path / "run"
    real_save = trainer.save_pytree

    def save_and_meanwhile_the_user_writes(path, *args, **kwargs):
        (out / "during.txt").write_text("the user's, written while the run went on")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(trainer, "save_pytree", save_and_meanwhile_the_user_writes)
    argv = meta_train(fixtures["train"], fixtures["test"], out)
    assert cli.run(argv) == 0
    monkeypatch.setattr(trainer, "save_pytree", real_save)
    owned = json.loads((out / MARKER).read_text())["owned"]
    assert "during.txt" not in owned and "loss.npz" in owned
    assert cli.run(argv[:-1] + ["eta=0.02", "--force"]) == 0
    assert (out / "during.txt").read_text() == "the user's, written while the run went on"


@pytest.mark.slow
def test_adapt_uses_the_rate_the_loss_file_carries_unless_told_otherwise(fixtures, tmp_path, capsys):
    run = tmp_path / "trained"
    assert cli.run(meta_train(fixtures["train"], fixtures["test"], run, "alpha=0.004")) == 0
    capsys.readouterr()
    assert cli.run(["adapt", "--loss", str(run / "loss.npz"), "--stream", str(fixtures["test"]), "seeds=1",
                    "--out", str(tmp_path / "a")]) == 0
    assert "structured, sgd 0.004" in capsys.readouterr().out
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["rate"] == 0.004
    assert cli.run(["adapt", "--loss", str(run / "loss.npz"), "--stream", str(fixtures["test"]), "seeds=1", "rate=0.02"]) == 0
    assert "structured, sgd 0.02" in capsys.readouterr().out
