"""ML3 Fig. 2 (bottom) and Appendix D: a meta-loss for binary digit classification, meta-trained on one
pair of digits and used on four others.

Each task is a pair of digits (a, b) labelled 0 and 1. The optimizee is a LeNet-style network
(:class:`fastadapt.models.lenet.LeNet`) with one logit z; the task loss is the binary cross-entropy
L = mean softplus(z) - y z. The meta-loss M_phi(z, y) = mean_n softplus(g_phi([z_n, y_n])), g: 2 -> 40 ->
40 -> 1 (ReLU). alpha = eta = 0.001 (inner SGD, Adam on phi). Each outer iteration draws a fresh LeNet,
takes ``iters_max`` = 10 SGD steps on M_phi on minibatches of the meta-train pair's training images and
updates phi once, from the mean over the ten steps of the cross-entropy on other minibatches, backpropagating
through all ten (``update='unroll'``, ML3 section 3.1's truncated unroll). With one step per fresh LeNet and an
update of phi after it, ML3 lost to the cross-entropy (docs/RESULTS.md): a loss judged one step ahead
only learns to take one good step.

Data: scikit-learn's 8x8 digits (default, bundled; each pair's images are split in half into training and
held-out images) or MNIST's IDX files in a directory (``source=DIR``: training images from the train
split, held-out ones from t10k). ``pairs`` lists the digits flat, meta-train pair first
(``pairs=3,8,1,7,0,6,2,5,4,9``); empty: five distinct pairs drawn with ``seed``.

Evaluation (Algorithm 2): fresh LeNets trained for ``eval_steps`` minibatch SGD steps at alpha with the
learned loss or the cross-entropy, scored by the cross-entropy on the pair's held-out images (the
meta-train pair, or one meta-test pair per run, in turn). The accuracy after the last step is reported too.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.data.digits import binary_task, load_digits, mnist_inputs
from fastadapt.data.trajectory import DataError
from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least
from fastadapt.losses.classification import BinaryCrossEntropyLoss, binary_cross_entropy
from fastadapt.losses.regression import MLPLoss
from fastadapt.meta.trainer import MetaTrainer, TrainerConfig
from fastadapt.meta.evaluation import compare_curves, final_summary, meta_train_evaluations
from fastadapt.models.lenet import LeNet


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    """The trainer's keys with ML3's defaults (alpha = eta = 0.001, Adam on phi, 5 seeds; an update of phi
    through 10 inner steps per fresh optimizee) and the task's."""

    alpha: float = 1e-3
    eta: float = 1e-3
    meta_optimizer: str = "adam"
    iters_max: int = 10
    update: str = "unroll"
    epochs: int = 100
    batches_per_epoch: int = 10
    seeds: int = 5
    eval_every: int = 10
    eval_steps: int = 100
    eval_seeds: int = 8
    source: str = "sklearn"  # sklearn (8x8 digits) or a directory with MNIST's idx files
    # digit pairs: meta-train pairs then a meta-test pair (e.g. 3,8,1,7); empty: the defaults
    pairs: tuple[int, ...] = ()
    batch_size: int = 64  # images per inner step
    max_train: int = 2000  # training images kept per pair
    max_eval: int = 500  # held-out images kept per pair
    kernel: int = 0  # 0: 3 for 8x8 images, 5 for larger ones
    loss_hidden: tuple[int, ...] = (40, 40)  # hidden layer widths of the meta-loss network

    def __post_init__(self):
        object.__setattr__(self, "pairs", tuple(int(d) for d in self.pairs))
        object.__setattr__(self, "loss_hidden", tuple(int(h) for h in self.loss_hidden))
        super().__post_init__()
        require_at_least(self, 1, "batch_size", "max_train", "max_eval", "loss_hidden")
        require_at_least(self, 0, "kernel")
        if self.pairs:
            if len(self.pairs) < 4 or len(self.pairs) % 2:
                raise ValueError(f"config field 'pairs' must list digit pairs flat, meta-train pair first, at least "
                                 f"two pairs (e.g. pairs=3,8,1,7); got {len(self.pairs)} digits {self.pairs}")
            for a, b in zip(self.pairs[::2], self.pairs[1::2]):
                if a == b:
                    raise ValueError(f"config field 'pairs': pair ({a}, {b}) holds the same digit twice")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=6, batches_per_epoch=10, iters_max=2, eval_every=3, seeds=2,
                               eval_steps=50, eval_seeds=4)


def inputs(config: Config) -> dict[str, str]:
    """The MNIST directory the config names, if any (the run directory's identity records it)."""
    return mnist_inputs(config.source)


TEST_PAIRS = 4


