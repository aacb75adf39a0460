"""Writing an experiment's results (the lrmem and ml3 experiments): metrics.json and a report.md section with its figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.checkpoint import write_json
from fastadapt.files import atomic_write_text, make_directory


def steps_to(values, threshold) -> int | None:
    """The first step whose value is below ``threshold`` (None if none is)."""
    below = np.nonzero(np.asarray(values) < threshold)[0]
    return int(below[0]) if below.size else None


def prepare(directory) -> Path:
    return make_directory(directory)


def markdown_table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def finish(directory: Path, title: str, metrics: dict, body: list[str], figures: list[Path], log=print) -> dict:
    """Write ``metrics.json`` and ``report.md`` (title, body paragraphs/tables, figure links)."""
    metrics = dict(metrics, figures=[f.name for f in figures])
    write_json(directory / "metrics.json", metrics)
    text = [f"## {title}", ""] + body + [""] + [f"![{f.stem}]({f.name})" for f in figures]
    atomic_write_text(directory / "report.md", "\n".join(text) + "\n")
    log(f"wrote {directory / 'report.md'}")
    return metrics
