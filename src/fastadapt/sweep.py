"""Sweeps: one experiment over a grid of config values and seeds, each point its own run, on Ray.

    fastadapt sweep EXPERIMENT key=v1,v2 [key2=w1,w2 ...] [--seeds N] [--address ADDR] [--workers N]

The grid is the Cartesian product of the swept keys' values (a key given one value is an override for
every point), times seeds 0..N-1 set on every ``seed`` key of the config (``meta.seed``, ``online.seed``;
with no ``--seeds`` the config's own seed). Each point is the ordinary command (``fastadapt run sim
--out SWEEP/points/NAME key=value ...``) in its own run directory, so it resumes as any run does. A point
whose run directory says it is done is not run again: a killed sweep re-run goes on where it stopped. A
point that fails is reported with its error and the others go on.

The points run as Ray tasks (one CPU each): on a local Ray started with ``--workers`` CPUs (default: the
machine's cores), or on an existing cluster with ``--address`` (``ray start --head`` on one machine,
``ray start --address HEAD:6379`` on the others; the sweep directory must then be on a file system every
node sees). Without Ray installed (``pip install 'fastadapt[distributed]'``), or with ``--serial``, the
points run one after another in this process.

The summary (``summary.json``, ``summary.md``, ``sweep.png``) holds, per grid point, each metric's mean and
standard deviation over seeds; the metric is a path into each point's metrics.json, ``*`` matching any
key (default per experiment, :data:`DEFAULT_METRICS`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import socket
import time
import typing
from pathlib import Path

from fastadapt import files
from fastadapt.experiments.config import ConfigError, apply_overrides, config_dict, key_types, known_keys
from fastadapt.rundir import MARKER

# a path into each point's metrics.json ("/" between keys, "*" for any key): the numbers the summary shows
# (keyed by the command's words)
DEFAULT_METRICS = {
    "demo": "online/from scratch/*/overall", "run sim": "online/from scratch/*/overall",
    "run schunk": "online/from scratch/*/overall", "run sim2real": "online/*/*/overall",
    "lrmem rosenbrock": "runs/*/final_f", "ml3 sine": "meta_test_final_mse/ML3/mean",
    "ml3 digits": "meta_test_final_accuracy/ML3/mean", "rl mbrl-pointmass": "final_distance/meta-test/ML3/mean",
    "rl mbrl-reacher": "final_distance/meta-test/ML3/mean", "rl demos": "final_distance/meta-test/ML3/mean",
    "rl mfrl-reacher": "samples_to_80/*/final", "rl mfrl-ant": "samples_to_80/*/final",
}


NAME_PREFIX = 80  # characters of a point's readable name (a file name may have 255 bytes)
ADDRESS_TIMEOUT = 5.0  # seconds to reach a Ray cluster's address before the sweep gives up


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of the sweep: the swept keys' values (text, as given) and the seed (None: the config's)."""

    values: tuple[tuple[str, str], ...]
    seed: int | None

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values]

    @property
    def label(self) -> str:
        """The point as the user wrote it: ``meta.alpha=0.001 seed=1``."""
        parts = [f"{k}={v}" for k, v in self.values] + ([f"seed={self.seed}"] if self.seed is not None else [])
        return " ".join(parts) or "base"

    @property
    def name(self) -> str:
        """Its run directory's name: a readable prefix (characters a file name cannot safely hold replaced,
        at most :data:`NAME_PREFIX` of them) and a hash of the exact values, so two points never share a
        name; ``points.json`` in the sweep directory maps each name back to its values."""
        parts = [f"{k}={v}" for k, v in self.values] + ([f"seed={self.seed}"] if self.seed is not None else [])
        readable = re.sub(r"[^A-Za-z0-9._=,+-]", "_", "__".join(parts) or "base")[:NAME_PREFIX]
        exact = json.dumps([list(map(list, self.values)), self.seed], ensure_ascii=False)
        return f"{readable}-{hashlib.sha256(exact.encode()).hexdigest()[:10]}"

    @property
    def group(self) -> tuple[tuple[str, str], ...]:
        """The grid point, seeds pooled."""
        return self.values


