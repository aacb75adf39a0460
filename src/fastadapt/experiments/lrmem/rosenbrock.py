"""Figure 2: the Rosenbrock function f(x, y) = (1 - x)^2 + 100 (y - x^2)^2.

Gradient descent at eta = 0.001 against two consecutive MetaGD runs from the same start: run 1 starts
with every local model at eta_init = 0.001; run 2 carries over (and keeps updating) run 1's memory.
Each dimension has its own memory (grouping 'leaf'); gradients are clipped at +-10 (the paper's
footnote 2), so the memory's centres span [-10, 10]. Reported: steps until f < threshold, the final f,
the paths, the rates applied per dimension and three snapshots of the y-memory during run 1.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import optax

from fastadapt.validation import require_at_least, require_in_range, require_nonempty, require_positive_rates
from fastadapt.experiments.output import finish, markdown_table, prepare, steps_to
from fastadapt.optim import MemoryConfig, lr_memory, transfer_memory
from fastadapt.optim.loops import minimize


@dataclasses.dataclass(frozen=True)
class Config:
    start_x: float = -1.5  # x of the start point
    start_y: float = 2.0  # y of the start point
    eta: float = 1e-3  # the initial learning rate (GD's fixed one)
    steps: int = 5000  # optimisation steps
    num_models: int = 100  # local models M of the learning-rate memory
    clip: float = 10.0  # gradient clipping norm
    memory_rate: float = 1e-4  # rate at which the memory's local learning rates are learned
    threshold: float = 1e-3  # report the steps until f falls below this
    snapshot_fractions: tuple[float, ...] = (0.02, 0.1, 0.4)  # fractions of the run at which the memory is drawn

    def __post_init__(self):
        require_at_least(self, 1, "steps")
        require_at_least(self, 2, "num_models")
        require_positive_rates(self, "eta", "clip", "threshold")
        require_positive_rates(self, "memory_rate", allow_zero=True)
        for name in ("start_x", "start_y"):
            if not -1e3 <= getattr(self, name) <= 1e3:
                raise ValueError(f"config field '{name}' must lie in [-1000, 1000], got {getattr(self, name)!r}")
        require_nonempty(self, "snapshot_fractions")
        require_in_range(self, "snapshot_fractions", 0.0, 1.0)


def quick(config: Config) -> Config:
    return dataclasses.replace(config, steps=1500)


def rosenbrock(p):
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def _path(params, grads, updates, state):
    return jnp.stack([params["x"], params["y"]])


def _path_rates_memory(clip: float):
    """Trace of position, the rate applied per dimension (-update / clipped gradient) and the memories."""

    def trace(params, grads, updates, state):
        z = jnp.clip(jnp.stack([grads["x"], grads["y"]]), -clip, clip)
        u = jnp.stack([updates["x"], updates["y"]])
        rate = jnp.where(z != 0, -u / jnp.where(z == 0, 1.0, z), jnp.nan)
        return jnp.stack([params["x"], params["y"]]), rate, state.rates

    return trace



def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    directory = prepare(directory)
    start = {"x": jnp.asarray(config.start_x, jnp.float32), "y": jnp.asarray(config.start_y, jnp.float32)}
    memory = MemoryConfig(eta_init=config.eta, num_models=config.num_models, clip=config.clip,
                          memory_rate=config.memory_rate, grouping="leaf")
    log(f"Rosenbrock from ({config.start_x}, {config.start_y}): GD, MetaGD run 1, MetaGD run 2 (memory reused)")
    gd = optax.chain(optax.clip(config.clip), optax.sgd(config.eta))
    _, _, gd_loss, gd_path = minimize(rosenbrock, start, gd, config.steps, trace_fn=_path)
    transform, trace = lr_memory(memory), _path_rates_memory(config.clip)
    _, state1, loss1, (path1, rates1, memories1) = minimize(rosenbrock, start, transform, config.steps,
                                                            trace_fn=trace)
    carried = transfer_memory(transform.init(start), state1)
    _, state2, loss2, (path2, rates2, _) = minimize(rosenbrock, start, transform, config.steps, carried,
                                                    trace_fn=trace)
    runs = {"GD": (gd_loss, gd_path), "MetaGD run 1": (loss1, path1), "MetaGD run 2 (memory reused)": (loss2, path2)}
    summary = {name: {"steps_to_threshold": steps_to(loss, config.threshold), "final_f": float(loss[-1])}
               for name, (loss, _) in runs.items()}
    snapshots = [min(config.steps - 1, int(f * config.steps)) for f in config.snapshot_fractions]
    from fastadapt.experiments.lrmem.figures import rosenbrock_figure

    figure = rosenbrock_figure(directory / "fig2_rosenbrock.png", runs, rates2, path1, memories1, snapshots,
                               memory, rosenbrock)
    rows = [[name, s["steps_to_threshold"] if s["steps_to_threshold"] is not None else f"> {config.steps}", s["final_f"]]
            for name, s in summary.items()]
    body = [f"Start ({config.start_x}, {config.start_y}), eta = {config.eta:g}, M = {config.num_models} per "
            f"dimension, clip {config.clip:g}, memory rate {config.memory_rate:g}, {config.steps} steps.", "",
            markdown_table(["method", f"steps until f < {config.threshold:g}", "final f"], rows)]
    metrics = {"config": dataclasses.asdict(config), "runs": summary, "snapshot_steps": snapshots,
               "final_memory": np.asarray(state2.rates).tolist()}
    return finish(directory, "Rosenbrock (Fig. 2)", metrics, body, [figure], log)
