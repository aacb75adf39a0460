"""Online adaptation on streams (Section IV-B / V-B) and the baselines it is compared with.

A *method* is a loss (learned or MSE), an optimizer and a rate, and a starting point (a random model or
one pretrained offline on the meta-train data). Each method runs on each trial's stream for several model
seeds (under vmap): at each batch of 5 consecutive samples the MSE is recorded before the model takes one
step (:func:`fastadapt.optim.loops.run_updates`). The Table I summary gives, per phase, the mean and
std over trials x seeds of the phase's mean online MSE.

The classical anchors (issue 27) are scored the same way: recursive least squares on random Fourier
features, linear RLS, and RLS on the residual of a pretrained model (:mod:`fastadapt.adapt.rls`), one
feature draw per model seed. Their settings (length scale, forgetting, ridge) come from a grid scored on
a stream of meta-train data (:func:`tune_rls`), as the baselines' rates do in :func:`best_rate`; the
number of features is their compute budget (``rls_features``), not tuned.

ALPaCA (:mod:`fastadapt.models.alpaca`), the meta-learned anchor, is meta-trained on the meta-train
data by the one trainer; online its posterior is updated batch after batch with a forgetting factor
chosen on a stream of meta-train data (:func:`tune_alpaca`), one meta-training seed per model seed.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.rls import LastLayerFeatures, RLSConfig, rls_online_scores
from fastadapt.optim.pretrain import pretrain
from fastadapt.optim.loops import make_optimizer, run_transform, run_updates, score_without_updates
from fastadapt.data.batches import Samples, Stream
from fastadapt.validation import require_at_least, require_nonempty, require_positive_rates


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    batch_size: int = 5  # samples per online step (the paper's 5)
    seeds: int = 5  # fresh models adapted per method (mean and spread)
    # SGD rate of the learned losses (unset: each loss file's own rate, its meta-training inner rate meta.alpha,
    # so that a sweep of meta.alpha adapts online at each value). Setting it overrides the losses' own rates
    alpha: float | None = None
    sgd_rates: tuple[float, ...] = (1e-3, 1e-2)  # the paper's two MSE baselines
    # SGD rates searched for the best-tuned MSE baseline (tuned on the stream itself)
    sgd_grid: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    # Adam rates searched for the best-tuned Adam baseline
    adam_grid: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    pretrain_steps: int = 3000  # Adam steps fitting the pretrained models offline on the meta-train data
    pretrain_rate: float = 1e-3  # Adam's rate of that offline fit
    pretrain_batch: int = 256  # batch size of that offline fit
    # practitioner's protocol: the learned losses' rate alpha * scale, scale chosen by online validation
    # on the meta-train data only (see fastadapt.experiments.pipeline.warm_start_validation)
    warm_rate_scales: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03, 0.01)
    # also step each learned loss by the learning-rate memory (MetaGD: one memory per layer, M = 200,
    # memory rate 0.005, clip 1, every local rate starting at alpha), from a random model
    memory: bool = False
    # the RLS anchors (recursive least squares, fastadapt.adapt.rls): random Fourier features (their compute
    # budget), and the grid of settings chosen on a stream of meta-train data, as the baselines' rates are
    rls_features: int = 200
    rls_length_scales: tuple[float, ...] = (2.0, 4.0, 8.0)  # RBF length scales, normalised input units
    rls_forgetting: tuple[float, ...] = (0.998, 0.999, 1.0)  # forgetting factors lambda in (0, 1]
    rls_regs: tuple[float, ...] = (0.1, 1.0)  # ridge (prior precision) of the weights
    rls_tuning_seeds: int = 2  # feature draws scoring each RLS setting on meta-train data (their spread is ~1%)
    seed: int = 0  # random seed of the models' initialisation

    def __post_init__(self):
        require_at_least(self, 1, "batch_size", "seeds", "pretrain_steps", "pretrain_batch")
        require_at_least(self, 0, "seed")
        require_positive_rates(self, *(["alpha"] if self.alpha is not None else []), "sgd_rates", "sgd_grid", "adam_grid",
                               "pretrain_rate", "warm_rate_scales", "rls_length_scales", "rls_regs")
        require_nonempty(self, "sgd_grid", "adam_grid", "warm_rate_scales", "rls_length_scales", "rls_forgetting",
                         "rls_regs")
        require_at_least(self, 1, "rls_features", "rls_tuning_seeds")
        for value in self.rls_forgetting:
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ValueError(f"config field 'rls_forgetting' must lie in (0, 1], got {self.rls_forgetting!r}")

    def rls_grid(self, features: int) -> list[RLSConfig]:
        """Every RLS setting searched with ``features`` random features (0: linear, no length scale)."""
        scales = self.rls_length_scales if features else (1.0,)
        return [RLSConfig(features, scale, forgetting, reg)
                for scale, forgetting, reg in itertools.product(scales, self.rls_forgetting, self.rls_regs)]


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    loss: object
    loss_params: object
    optimizer: object = "sgd"  # 'sgd', 'adam' (at ``rate``) or an optax GradientTransformation
    rate: float = 1e-3
    start: str = "random"  # or "pretrained"; a method with rate 0 and start "pretrained" is not adapted

    @property
    def adapts(self) -> bool:
        return self.rate > 0


def initial_models(model, seeds: int, seed: int):
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    return jax.vmap(model.init)(keys)


def pretrain_models(model, train: Samples, config: OnlineConfig):
    """Models fitted offline to the meta-train data (see :func:`fastadapt.optim.pretrain.pretrain`), one
    per seed. Returns (params [seeds], final MSE [seeds])."""
    return pretrain(model, train, config.seeds, config.pretrain_steps, config.pretrain_rate,
                    config.pretrain_batch, config.seed + 7)


def online_scores(model, method: Method, starts, streams: Sequence[Stream]) -> np.ndarray:
    """Online MSE before each update: [trials, seeds, batches] (trials must share a stream length)."""
    per_trial = []
    for stream in streams:
        if not isinstance(method.optimizer, str):
            transform = method.optimizer
            run = lambda theta: run_transform(
                model, method.loss, transform, method.loss_params, theta, transform.init(theta), stream.batches
            )[2]
        elif method.adapts:
            run = lambda theta: run_updates(
                model, method.loss, method.optimizer, method.rate, method.loss_params, theta, stream.batches
            )[1]
        else:
            run = lambda theta: score_without_updates(model, theta, stream.batches)
        per_trial.append(np.asarray(jax.vmap(run)(starts)))
    return np.stack(per_trial)


def joint_errors(model, method: Method, starts, streams: Sequence[Stream]) -> np.ndarray:
    """Like :func:`online_scores`, the squared error per joint before each update: [trials, seeds,
    batches, joints] (its mean over joints is ``online_scores``)."""
    transform = method.optimizer if not isinstance(method.optimizer, str) else make_optimizer(
        method.optimizer, method.rate)
    per_trial = []
    for stream in streams:
        run = lambda theta: run_transform(model, method.loss, transform, method.loss_params, theta,
                                          transform.init(theta), stream.batches, per_joint=True)[2]
        per_trial.append(np.asarray(jax.vmap(run)(starts)))
    return np.stack(per_trial)


def overall(scores: np.ndarray) -> float:
    """Mean online MSE over everything; a diverged run (NaN/inf) makes it inf."""
    value = float(np.mean(scores))
    return value if np.isfinite(value) else float("inf")


def best_rate(model, make_method, rates, starts, streams) -> tuple[float, np.ndarray, dict]:
    """The rate of ``rates`` with the lowest mean online MSE on these streams (tuned on the evaluation
    stream itself, i.e. the most favourable setting for the baseline)."""
    results = {rate: online_scores(model, make_method(rate), starts, streams) for rate in rates}
    by_rate = {rate: overall(s) for rate, s in results.items()}
    best = min(by_rate, key=by_rate.get)
    return best, results[best], by_rate


def rls_scores(config: RLSConfig, streams: Sequence[Stream], seeds: int, seed: int, model=None,
               pretrained=None, per_joint: bool = False) -> np.ndarray:
    """Online MSE of RLS before each update, [trials, seeds, batches] like :func:`online_scores` (with
    ``per_joint``: [..., joints]); with ``model`` and ``pretrained`` (params [seeds]) RLS learns the
    residual of each seed's pretrained model."""
    per_trial = []
    for stream in streams:
        base = None
        if pretrained is not None:  # the first ``seeds`` pretrained models, one per feature draw
            count = jax.tree_util.tree_leaves(pretrained)[0].shape[0]
            if count < seeds:
                raise ValueError(f"residual RLS with {seeds} feature draws needs as many pretrained models, got {count}")
            first = jax.tree_util.tree_map(lambda leaf: leaf[:seeds], pretrained)
            base = jax.vmap(model.apply, in_axes=(0, None))(first, stream.batches.x)
        per_trial.append(rls_online_scores(config, stream.batches, seeds, seed, base, per_joint))
    return np.stack(per_trial)