def draw_pairs(digits_present, seed: int, count: int = 1 + TEST_PAIRS) -> list[tuple[int, int]]:
    """``count`` distinct unordered pairs of the digits present, in a random order drawn with ``seed``."""
    candidates = list(itertools.combinations(sorted(digits_present), 2))
    if len(candidates) < count:
        raise DataError(f"the data holds digits {sorted(digits_present)}: {len(candidates)} pairs, {count} needed")
    order = np.random.default_rng(seed).permutation(len(candidates))[:count]
    return [candidates[i] for i in order]


@dataclasses.dataclass(frozen=True)
class DigitPairs:
    """Training and held-out images of each pair, meta-train pair first: x [P, n, H, W, 1], y [P, n, 1]."""

    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    source: str


def _split_pair(x, y, rng, max_train: int, max_eval: int, held_out=None):
    """Shuffle one pair's images; half of them train and half are held out, unless ``held_out`` (x, y) is given."""
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    if held_out is None:
        half = len(y) // 2
        (x, y), held_out = (x[:half], y[:half]), (x[half:], y[half:])
    else:
        keep = rng.permutation(len(held_out[1]))
        held_out = (held_out[0][keep], held_out[1][keep])
    return x[:max_train], y[:max_train], held_out[0][:max_eval], held_out[1][:max_eval]


def load_pairs(config: Config) -> DigitPairs:
    """The pairs' images, each cut to the same number of training and held-out images (the smallest pair's)."""
    digits = load_digits(config.source, "train")
    held_out = None if config.source == "sklearn" else load_digits(config.source, "test")
    if config.pairs:
        pairs = [tuple(config.pairs[i:i + 2]) for i in range(0, len(config.pairs), 2)]
    else:
        pairs = draw_pairs(np.unique(digits.labels).tolist(), config.seed)
    rng = np.random.default_rng(config.seed)
    parts = []
    for a, b in pairs:
        x, y = binary_task(digits, a, b)
        parts.append(_split_pair(x, y, rng, config.max_train, config.max_eval,
                                 None if held_out is None else binary_task(held_out, a, b)))
    n_train, n_eval = min(len(p[1]) for p in parts), min(len(p[3]) for p in parts)
    if n_train < config.batch_size:
        raise DataError(f"the smallest digit pair has {n_train} training images, fewer than batch_size={config.batch_size}")
    stack = lambda i, n: np.stack([p[i][:n] for p in parts])
    return DigitPairs(stack(0, n_train), stack(1, n_train)[..., None].astype(np.float32), stack(2, n_eval),
                      stack(3, n_eval)[..., None].astype(np.float32), tuple(pairs), digits.source)


@dataclasses.dataclass(frozen=True)
class DigitsTask:
    """Pair 0 is meta-train, pairs 1.. meta-test. Minibatches of ``batch_size`` training images."""

    train_x: jnp.ndarray
    train_y: jnp.ndarray
    eval_x: jnp.ndarray
    eval_y: jnp.ndarray
    model: LeNet
    batch_size: int

    eval_splits = ("meta-train", "meta-test")
    default_batches = 10

    @property
    def baseline_loss(self):
        return BinaryCrossEntropyLoss()

    def start(self, key):
        return self.model.init(key)

    def _minibatches(self, key, pair, count):
        """``count`` minibatches of pair ``pair``'s training images, drawn uniformly with replacement."""
        index = jax.random.randint(key, (count, self.batch_size), 0, self.train_x.shape[1])
        return self.train_x[pair][index], self.train_y[pair][index]

    def meta_batches(self, key, count):
        inner_key, outer_key = jax.random.split(key)
        return self._minibatches(inner_key, 0, count), self._minibatches(outer_key, 0, count)

    def loss_inputs(self, theta, batch):
        x, y = batch
        return self.model.apply(theta, x), y, None

    def task_loss(self, theta, batch):
        x, y = batch
        return binary_cross_entropy(self.model.apply(theta, x), y)

    score = task_loss

    def accuracy(self, theta, eval_set):
        x, y = eval_set
        return jnp.mean((self.model.apply(theta, x) > 0) == (y > 0.5))

    def _pair(self, split: str, index):
        return 0 if split == "meta-train" else 1 + index % (self.train_x.shape[0] - 1)

    @functools.partial(jax.jit, static_argnames="split")
    def run_accuracy(self, thetas, split: str):
        """Held-out accuracy of the optimizees of evaluation runs 0, 1, ... on ``split`` (thetas stacked)."""
        index = jnp.arange(jax.tree.leaves(thetas)[0].shape[0])
        return jax.vmap(lambda theta, i: self.accuracy(theta, (self.eval_x[self._pair(split, i)],
                                                               self.eval_y[self._pair(split, i)])))(thetas, index)

    def eval_problem(self, split: str, key, index, steps: int):
        """A fresh LeNet on the meta-train pair, or on meta-test pair ``index`` (mod the number of them)."""
        pair = self._pair(split, index)
        init_key, batch_key = jax.random.split(key)
        return (self.model.init(init_key), self._minibatches(batch_key, pair, steps),
                (self.eval_x[pair], self.eval_y[pair]))

    def saved_arrays(self) -> dict:
        return {}


