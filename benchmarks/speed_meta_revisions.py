"""Meta-training speed of this checkout against an earlier git revision: each tree's own
``benchmarks/speed_meta.py`` JAX runner (Algorithm 1 at the paper's configuration), in separate
processes taking turns, so both see the same machine load. Needs no torch.

Usage: python benchmarks/speed_meta_revisions.py REV [--turns 2] [--batches 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# run in a child process: import the tree's package and its speed_meta.py, time its jax runner
CHILD = """
import importlib.util, sys, time
import numpy as np
root, batches = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [root + "/src", root + "/benchmarks"]  # a tree's speed_meta.py may import its helpers
spec = importlib.util.spec_from_file_location("speed_meta", root + "/benchmarks/speed_meta.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
rng = np.random.default_rng(0)
x = rng.normal(size=(14400, 3 * m.J)).astype(np.float32); y = rng.normal(size=(14400, m.J)).astype(np.float32)
run = m.jax_runner(x, y, batches); run(0)
times = []
for r in range(5):
    t = time.perf_counter(); run(r + 1); times.append(time.perf_counter() - t)
print(batches * m.ITERS / float(np.median(times)))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("revision")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    old = Path(tempfile.mkdtemp()) / args.revision
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(old), args.revision], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        trees = {args.revision: old, "this checkout": ROOT}
        rates = {name: [] for name in trees}
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        for _ in range(args.turns):
            for name, tree in trees.items():
                out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(args.batches)], check=True,
                                     capture_output=True, text=True, env=env).stdout
                rates[name].append(float(out.split()[-1]))
        print("| code | meta-steps/s, each turn (median of 5 timed epochs) |\n|---|---|")
        for name, values in rates.items():
            print(f"| {name} | {' / '.join(f'{v:.0f}' for v in values)} |")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
