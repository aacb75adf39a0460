"""Running a sweep's points: each one the ordinary command in its own run directory, on Ray (a local one,
stopped however the sweep ends, or a cluster) or one after another in this process."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

from fastadapt import files
from fastadapt.config import ConfigError
from fastadapt.errors import describe
from fastadapt.rundir import MARKER
from fastadapt.sweep.grid import Point, point_overrides

ADDRESS_TIMEOUT = 5.0  # seconds to reach a Ray cluster's address before the sweep gives up


def check_address(address: str, timeout: float = ADDRESS_TIMEOUT) -> None:
    """Fail within ``timeout`` seconds, naming the address, when nothing listens at a Ray cluster's
    ``HOST:PORT`` (``ray.init`` would retry for minutes). ``auto`` and ``local`` are left to Ray."""
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected HOST:PORT of a Ray cluster's head (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        why = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise ConnectionError(f"no Ray cluster at --address {address} ({why} within {timeout:g} s); start one with "
                              "`ray start --head`, or leave --address out to start a local Ray") from None


def metric_values(metrics: dict, pattern: str) -> dict[str, float]:
    """The numbers at ``pattern`` ("a/*/c") in a metrics dict, named by the keys ``*`` matched (or by the
    last key). Raises KeyError naming what was there when nothing matches."""
    found = {}

    def walk(node, parts, names):
        if not parts:
            if isinstance(node, (int, float)) and not isinstance(node, bool):
                found["/".join(names) or pattern.rsplit("/", 1)[-1]] = float(node)
            return
        head, rest = parts[0], parts[1:]
        if not isinstance(node, dict):
            return
        if head == "*":
            for key, value in node.items():
                walk(value, rest, [*names, key])
        elif head in node:
            walk(node[head], rest, names)

    walk(metrics, [p for p in pattern.split("/") if p], [])
    if not found:
        raise KeyError(f"no number at '{pattern}' in metrics.json (its top-level keys: {', '.join(metrics)})")
    return found


def point_done(directory: Path) -> bool:
    """Whether a point's run directory holds a finished run."""
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("status") == "done" and (directory / "metrics.json").exists()


def run_point(entry, argv: list[str], directory: str, log: str, metric: str) -> dict:
    """Run one point, ``entry(argv)`` (the command line's entry point, which lets errors propagate), with
    its output in ``log``; never raises (but for Ctrl-C): a failure, its log's included, is returned as
    {"status": "failed", "error": ...}. Also returns when it started and its own run time in seconds."""
    started = time.time()
    directory = Path(directory)
    result = {"started": started}
    if point_done(directory):
        result["status"] = "skipped"
    else:
        try:
            with contextlib.ExitStack() as stack:
                Path(log).parent.mkdir(parents=True, exist_ok=True)
                handle = stack.enter_context(open(log, "w"))
                stack.enter_context(contextlib.redirect_stdout(handle))
                stack.enter_context(contextlib.redirect_stderr(handle))
                try:
                    print("fastadapt " + " ".join(argv), flush=True)
                    entry(argv)
                    result["status"] = "done"
                except (Exception, SystemExit) as error:  # noqa: BLE001: a point's failure is reported, the sweep goes on
                    result.update(status="failed", error=f"{type(error).__name__}: {describe(error)}")
                    import traceback

                    traceback.print_exc(file=handle)
        except OSError as error:  # the log could not be written (a full disk, a name the file system refuses)
            result.update(status="failed", error=f"{type(error).__name__}: {describe(error)}")
    result["seconds"] = time.time() - started
    if result["status"] != "failed":
        try:
            result["metrics"] = metric_values(json.loads((directory / "metrics.json").read_text()), metric)
        except (OSError, ValueError, KeyError) as error:
            result.update(status="failed", error=f"{type(error).__name__}: {error}")
    return result


@dataclasses.dataclass
class Sweep:
    """The points of one sweep and how to run each: ``entry(argv(point))``, where ``entry`` is the command
    line's entry point (:func:`fastadapt.cli.run`, passed in: the sweep sits below the command line)."""

    entry: Callable[[list[str]], int]
    words: list[str]
    config: object
    grid: dict[str, list[str]]
    fixed: list[str]
    points: list[Point]
    directory: Path
    metric: str
    extra: list[str]  # --quick / --config FILE, passed to every point

    def argv(self, point: Point) -> list[str]:
        return [*self.words, "--out", str(self.point_dir(point)), "--no-progress", *self.extra,
                *point_overrides(point, self.config, self.fixed)]

    def point_dir(self, point: Point) -> Path:
        return (self.directory / "points" / point.name).resolve()

    def log(self, point: Point) -> Path:
        return (self.directory / "logs" / f"{point.name}.txt").resolve()

    def call(self, point: Point) -> tuple:
        return self.entry, self.argv(point), str(self.point_dir(point)), str(self.log(point)), self.metric

    def record(self, point: Point) -> None:
        """Count the point's run directory and log as the sweep's (a Ray worker in another process wrote
        them, so the sweep's run directory did not hear of them)."""
        files.record(self.point_dir(point), files.RUN)
        if self.log(point).exists():
            files.record(self.log(point), files.FILE)

    def write_index(self) -> None:
        """``points.json``: each point's directory name and its exact values."""
        files.atomic_write_text(self.directory / "points.json", json.dumps(
            {p.name: {"values": dict(p.values), "seed": p.seed} for p in self.points}, indent=1, ensure_ascii=False))
        for folder in ("points", "logs"):
            files.make_directory(self.directory / folder)


def run_serial(sweep: Sweep, progress) -> dict[Point, dict]:
    results = {}
    for point in sweep.points:
        results[point] = run_point(*sweep.call(point))
        sweep.record(point)
        progress(point, results[point])
    return results


def run_on_ray(sweep: Sweep, progress, address: str | None, workers: int) -> tuple[dict[Point, dict], float]:
    """Each point a Ray task of one CPU; returns the results and the seconds ``ray.init`` took. A local Ray
    (no ``address``) is stopped when the sweep ends, however it ends: its processes are watched by a
    :class:`~fastadapt.reaper.Reaper`, which stops them should this process be killed."""
    import ray

    from fastadapt.reaper import Reaper, descendants

    started = time.time()
    reaper = None
    if address:
        check_address(address)
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    else:
        reaper = Reaper.start()
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    watch = (lambda: reaper.watch(descendants(os.getpid()))) if reaper else (lambda: None)
    watch()
    init_seconds = time.time() - started
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_point)
        pending = {task.remote(*sweep.call(point)): point for point in sweep.points}
        results = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            watch()  # the workers Ray started meanwhile
            if not ready:
                continue
            point = pending.pop(ready[0])
            try:
                results[point] = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # the worker died (killed, out of memory)
                results[point] = {"status": "failed", "error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
            results[point]["received"] = time.time()
            sweep.record(point)
            progress(point, results[point])
    finally:
        ray.shutdown()
        if reaper is not None:
            reaper.close()  # what ray.shutdown left (its agents), and on a kill everything: the reaper's pipe closes
    return results, init_seconds


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None
