import json
import os
import subprocess
import sys
import textwrap

import pytest

from fastadapt.cli import main
from fastadapt.files import atomic_write_text, make_directory
from fastadapt.rundir import MARKER, RunDirectory, RunDirectoryError, input_files

A = {"config": {"x": 1}, "inputs": {}}
B = {"config": {"x": 2}, "inputs": {}}


def test_files_of_a_killed_run_count_as_fastadapts_and_earlier_user_files_do_not(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "result.npz", "r")
    (out / "user.txt").write_text("mine")
    killed = RunDirectory(out, A)
    killed.__enter__()  # a run that is SIGKILLed: it writes, and never reaches __exit__
    atomic_write_text(out / "sub" / "checkpoint.npz", "c")
    killed._recording.__exit__(None, None, None)  # (its process is gone: it records nothing more)
    killed._release()  # the kernel drops a dead process's lock
    with RunDirectory(out, B, force=True):
        pass
    assert (out / "user.txt").read_text() == "mine"
    assert not (out / "result.npz").exists() and not (out / "sub").exists()
    marker = json.loads((out / MARKER).read_text())
    assert marker["identity"] == B and marker["status"] == "done"


def test_a_user_file_inside_a_fastadapt_folder_survives_force(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        make_directory(out / "data")
        atomic_write_text(out / "data" / "sim.npz", "s")
    (out / "data" / "notes.md").write_text("mine")
    with RunDirectory(out, B, force=True):
        pass
    assert (out / "data" / "notes.md").read_text() == "mine" and not (out / "data" / "sim.npz").exists()


def test_another_identity_without_force_is_refused_and_names_the_difference(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "result.npz", "r")
    with pytest.raises(RunDirectoryError, match=r"config\.x: 1 \(saved\) vs 2 \(now\)"):
        with RunDirectory(out, B):
            pass
    assert (out / "result.npz").read_text() == "r"


def test_a_run_made_before_a_key_was_added_resumes_if_the_key_keeps_its_default(tmp_path):
    """A newer fastadapt adds config key y (default 0): the old run, saved without it, resumes with y at its
    default and is refused with y changed."""
    out = tmp_path / "run"
    with RunDirectory(out, {"config": {"x": 1, "meta": {"a": 1}}, "inputs": {}}):
        atomic_write_text(out / "checkpoint.npz", "c")
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
            atomic_write_text(out / "config.json", "{}")
            atomic_write_text(out / "checkpoint.npz", "c")
            raise RuntimeError("fails in epoch 3")
    assert (out / "checkpoint.npz").exists()
    assert json.loads((out / MARKER).read_text())["status"] == "failed"
    with RunDirectory(out, A) as path:  # the same command resumes
        assert (path / "checkpoint.npz").exists()


def test_an_interrupted_run_is_kept(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with RunDirectory(out, A):
            atomic_write_text(out / "config.json", "{}")
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
        atomic_write_text(out / "checkpoint.npz", "c")
    (out / "mine.txt").write_text("keep")
    with RunDirectory(out, A, force=True) as path:
        assert not (path / "checkpoint.npz").exists() and (path / "mine.txt").read_text() == "keep"


# --- nothing outside --out, nothing the user made ---------------------------------------------------------
def _marker_listing(out, owned):
    marker = json.loads((out / MARKER).read_text())
    marker["owned"] = owned
    (out / MARKER).write_text(json.dumps(marker))


@pytest.mark.parametrize("listed", ["../victim.txt", "VICTIM", "sub/../../victim.txt", "./result.npz", ""])
def test_force_refuses_a_marker_that_lists_a_path_outside_the_run_directory(tmp_path, listed):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    listed = str(victim) if listed == "VICTIM" else listed
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "result.npz", "r")
    _marker_listing(out, {listed: {"kind": "file", "size": 10, "sha256": "x"}})
    with pytest.raises(RunDirectoryError, match=r"\.fastadapt-run\.json is damaged \(it lists .*(relative|normalised|not a path).*deletes nothing"):
        with RunDirectory(out, B, force=True):
            pass
    assert victim.read_text() == "the user's" and (out / "result.npz").read_text() == "r"


def test_force_refuses_an_old_format_marker_listing_outside_paths(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"format": 1, "identity": A, "owned": ["../victim.txt"], "open": None}))
    with pytest.raises(RunDirectoryError, match=r"is damaged \(it lists '\.\./victim\.txt'"):
        with RunDirectory(out, B, force=True):
            pass
    assert victim.read_text() == "the user's"