def parse_grid(items: list[str], config) -> tuple[dict[str, list[str]], list[str]]:
    """``key=v1,v2`` items as {swept key: values} and the single-valued ones as plain overrides.

    A tuple-valued key (``meta.hidden=64,64``) takes its values separated by ``|``
    (``meta.hidden=32,32|64,64``); every other key by commas. Every value is checked against the config
    before anything runs."""
    grid, fixed = {}, []
    hints = key_types(config)
    for item in items:
        if "=" not in item:
            raise ConfigError(f"'{item}': expected key=v1,v2,...")
        key, text = (part.strip() for part in item.split("=", 1))
        if key in grid or any(f.split("=", 1)[0] == key for f in fixed):
            raise ConfigError(f"'{key}' is given twice")
        separator = "|" if typing.get_origin(hints.get(key)) in (tuple, typing.Tuple) else ","
        values = [v.strip() for v in text.split(separator)]
        if any(not v for v in values):
            raise ConfigError(f"'{item}': an empty value (values are separated by '{separator}')")
        if len(set(values)) != len(values):
            raise ConfigError(f"'{item}': a value is given twice")
        for value in values:
            apply_overrides(config, [*fixed, f"{key}={value}"])
        if len(values) == 1:
            fixed.append(f"{key}={values[0]}")
        else:
            grid[key] = values
    return grid, fixed


def seed_keys(config) -> list[str]:
    """The config's seed keys: every key named ``seed`` (nested ones too)."""
    return [k for k in known_keys(config) if k.rsplit(".", 1)[-1] == "seed"]


def grid_points(grid: dict[str, list[str]], seeds: int | None) -> list[Point]:
    """The Cartesian product of the grid, each with seeds 0..seeds-1 (innermost), in the order given."""
    combos = itertools.product(*[[(k, v) for v in values] for k, values in grid.items()])
    return [Point(tuple(combo), seed) for combo in combos for seed in (range(seeds) if seeds else [None])]


def point_overrides(point: Point, config, fixed: list[str]) -> list[str]:
    seeds = [f"{k}={point.seed}" for k in seed_keys(config)] if point.seed is not None else []
    return [*fixed, *point.overrides, *seeds]


def refuse_collisions(points: list[Point], config, fixed: list[str]) -> None:
    """Refuse a grid two of whose points are one config (``steps=100,١٠٠``: two spellings of 100): the second
    would only repeat the first."""
    seen = {}
    for point in points:
        final = json.dumps(config_dict(apply_overrides(config, point_overrides(point, config, fixed))), sort_keys=True)
        if final in seen:
            raise ConfigError(f"the grid points '{seen[final].label}' and '{point.label}' are the same config; "
                              "give each value once")
        seen[final] = point


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


# --- metrics -------------------------------------------------------------------------------------------
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


# --- running one point ---------------------------------------------------------------------------------
def point_done(directory: Path) -> bool:
    """Whether a point's run directory holds a finished run."""
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("status") == "done" and (directory / "metrics.json").exists()


def run_point(argv: list[str], directory: str, log: str, metric: str) -> dict:
    """Run one point (``fastadapt ARGV``) with its output in ``log``; never raises (but for Ctrl-C): a
    failure, its log's included, is returned as {"status": "failed", "error": ...}. Also returns when it
    started and its own run time in seconds."""
    from fastadapt import cli

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
                    cli.run(argv)
                    result["status"] = "done"
                except (Exception, SystemExit) as error:  # noqa: BLE001: a point's failure is reported, the sweep goes on
                    result.update(status="failed", error=f"{type(error).__name__}: {cli.describe(error)}")
                    import traceback

                    traceback.print_exc(file=handle)
        except OSError as error:  # the log could not be written (a full disk, a name the file system refuses)
            result.update(status="failed", error=f"{type(error).__name__}: {cli.describe(error)}")
    result["seconds"] = time.time() - started
    if result["status"] != "failed":
        try:
            result["metrics"] = metric_values(json.loads((directory / "metrics.json").read_text()), metric)
        except (OSError, ValueError, KeyError) as error:
            result.update(status="failed", error=f"{type(error).__name__}: {error}")
    return result


# --- the sweep -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Sweep:
    """The points of one sweep and how to run each (``argv(point)``: the command's words)."""

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

    def call(self, point: Point) -> tuple[list[str], str, str, str]:
        return self.argv(point), str(self.point_dir(point)), str(self.log(point)), self.metric

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


