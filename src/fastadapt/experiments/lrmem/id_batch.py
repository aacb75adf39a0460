"""Figure 4: batch learning of inverse dynamics on two tasks in sequence, the memory carried over.

Task 1: the end effector goes round a rectangle in the horizontal plane; task 2: the same rectangle in
the vertical plane (simulated KUKA iiwa at 1 kHz, 10,000 samples each, tracked by a controller whose
model lacks the 1 kg the arm carries). One network per joint ([100, 50, 10], ReLU), full-batch steps on
the summed per-joint MSE. GD and MetaGD on task 1; on task 2 a new network with GD, MetaGD with a new
memory and MetaGD with task 1's memory (which keeps learning). The paper drops out before the output
layer; these networks have no dropout.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from fastadapt.data.batches import normalised_samples
from fastadapt.experiments.lrmem.common import REPORT_JOINT, cached, optimizer, raw_torque_normalizer, summed_mse
from fastadapt.validation import require_at_least, require_positive_rates
from fastadapt.experiments.output import finish, markdown_table, prepare, steps_to
from fastadapt.models.mlp import PerJointMLP
from fastadapt.optim import MemoryConfig, transfer_memory
from fastadapt.optim.loops import minimize
from fastadapt.sim import motions


@dataclasses.dataclass(frozen=True)
class Config:
    points: int = 10_000  # samples per simulated rectangle motion
    dt: float = 1e-3  # sampling step in seconds
    steps: int = 1000  # full-batch gradient steps per run
    eta: float = 1e-3  # the initial learning rate
    num_models: int = 200  # local models M of the learning-rate memory
    memory_rate: float = 0.005  # rate at which the memory's local learning rates are learned
    grad_clip: float = 1.0  # gradient clipping norm
    hidden: tuple[int, ...] = (100, 50, 10)  # hidden layer widths of the inverse-dynamics network
    thresholds: tuple[float, ...] = (10.0, 1.0)  # report the steps until the MSE falls below each
    seed: int = 0  # random seed

    def __post_init__(self):
        require_at_least(self, 1, "steps", "hidden")
        require_at_least(self, 100, "points")
        require_at_least(self, 2, "num_models")
        require_at_least(self, 0, "seed")
        require_positive_rates(self, "dt", "eta", "grad_clip", "thresholds")
        require_positive_rates(self, "memory_rate", allow_zero=True)


def quick(config: Config) -> Config:
    return dataclasses.replace(config, points=2000, steps=150, hidden=(32, 16, 8))



def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    directory = prepare(directory)
    planes = ("horizontal", "vertical")
    data = {plane: cached(directory / "data" / f"rectangle_{plane}_{config.points}.npz",
                          lambda plane=plane: motions.rectangle_dataset(plane, config.points, config.dt))
            for plane in planes}
    normalizer = raw_torque_normalizer(data["horizontal"])
    samples = {plane: normalised_samples(ds, normalizer) for plane, ds in data.items()}
    joints = data["horizontal"].num_joints
    model = PerJointMLP(joints, config.hidden)
    loss, loss_params = summed_mse(joints)
    memory = MemoryConfig(num_models=config.num_models, memory_rate=config.memory_rate, clip=config.grad_clip)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), 2)

    def objective(s):
        """(summed per-joint MSE, the reported joint's MSE) from one forward pass."""

        def value(p):
            pred = model.apply(p, s.x)
            return loss.apply(loss_params, pred, s.y), jnp.mean(jnp.square(pred[:, REPORT_JOINT] - s.y[:, REPORT_JOINT]))

        return value

    curves, states = {}, {}
    plan = [("task 1 (horizontal)", "horizontal", "GD", None), ("task 1 (horizontal)", "horizontal", "MetaGD", None),
            ("task 2 (vertical)", "vertical", "GD", None), ("task 2 (vertical)", "vertical", "MetaGD", None),
            ("task 2 (vertical)", "vertical", "MetaGD", "task 1 memory")]
    log(f"rectangle tasks, {config.points} samples each, {config.steps} full-batch steps per run")
    for task, plane, method, reuse in tqdm(plan, desc="batch runs", disable=not progress, leave=False):
        params = model.init(keys[0 if plane == "horizontal" else 1])
        transform = optimizer(method, config.eta, memory, config.grad_clip)
        state = transform.init(params)
        if reuse:
            state = transfer_memory(state, states[("task 1 (horizontal)", "MetaGD")])
        _, state, _, joint_mse = minimize(objective(samples[plane]), params, transform, config.steps, state, has_aux=True)
        name = f"{method}" + (f" ({reuse})" if reuse else (" (new memory)" if method == "MetaGD" else ""))
        curves[(task, name)] = np.asarray(joint_mse)
        states[(task, method)] = state
    from fastadapt.experiments.lrmem.figures import batch_figure

    figure = batch_figure(directory / "fig4_batch_id.png", curves, config)
    header = ["task", "method", *[f"steps to MSE < {t:g}" for t in config.thresholds], f"MSE after {config.steps}"]
    rows = [[task, name, *[steps_to(c, t) if steps_to(c, t) is not None else f"> {config.steps}" for t in config.thresholds],
             float(c[-1])] for (task, name), c in curves.items()]
    body = [f"Joint A{REPORT_JOINT + 1} (Nm^2), eta = {config.eta:g}, M = {config.num_models}, memory rate "
            f"{config.memory_rate:g}, clip {config.grad_clip:g}.", "", markdown_table(header, rows)]
    metrics = {"config": dataclasses.asdict(config), "report_joint": REPORT_JOINT,
               "curves": {"|".join(k): v.tolist() for k, v in curves.items()},
               "final": {"|".join(k): float(v[-1]) for k, v in curves.items()}}
    return finish(directory, "Batch inverse dynamics (Fig. 4)", metrics, body, [figure], log)