def test_an_old_format_marker_resumes_and_its_files_stay_fastadapts(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_text("c")
    (out / MARKER).write_text(json.dumps({"format": 1, "identity": A, "owned": ["checkpoint.npz"], "open": None}))
    with RunDirectory(out, A) as path:
        assert (path / "checkpoint.npz").read_text() == "c"
    assert json.loads((out / MARKER).read_text())["owned"]["checkpoint.npz"]["kind"] == "file"
    with RunDirectory(out, B, force=True):
        pass
    assert not (out / "checkpoint.npz").exists()


def test_force_does_not_follow_a_symbolic_link_out_of_the_run_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "result.npz").write_text("the user's")
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "data" / "result.npz", "r")
    (out / "data" / "result.npz").unlink()
    (out / "data").rmdir()
    (out / "data").symlink_to(elsewhere)  # same relative path, now leading out
    with RunDirectory(out, B, force=True):
        pass
    assert (elsewhere / "result.npz").read_text() == "the user's"


def test_a_user_file_added_while_the_run_goes_on_survives_force(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "config.json", "{}")
        (out / "notes.txt").write_text("mine, written during the run")
        make_directory(out / "figures")
        (out / "figures" / "mine.png").write_text("mine too")
        atomic_write_text(out / "figures" / "curve.png", "fastadapt's")
    assert set(json.loads((out / MARKER).read_text())["owned"]) == {"config.json", "figures/", "figures/curve.png"}
    with RunDirectory(out, B, force=True):
        pass
    assert (out / "notes.txt").read_text() == "mine, written during the run"
    assert (out / "figures" / "mine.png").read_text() == "mine too" and not (out / "figures" / "curve.png").exists()


def test_force_moves_aside_a_file_fastadapt_wrote_that_changed_since(tmp_path, capsys):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "report.md", "fastadapt's")
        atomic_write_text(out / "metrics.json", "{}")
    (out / "report.md").write_text("edited by the user")
    with RunDirectory(out, B, force=True) as path:
        assert not (path / "report.md").exists() and not (path / "metrics.json").exists()
        assert (path / "report.kept.md").read_text() == "edited by the user"
    err = capsys.readouterr().err
    assert "--force kept 1 file(s)" in err and "report.md -> report.kept.md" in err


def test_a_run_killed_between_the_rename_and_the_record_still_owns_the_file(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with RunDirectory(out, A):
        atomic_write_text(out / "checkpoint.npz", "epoch 1")
    killed = RunDirectory(out, A)
    killed.__enter__()
    real_record = killed.record
    monkeypatch.setattr(killed, "record", lambda path, kind, pending=None: pending is None or real_record(path, kind, pending))
    atomic_write_text(out / "checkpoint.npz", "epoch 2")  # renamed; the record after the rename never happens
    killed._recording.__exit__(None, None, None)
    killed._release()
    with RunDirectory(out, B, force=True) as path:
        assert not (path / "checkpoint.npz").exists() and not (path / "checkpoint.kept.npz").exists()


def test_force_removes_a_nested_run_directory_but_not_the_users_files_in_it(tmp_path):
    out = tmp_path / "sweep"
    with RunDirectory(out, A):
        with RunDirectory(out / "points" / "p1", B):
            atomic_write_text(out / "points" / "p1" / "metrics.json", "{}")
        (out / "points" / "p1" / "mine.txt").write_text("mine")
    assert json.loads((out / MARKER).read_text())["owned"]["points/p1/"] == {"kind": "run"}
    with RunDirectory(out, B, force=True):
        pass
    assert (out / "points" / "p1" / "mine.txt").read_text() == "mine"
    assert not (out / "points" / "p1" / "metrics.json").exists() and not (out / "points" / "p1" / MARKER).exists()


def test_a_second_run_into_the_same_directory_is_refused_with_the_first_ones_pid(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from fastadapt.rundir import RunDirectory
        with RunDirectory({str(out)!r}, {A!r}):
            print("open", flush=True)
            sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(RunDirectoryError, match=rf"is in use by another fastadapt run \(pid {holder.pid}, started"):
            with RunDirectory(out, A):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with RunDirectory(out, A) as path:  # free again once the first has finished
        assert path == out


def test_atomic_writes_honour_the_umask_and_name_the_users_path(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert (os.stat(path).st_mode & 0o777) == 0o644
    with pytest.raises(OSError) as caught:
        atomic_write_text("/sys/fastadapt-x.txt", "x")
    assert caught.value.filename == "/sys/fastadapt-x.txt"
