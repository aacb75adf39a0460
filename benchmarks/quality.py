"""Quality benchmark: the full pipeline on simulated pick-and-place and on the real Schunk logs.

Runs ``fastadapt run sim`` and ``fastadapt run schunk`` (resumable run directories under runs/bench-*,
or ``--out DIR`` for one dataset) and prints, for each, the Table I of both protocols (mean and std per
phase over trials x seeds), and the mean online MSE of every method relative to the best-tuned SGD and
Adam baselines (from scratch), to the better of them and to the pretrained model left alone (pretrained).

Usage: python benchmarks/quality.py [sim|schunk|sim2real ...] [--out DIR] [key=value ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastadapt.cli import main as cli
from fastadapt.report.markdown import phase_table_markdown


def table(metrics: dict) -> str:
    relative = metrics["relative_to_baselines"]
    lines = ["Table I, from a random model:", "", phase_table_markdown(metrics["online"]["from scratch"]), "",
             "Table I, from the pretrained model:", "", phase_table_markdown(metrics["online"]["pretrained"]), "",
             "| method (from a random model) | mean online MSE | / best SGD | / best Adam | / the better (+- seed spread) |",
             "|---|---|---|---|---|"]
    scratch = metrics["online"]["from scratch"]
    for name, rel in relative["from scratch"].items():
        tuned = rel["vs_best_tuned"]
        lines.append(f"| {name} | {scratch[name]['overall']:.4g} | {rel['vs_best_sgd']:.3g} | {rel['vs_best_adam']:.3g}"
                     f" | {tuned['ratio']:.3g} +- {tuned['seed_std']:.2g} |")
    pre = metrics["online"]["pretrained"]
    lines += ["", "| method (from the pretrained model) | mean online MSE | / the better tuned | / pretrained, not adapted |",
              "|---|---|---|---|"]
    for name, v in pre.items():
        rel = relative["pretrained"][name]
        lines.append(f"| {name} | {v['overall']:.4g} | {rel['vs_best_tuned']['ratio']:.3g} | {rel['vs_not_adapted']['ratio']:.3g} |")
    return "\n".join(lines)


def main(argv):
    out_dir = argv[argv.index("--out") + 1] if "--out" in argv else None
    datasets = [a for a in argv if a in ("sim", "schunk", "sim2real")] or ["sim", "schunk"]
    overrides = [a for a in argv if "=" in a]
    if out_dir and len(datasets) > 1:
        print("--out takes one dataset", file=sys.stderr)
        return 2
    for data in datasets:
        out = Path(out_dir or Path("runs") / f"bench-{data}")
        code = cli(["run", data, "--out", str(out), "--no-progress", *overrides])
        if code:
            return code
        metrics = json.loads((out / "metrics.json").read_text())
        print(f"\n## {data} ({metrics['seconds']:.0f} s)\n")
        print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
