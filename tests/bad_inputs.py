"""A catalogue of bad inputs and faults, each with the exact error it must give.

Used by ``tests/test_bad_input.py`` (one test per case) and ``benchmarks/reliability.py`` (the counts in
docs/RESULTS.md). A case runs the command line in-process through :func:`fastadapt.cli.run` (which lets
errors propagate; ``main`` turns each of :data:`fastadapt.cli.USER_ERRORS` into one line and status 2)
or calls the library, inside a folder holding the user's files, and is judged:

* ``clear``: the expected error class, a message matching the expected pattern, on one line;
* ``wrong diagnosis``: a user error, but another class or message;
* ``traceback``: an exception ``main`` does not turn into a message;
* ``silent``: no error at all;
* ``hang``: still running after ``timeout`` seconds (a SIGALRM ends it, in the main thread only);
* ``files lost``: any file the user had before the command changed or vanished (judged first);
* ``wrote outside``: a file or folder appeared beside the case's folder (outside its --out).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io as text_io
import json
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from fastadapt import cli
from fastadapt.adapt.adapter import AdapterClosedError
from fastadapt.adapt.update_process import UpdateProcessError
from fastadapt.checkpoint import CheckpointError
from fastadapt.data import io
from fastadapt.data.trajectory import DataError, Dataset, Trajectory
from fastadapt.config import ConfigError
from fastadapt.rundir import MARKER, RunDirectoryError

J = 2
TINY_META = ["epochs=1", "batch_size=16", "batches_per_epoch=2", "iters_max=2", "eval_steps=2", "eval_seeds=1",
             "eval_points=64", "hidden=8"]


# --- the user's good files ---------------------------------------------------------------------------------
def trajectory(T=120, seed=0, joints=J, dt=0.01):
    rng = np.random.default_rng(seed)
    t = np.arange(T) * dt
    q = np.sin(np.outer(t, np.arange(1, joints + 1))) + 0.01 * rng.normal(size=(T, joints))
    qd = np.gradient(q, dt, axis=0)
    qdd = np.gradient(qd, dt, axis=0)
    return Trajectory(t=t, q=q, qd=qd, qdd=qdd, tau=2 * q + 0.1 * qdd, robot="toy", dt=dt, phase=f"p{seed}")


def make_fixtures(root: Path) -> dict[str, Path]:
    """Good files every case starts from, and a trained loss (one tiny meta-training run)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "train": io.save(Dataset(tuple(trajectory(seed=s) for s in range(3))), root / "train.npz", overwrite=True),
        "test": io.save(Dataset(tuple(trajectory(seed=s) for s in range(3, 5))), root / "test.npz", overwrite=True),
        "train_csv": io.save(Dataset((trajectory(T=40, seed=7),)), root / "train.csv", overwrite=True),
        "three_joints": io.save(Dataset((trajectory(seed=8, joints=3),)), root / "three.npz", overwrite=True),
        "short": io.save(Dataset((trajectory(T=10, seed=9),)), root / "short.npz", overwrite=True),
    }
    run = root / "trained"
    if not (run / "loss.npz").exists():
        shutil.rmtree(run, ignore_errors=True)
        cli.run(["meta-train", "--train", str(files["train"]), "--test", str(files["test"]), "--out", str(run),
                 "--no-progress", "loss=structured", *TINY_META])
    files["run"] = run
    files["loss"] = run / "loss.npz"
    return files


