"""Quality benchmark: the full pipeline on simulated pick-and-place and on the real Schunk logs.

Runs ``fastadapt run sim`` and ``fastadapt run schunk`` (resumable run directories under runs/bench-*)
and prints, for each, the mean online MSE of every method relative to the best-tuned SGD and Adam
baselines (from scratch) and the practitioner's protocol relative to the pretrained model left alone.

Usage: python benchmarks/quality.py [sim|schunk ...] [key=value ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastadapt.cli import main as cli


def table(metrics: dict) -> str:
    lines = ["| method (from a random model) | mean online MSE | / best SGD | / best Adam |", "|---|---|---|---|"]
    scratch = metrics["online"]["from scratch"]
    for name, rel in metrics["relative_to_baselines"].items():
        lines.append(f"| {name} | {scratch[name]['overall']:.4g} | {rel['vs_best_sgd']:.3g} | {rel['vs_best_adam']:.3g} |")
    pre = metrics["online"]["pretrained"]
    alone = pre["pretrained, not adapted"]["overall"]
    lines += ["", "| method (from the pretrained model) | mean online MSE | / pretrained, not adapted |", "|---|---|---|"]
    for name, v in pre.items():
        lines.append(f"| {name} | {v['overall']:.4g} | {v['overall'] / alone:.3g} |")
    return "\n".join(lines)


def main(argv):
    datasets = [a for a in argv if a in ("sim", "schunk")] or ["sim", "schunk"]
    overrides = [a for a in argv if "=" in a]
    for data in datasets:
        out = Path("runs") / f"bench-{data}"
        code = cli(["run", data, "--out", str(out), *overrides])
        if code:
            return code
        metrics = json.loads((out / "metrics.json").read_text())
        print(f"\n## {data} ({metrics['seconds']:.0f} s)\n")
        print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