jax.tree_util.register_dataclass(DigitsTask, data_fields=["train_x", "train_y", "eval_x", "eval_y"],
                                 meta_fields=["model", "batch_size"])


def digits_task(config: Config, data: DigitPairs | None = None) -> DigitsTask:
    data = data or load_pairs(config)
    size = data.train_x.shape[2]
    kernel = config.kernel or (3 if size <= 8 else 5)
    as32 = lambda a: jnp.asarray(a, jnp.float32)
    return DigitsTask(as32(data.train_x), as32(data.train_y), as32(data.eval_x), as32(data.eval_y),
                      LeNet(image_size=size, kernel=kernel), config.batch_size)


def meta_loss(config: Config) -> MLPLoss:
    return MLPLoss(1, config.loss_hidden)


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train on the first pair (resumable from ``directory``), then Fig. 2 c and d (bottom)."""
    from fastadapt.experiments.ml3.figures import meta_train_and_test

    directory = prepare(directory)
    data = load_pairs(config)
    task, loss = digits_task(config, data), meta_loss(config)
    names = [f"{a} vs {b}" for a, b in data.pairs]
    log(f"binary digits ({data.source}): meta-train on {names[0]}, meta-test on {', '.join(names[1:])}; "
        f"{data.train_x.shape[1]} training and {data.eval_x.shape[1]} held-out images per pair, {config.seeds} seeds")
    trainer = MetaTrainer(config, task, loss)
    result = trainer.run(directory / "loss", progress=progress)
    key = jax.random.PRNGKey(config.seed + 99)
    curves, accuracy = compare_curves(trainer, result, "meta-test", key,
                                      final_metric=lambda thetas: task.run_accuracy(thetas, "meta-test"))
    history, final, final_accuracy = result.history, final_summary(curves), final_summary(accuracy)
    evals = meta_train_evaluations(history)
    metrics = {
        "pairs": {"meta_train": list(data.pairs[0]), "meta_test": [list(p) for p in data.pairs[1:]]},
        "data": data.source,
        "meta_test_final_cross_entropy": {"ML3": final["ML3"], "cross-entropy": final["task loss"]},
        "meta_test_final_accuracy": {"ML3": final_accuracy["ML3"], "cross-entropy": final_accuracy["task loss"]},
        "meta_train_final_cross_entropy": {
            "ML3_last_evaluation": {"mean": float(evals[-1].mean()), "std": float(evals[-1].std())},
            "cross-entropy": history["baseline"]["meta-train"]["mean"]},
        "outer_iterations": config.epochs * trainer.num_batches,
        "history": {"eval_epoch": history["eval_epoch"], "meta_train_mean": evals.tolist()},
    }
    figure = meta_train_and_test(directory / "fig2_binary_digits.png", history, trainer.num_batches, curves,
                                 ylabel=f"held-out cross-entropy after {config.eval_steps} steps",
                                 train_title=f"meta-train pair: {names[0]}", test_title="meta-test pairs: " + ", ".join(names[1:]),
                                 task_label="cross-entropy")
    fmt = lambda f: f"{f['ML3']['mean']:.4g} +- {f['ML3']['std']:.2g}"
    body = [
        f"{data.source}; meta-train pair {names[0]}, meta-test pairs {', '.join(names[1:])}. "
        f"{config.epochs * trainer.num_batches} outer iterations of {config.iters_max} inner steps (update={config.update}), "
        f"alpha = {config.alpha:g}, eta = {config.eta:g} "
        f"({config.meta_optimizer}), minibatches of {config.batch_size}; {config.seeds} seeds. "
        f"After {config.eval_steps} SGD steps at alpha, on held-out images:", "",
        markdown_table(["data", "metric", "ML3 loss (mean +- std over seeds)", "cross-entropy loss"], [
            [f"meta-train {names[0]}", "cross-entropy", f"{evals[-1].mean():.4g} +- {evals[-1].std():.2g}",
             history["baseline"]["meta-train"]["mean"]],
            ["meta-test pairs", "cross-entropy", fmt(final), final["task loss"]],
            ["meta-test pairs", "accuracy", fmt(final_accuracy), final_accuracy["task loss"]],
        ]),
    ]
    return finish(directory, "ML3: binary digit classification (Fig. 2 bottom)", metrics, body, [figure], log)
