import json

import pytest

from fastadapt.cli import main
from fastadapt.rundir import MARKER, RunDirectory, RunDirectoryError, input_files

A = {"config": {"x": 1}, "inputs": {}}
B = {"config": {"x": 2}, "inputs": {}}


def test_files_of_a_killed_run_count_as_fastadapts_and_earlier_user_files_do_not(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        (out / "result.npz").write_text("r")
    (out / "user.txt").write_text("mine")
    killed = RunDirectory(out, A)
    killed.__enter__()  # a run that is SIGKILLed: it writes, and never reaches __exit__
    (out / "sub").mkdir()
    (out / "sub" / "checkpoint.npz").write_text("c")
    with RunDirectory(out, B, force=True):
        pass
    assert (out / "user.txt").read_text() == "mine"
    assert not (out / "result.npz").exists() and not (out / "sub").exists()
    marker = json.loads((out / MARKER).read_text())
    assert marker["identity"] == B and marker["status"] == "done"


def test_a_user_file_inside_a_fastadapt_folder_survives_force(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        (out / "data").mkdir()
        (out / "data" / "sim.npz").write_text("s")
    (out / "data" / "notes.md").write_text("mine")
    with RunDirectory(out, B, force=True):
        pass
    assert (out / "data" / "notes.md").read_text() == "mine" and not (out / "data" / "sim.npz").exists()


def test_another_identity_without_force_is_refused_and_names_the_difference(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        (out / "result.npz").write_text("r")
    with pytest.raises(RunDirectoryError, match=r"config\.x: 1 \(saved\) vs 2 \(now\)"):
        with RunDirectory(out, B):
            pass
    assert (out / "result.npz").read_text() == "r"


def test_a_run_made_before_a_key_was_added_resumes_if_the_key_keeps_its_default(tmp_path):
    """A newer fastadapt adds config key y (default 0): the old run, saved without it, resumes with y at its
    default and is refused with y changed."""
    out = tmp_path / "run"
    with RunDirectory(out, {"config": {"x": 1, "meta": {"a": 1}}, "inputs": {}}):
        (out / "checkpoint.npz").write_text("c")
    defaults = {"x": 5, "y": 0, "meta": {"a": 3, "b": 0}}
    newer = {"config": {"x": 1, "y": 0, "meta": {"a": 1, "b": 0}}, "inputs": {}, "defaults": defaults}
    with RunDirectory(out, newer) as path:
        assert (path / "checkpoint.npz").exists()
    changed = {"config": {"x": 1, "y": 0, "meta": {"a": 1, "b": 2}}, "inputs": {}, "defaults": defaults}
    with pytest.raises(RunDirectoryError, match=r"config\.meta\.b: 0 \(saved\) vs 2 \(now\)"):
        with RunDirectory(out, changed):
            pass


def test_a_failure_after_results_keeps_them_for_resuming(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with RunDirectory(out, A):
            (out / "config.json").write_text("{}")
            (out / "checkpoint.npz").write_text("c")
            raise RuntimeError("fails in epoch 3")
    assert (out / "checkpoint.npz").exists()
    assert json.loads((out / MARKER).read_text())["status"] == "failed"
    with RunDirectory(out, A) as path:  # the same command resumes
        assert (path / "checkpoint.npz").exists()


def test_an_interrupted_run_is_kept(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with RunDirectory(out, A):
            (out / "config.json").write_text("{}")
            raise KeyboardInterrupt
    assert json.loads((out / MARKER).read_text())["status"] == "interrupted"


def test_input_identity_is_the_content(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"1")
    (tmp_path / "b.npz").write_bytes(b"1")
    (tmp_path / "c.npz").write_bytes(b"2")
    a, b, c = (input_files(x=tmp_path / n)["x"] for n in ("a.npz", "b.npz", "c.npz"))
    assert a["sha256"] == b["sha256"] != c["sha256"] and a["path"] != b["path"]


def _listed_keys(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if line.startswith("  ")]


def test_keys_offers_no_key_that_does_nothing(capsys):
    assert main(["keys"]) == 0
    demo = _listed_keys(capsys.readouterr().out)
    assert "meta.epochs" in demo and "meta.loss" not in demo and "data" not in demo and "schunk_path" not in demo
    assert main(["keys", "schunk"]) == 0
    schunk = _listed_keys(capsys.readouterr().out)
    assert "schunk_path" in schunk and "trials" not in schunk and "noise" not in schunk
    assert main(["keys", "meta-train"]) == 0
    assert "loss" in _listed_keys(capsys.readouterr().out)


def test_force_restarts_a_run_with_the_same_identity(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        (out / "checkpoint.npz").write_text("damaged")
    (out / "mine.txt").write_text("keep")
    with RunDirectory(out, A, force=True) as path:
        assert not (path / "checkpoint.npz").exists() and (path / "mine.txt").read_text() == "keep"
