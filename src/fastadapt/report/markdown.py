"""Markdown tables shared by the reports: Table I's format (``phase_table_markdown``)."""

from __future__ import annotations



def fmt(value: float) -> str:
    return "diverged" if value == float("inf") else f"{value:.4g}"


def phase_table_markdown(methods: dict, max_phases: int = 8) -> str:
    """Table I's format: one row per method, mean and std per phase, then the overall mean."""
    first = next(iter(methods.values()))
    phases = list(first["phases"])
    if len(phases) > max_phases:
        lines = ["| method | mean online MSE |", "|---|---|"]
        lines += [f"| {name} | {fmt(v['overall'])} |" for name, v in methods.items()]
        return "\n".join(lines)
    header = "| method | " + " | ".join(f"{p} mean | {p} std" for p in phases) + " | overall |"
    lines = [header, "|---" * (2 * len(phases) + 2) + "|"]
    for name, v in methods.items():
        cells = " | ".join(f"{v['phases'][p]['mean']:.4g} | {v['phases'][p]['std']:.3g}" for p in phases)
        lines.append(f"| {name} | {cells} | {fmt(v['overall'])} |")
    return "\n".join(lines)
