"""ML3's generality claim (section 4.1, Fig. 4 c, d for RL) on sine regression: a meta-loss meta-trained
with one optimizee architecture trains others it has never seen.

The loss is meta-trained as in :mod:`fastadapt.experiments.ml3.sine` on our protocol (``sine.OURS``: the
1 -> 40 -> 40 -> 1 ReLU MLP, on sin(x - pi)); then fresh optimizees of each architecture in ``architectures`` are trained with it and
with MSE on the ten meta-test functions A sin(x - w) (Algorithm 2, ``eval_steps`` SGD steps at alpha).
An architecture is written ``40x40-relu``: hidden widths joined by ``x``, then the activation. The
defaults are the meta-train one, a deeper, a wider and a tanh network.
"""

from __future__ import annotations

import dataclasses

import jax

from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.meta.trainer import MetaTrainer
from fastadapt.experiments.ml3 import sine
from fastadapt.meta.evaluation import compare_curves, final_summary
from fastadapt.models.mlp import check_activation


def parse_architecture(text: str) -> tuple[tuple[int, ...], str]:
    """'40x40-relu' -> ((40, 40), 'relu')."""
    widths, _, activation = text.partition("-")
    try:
        hidden = tuple(int(w) for w in widths.split("x"))
    except ValueError:
        hidden = ()
    if not activation or not hidden or min(hidden) < 1:
        raise ValueError(f"config field 'architectures': '{text}' is not an architecture like 40x40-relu "
                         "(hidden widths joined by x, a dash, an activation)")
    check_activation(activation)
    return hidden, activation


@dataclasses.dataclass(frozen=True)
class Config(sine.Config):
    """The sine experiment's keys on *our* protocol (``sine.OURS``: 40 x 40 networks with biases,
    LeCun-normal, meta-test inputs in [-2, 2], 3,000 outer iterations, the best loss kept), which this
    experiment was measured on, and the architectures the loss then trains."""

    epochs: int = sine.OURS["epochs"]
    eval_every: int = sine.OURS["eval_every"]
    keep: str = sine.OURS["keep"]
    hidden: tuple[int, ...] = sine.OURS["hidden"]
    loss_hidden: tuple[int, ...] = sine.OURS["loss_hidden"]
    model_weights: str = sine.OURS["model_weights"]
    loss_weights: str = sine.OURS["loss_weights"]
    loss_bias: bool = sine.OURS["loss_bias"]
    test_input_range: float = sine.OURS["test_input_range"]
    # networks the sine-trained loss trains, as WIDTHxWIDTH-ACTIVATION (40x40-relu)
    architectures: tuple[str, ...] = ("40x40-relu", "40x40x40-relu", "100x100-relu", "40x40-tanh")

    def __post_init__(self):
        super().__post_init__()
        if not self.architectures:
            raise ValueError("config field 'architectures' must not be empty")
        for text in self.architectures:
            parse_architecture(text)


def quick(config: Config) -> Config:
    return sine.quick(config)


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train on the first architecture (resumable), then train every architecture with the loss."""
    from fastadapt.experiments.ml3.figures import transfer_figure

    directory = prepare(directory)
    trained_on = f"{'x'.join(map(str, config.hidden))}-{config.activation}"
    log(f"architecture transfer: meta-train with {trained_on}, train {', '.join(config.architectures)} with the loss")
    loss = sine.meta_loss(config)
    result = MetaTrainer(config, sine.sine_task(config), loss).run(directory / "loss", progress=progress)
    key = jax.random.PRNGKey(config.seed + 99)
    curves, finals = {}, {}
    for text in config.architectures:
        hidden, activation = parse_architecture(text)
        task = sine.sine_task(dataclasses.replace(config, hidden=hidden, activation=activation))
        curves[text], _ = compare_curves(MetaTrainer(config, task, loss), result, "meta-test", key)
        finals[text] = final_summary(curves[text])
    figure = transfer_figure(directory / "fig_architecture_transfer.png", config, trained_on, curves)
    metrics = {
        "meta_trained_with": trained_on,
        "meta_test_final_mse": {a: {"ML3": f["ML3"], "MSE": f["task loss"], "ratio": f["ML3"]["mean"] / f["task loss"]}
                                for a, f in finals.items()},
    }
    rows = [[a + (" (meta-train)" if a == trained_on else ""), f"{f['ML3']['mean']:.3g} +- {f['ML3']['std']:.2g}",
             f"{f['task loss']:.3g}", f"{f['ML3']['mean'] / f['task loss']:.2f}"] for a, f in finals.items()]
    body = [
        f"The loss meta-trained with {trained_on} ({config.epochs * config.batches_per_epoch} outer iterations, "
        f"{config.seeds} seeds) trains each architecture on the {config.test_tasks} meta-test functions; MSE after "
        f"{config.eval_steps} SGD steps at alpha = {config.alpha:g} (mean +- std over seeds):", "",
        markdown_table(["optimizee", "ML3 loss", "MSE loss", "ML3 / MSE"], rows),
    ]
    return finish(directory, "ML3: one meta-loss, other architectures", metrics, body, [figure], log)
