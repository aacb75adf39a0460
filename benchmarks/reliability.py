"""Reliability counts for docs/RESULTS.md: every case of the bad-input catalogue (tests/bad_inputs.py)
judged as a clear error, a wrong diagnosis, a traceback, a silent result or lost files; and the Adapter
fed a stream at diverging learning rates (how many predictions were non-finite, how many updates it
rejected). Usage: python benchmarks/reliability.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bad_inputs import all_cases, make_fixtures, run_case  # noqa: E402

VERDICTS = ("clear", "wrong diagnosis", "traceback", "silent", "files lost")


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
    print("| inputs | cases | clear errors | wrong diagnosis | tracebacks | silent wrong results | files lost |")
    print("|---|---|---|---|---|---|---|")
    total = collections.Counter()
    for group, counter in counts.items():
        total.update(counter)
        print(f"| {group} | {sum(counter.values())} | " + " | ".join(str(counter[v]) for v in VERDICTS) + " |")
    print(f"| **all** | **{sum(total.values())}** | " + " | ".join(f"**{total[v]}**" for v in VERDICTS) + " |")
    for line in problems:
        print("  -", line)


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
        catalogue(Path(tmp))
    diverging_adapter()