# --- ways to spoil a file -------------------------------------------------------------------------------------
def npz_arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def write_npz(path, arrays) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def spoiled_npz(fx, work: Path, name="bad.npz", meta=None, **changes) -> Path:
    """The good meta-train file with arrays replaced (None removes one) or its meta edited."""
    arrays = npz_arrays(fx["train"])
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    if meta is not None:
        arrays["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    return write_npz(work / name, arrays)


def with_meta(fx, index: int, **fields) -> list:
    meta = json.loads(str(npz_arrays(fx["train"])["meta"]))
    meta[index].update(fields)
    return meta


def spoiled_csv(fx, work: Path, edit: Callable[[list[str]], list[str]], name="bad.csv", prefix: bytes = b"") -> Path:
    lines = Path(fx["train_csv"]).read_text().splitlines()
    path = work / name
    path.write_bytes(prefix + ("\n".join(edit(lines)) + "\n").encode())
    return path


def set_cell(row: int, column: int, value: str):
    def edit(lines):
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
        return lines
    return edit


def truncated(source: Path, work: Path, name: str, fraction=0.5) -> Path:
    data = Path(source).read_bytes()
    (work / name).write_bytes(data[: int(len(data) * fraction)])
    return work / name


def bit_flipped(source: Path, work: Path, name: str, position=0.5) -> Path:
    data = bytearray(Path(source).read_bytes())
    data[int(len(data) * position)] ^= 0x10
    (work / name).write_bytes(bytes(data))
    return work / name


def empty(work: Path, name: str) -> Path:
    (work / name).write_bytes(b"")
    return work / name


def copied_run(fx, work: Path) -> Path:
    target = work / "run"
    shutil.copytree(fx["run"], target)
    return target


def foreign_project(work: Path) -> Path:
    """A user's folder that happens to hold a config.json (the --force data-loss report)."""
    project = work / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text("{}")
    (project / "src" / "main.py").write_text("print('mine')\n")
    return project


# --- the catalogue ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    error: type
    message: str
    argv: Callable | None = None  # (fixtures, work) -> list of CLI arguments
    call: Callable | None = None  # (fixtures, work) -> anything; the library instead of the CLI
    group: str = ""


def meta_train(train, test, out, *extra):
    return ["meta-train", "--train", str(train), "--test", str(test), "--out", str(out), "--no-progress",
            "loss=structured", *TINY_META, *extra]


def _data_file_faults():
    """(name, error, message, make(fx, work) -> path) for data files; each is run through every verb."""
    meta_json = "not json {"
    return [
        ("missing", FileNotFoundError, r"data file not found", lambda fx, w: w / "nope.npz"),
        ("directory", DataError, r"not a file", lambda fx, w: (w / "d.npz").mkdir() or w / "d.npz"),
        ("unknown extension", DataError, r"unknown data format '\.txt'", lambda fx, w: (w / "d.txt").write_text("1") and w / "d.txt"),
        ("empty npz", DataError, r"not a readable \.npz", lambda fx, w: empty(w, "e.npz")),
        ("truncated npz", DataError, r"(not a readable|damaged) \.npz", lambda fx, w: truncated(fx["train"], w, "t.npz")),
        ("bit-flipped npz", DataError, r"damaged \.npz|not a readable", lambda fx, w: bit_flipped(fx["train"], w, "f.npz")),
        ("plain .npy as npz", DataError, r"single array", lambda fx, w: (np.save(w / "a.npy", np.zeros(3)), shutil.move(w / "a.npy", w / "a.npz"))[1]),
        ("NaN torque", DataError, r"field 'tau' holds 1 NaN/inf value\(s\), first at sample 3",
         lambda fx, w: spoiled_npz(fx, w, traj000_tau=_poke(npz_arrays(fx["train"])["traj000_tau"], 3, np.nan))),
        ("1e30 torque", DataError, r"traj001\]: field 'tau' = 1e\+30 Nm at sample 5, joint 2 is beyond the physical limit",
         lambda fx, w: spoiled_npz(fx, w, traj001_tau=_poke(npz_arrays(fx["train"])["traj001_tau"], 5, 1e30, 1))),
        ("1e9 velocity", DataError, r"field 'qd' = 1e\+09 rad/s at sample 2",
         lambda fx, w: spoiled_npz(fx, w, traj000_qd=_poke(npz_arrays(fx["train"])["traj000_qd"], 2, 1e9))),
        ("dt 240x off", DataError, r"dt = 2\.4 s disagrees with the time stamps, whose median step is 0\.01 s",
         lambda fx, w: spoiled_npz(fx, w, meta=with_meta(fx, 1, dt=2.4))),
        ("dt NaN", DataError, r"dt must be a finite number of seconds > 0, got nan",
         lambda fx, w: spoiled_npz(fx, w, meta=with_meta(fx, 0, dt=float("nan")))),
        ("dt negative", DataError, r"dt must be a finite number of seconds > 0, got -0\.01",
         lambda fx, w: spoiled_npz(fx, w, meta=with_meta(fx, 0, dt=-0.01))),
        ("dt a string", DataError, r"dt must be a number of seconds, got 'fast'",
         lambda fx, w: spoiled_npz(fx, w, meta=with_meta(fx, 0, dt="fast"))),
        ("negative payload", DataError, r"payload must be a finite mass >= 0 kg, got -1",
         lambda fx, w: spoiled_npz(fx, w, meta=with_meta(fx, 2, payload=-1))),
        ("malformed meta JSON", DataError, r"bad\.npz: array 'meta' is not valid JSON", lambda fx, w: spoiled_npz(fx, w, meta=meta_json)),
        ("meta not a list", DataError, r"'meta' must be a JSON list", lambda fx, w: spoiled_npz(fx, w, meta={"dt": 1})),
        ("meta count", DataError, r"'meta' describes 2 trajectories, found 3",
         lambda fx, w: spoiled_npz(fx, w, meta=with_meta(fx, 0)[:2])),
        ("wrong shape", DataError, r"field 'tau' must have shape \[T, J\] = \(120, 2\).*got \(120, 3\)",
         lambda fx, w: spoiled_npz(fx, w, traj000_tau=np.zeros((120, 3)))),
        ("missing torque", DataError, r"missing field 'tau' \(key traj002_tau\)", lambda fx, w: spoiled_npz(fx, w, traj002_tau=None)),
        ("unexpected key", DataError, r"unexpected key 'torques'", lambda fx, w: spoiled_npz(fx, w, torques=np.zeros(3))),
        ("time backwards", DataError, r"'t' must be strictly increasing; t\[7\]",
         lambda fx, w: spoiled_npz(fx, w, traj000_t=_poke(npz_arrays(fx["train"])["traj000_t"], 7, 0.0))),
        ("strings as positions", DataError, r"field 'q' holds <U1 values, expected numbers",
         lambda fx, w: spoiled_npz(fx, w, traj000_q=np.full((120, 2), "a"))),
        ("no trajectories", DataError, r"no trajectories found", lambda fx, w: write_npz(w / "none.npz", {"meta": np.array("[]")})),
        ("empty csv", DataError, r"empty file, expected a header row", lambda fx, w: empty(w, "e.csv")),
        ("csv bad header", DataError, r"header does not match", lambda fx, w: spoiled_csv(fx, w, lambda l: ["a,b"] + l[1:])),
        ("csv header only", DataError, r"no data rows", lambda fx, w: spoiled_csv(fx, w, lambda l: l[:1])),
        ("csv non-numeric value", DataError, r"line 4, column 'q1': 'abc' is not a number", lambda fx, w: spoiled_csv(fx, w, set_cell(3, 6, "abc"))),
        ("csv non-numeric payload on a later row", DataError, r"line 6: column 'payload' is 'heavy' but line 2",
         lambda fx, w: spoiled_csv(fx, w, set_cell(5, 3, "heavy"))),
        ("csv dt changes mid-trajectory", DataError, r"line 9: column 'dt' is '0.02'", lambda fx, w: spoiled_csv(fx, w, set_cell(8, 4, "0.02"))),
        ("csv dt NaN", DataError, r"dt must be a finite number of seconds > 0, got nan",
         lambda fx, w: spoiled_csv(fx, w, lambda l: l[:1] + [_cell(r, 4, "nan") for r in l[1:]])),
        ("csv dt negative", DataError, r"dt must be a finite number of seconds > 0, got -0\.01",
         lambda fx, w: spoiled_csv(fx, w, lambda l: l[:1] + [_cell(r, 4, "-0.01") for r in l[1:]])),
        ("csv short row", DataError, r"line 3 has 5 values, expected", lambda fx, w: spoiled_csv(fx, w, lambda l: l[:2] + ["0,toy,p7,0,0.01"] + l[3:])),
        ("csv not UTF-8", DataError, r"not a UTF-8 text file", lambda fx, w: (w / "b.csv").write_bytes(b"\xff\xfe\x00garbage\x81") and w / "b.csv"),
        ("csv 1e30 torque", DataError, r"field 'tau' = 1e\+30 Nm at sample 2, joint 1",
         lambda fx, w: spoiled_csv(fx, w, set_cell(3, 12, "1e30"))),
    ]


def _poke(array, row, value, column=0):
    """A float copy of ``array`` with one entry set (``[row]`` of a vector, ``[row, column]`` of a matrix)."""
    array = np.array(array, dtype=np.float64)
    array[(row,) if array.ndim == 1 else (row, column)] = value
    return array


def _cell(line: str, column: int, value: str) -> str:
    cells = line.split(",")
    cells[column] = value
    return ",".join(cells)


def _data_cases() -> list[Case]:
    cases = []
    for name, error, message, make in _data_file_faults():
        cases.append(Case(f"data inspect: {name}", error, message, lambda fx, w, make=make: ["data", "inspect", str(make(fx, w))]))
        cases.append(Case(f"data convert: {name}", error, message,
                          lambda fx, w, make=make: ["data", "convert", str(make(fx, w)), str(w / "out.csv")]))
        cases.append(Case(f"meta-train --train: {name}", error, message,
                          lambda fx, w, make=make: meta_train(make(fx, w), fx["test"], w / "run")))
        cases.append(Case(f"adapt --stream: {name}", error, message,
                          lambda fx, w, make=make: ["adapt", "--loss", str(fx["loss"]), "--stream", str(make(fx, w))]))
    return cases


def _loss_file_cases() -> list[Case]:
    def adapt(make):
        return lambda fx, w: ["adapt", "--loss", str(make(fx, w)), "--stream", str(fx["test"])]

    def unknown_field(fx, w):
        stored = npz_arrays(fx["loss"])
        meta = json.loads(str(stored["__metadata__"]))
        meta["config"]["colour"] = "blue"
        stored["__metadata__"] = np.array(json.dumps(meta))
        return write_npz(w / "loss.npz", stored)

    def nan_params(fx, w):
        from fastadapt.tasks.inverse_dynamics import load_loss, save_loss

        config, loss, params, normalizer = load_loss(fx["loss"])
        params = {"w": np.full_like(np.asarray(params["w"]), np.nan)}
        return save_loss(w / "loss.npz", config, params, normalizer)

    return [
        Case("adapt --loss: missing", FileNotFoundError, r"trained loss not found", adapt(lambda fx, w: w / "none.npz")),
        Case("adapt --loss: empty", CheckpointError, r"loss\.npz: damaged or not an \.npz", adapt(lambda fx, w: empty(w, "loss.npz"))),
        Case("adapt --loss: truncated", CheckpointError, r"loss\.npz: damaged", adapt(lambda fx, w: truncated(fx["loss"], w, "loss.npz"))),
        Case("adapt --loss: bit-flipped", CheckpointError, r"loss\.npz: (damaged|entry .* does not match its checksum)",
             adapt(lambda fx, w: bit_flipped(fx["loss"], w, "loss.npz", 0.3))),
        Case("adapt --loss: a data file", CheckpointError, r"train\.npz: not a fastadapt trained loss \(no '__metadata__'",
             adapt(lambda fx, w: fx["train"])),
        Case("adapt --loss: unknown config field", CheckpointError, r"unknown loss config field\(s\) \['colour'\]", adapt(unknown_field)),
        Case("adapt --loss: NaN parameters", CheckpointError, r"entry '\['loss_params'\]\['w'\]' holds NaN/inf", adapt(nan_params)),
        Case("adapt --loss: a directory", CheckpointError, r"not a file", adapt(lambda fx, w: fx["run"])),
        Case("adapt: stream with other joints", DataError, r"has 3 joints but the model/loss expects 2",
             lambda fx, w: ["adapt", "--loss", str(fx["loss"]), "--stream", str(fx["three_joints"])]),
    ]


def _checkpoint_cases() -> list[Case]:
    def resume_with(damage):
        def argv(fx, w):
            run = copied_run(fx, w)
            damage(run)
            return meta_train(fx["train"], fx["test"], run)
        return argv

    def flip(path):
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0x04
        path.write_bytes(bytes(data))

    return [
        Case("meta-train resume: truncated checkpoint", CheckpointError,
             r"checkpoint\.npz: damaged.*No whole previous checkpoint is left: restart the run with --force",
             resume_with(lambda run: truncated(run / "checkpoint.npz", run, "checkpoint.npz", 0.6))),
        Case("meta-train resume: bit-flipped checkpoint", CheckpointError, r"checkpoint\.npz: .*(damaged|checksum).*--force",
             resume_with(lambda run: flip(run / "checkpoint.npz"))),
        Case("meta-train resume: empty checkpoint", CheckpointError, r"checkpoint\.npz: damaged",
             resume_with(lambda run: empty(run, "checkpoint.npz"))),
        Case("meta-train resume: damaged marker", RunDirectoryError, r"\.fastadapt-run\.json is damaged",
             resume_with(lambda run: (run / MARKER).write_text("{"))),
    ]


def _run_directory_cases() -> list[Case]:
    def file_out(fx, w):
        (w / "notes.txt").write_text("mine")
        return w / "notes.txt"

    other_train = lambda fx, w: io.save(Dataset((trajectory(seed=11), trajectory(seed=12))), w / "other.npz")
    return [
        Case("meta-train --out: an existing file", RunDirectoryError, r"notes\.txt is a file, not a directory",
             lambda fx, w: meta_train(fx["train"], fx["test"], file_out(fx, w))),
        Case("demo --out: an existing file", RunDirectoryError, r"is a file, not a directory",
             lambda fx, w: ["demo", "--quick", "--out", str(file_out(fx, w))]),
        Case("lrmem --out: an existing file", RunDirectoryError, r"is a file, not a directory",
             lambda fx, w: ["lrmem", "rosenbrock", "--out", str(file_out(fx, w))]),
        Case("adapt --out: an existing file", RunDirectoryError, r"is a file, not a directory",
             lambda fx, w: ["adapt", "--loss", str(fx["loss"]), "--stream", str(fx["test"]), "seeds=1", "--out", str(file_out(fx, w))]),
        Case("meta-train --out: unwritable (/sys)", RunDirectoryError, r"cannot create run directory /sys/fastadapt-x",
             lambda fx, w: meta_train(fx["train"], fx["test"], "/sys/fastadapt-x")),
        Case("demo --out: unwritable (/sys)", RunDirectoryError, r"cannot create run directory /sys/fastadapt-x",
             lambda fx, w: ["demo", "--quick", "--out", "/sys/fastadapt-x"]),
        Case("lrmem --out: unwritable (/sys)", RunDirectoryError, r"cannot create run directory /sys/fastadapt-x",
             lambda fx, w: ["lrmem", "rosenbrock", "--out", "/sys/fastadapt-x"]),
        Case("data convert OUT: unwritable (/sys)", PermissionError, r"Operation not permitted|Permission denied",
             lambda fx, w: ["data", "convert", str(fx["train"]), "/sys/fastadapt-x/out.npz"]),
        Case("data convert OUT: a directory", DataError, r"is a directory",
             lambda fx, w: ["data", "convert", str(fx["train"]), str((w / "dir.npz").mkdir() or w / "dir.npz")]),
        Case("data convert OUT: unknown format", DataError, r"unknown data format '\.h5'",
             lambda fx, w: ["data", "convert", str(fx["train"]), str(w / "out.h5")]),
        Case("data convert OUT: exists", FileExistsError, r"exists; pass --force",
             lambda fx, w: ["data", "convert", str(fx["train"]), str(shutil.copy(fx["test"], w / "mine.npz"))]),
        Case("data sine OUT: exists", FileExistsError, r"exists; pass --force",
             lambda fx, w: ["data", "sine", str(shutil.copy(fx["test"], w / "mine.npz"))]),
        Case("--force on a folder fastadapt did not make", RunDirectoryError,
             r"project exists and is not a fastadapt run directory .*with or without --force",
             lambda fx, w: meta_train(fx["train"], fx["test"], foreign_project(w), "--force")),
        Case("--out a non-empty folder fastadapt did not make", RunDirectoryError, r"not a fastadapt run directory",
             lambda fx, w: ["demo", "--quick", "--out", str(foreign_project(w))]),
        Case("meta-train into a run on other data", RunDirectoryError,
             r"holds a fastadapt run with another config or data \(inputs\.train: ",
             lambda fx, w: meta_train(other_train(fx, w), fx["test"], copied_run(fx, w))),
        Case("meta-train into a run with another config", RunDirectoryError,
             r"another config or data \(config\.meta_train\.eta: 0\.01 \(saved\) vs 0\.02 \(now\)",
             lambda fx, w: meta_train(fx["train"], fx["test"], copied_run(fx, w), "eta=0.02")),
    ]


def _config_cases() -> list[Case]:
    mt = lambda *extra: (lambda fx, w: meta_train(fx["train"], fx["test"], w / "run", *extra))
    adapt = lambda *extra: (lambda fx, w: ["adapt", "--loss", str(fx["loss"]), "--stream", str(fx["test"]), *extra])
    demo = lambda *extra: (lambda fx, w: ["demo", "--quick", "--out", str(w / "run"), *extra])
    lrmem = lambda name, *extra: (lambda fx, w: ["lrmem", name, "--out", str(w / "r"), *extra])
    return [
        Case("demo meta.loss=bogus (a key that does nothing)", ConfigError, r"'meta\.loss' has no effect here", demo("meta.loss=bogus")),
        Case("demo data=schunk (set by the command)", ConfigError, r"'data' has no effect here", demo("data=schunk")),
        Case("run sim schunk_path=...", ConfigError, r"'schunk_path' has no effect here",
             lambda fx, w: ["run", "sim", "--out", str(w / "r"), "schunk_path=x.npz"]),
        Case("run schunk trials=0", ConfigError, r"'trials' has no effect here",
             lambda fx, w: ["run", "schunk", "--out", str(w / "r"), "trials=0"]),
        Case("run schunk: missing file", FileNotFoundError, r"data file not found",
             lambda fx, w: ["run", "schunk", "--out", str(w / "r"), f"schunk_path={w / 'none.npz'}"]),
        Case("demo: typo in a key", ConfigError, r"unknown config key 'meta\.epoch'; did you mean 'meta\.epochs'", demo("meta.epoch=3")),
        Case("demo: a key without value", ConfigError, r"'epochs': expected key=value", demo("epochs")),
        Case("demo: a group as a key", ConfigError, r"'meta' is a group", demo("meta=3")),
        Case("demo online.alpha=inf", ConfigError, r"'online\.alpha=inf': expected a finite number", demo("online.alpha=inf")),
        Case("demo online.seeds=0", ConfigError, r"'online\.seeds=0': config field 'seeds' must be an integer >= 1", demo("online.seeds=0")),
        Case("demo meta.hidden=0", ConfigError, r"'hidden' must be an integer >= 1", demo("meta.hidden=0")),
        Case("demo losses= (none)", ConfigError, r"'losses' must not be empty", demo("losses=")),
        Case("demo trials=5", ConfigError, r"'trials' must be distinct pick-and-place trials among 0, 1, 2", demo("trials=5")),
        Case("demo online.sgd_grid=-1", ConfigError, r"'sgd_grid' must be a finite number > 0", demo("online.sgd_grid=-1,0.1")),
        Case("meta-train activation=bogus", ConfigError, r"unknown activation 'bogus'", mt("activation=bogus")),
        Case("meta-train loss=bogus", ConfigError, r"unknown loss 'bogus'", mt("loss=bogus")),
        Case("meta-train loss=mse (nothing to learn)", ValueError, r"loss 'mse' has no parameters to meta-train", mt("loss=mse")),
        Case("meta-train epochs=0", ConfigError, r"'epochs' must be an integer >= 1", mt("epochs=0")),
        Case("meta-train batch_size=15 (odd)", ConfigError, r"batch_size must be even", mt("batch_size=15")),
        Case("meta-train eta=-1", ConfigError, r"'eta' must be a finite number > 0", mt("eta=-1")),
        Case("meta-train pretrain_steps=10 without start=pretrained", ConfigError,
             r"'pretrain_steps' has no effect here: it is used with start=pretrained only", mt("pretrain_steps=10")),
        Case("demo meta.pretrain_rate=0.1 without meta.start=pretrained", ConfigError,
             r"'meta\.pretrain_rate' has no effect here", demo("meta.pretrain_rate=0.1")),
        Case("lrmem digits lstm_rounds=3 with lstm=false", ConfigError, r"'lstm_rounds' has no effect here",
             lrmem("digits", "lstm=false", "lstm_rounds=3")),
        Case("meta-train meta_optimizer=rmsprop", ConfigError, r"unknown meta optimizer 'rmsprop'", mt("meta_optimizer=rmsprop")),
        Case("meta-train: data too short for a batch", DataError, r"no trajectory has the 16 consecutive samples",
             lambda fx, w: meta_train(fx["short"], fx["test"], w / "run")),
        Case("meta-train: test file with other joints", DataError, r"meta-test data has 3 joints but the model/loss expects 2",
             lambda fx, w: meta_train(fx["train"], fx["three_joints"], w / "run")),
        Case("meta-train --limit bogus", DataError, r"--limit 'force=1': expected QUANTITY=VALUE",
             mt("--limit", "force=1")),
        Case("meta-train --limit tau=-1", DataError, r"limit 'tau' must be a finite number > 0",
             mt("--limit", "tau=-1")),
        Case("meta-train --limit tau=abc", DataError, r"'abc' is not a number",
             mt("--limit", "tau=abc")),
        Case("meta-train --limit tau=1 (data beyond it)", DataError, r"field 'tau' = .* beyond the physical limit 1 Nm",
             mt("--limit", "tau=1")),
        Case("adapt rate=-1", ConfigError, r"'rate' must be a finite number > 0", adapt("rate=-1")),
        Case("adapt rate=nan", ConfigError, r"expected a finite number", adapt("rate=nan")),
        Case("adapt seeds=0", ConfigError, r"'seeds' must be an integer >= 1", adapt("seeds=0")),
        Case("adapt batch_size=0", ConfigError, r"'batch_size' must be an integer >= 1", adapt("batch_size=0")),
        Case("adapt batch_size=500 (longer than the stream's trajectories)", DataError, r"shorter than one batch of 500",
             adapt("batch_size=500")),
        Case("lrmem rosenbrock steps=0", ConfigError, r"'steps' must be an integer >= 1",
             lrmem("rosenbrock", "steps=0")),
        Case("lrmem rosenbrock snapshot_fractions=-0.5,2", ConfigError, r"'snapshot_fractions' must lie in \[0, 1\]",
             lrmem("rosenbrock", "snapshot_fractions=-0.5,2")),
        Case("lrmem id-online figure_eta not among etas", ConfigError, r"'figure_eta' must be one of etas",
             lrmem("id-online", "figure_eta=0.5")),
        Case("lrmem id-online methods=RMSprop", ConfigError, r"'methods': unknown value 'RMSprop'",
             lrmem("id-online", "methods=RMSprop")),
        Case("lrmem id-online settle=-1", ConfigError, r"'settle'",
             lrmem("id-online", "settle=-1")),
        Case("lrmem digits pairs=1-1", ConfigError, r"two different digits",
             lrmem("digits", "pairs=1-1")),
        Case("lrmem digits: missing MNIST folder", FileNotFoundError, r"MNIST directory not found",
             lambda fx, w: lrmem("digits", f"source={w / 'mnist'}")(fx, w)),
        Case("lrmem id-batch memory_rate=-1", ConfigError, r"'memory_rate' must be a finite number >= 0",
             lrmem("id-batch", "memory_rate=-1")),
        Case("keys: unknown experiment", ConfigError, r"unknown experiment 'bogus'", lambda fx, w: ["keys", "bogus"]),
    ]


def _adapter_cases() -> list[Case]:
    def adapter(**kwargs):
        def call(fx, w):
            from fastadapt.adapt.adapter import Adapter

            return Adapter.from_loss_file(fx["loss"], **kwargs)
        return call

    def tick(q, qd, qdd, tau=None):
        def call(fx, w):
            from fastadapt.adapt.adapter import Adapter

            a = Adapter.from_loss_file(fx["loss"])
            return a.observe(q, qd, qdd, tau) if tau is not None else a.predict(q, qd, qdd)
        return call

    return [
        Case("Adapter learning_rate=nan", ValueError, r"learning_rate must be a finite number > 0, got nan", call=adapter(learning_rate=float("nan"))),
        Case("Adapter learning_rate=inf", ValueError, r"learning_rate must be a finite number > 0, got inf", call=adapter(learning_rate=float("inf"))),
        Case("Adapter learning_rate=-1", ValueError, r"learning_rate must be a finite number > 0, got -1", call=adapter(learning_rate=-1.0)),
        Case("Adapter learning_rate='fast'", ValueError, r"learning_rate must be a finite number > 0, got 'fast'", call=adapter(learning_rate="fast")),
        Case("Adapter batch_size=0", ValueError, r"batch_size must be an integer >= 1, got 0", call=adapter(batch_size=0)),
        Case("Adapter batch_size=2.5", ValueError, r"batch_size must be an integer >= 1, got 2\.5", call=adapter(batch_size=2.5)),
        Case("Adapter optimizer='rmsprop'", ValueError, r"unknown optimizer 'rmsprop'", call=adapter(optimizer="rmsprop")),
        Case("Adapter.predict: 3 joints for 2", DataError, r"q has 3 joints, the adapter's model has 2", call=tick([0, 0, 0], [0, 0], [0, 0])),
        Case("Adapter.predict: NaN", DataError, r"qd holds NaN/inf", call=tick([0, 0], [0, np.nan], [0, 0])),
        Case("Adapter.predict: 1e9 rad/s", DataError, r"qd = .* is beyond the physical limit 1000 rad/s", call=tick([0, 0], [1e9, 0], [0, 0])),
        Case("Adapter.predict: text", DataError, r"q must be 2 real numbers, got text", call=tick(["a", "b"], [0, 0], [0, 0])),
        Case("Adapter.observe: 1e30 Nm", DataError, r"tau = .* is beyond the physical limit 100000 Nm", call=tick([0, 0], [0, 0], [0, 0], [1e30, 0])),
        Case("Adapter.observe: inf torque", DataError, r"tau holds NaN/inf", call=tick([0, 0], [0, 0], [0, 0], [np.inf, 0])),
    ]


def text_file(name: str, content: str):
    def make(w):
        (w / name).write_text(content)
        return w / name
    return make


def mat_file(name: str, **variables):
    def make(w):
        import scipy.io

        scipy.io.savemat(w / name, variables)
        return w / name
    return make


def irregular_npz(w: Path) -> Path:
    """A data file in fastadapt's layout whose stamps jitter by +-30%."""
    t = np.concatenate([[0.0], np.cumsum(0.01 * (1 + 0.3 * np.sin(np.arange(29) * 1.7)))])
    q = np.stack([np.sin(t), np.cos(t)], 1)
    return io.save(Dataset((Trajectory(t=t, q=q, qd=q, qdd=q, tau=q),)), w / "irregular.npz")


def unordered_npz(w: Path) -> Path:
    """Rows in no time order (as imported without a time column) with the fixture loss's joint count."""
    q = np.random.default_rng(0).normal(size=(40, J))
    traj = Trajectory(t=np.arange(40.0), q=q, qd=q, qdd=q, tau=q, dt=1.0, ordered=False)
    return io.save(Dataset((traj,)), w / "unordered.npz")


def _bag_config_sweep_cases() -> list[Case]:
    """ROS bags (written with rosbags' writers), saved configs given to --config, and sweeps."""
    from bags import write_joint_state_bag

    def bag(name, kind="ros2", stamps=None, names=("a", "b"), effort=True, **kwargs):
        def make(w):
            t = np.arange(30) * 0.01 + 50 if stamps is None else stamps
            q = np.stack([np.sin(t), np.cos(t)], axis=1)
            return write_joint_state_bag(w / name, t, list(names), q, q, q if effort else None, kind=kind, **kwargs)
        return make

    def imp(make, *extra):
        return lambda fx, w: ["data", "import", str(make(w)), str(w / "out.npz"), *extra]

    def saved(content, name="config.json"):
        def make(w):
            (w / name).write_text(content if isinstance(content, str) else json.dumps(content))
            return w / name
        return make

    backwards = np.arange(30) * 0.01 + 50
    backwards[15:] -= 1.0
    sweep = lambda *extra: (lambda fx, w: ["sweep", *extra, "--out", str(w / "s")])
    return [
        Case("data import: missing bag", FileNotFoundError, r"ROS bag not found", imp(lambda w: w / "none.bag")),
        Case("data import: not a bag", DataError, r"not a readable ROS bag", imp(lambda w: empty(w, "x.bag"))),
        Case("data import: a ROS 1 bag not named .bag", DataError, r"not a readable ROS bag .* whose name must end in .bag",
             imp(bag("b7", kind="ros1"))),
        Case("data import: topic missing", DataError, r"no topic '/arm'; the bag's topics: /joint_states",
             imp(bag("b1"), "--topic", "/arm")),
        Case("data import: joint missing", DataError, r"has no joint\(s\) 'c'; its joints: \['a', 'b'\]",
             imp(bag("b2", kind="mcap"), "--joints", "a,c")),
        Case("data import: effort empty", DataError, r"effort is empty in every message on '/joint_states'",
             imp(bag("b3.bag", kind="ros1", effort=False))),
        Case("data import: stamps go backwards", DataError, r"header stamps go backwards by 0.99 s at message 15",
             imp(bag("b4", stamps=backwards, record_times=np.arange(30) * 0.01 + 50))),
        Case("data import: --rate -1", DataError, r"--rate must be a positive number of Hz", imp(bag("b5"), "--rate", "-1")),
        Case("data import: output exists", FileExistsError, r"exists; pass --force",
             lambda fx, w: ["data", "import", str(bag("b6")(w)), str(fx["train"])]),
        Case("data import: a csv column it does not know", DataError, r"unknown column\(s\) \['force1'\]",
             imp(text_file("cols.csv", "t,q1,qd1,tau1,force1\n0,0,0,0,0\n"))),
        Case("data import: a .mat without torques", DataError, r"no 'tau' found \(found: q, qd, t\)",
             imp(mat_file("no_tau.mat", t=np.arange(10.0), q=np.zeros((10, 2)), qd=np.zeros((10, 2))))),
        Case("data import: rows without time and without qdd", DataError, r"without time stamps, 'qdd' must be given",
             imp(text_file("rows.csv", "q1,qd1,tau1\n0,0,0\n1,1,1\n"))),
        Case("data inspect: irregular time stamps", DataError, r"of 29 time steps are more than 5% off the median",
             lambda fx, w: ["data", "inspect", str(irregular_npz(w))]),
        Case("adapt: a stream with no time order", DataError, r"its rows have no time order",
             lambda fx, w: ["adapt", "--loss", str(fx["loss"]), "--stream", str(unordered_npz(w))]),
        Case("--config: missing file", FileNotFoundError, r"config file not found",
             lambda fx, w: ["lrmem", "rosenbrock", "--config", str(w / "none.json"), "--out", str(w / "r")]),
        Case("--config: not JSON", ConfigError, r"not a JSON config",
             lambda fx, w: ["lrmem", "rosenbrock", "--config", str(saved("{oops")(w)), "--out", str(w / "r")]),
        Case("--config: another experiment's", ConfigError, r"unknown config key\(s\) 'clip'",
             lambda fx, w: ["ml3", "sine", "--config", str(saved({"clip": 1.0})(w)), "--out", str(w / "r")]),
        Case("--config: wrong type", ConfigError, r"'steps': expected a value of type int, got \"many\"",
             lambda fx, w: ["lrmem", "rosenbrock", "--config", str(saved({"steps": "many"})(w)), "--out", str(w / "r")]),
        Case("--config with --quick", ConfigError, r"--quick and --config together",
             lambda fx, w: ["lrmem", "rosenbrock", "--quick", "--config", str(saved({})(w)), "--out", str(w / "r")]),
        Case("sweep: nothing to sweep", ConfigError, r"nothing to sweep", sweep("rosenbrock", "steps=3")),
        Case("sweep: bad value", ConfigError, r"'steps=x': expected a value of type int", sweep("rosenbrock", "steps=3,x")),
        Case("sweep: --seeds without a seed key", ConfigError, r"has no seed key", sweep("rosenbrock", "--seeds", "2")),
        Case("sweep: --seeds 0", ConfigError, r"--seeds must be at least 1", sweep("sim", "--seeds", "0")),
        Case("sweep: no default metric", ConfigError, r"no default metric .* pass --metric", sweep("id-batch", "steps=1,2")),
        Case("sweep: meta-train", ConfigError, r"sweep runs experiments", sweep("meta-train", "alpha=1,2")),
    ]


def _hardening_cases() -> list[Case]:
    """Issue 23's classes: markers that would reach outside the run directory, a directory in use, sweeps whose
    points collide or whose cluster is unreachable, the background Adapter's faults, bags, configs."""
    from fastadapt.rundir import RunDirectory

    def marker_listing(owned):
        def argv(fx, w):
            (w / "victim.txt").write_text("the user's, outside --out")
            run = copied_run(fx, w)
            marker = json.loads((run / MARKER).read_text())
            marker["owned"] = owned(w)
            (run / MARKER).write_text(json.dumps(marker))
            return meta_train(fx["train"], fx["test"], run, "eta=0.5", "--force")
        return argv

    def in_use(fx, w):
        out = w / "run"
        with RunDirectory(out, {"config": {}, "inputs": {}}):  # another run holds it (another descriptor, same lock)
            cli.run(meta_train(fx["train"], fx["test"], out))

    def nested_config(fx, w):
        (w / "deep.json").write_text("[" * 100_000)
        return ["lrmem", "rosenbrock", "--config", str(w / "deep.json"), "--out", str(w / "r")]

    def ragged_config(fx, w):
        (w / "c.json").write_text(json.dumps({"train_targets": [[0.6, 0.35], [0.2]]}))
        return ["rl", "demos", "--config", str(w / "c.json"), "--out", str(w / "r")]

    def truncated_mnist(family):
        def argv(fx, w):
            import gzip

            folder = w / "mnist"
            folder.mkdir()
            for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                         "t10k-labels-idx1-ubyte"):
                whole = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 200]) + bytes(200))
                (folder / f"{name}.gz").write_bytes(whole[: len(whole) // 2])
            return [family, "digits", f"source={folder}", "--out", str(w / "r")]
        return argv

    def background(fault):
        def call(fx, w):
            import os
            import signal

            from fastadapt.adapt.adapter import Adapter

            adapter = Adapter.from_loss_file(fx["loss"], background=fault != "closed")
            try:
                if fault == "killed":
                    os.kill(adapter._process._process.pid, signal.SIGKILL)
                    adapter._process._process.join()
                else:
                    adapter.close()
                return adapter.observe([0, 0], [0, 0], [0, 0], [0, 0])
            finally:
                adapter.close()
        return call

    def tick(q):
        def call(fx, w):
            from fastadapt.adapt.adapter import Adapter

            return Adapter.from_loss_file(fx["loss"], warmup=False).predict(q, [0, 0], [0, 0])
        return call

    def bag(name, stamps=None, names=("a", "b"), kind="ros2", count=30):
        def make(w):
            from bags import write_joint_state_bag

            t = np.arange(count) * 0.01 + 50 if stamps is None else stamps
            q = np.stack([np.sin(t), np.cos(t)], axis=1)
            return write_joint_state_bag(w / name, t, list(names), q, q, q, kind=kind)
        return make

    def imp(make, *extra):
        return lambda fx, w: ["data", "import", str(make(w)), str(w / "out.npz"), *extra]

    def unparsable_ros1(w):
        from rosbags.rosbag1 import Writer

        with Writer(w / "old.bag") as writer:
            connection = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState",
                                               msgdef="Header header\nfloat64[ position\n", md5sum="0" * 32)
            writer.write(connection, 1, bytes(40))
        return w / "old.bag"

    def corrupted_ros1(w):
        path = bag("c.bag", kind="ros1", count=300)(w)
        data = bytearray(path.read_bytes())
        for k in range(8):
            data[int(len(data) * 0.3) + k] ^= 0xFF
        path.write_bytes(bytes(data))
        return path

    sweep = lambda *extra: (lambda fx, w: ["sweep", *extra, "--out", str(w / "s")])
    rl = lambda name, *extra: (lambda fx, w: ["rl", name, "--quick", "--out", str(w / "r"), *extra])
    return [
        Case("--force: marker lists ../victim.txt", RunDirectoryError,
             r"\.fastadapt-run\.json is damaged \(it lists '\.\./victim\.txt' is not a normalised path.*deletes nothing",
             marker_listing(lambda w: {"../victim.txt": {"kind": "file", "size": 25, "sha256": "0"}})),
        Case("--force: marker lists an absolute path", RunDirectoryError, r"is damaged \(it lists '/.*victim\.txt' is not a relative path",
             marker_listing(lambda w: {str(w / "victim.txt"): {"kind": "file", "size": 25, "sha256": "0"}})),
        Case("--force: marker's owned list without hashes", RunDirectoryError, r"is damaged \(it lists 'loss\.npz' has no size and hash",
             marker_listing(lambda w: {"loss.npz": {"kind": "file"}})),
        Case("--force: marker's owned not a table", RunDirectoryError, r"is damaged \('owned' is not a table of paths\)",
             marker_listing(lambda w: ["../victim.txt"])),
        Case("meta-train --out: in use by another run", RunDirectoryError,
             r"is in use by another fastadapt run \(pid \d+, started", call=in_use),
        Case("data convert OUT: unwritable, named by the user's path", PermissionError, r"Permission denied: /sys/x\.npz$",
             lambda fx, w: ["data", "convert", str(fx["train"]), "/sys/x.npz"]),
        Case("sweep: two spellings of one value", ConfigError, r"the grid points 'steps=١٠٠' and 'steps=100' are the same config",
             sweep("rosenbrock", "--serial", "steps=١٠٠,100")),
        Case("sweep: --address with nothing listening", ConnectionError,
             r"no Ray cluster at --address 127\.0\.0\.1:1 \(Connection refused within 5 s\)",
             sweep("rosenbrock", "--address", "127.0.0.1:1", "steps=40,80")),
        Case("sweep: --address not HOST:PORT", ConfigError, r"--address 'nowhere': expected HOST:PORT",
             sweep("rosenbrock", "--address", "nowhere", "steps=40,80")),
        Case("ml3 shaped-sine frequency_min=3 frequency_max=0.5 (final values named)", ConfigError,
             r"'frequency_min' \(3\.0\) must be below 'frequency_max' \(0\.5\)",
             lambda fx, w: ["ml3", "shaped-sine", "--out", str(w / "r"), "frequency_min=3", "frequency_max=0.5"]),
        Case("lrmem rosenbrock steps=10^23", ConfigError, r"'steps=100000000000000000000000': .* is out of range",
             lambda fx, w: ["lrmem", "rosenbrock", "--out", str(w / "r"), "steps=100000000000000000000000"]),
        Case("--config: 100,000 nested [", ConfigError, r"deep\.json: not a config \(its JSON is nested too deeply\)", nested_config),
        Case("--config: a ragged train_targets", ConfigError,
             r"'train_targets': expected a list of exactly 2 values, got \[0\.2\]", ragged_config),
        Case("rl mbrl-pointmass goal_radius=1 (a min,max pair)", ConfigError,
             r"'goal_radius=1': expected exactly 2 values separated by ',', got 1", rl("mbrl-pointmass", "goal_radius=1")),
        Case("rl mbrl-pointmass train_degrees=1,2,3", ConfigError, r"expected exactly 2 values separated by ',', got 3",
             rl("mbrl-pointmass", "train_degrees=1,2,3")),
        Case("rl mfrl-reacher architectures=64;;64", ConfigError, r"'architectures=64;;64': an empty entry",
             rl("mfrl-reacher", "architectures=64;;64")),
        Case("lrmem digits: truncated .gz MNIST", DataError, r"train-images-idx3-ubyte\.gz: a damaged or truncated gzip file",
             truncated_mnist("lrmem")),
        Case("ml3 digits: truncated .gz MNIST", DataError, r"idx\d-ubyte\.gz: a damaged or truncated gzip file",
             truncated_mnist("ml3")),
        Case("Adapter.predict: 'abc'", DataError, r"q must be 2 real numbers, got text: 'abc'", call=tick("abc")),
        Case("Adapter.predict: complex", DataError, r"q must be 2 real numbers, got complex numbers", call=tick([1j, 0])),
        Case("Adapter.observe: update process killed", UpdateProcessError, r"the update process is gone \(exit code -9",
             call=background("killed")),
        Case("Adapter.observe: after close()", AdapterClosedError, r"observe\(\) on a closed Adapter", call=background("closed")),
        Case("data import: a joint named twice, --joints picks it", DataError, r"names joint\(s\) 'a' more than once",
             imp(bag("d1", names=("a", "a")), "--joints", "a")),
        Case("data import: --joints ,", DataError, r"--joints ',': an empty joint name", imp(bag("d2"), "--joints", ",")),
        Case("data import: every message one stamp", DataError, r"have one stamp .* the stamps do not advance",
             imp(bag("d3", stamps=np.full(30, 50.0)))),
        Case("data import: a ROS 1 definition rosbags cannot parse", DataError,
             r"old\.bag: rosbags cannot read this ROS 1 bag \(AnyReaderError: Could not parse", imp(unparsable_ros1)),
        Case("data import: bytes flipped mid-file", DataError, r"c\.bag: damaged, or a message rosbags cannot decode",
             imp(corrupted_ros1)),
        Case("data import: --rate 1e12", DataError, r"would make 2\.9e\+11 samples, more than 1e\+07; give a lower --rate",
             imp(bag("d4"), "--rate", "1e12")),
    ]


def all_cases() -> list[Case]:
    groups = {"data files (npz, csv) x 4 verbs": _data_cases(), "trained loss files": _loss_file_cases(),
              "checkpoints and markers": _checkpoint_cases(), "run directories and outputs": _run_directory_cases(),
              "configs and options": _config_cases(), "ROS bags, saved configs, sweeps": _bag_config_sweep_cases(),
              "Adapter API": _adapter_cases(),
              "outside --out, in-use directories, sweeps, background Adapter, bags, configs (issue 23)": _hardening_cases()}
    return [dataclasses.replace(case, group=group) for group, cases in groups.items() for case in cases]


# --- running a case -----------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but run-directory markers (fastadapt's own bookkeeping)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


@dataclasses.dataclass
class Outcome:
    verdict: str  # clear | wrong diagnosis | traceback | silent | hang | files lost | wrote outside
    detail: str
    error: BaseException | None = None


class Hang(Exception):
    """A case ran past its time bound."""


@contextlib.contextmanager
def time_bound(seconds: float | None):
    """Raise :class:`Hang` in the block after ``seconds`` (None, or not the main thread: no bound)."""
    import signal
    import threading

    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(case: Case, fixtures: dict, work: Path, timeout: float | None = 300) -> Outcome:
    """Set the case up in ``work`` (a fresh folder), run it, and judge it."""
    work.mkdir(parents=True, exist_ok=True)
    fixture_root = Path(fixtures["train"]).parent
    before = {"fixtures": snapshot(fixture_root)}
    neighbours = {p.name for p in work.parent.iterdir()}  # nothing may appear beside the case's folder
    error = None
    with contextlib.redirect_stdout(text_io.StringIO()), contextlib.redirect_stderr(text_io.StringIO()), \
            time_bound(timeout):
        try:
            if case.call is not None:
                before["work"] = snapshot(work)
                case.call(fixtures, work)
            else:
                argv = [str(a) for a in case.argv(fixtures, work)]
                before["work"] = snapshot(work)
                cli.run(argv + (["--no-progress"] if _takes_progress(argv) else []))
        except BaseException as caught:  # noqa: BLE001 - judging every outcome is the point
            error = caught
    appeared = {p.name for p in work.parent.iterdir()} - neighbours - {work.name}
    if appeared:
        return Outcome("wrote outside", f"wrote beside its folder: {sorted(appeared)}", error)
    for name, root in (("work", work), ("fixtures", fixture_root)):
        if name in before:
            after = snapshot(root)
            changed = [p for p, digest in before[name].items() if after.get(p) != digest]
            if changed:
                return Outcome("files lost", f"changed or removed: {changed}", error)
    if isinstance(error, Hang):
        return Outcome("hang", str(error), error)
    if error is None:
        return Outcome("silent", "no error")
    # the command line turns USER_ERRORS into one line; a library call may raise its own documented class
    if not isinstance(error, cli.USER_ERRORS) and not (case.call is not None and type(error) is case.error):
        return Outcome("traceback", f"{type(error).__name__}: {error}", error)
    text = cli.describe(error)
    if type(error) is not case.error or not re.search(case.message, text):
        return Outcome("wrong diagnosis", f"{type(error).__name__}: {text}", error)
    return Outcome("clear", text, error)


def _takes_progress(argv: list[str]) -> bool:
    return argv[0] in ("demo", "run", "lrmem") and "--no-progress" not in argv