def head_scores(config: RLSConfig, model, pretrained, streams: Sequence[Stream], seeds: int) -> np.ndarray:
    """Online MSE, [trials, seeds, batches], of a Bayesian last layer with forgetting on each pretrained
    model: RLS on [h(x), 1], h the model's last hidden layer, on top of the model's own prediction (so
    its prior mean is the pretrained last layer); ``config.features`` and ``length_scale`` are unused."""
    count = jax.tree_util.tree_leaves(pretrained)[0].shape[0]
    if count < seeds:
        raise ValueError(f"an RLS head on {seeds} models needs as many pretrained models, got {count}")
    first = jax.tree_util.tree_map(lambda leaf: leaf[:seeds], pretrained)
    per_trial = []
    for stream in streams:
        base = jax.vmap(model.apply, in_axes=(0, None))(first, stream.batches.x)
        per_trial.append(rls_online_scores(config, stream.batches, seeds, 0, base,
                                           features=LastLayerFeatures(model, first)))
    return np.stack(per_trial)


def alpaca_scores(learner, seed_params, streams: Sequence[Stream], forgetting: float, per_joint: bool = False):
    """Online MSE before each update of an ALPaCA learner's posterior mean, [trials, seeds, batches] (with
    ``per_joint``: [..., joints]), one meta-trained parameter set per seed (``seed_params`` stacked
    [seeds, ...]), in float64."""
    from jax import enable_x64

    with enable_x64():
        params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float64), seed_params)
        run = jax.jit(jax.vmap(lambda p, x, y: learner.stream_scores(p, x, y, forgetting)[1], in_axes=(0, None, None)))
        per_trial = [np.asarray(run(params, jnp.asarray(s.batches.x, jnp.float64), jnp.asarray(s.batches.y, jnp.float64)))
                     for s in streams]
    scores = np.stack(per_trial)
    return scores if per_joint else scores.mean(-1)