# --- summary -------------------------------------------------------------------------------------------
def summarise(sweep: Sweep, results: dict[Point, dict]) -> dict:
    """Per grid point: each metric's mean, std and values over the seeds that finished; failures listed."""
    groups = {}
    for point in sweep.points:
        groups.setdefault(point.group, []).append(point)
    rows = []
    for group, points in groups.items():
        per_metric = {}
        for point in points:
            for name, value in results.get(point, {}).get("metrics", {}).items():
                per_metric.setdefault(name, []).append(value)
        stats = {name: {"mean": sum(v) / len(v), "std": _std(v), "values": v} for name, v in per_metric.items()}
        rows.append({"values": dict(group), "seeds": len(points), "metrics": stats,
                     "failed": [p.name for p in points if results.get(p, {}).get("status") == "failed"]})
    failures = [{"point": p.name, "error": results[p].get("error", "")} for p in sweep.points
                if results.get(p, {}).get("status") == "failed"]
    return {"experiment": " ".join(sweep.words), "grid": sweep.grid, "fixed": sweep.fixed, "metric": sweep.metric,
            "points": {p.name: {k: v for k, v in results.get(p, {}).items()} for p in sweep.points},
            "rows": rows, "failures": failures}


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summary_markdown(summary: dict) -> str:
    names = list(dict.fromkeys(n for row in summary["rows"] for n in row["metrics"]))
    keys = list(summary["grid"])
    lines = [f"# Sweep: fastadapt {summary['experiment']}", "",
             f"Metric: `{summary['metric']}` in each point's metrics.json, mean ± standard deviation over seeds "
             f"(n = seeds that finished).", ""]
    if summary["fixed"]:
        lines += [f"Every point also has {', '.join(f'`{f}`' for f in summary['fixed'])}.", ""]
    lines += ["| " + " | ".join([*keys, "n", *names]) + " |", "|" + "---|" * (len(keys) + 1 + len(names))]
    for row in summary["rows"]:
        cells = [row["values"][k] for k in keys]
        n = max((len(m["values"]) for m in row["metrics"].values()), default=0)
        cells.append(f"{n}/{row['seeds']}")
        for name in names:
            m = row["metrics"].get(name)
            cells.append(f"{m['mean']:.4g} ± {m['std']:.2g}" if m else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if summary["failures"]:
        lines += ["", f"## Failed points ({len(summary['failures'])})", ""]
        lines += [f"- `{f['point']}`: {f['error']} (log: logs/{f['point']}.txt)" for f in summary["failures"]]
    return "\n".join(lines) + "\n"


def summary_figure(summary: dict, path: Path) -> Path | None:
    """One panel per (metric, swept key): the metric against the key's values, one line per setting of the
    other swept keys, error bars one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(n for row in summary["rows"] for n in row["metrics"]))
    keys = list(summary["grid"])
    if not names or not keys:
        return None
    fig, axes = plt.subplots(len(names), len(keys), figsize=(4.2 * len(keys), 3.2 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, key in enumerate(keys):
            ax = axes[i][j]
            values = summary["grid"][key]
            others = [k for k in keys if k != key]
            lines = {}
            for row in summary["rows"]:
                label = ", ".join(f"{k}={row['values'][k]}" for k in others)
                lines.setdefault(label, {})[row["values"][key]] = row["metrics"].get(name)
            for label, by_value in lines.items():
                xs = [x for x, v in enumerate(values) if by_value.get(v)]
                ax.errorbar(xs, [by_value[values[x]]["mean"] for x in xs], [by_value[values[x]]["std"] for x in xs],
                            marker="o", capsize=3, label=label or None)
            ax.set_xticks(range(len(values)), values, rotation=30 if max(len(v) for v in values) > 6 else 0)
            ax.set_xlabel(key)
            ax.set_ylabel(name if len(name) < 30 else name[:27] + "...")
            if others and i == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"fastadapt sweep {summary['experiment']}: {summary['metric']} (mean ± std over seeds)", fontsize=9)
    fig.tight_layout()
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight"))
    plt.close(fig)
    return path


def default_metric(words: list[str]) -> str:
    command = " ".join(words)
    if command not in DEFAULT_METRICS:
        raise ConfigError(f"no default metric for `fastadapt {command}`; pass --metric PATH (keys of a run's "
                          "metrics.json joined by '/', '*' for any key, e.g. runs/*/final_f)")
    return DEFAULT_METRICS[command]
