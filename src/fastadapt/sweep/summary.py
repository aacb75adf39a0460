"""A sweep's summary: per grid point, each metric's mean and standard deviation over the seeds that
finished (``summary.json``, ``summary.md``) and one figure (``sweep.png``)."""

from __future__ import annotations

import math
from pathlib import Path

from fastadapt import files
from fastadapt.sweep.points import Point, Sweep


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