def alpaca_label(forgetting: float) -> str:
    return f"alpaca, meta-learned features + bayesian last layer (forgetting {forgetting:g})"


def tune_alpaca(learner, seed_params, streams, forgettings: Sequence[float]):
    """The forgetting factor of ``forgettings`` with the lowest mean online MSE on ``streams`` (meta-train
    data): (best, {label: overall})."""
    by_value = {f: overall(alpaca_scores(learner, seed_params, streams, f)) for f in forgettings}
    best = min(by_value, key=by_value.get)
    return best, {alpaca_label(f): v for f, v in by_value.items()}


def head_label(config: RLSConfig) -> str:
    return f"pretrained + rls head on its last hidden layer (forgetting {config.forgetting:g}, reg {config.reg:g})"


def tune_head(configs: Sequence[RLSConfig], model, pretrained, streams, seeds: int):
    """The head setting of ``configs`` with the lowest mean online MSE on ``streams``: (best, {label: overall})."""
    by_label = {head_label(c): overall(head_scores(c, model, pretrained, streams, seeds)) for c in configs}
    best = min(configs, key=lambda c: by_label[head_label(c)])
    return best, by_label


def tune_rls(configs: Sequence[RLSConfig], streams, seeds: int, seed: int, model=None, pretrained=None):
    """The RLS setting of ``configs`` with the lowest mean online MSE on ``streams`` (meta-train data, never
    the evaluation stream): (best, {label: overall})."""
    by_label = {c.label: overall(rls_scores(c, streams, seeds, seed, model, pretrained)) for c in configs}
    best = min(configs, key=lambda c: by_label[c.label])
    return best, by_label


def phase_table(scores: np.ndarray, stream: Stream) -> dict[str, dict[str, float]]:
    """Per phase: mean and std over trials x seeds of each run's mean online MSE in that phase."""
    runs = scores.reshape(-1, scores.shape[-1])
    table = {}
    for index, name in enumerate(stream.segment_names):
        mask = stream.segment == index
        if not mask.any():
            continue
        per_run = runs[:, mask].mean(axis=1)
        table[name] = {"mean": float(per_run.mean()), "std": float(per_run.std())}
    return table
