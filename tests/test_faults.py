"""Meta-training killed at random points (SIGKILL, SIGINT) resumes to exactly the uninterrupted result."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bad_inputs import trajectory
from fastadapt.checkpoint import read_archive
from fastadapt.data import io
from fastadapt.data.trajectory import Dataset

EPOCHS = 12
CONFIG = [f"epochs={EPOCHS}", "batch_size=16", "batches_per_epoch=300", "iters_max=3", "eval_every=3", "eval_steps=5",
          "eval_seeds=2", "eval_points=64", "hidden=16", "loss=state-dependent"]


def command(train, test, out):
    return [sys.executable, "-m", "fastadapt.cli", "meta-train", "--train", str(train), "--test", str(test),
            "--out", str(out), "--no-progress", *CONFIG]


def checkpoint_epoch(out) -> int:
    try:
        return int(read_archive(out / "checkpoint.npz")[1]["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def interrupted_run(cmd, out, sig, at_epoch, extra_delay, timeout=120):
    """Start ``cmd``, wait until its checkpoint reaches ``at_epoch`` (0: a time into the start-up), wait
    ``extra_delay`` more seconds, send ``sig``; returns (return code, stderr)."""
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.time()
    while process.poll() is None and checkpoint_epoch(out) < at_epoch and time.time() - started < timeout:
        time.sleep(0.01)
    time.sleep(extra_delay)
    if process.poll() is None:
        process.send_signal(sig)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def loss_arrays(out):
    return read_archive(out / "loss.npz")[0]


@pytest.mark.slow
def test_killed_and_interrupted_meta_training_resumes_to_the_same_loss(tmp_path):
    train = io.save(Dataset(tuple(trajectory(T=200, seed=s) for s in range(3))), tmp_path / "train.npz")
    test = io.save(Dataset(tuple(trajectory(T=200, seed=s) for s in range(3, 5))), tmp_path / "test.npz")
    reference = tmp_path / "reference"
    done = subprocess.run(command(train, test, reference), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = loss_arrays(reference)
    rng = np.random.default_rng(0)
    plans = [(signal.SIGKILL, 0, rng.uniform(0.5, 3.0)),  # during start-up or the first epoch
             (signal.SIGKILL, int(rng.integers(1, EPOCHS - 2)), rng.uniform(0, 0.3)),
             (signal.SIGINT, int(rng.integers(1, EPOCHS - 2)), rng.uniform(0, 0.3))]
    for index, (sig, at_epoch, delay) in enumerate(plans):
        out = tmp_path / f"run{index}"
        code, err = interrupted_run(command(train, test, out), out, sig, at_epoch, delay)
        if sig == signal.SIGINT and code != 0:
            assert code == 130, err
            assert "Run the same command to resume" in err and "Traceback" not in err
            assert checkpoint_epoch(out) >= at_epoch  # the checkpoint it stopped after is whole
        resumed = subprocess.run(command(train, test, out), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        got = loss_arrays(out)
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{sig.name} at epoch {at_epoch}: {key}")
        assert (out / "history.json").read_text() == (reference / "history.json").read_text()
