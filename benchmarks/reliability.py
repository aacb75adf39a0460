"""Reliability counts for docs/RESULTS.md: every case of the bad-input catalogue (tests/bad_inputs.py)
judged as a clear error, a wrong diagnosis, a traceback, a silent result, a hang (300 s bound), lost
files or a write outside the case's folder; the faults of the background Adapter, the sweep and the run
directory, each measured; and the Adapter fed a stream at diverging learning rates (how many predictions
were non-finite, how many updates it rejected). Usage: python benchmarks/reliability.py [--no-catalogue]
"""

from __future__ import annotations

import collections
import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bad_inputs import all_cases, make_fixtures, run_case  # noqa: E402

VERDICTS = ("clear", "wrong diagnosis", "traceback", "silent", "hang", "files lost", "wrote outside")


def catalogue(root: Path) -> None:
    fixtures = make_fixtures(root / "fixtures")
    counts = collections.defaultdict(collections.Counter)
    problems = []
    cases = all_cases()
    for index, case in enumerate(cases):
        outcome = run_case(case, fixtures, root / f"case{index}")
        counts[case.group][outcome.verdict] += 1
        if outcome.verdict != "clear":
            problems.append(f"{case.name}: {outcome.verdict}: {outcome.detail}")
    print("| inputs | cases | clear errors | wrong diagnosis | tracebacks | silent wrong results | hangs | files lost "
          "| wrote outside --out |")
    print("|---|---|---|---|---|---|---|---|---|")
    total = collections.Counter()
    for group, counter in counts.items():
        total.update(counter)
        print(f"| {group} | {sum(counter.values())} | " + " | ".join(str(counter[v]) for v in VERDICTS) + " |")
    print(f"| **all** | **{sum(total.values())}** | " + " | ".join(f"**{total[v]}**" for v in VERDICTS) + " |")
    for line in problems:
        print("  -", line)


