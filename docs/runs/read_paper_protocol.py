"""Print the numbers docs/RESULTS.md derives from the paper-protocol runs' metrics.json (issue 25):

    python docs/runs/read_paper_protocol.py            # reads docs/runs/paper-sim and docs/runs/paper-schunk
    python docs/runs/read_paper_protocol.py --lift     # also simulates one noise-free lifting trial (PyBullet)

Per run and loss: every seed's final meta-test score (mean +- std), the meta-test score at epoch 150,
the stability along meta-training (the mean absolute change of the seeds' meta-test score from one
evaluation to the next over epochs 200-300, relative to its mean), the epoch after which each seed
stays below plain MSE, and Fig. 3 c/d's MSE after 10 and 100 steps with the kept seed's loss.
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def read(run: str) -> None:
    metrics = json.loads((HERE / run / "metrics.json").read_text())
    print(f"== {run}")
    for name, m in metrics["meta_training"].items():
        scores = np.array([e["meta-test"]["mean"] for e in m["eval"]])  # [evaluations, seeds]
        epochs = np.array(m["eval_epoch"])
        late = scores[epochs > 200]
        stability = np.abs(np.diff(late, axis=0)).mean() / late.mean()
        baseline = m["baseline"]["meta-test"]["mean"]
        crossed = [int(epochs[scores[:, s] > baseline].max()) if (scores[:, s] > baseline).any() else 0
                   for s in range(scores.shape[1])]
        at150 = scores[epochs == 150].mean() if (epochs == 150).any() else float("nan")
        print(f"  {name}: final {scores[-1].mean():.3g} +- {scores[-1].std():.2g} (MSE {baseline:.3g}); "
              f"epoch 150: {at150:.3g}; stability {stability:.3f}; last epoch above MSE per seed {crossed}")
    for split, curves in metrics["final_curves"].items():
        print(f"  Fig. 3 c/d {split}, after 10 / 100 steps: "
              + ", ".join(f"{k} {v['mean'][10]:.2f} / {v['mean'][-1]:.2f}" for k, v in curves.items()))


def lift() -> None:
    from fastadapt.experiments.lrmem.common import REPORT_JOINT
    from fastadapt.sim import motions

    for settle in (1.0, 0.0):
        tasks = motions.lifting_datasets(trials=1, duration=3.5, noise=False, settle=settle)
        for task, dataset in tasks.items():
            torque = dataset[0].tau[:, REPORT_JOINT]
            print(f"  settle={settle:g} {task}: A2 over the lift {np.ptp(torque):.2f} Nm, "
                  f"over the first 500 ms {np.ptp(torque[:500]):.2f} Nm")


if __name__ == "__main__":
    for run in ("paper-sim", "paper-schunk"):
        read(run)
    if "--lift" in sys.argv:
        lift()