def fault_scenarios(root: Path) -> None:
    """The faults no single bad input makes: each run and measured."""
    import json
    import os
    import signal
    import subprocess
    import time

    from fastadapt.adapt.adapter import Adapter
    from fastadapt.adapt.update_process import RING, UpdateProcessError
    from fastadapt.cli import main
    from fastadapt.files import atomic_write_text
    from fastadapt.reaper import descendants, identify
    from fastadapt.rundir import MARKER, RunDirectory

    fixtures = make_fixtures(root / "fixtures")
    rows = []
    # 1. the update process stopped (SIGSTOP): observe and predict never wait; the oldest batches are dropped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter = Adapter.from_loss_file(fixtures["loss"], background=True)
        os.kill(adapter._process._process.pid, signal.SIGSTOP)
        slowest, calls = 0.0, 5 * (RING + 100)
        for k in range(calls):
            started = time.perf_counter()
            adapter.predict([0.1, 0.2], [0.0, 0.1], [0.0, 0.0])
            adapter.observe([0.1, 0.2], [0.0, 0.1], [0.0, 0.0], [0.3, 0.1])
            slowest = max(slowest, time.perf_counter() - started)
        healthy, dropped = adapter.healthy, adapter.dropped_batches
        os.kill(adapter._process._process.pid, signal.SIGCONT)
        adapter.wait(timeout=30)
        rows.append(("update process stopped (SIGSTOP), 164 batches into a ring of 64",
                     f"slowest tick (predict + observe) {slowest * 1e6:.0f} us; dropped {dropped} oldest batches; "
                     f"healthy={healthy}; after SIGCONT all applied, pending {adapter.pending_updates}",
                     slowest < 0.01 and dropped == adapter.updates - (RING - 1)))
        adapter.close()
        # 2. the update process killed (SIGKILL): the next call raises
        adapter = Adapter.from_loss_file(fixtures["loss"], background=True)
        os.kill(adapter._process._process.pid, signal.SIGKILL)
        adapter._process._process.join()
        calls = 0
        try:
            while calls < 1000:
                calls += 1
                adapter.observe([0.1, 0.2], [0.0, 0.1], [0.0, 0.0], [0.3, 0.1])
        except UpdateProcessError:
            pass
        rows.append(("update process killed (SIGKILL)", f"observe raised UpdateProcessError on call {calls} after the "
                     f"kill; healthy={adapter.healthy}", calls == 1))
        adapter.close()
    # 3. a user's file written during a run, then --force
    out = root / "run"
    with RunDirectory(out, {"config": {"x": 1}, "inputs": {}}):
        atomic_write_text(out / "metrics.json", "{}")
        (out / "notes.txt").write_text("the user's")
    with RunDirectory(out, {"config": {"x": 2}, "inputs": {}}, force=True):
        pass
    rows.append(("a user's file added during a run, then --force", "kept" if (out / "notes.txt").exists() else "DELETED",
                 (out / "notes.txt").exists()))
    # 4. a marker that lists ../victim.txt, then --force
    victim = root / "victim.txt"
    victim.write_text("the user's")
    marker = json.loads((out / MARKER).read_text())
    marker["owned"] = {"../victim.txt": {"kind": "file", "size": 10, "sha256": "0"}}
    (out / MARKER).write_text(json.dumps(marker))
    try:
        with RunDirectory(out, {"config": {"x": 3}, "inputs": {}}, force=True):
            pass
        refused = False
    except Exception:  # noqa: BLE001
        refused = True
    rows.append(("a marker listing ../victim.txt, then --force", f"refused={refused}; victim "
                 f"{'kept' if victim.exists() else 'DELETED'}", refused and victim.exists()))
    # 5. an unreachable Ray address
    started = time.monotonic()
    with contextlib.redirect_stderr(io.StringIO()):
        status = main(["sweep", "rosenbrock", "--quick", "--address", "127.0.0.1:1", "--out", str(root / "s"),
                       "steps=40,80"])
    seconds = time.monotonic() - started
    rows.append(("sweep --address 127.0.0.1:1 (nothing listening)", f"exit {status} after {seconds:.2f} s",
                 status == 2 and seconds < 10))
    # 6. a local Ray sweep killed with SIGKILL while its points run
    argv = [sys.executable, "-m", "fastadapt.cli", "sweep", "rosenbrock", "--quick", "--no-progress", "--workers", "2",
            "--out", str(root / "ray"), "steps=40,80,120,160"]
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        family = [(pid, start) for pid, start in identify(descendants(driver.pid))
                  if "fastadapt.reaper" not in Path(f"/proc/{pid}/cmdline").read_text()]
        if any("ray::run_point" in Path(f"/proc/{pid}/cmdline").read_text() for pid, _ in family):
            break
        time.sleep(0.2)
    driver.kill()
    driver.wait()
    time.sleep(8)
    left = [p for p in identify(pid for pid, _ in family) if p in family]
    rows.append(("local Ray sweep killed (SIGKILL) mid-run", f"{len(family)} Ray processes before, {len(left)} left 8 s after",
                 not left and family))
    print("\n| fault | measured | as it must be |")
    print("|---|---|---|")
    for what, measured, ok in rows:
        print(f"| {what} | {measured} | {'yes' if ok else '**no**'} |")


def diverging_adapter(samples: int = 5000) -> None:
    import jax
    import jax.numpy as jnp

    from fastadapt.adapt.adapter import Adapter
    from fastadapt.data.batches import Normalizer
    from fastadapt.losses import make_loss
    from fastadapt.models.mlp import InverseDynamicsMLP

    J = 7
    model = InverseDynamicsMLP(J)
    norm = Normalizer(jnp.zeros(3 * J), jnp.ones(3 * J), jnp.zeros(J), jnp.full(J, 10.0))
    data = np.random.default_rng(0).normal(size=(samples, 3, J))
    print("\n| optimizer, learning rate | predictions | non-finite | max abs torque (Nm) | updates rejected | fallbacks |")
    print("|---|---|---|---|---|---|")
    for optimizer in ("sgd", "adam"):
        for rate in (10.0, 1e3, 1e6):
            loss = make_loss("state-dependent", J)
            adapter = Adapter(model, norm, model.init(jax.random.PRNGKey(0)), loss, loss.init(jax.random.PRNGKey(1)),
                              optimizer, rate)
            bad, largest = 0, 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for q, qd, qdd in data:
                    tau = adapter.predict(q, qd, qdd)
                    bad += int(not np.isfinite(tau).all())
                    largest = max(largest, float(np.abs(tau).max()))
                    adapter.observe(q, qd, qdd, 10 * np.sin(q) + 0.1 * qdd)
                rejected = adapter.rejected_updates
            print(f"| {optimizer}, {rate:g} | {samples} | {bad} | {largest:.3g} | {rejected} | "
                  f"{adapter.fallback_predictions} |")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        if "--no-catalogue" not in sys.argv:
            catalogue(Path(tmp) / "catalogue")
        fault_scenarios(Path(tmp) / "faults")
    diverging_adapter()
