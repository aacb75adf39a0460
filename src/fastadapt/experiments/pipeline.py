"""The paper's pipeline end to end, for simulated or real data.

    data -> meta-train each learned loss (Algorithm 1, Fig. 3 a/b), and the ALPaCA anchor
         -> final learning curves (Fig. 3 c/d)
         -> online learning on the meta-test trajectories (Fig. 5)
         -> online adaptation on held-out streams vs baselines (Fig. 6, Table I)
         -> the practitioner's protocol (pretrained model + online adaptation; the learned losses'
            rate for a warm start validated online on the meta-train data, never on the stream)
         -> analysis figures (Fig. 7, 8) -> metrics.json + report.md

``data='sim'``: meta-train on simulated KUKA sine motions f in {0.01, 0.03, 0.05, 0.06, 0.07, 0.08}
(with ``payload_changes`` > 0, also on the same motions with random payloads attached and detached
mid-stream), meta-test on f in {0.02, 0.04, 0.09}, stream the simulated pick-and-place trials (857 g
payload).
``data='schunk'``: meta-train on the even-numbered Schunk logs, hold out and stream the odd ones.
``data='sim2real'`` (the state-dependent paper's Sim2Real, Fig. 6 row 2, on a *simulated reality gap*,
see :mod:`fastadapt.sim.reality_gap`): the same motions recorded on a gap robot drawn with ``gap_seed``.
Each loss is meta-trained twice, on the nominal robot's sine motions (``losses-nominal/``, the Sim2Real
losses) and on the gap robot's (``losses/``, the Real2Real losses); both adapt models online on the gap
robot's pick-and-place streams, beside the baselines, in the gap robot's normalised units.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from fastadapt.adapt.online import (
    Method, OnlineConfig, alpaca_label, alpaca_scores, best_rate, head_label, head_scores, initial_models,
    online_scores, overall, phase_table, pretrain_models, rls_scores, tune_alpaca, tune_head, tune_rls,
)
from fastadapt.optim.pretrain import pretrain
from fastadapt.checkpoint import load_pytree, save_pytree, write_json
from fastadapt.data.batches import Samples, Stream, normalised_samples, sequential_stream
from fastadapt.data.io import load, save
from fastadapt.files import atomic_write_text, make_directory
from fastadapt.data.schunk import load_schunk, split_halves
from fastadapt.data.trajectory import DEFAULT_LIMITS, Limits, concatenate
from fastadapt.validation import require_at_least, require_nonempty, require_positive_rates
from fastadapt.losses import LEARNED_LOSSES, make_loss
from fastadapt.config import config_dict
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, inverse_dynamics_trainer
from fastadapt.meta.trainer import MetaTrainer
from fastadapt.optim import MemoryConfig, metagd
from fastadapt.experiments import pipeline_figures as figures, pipeline_report


DATA = ("sim", "schunk", "sim2real")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    data: str = "sim"  # "sim" or "schunk"
    # learned losses to meta-train and compare: mlp, structured, state-dependent
    losses: tuple[str, ...] = LEARNED_LOSSES
    trials: tuple[int, ...] = (0, 1, 2)  # pick-and-place trials streamed online (0, 1, 2)
    noise: bool = False  # add sensor noise to the simulated data
    sine_duration: float = 10.0  # seconds of each simulated meta-train/meta-test sine motion
    # payload changes per extra sine motion in the meta-train data (0: none; > 0: the sine motions again with
    # random payloads attached and detached mid-stream, sim.motions.payload_sine_dataset)
    payload_changes: int = 0
    phase_duration: float = 3.0  # seconds of each pick-and-place phase
    schunk_path: str = ""  # directory of the Schunk logs (default: the shared data folder)
    gap_seed: int = 0  # data='sim2real': the simulated reality gap, sim.reality_gap.sample_reality_gap(gap_seed)
    meta: InverseDynamicsConfig = InverseDynamicsConfig(epochs=60, eval_every=5)  # meta-training of each loss
    online: OnlineConfig = OnlineConfig()  # online adaptation on the streams
    # the ALPaCA anchor (a Bayesian last layer on meta-learned features), meta-trained once per model seed
    alpaca: InverseDynamicsConfig = InverseDynamicsConfig(
        loss="alpaca", update="posterior", meta_optimizer="adam", eta=1e-3, iters_max=20, epochs=30, eval_every=5,
        batches_per_epoch=100)

    def __post_init__(self):
        if self.data not in DATA:
            raise ValueError(f"unknown data '{self.data}', expected one of {', '.join(DATA)}")
        require_nonempty(self, "losses", "trials")
        for name in self.losses:
            if name not in LEARNED_LOSSES:
                raise ValueError(f"unknown learned loss '{name}', expected some of {LEARNED_LOSSES}")
        if len(set(self.losses)) != len(self.losses):
            raise ValueError(f"config field 'losses' names a loss twice: {self.losses}")
        require_at_least(self, 0, "trials", "payload_changes", "gap_seed")
        if len(set(self.trials)) != len(self.trials) or max(self.trials) > 2:
            raise ValueError(f"config field 'trials' must be distinct pick-and-place trials among 0, 1, 2, got {self.trials}")
        require_positive_rates(self, "sine_duration", "phase_duration")

    def inert_keys(self) -> dict[str, str]:
        """Keys that have no effect in this configuration, with the reason (they are neither listed by
        ``fastadapt keys`` nor accepted as overrides)."""
        inert = {"data": "the command chooses the data ('run sim', 'run schunk' or 'run sim2real')",
                 "meta.loss": "the pipeline meta-trains every loss named in 'losses'",
                 "alpaca.loss": "the ALPaCA anchor is loss=alpaca", "alpaca.update": "ALPaCA meta-trains with update=posterior",
                 "alpaca.seeds": "one ALPaCA is meta-trained per model seed (online.seeds)",
                 "alpaca.seed": "ALPaCA's seeds are the model seeds (online.seed)"}
        if self.data != "sim2real":
            inert["gap_seed"] = "it is read by 'run sim2real' only"
        if self.data != "schunk":
            inert["schunk_path"] = "it is read by 'run schunk' only"
        else:
            for key in ("trials", "noise", "sine_duration", "phase_duration", "payload_changes"):
                inert[key] = "it shapes the simulated data, which 'run schunk' does not use"
        return inert


# The state-dependent paper's own protocol (Section IV-A.2, Fig. 3 and 4): Algorithm 1 with K=256,
# alpha=0.001, SGD on phi at eta=0.01 and iters_max=10 (the defaults) for 300 epochs of 100 gradient steps
# (10 batches of 10 inner steps each; "100 gradient steps per epoch", Fig. 4's caption), 5 seeds, and the
# final loss of each seed kept (the papers report the loss at the end of meta-training). Evaluated every
# 5 epochs (the paper: every epoch; 5x cheaper here, the same curve at a fifth of the points).
PAPER_KEYS = ("meta.epochs=300", "meta.batches_per_epoch=10", "meta.seeds=5", "meta.keep=final", "meta.eval_every=5")

QUICK = dict(
    trials=(0,), sine_duration=5.0, phase_duration=1.5,
    meta=InverseDynamicsConfig(epochs=3, eval_every=1, eval_steps=50, eval_seeds=2, batches_per_epoch=20),
    alpaca=InverseDynamicsConfig(loss="alpaca", update="posterior", meta_optimizer="adam", eta=1e-3, iters_max=10,
                                 epochs=2, eval_every=1, eval_steps=50, eval_seeds=2, batches_per_epoch=20),
    online=OnlineConfig(seeds=2, sgd_grid=(1e-3, 1e-2, 1e-1), adam_grid=(1e-3, 1e-2), pretrain_steps=300,
                        warm_rate_scales=(1.0, 0.1), rls_features=50, rls_length_scales=(4.0,),
                        rls_forgetting=(0.999, 1.0), rls_regs=(1.0,)),
)


def quick(config: PipelineConfig) -> PipelineConfig:
    """A configuration that runs in well under a minute: fewer epochs, seeds, trials and rates."""
    return dataclasses.replace(config, **QUICK)


# --- data ----------------------------------------------------------------------------------------------
def prepare_data(config: PipelineConfig, directory: Path, progress: bool = True, limits: Limits = DEFAULT_LIMITS):
    """(meta-train, meta-test, list of stream datasets); simulated data is cached in ``directory``
    (for ``sim2real``, the gap robot's in ``directory/gap-robot``)."""
    if config.data == "schunk":
        train, held_out = split_halves(load_schunk(config.schunk_path or None, limits))
        return train, held_out, [held_out]
    if config.data == "sim2real":
        return simulated_data(config, directory / "gap-robot", progress, gap_of(config))
    return simulated_data(config, directory, progress)


def gap_of(config: PipelineConfig):
    """The simulated reality gap of a ``sim2real`` run."""
    from fastadapt.sim.reality_gap import sample_reality_gap

    return sample_reality_gap(config.gap_seed)


def simulated_data(config: PipelineConfig, directory: Path, progress: bool = True, gap=None, streams: bool = True):
    """The simulated KUKA's (meta-train, meta-test, streams), on the robot with reality gap ``gap`` if
    one is given (else the nominal one), simulated once and cached in ``directory``; without
    ``streams`` the pick-and-place trials are neither simulated nor returned."""
    paths = {"meta-train": directory / "sine_train.npz", "meta-test": directory / "sine_test.npz"}
    if config.payload_changes:
        paths["meta-train payloads"] = directory / f"sine_payload_train_{config.payload_changes}.npz"
    trials = config.trials if streams else ()
    paths.update({f"trial{t}": directory / f"pick_place_trial{t}.npz" for t in trials})
    loaded = {k: load(p) for k, p in paths.items() if p.exists()}
    missing = [k for k in paths if k not in loaded]
    if missing:
        from fastadapt.sim import motions  # PyBullet: only to simulate data the run directory lacks

        bar = tqdm(total=len(missing), desc="simulate KUKA", disable=not progress, leave=False)
        robot = {} if gap is None else {"gap": gap}
        simulated = _simulate([k for k in missing if not k.startswith("trial")], config, motions, robot)
        if any(k.startswith("trial") for k in missing):  # the trials share one noise generator
            played = motions.pick_and_place_dataset(config.trials, config.phase_duration, noise=config.noise, seed=2,
                                                    **robot)
            simulated.update({f"trial{t}": ds for t, ds in zip(config.trials, played)})
        for key in missing:
            loaded[key] = simulated[key]
            save(loaded[key], paths[key], overwrite=True)
            bar.update()
        bar.close()
    train = loaded["meta-train"]
    if config.payload_changes:
        train = concatenate([train, loaded["meta-train payloads"]])
    return train, loaded["meta-test"], [loaded[f"trial{t}"] for t in trials]


def _simulate(keys, config: PipelineConfig, motions, robot: dict) -> dict:
    """The sine-motion datasets of the simulated pipeline named by ``keys`` (see :func:`simulated_data`)."""
    made = {
        "meta-train": lambda: motions.sine_dataset(motions.META_TRAIN_FREQUENCIES, config.sine_duration,
                                                   noise=config.noise, **robot),
        "meta-test": lambda: motions.sine_dataset(motions.META_TEST_FREQUENCIES, config.sine_duration,
                                                  noise=config.noise, seed=1, **robot),
        "meta-train payloads": lambda: motions.payload_sine_dataset(
            motions.META_TRAIN_FREQUENCIES, config.sine_duration, changes=config.payload_changes,
            noise=config.noise, seed=3, **robot),
    }
    return {key: made[key]() for key in keys}


# --- stages --------------------------------------------------------------------------------------------
def meta_train_losses(config: PipelineConfig, train, test, directory: Path, progress: bool, folder: str = "losses"):
    """Meta-train each learned loss into ``directory/folder/<loss>`` (resuming from checkpoints); returns
    {name: MetaTrainResult} and the last loss's trainer (its task holds the normaliser and the model all
    losses share)."""
    results, trainer = {}, None
    for name in config.losses:
        normalizer = trainer.task.normalizer if trainer else None
        trainer = inverse_dynamics_trainer(dataclasses.replace(config.meta, loss=name), train, test, normalizer)
        results[name] = trainer.run(directory / folder / name, progress=progress)
    return results, trainer


def meta_train_alpaca(config: PipelineConfig, train, test, normalizer, directory: Path, progress: bool):
    """The ALPaCA anchor meta-trained on the meta-train data (one seed per model seed, side by side) into
    ``directory/anchors/alpaca``, resuming; returns (learner, parameters of every seed [seeds, ...])."""
    alpaca = dataclasses.replace(config.alpaca, seeds=config.online.seeds, seed=config.online.seed)
    trainer = inverse_dynamics_trainer(alpaca, train, test, normalizer)
    result = trainer.run(directory / "anchors" / "alpaca", progress=progress)
    return trainer.loss, result.seed_params, result


def sim2real_losses(config: PipelineConfig, directory: Path, progress: bool) -> dict:
    """The Sim2Real losses: each meta-trained on the *nominal* simulated robot's sine motions (in its own
    normalised units), under the display name '<loss> (nominal sim)'."""
    train, test, _ = simulated_data(config, directory / "data", progress, streams=False)
    results, _ = meta_train_losses(config, train, test, directory, progress, folder="losses-nominal")
    return {f"{name} (nominal sim)": result for name, result in results.items()}


def loss_rate(online: OnlineConfig, result) -> float:
    """The SGD rate a learned loss adapts at online: ``online.alpha`` if set, else the loss's own rate
    (its meta-training inner rate alpha, saved in its loss file)."""
    return online.alpha if online.alpha is not None else result.config.alpha


def with_loss_rates(config: PipelineConfig) -> PipelineConfig:
    """``config`` with ``online.alpha`` as the pipeline's losses will use it (``meta.alpha`` when unset): the
    run's identity, so a run made before the default became 'the loss's own rate' (it saved 0.001) resumes."""
    if config.online.alpha is not None:
        return config
    return dataclasses.replace(config, online=dataclasses.replace(config.online, alpha=config.meta.alpha))


def trained_loss(result, joints: int):
    """The loss object that goes with a meta-training result's parameters (a learned rate included)."""
    return result.config.make_loss(joints)


def final_curves(trainer: MetaTrainer, results: dict) -> dict:
    """Fig. 3 c/d: MSE on meta-train and meta-test data during ``eval_steps`` steps with each final loss."""
    curves = {}
    joints = trainer.task.model.num_joints
    key = jax.random.PRNGKey(trainer.config.seed + 99)
    for split in trainer.task.eval_splits:
        curves[split] = {"mse": trainer.curves(make_loss("mse", joints), {}, split, key)}
        for name, result in results.items():
            curves[split][name] = trainer.curves(trained_loss(result, joints), result.loss_params, split, key)
    return curves


def warm_start_validation(config: PipelineConfig, model, train, normalizer):
    """Validation setting for the learned losses' rate in the practitioner's protocol, built from the
    meta-train data only: models pretrained on the even-indexed meta-train trajectories, and the
    odd-indexed ones played as an online stream. Returns (starts [seeds], [stream])."""
    if len(train) < 2:
        raise ValueError(f"warm-start validation needs at least 2 meta-train trajectories, got {len(train)}")
    oc = config.online
    fit, held = train.take(range(0, len(train), 2)), train.take(range(1, len(train), 2))
    starts, _ = pretrain(model, normalised_samples(fit, normalizer), oc.seeds, oc.pretrain_steps,
                         oc.pretrain_rate, oc.pretrain_batch, oc.seed + 30_000)
    return starts, [sequential_stream(held, normalizer, oc.batch_size)]


def online_methods(config: PipelineConfig, model, results, streams, starts, pretrained, validation, tuning, alpaca):
    """Run every method of the online comparison; returns {protocol: {method: scores}}, the grids, the
    warm-start rates chosen on ``validation`` (see :func:`warm_start_validation`) and the anchors'
    names per protocol.

    The anchors (the fair baselines, the headline) have every setting chosen on meta-train data:
    from a random model, SGD and Adam on MSE with rates tuned on ``tuning`` (the meta-train trajectories
    played as a stream from the same random models), RLS on random Fourier features and linear RLS tuned
    there too; from a pretrained model, pretrained + SGD / Adam and RLS on the pretrained model's
    residual, and a Bayesian last layer with forgetting on the pretrained model's last hidden layer (RLS
    on [h(x), 1] on top of its prediction), tuned on ``validation``. ALPaCA (``alpaca``: the learner and
    its meta-trained parameters per seed) is an anchor of both protocols: its network is meta-trained on
    the meta-train data as a pretrained model is, and its forgetting factor is chosen on ``tuning``. SGD and Adam with rates tuned on the evaluation stream itself
    ("best") stay beside them as upper bounds.

    In the practitioner's protocol each learned loss runs twice: at the meta-training rate alpha, and at
    alpha * s with s in ``warm_rate_scales`` chosen by the lowest mean online MSE on the validation
    stream (the meta-objective looks one step ahead and favours rates too large for a model that is
    already good; the choice never sees the evaluation stream)."""
    joints = model.num_joints
    mse = make_loss("mse", joints)
    oc = config.online
    scratch, practitioner, grids = {}, {}, {}
    anchors = {"from scratch": [], "pretrained": []}
    tuning_seeds = min(oc.rls_tuning_seeds, oc.seeds)  # one pretrained model per feature draw

    def sgd(rate, start="random"):
        return Method(f"mse sgd {rate:g}", mse, {}, "sgd", rate, start)

    def adam(rate, start="random"):
        return Method(f"mse adam {rate:g}", mse, {}, "adam", rate, start)

    def anchor(protocol, methods, name, scores):
        methods[name] = scores
        anchors[protocol].append(name)

    for rate in oc.sgd_rates:
        scratch[f"mse, sgd {rate:g}"] = online_scores(model, sgd(rate), starts, streams)
    for kind, make, grid in (("sgd", sgd, oc.sgd_grid), ("adam", adam, oc.adam_grid)):
        rate, _, grids[f"{kind}-meta-train"] = best_rate(model, make, grid, starts, tuning)
        anchor("from scratch", scratch, f"mse, {kind} tuned on meta-train ({rate:g})",
               online_scores(model, make(rate), starts, streams))
    for features in (oc.rls_features, 0):
        chosen, grids[f"rls-{features}-meta-train"] = tune_rls(oc.rls_grid(features), tuning, tuning_seeds, oc.seed)
        anchor("from scratch", scratch, chosen.label, rls_scores(chosen, streams, oc.seeds, oc.seed))
    learner, alpaca_params = alpaca
    forgetting, grids["alpaca-meta-train"] = tune_alpaca(learner, alpaca_params, tuning, oc.rls_forgetting)
    alpaca_name = alpaca_label(forgetting)
    anchor("from scratch", scratch, alpaca_name, alpaca_scores(learner, alpaca_params, streams, forgetting))
    rate, scores, by_rate = best_rate(model, sgd, oc.sgd_grid, starts, streams)
    scratch[f"mse, sgd best ({rate:g})"], grids["sgd"] = scores, by_rate
    rate, scores, by_rate = best_rate(model, adam, oc.adam_grid, starts, streams)
    scratch[f"mse, adam best ({rate:g})"], grids["adam"] = scores, by_rate
    for name, result in results.items():
        alpha = loss_rate(oc, result)
        method = Method(name, trained_loss(result, joints), result.loss_params, "sgd", alpha)
        scratch[name] = online_scores(model, method, starts, streams)
        if oc.memory:
            stepped = dataclasses.replace(method, optimizer=metagd(MemoryConfig(eta_init=alpha)))
            scratch[f"{name} + MetaGD"] = online_scores(model, stepped, starts, streams)

    practitioner["pretrained, not adapted"] = online_scores(model, Method("pretrained", mse, {}, rate=0.0), pretrained, streams)
    for kind, make, grid in (("sgd", sgd, oc.sgd_grid), ("adam", adam, oc.adam_grid)):
        warm = lambda r: make(r, "pretrained")
        rate, _, grids[f"{kind}-pretrained-validation"] = best_rate(model, warm, grid, *validation)
        anchor("pretrained", practitioner, f"pretrained + {kind} tuned on meta-train ({rate:g})",
               online_scores(model, warm(rate), pretrained, streams))
    chosen, grids["rls-residual-validation"] = tune_rls(oc.rls_grid(oc.rls_features), validation[1], tuning_seeds,
                                                        oc.seed, model, validation[0])
    anchor("pretrained", practitioner, f"pretrained + residual {chosen.label}",
           rls_scores(chosen, streams, oc.seeds, oc.seed, model, pretrained))
    chosen, grids["rls-head-validation"] = tune_head(oc.rls_grid(0), model, validation[0], validation[1], tuning_seeds)
    anchor("pretrained", practitioner, head_label(chosen), head_scores(chosen, model, pretrained, streams, oc.seeds))
    anchor("pretrained", practitioner, alpaca_name, scratch[alpaca_name])
    rate, scores, by_rate = best_rate(model, lambda r: adam(r, "pretrained"), oc.adam_grid, pretrained, streams)
    practitioner[f"pretrained + adam best ({rate:g})"], grids["adam-pretrained"] = scores, by_rate
    rate, scores, by_rate = best_rate(model, lambda r: sgd(r, "pretrained"), oc.sgd_grid, pretrained, streams)
    practitioner[f"pretrained + sgd best ({rate:g})"], grids["sgd-pretrained"] = scores, by_rate
    warm_rates = {}
    for name, result in results.items():
        alpha = loss_rate(oc, result)
        learned = lambda rate: Method(name, trained_loss(result, joints), result.loss_params, "sgd", rate, "pretrained")
        practitioner[f"pretrained + {name} ({alpha:g})"] = online_scores(model, learned(alpha), pretrained, streams)
        rates = [alpha * s for s in oc.warm_rate_scales]
        rate, _, grids[f"{name}-warm-validation"] = best_rate(model, learned, rates, *validation)
        practitioner[f"pretrained + {name} (validated {rate:g})"] = online_scores(model, learned(rate), pretrained, streams)
        warm_rates[name] = rate
    scratch["pretrained, not adapted"] = practitioner["pretrained, not adapted"]
    return {"from scratch": scratch, "pretrained": practitioner}, grids, warm_rates, anchors


def trajectory_streams(dataset, normalizer, batch_size: int) -> list:
    """Each trajectory of ``dataset`` as its own stream of consecutive batches (one trial each, a fresh
    model per trajectory), cut to the shortest trajectory's whole batches so the trials stack."""
    streams = [sequential_stream(dataset.take([i]), normalizer, batch_size) for i in range(len(dataset))]
    shortest = min(len(s.segment) for s in streams)
    return [Stream(Samples(s.batches.x[:shortest], s.batches.y[:shortest]), s.segment[:shortest], s.segment_names)
            for s in streams]


SINE_STREAM_POINTS = 48  # points of each method's stored Fig. 5 curve (means over equal blocks of batches)


def sine_stream(config: PipelineConfig, model, results: dict, train, test, normalizer, starts) -> tuple[dict, dict]:
    """Fig. 5 of the state-dependent paper: fresh models learn online on the meta-test trajectories,
    each played in order in batches of ``online.batch_size`` consecutive samples; at step k the MSE on
    the next batch is recorded *before* one gradient step on it. Methods: each learned loss at its rate,
    MSE with SGD at the paper's rates (``online.sgd_rates``), SGD and Adam on MSE with rates tuned on the
    meta-train trajectories played the same way (the fair baselines), RLS on random Fourier features
    with its settings chosen there too, and SGD with the rate tuned on these very meta-test streams (an
    upper bound, labelled as one). Returns (scores {method:
    [trajectories, seeds, batches]}, summary for metrics.json)."""
    oc, mse = config.online, make_loss("mse", model.num_joints)
    streams = trajectory_streams(test, normalizer, oc.batch_size)
    tuning = trajectory_streams(train, normalizer, oc.batch_size)

    def sgd(rate):
        return Method(f"mse sgd {rate:g}", mse, {}, "sgd", rate)

    def adam(rate):
        return Method(f"mse adam {rate:g}", mse, {}, "adam", rate)

    scores, rates = {}, {}
    for name, result in results.items():
        loss = Method(name, trained_loss(result, model.num_joints), result.loss_params, "sgd", loss_rate(oc, result))
        scores[f"{name} ({loss.rate:g})"] = online_scores(model, loss, starts, streams)
    for rate in oc.sgd_rates:
        scores[f"mse, sgd {rate:g}"] = online_scores(model, sgd(rate), starts, streams)
    for kind, make, grid in (("sgd", sgd, oc.sgd_grid), ("adam", adam, oc.adam_grid)):
        rates[kind], _, _ = best_rate(model, make, grid, starts, tuning)
        scores[f"mse, {kind} tuned on meta-train ({rates[kind]:g})"] = online_scores(model, make(rates[kind]), starts, streams)
    chosen, _ = tune_rls(oc.rls_grid(oc.rls_features), tuning, oc.rls_tuning_seeds, oc.seed)
    scores[f"{chosen.label}, tuned on meta-train"] = rls_scores(chosen, streams, oc.seeds, oc.seed)
    rates["rls"] = dataclasses.asdict(chosen)
    rates["sgd, upper bound"], best, _ = best_rate(model, sgd, oc.sgd_grid, starts, streams)
    scores[f"mse, sgd tuned on this stream ({rates['sgd, upper bound']:g}, upper bound)"] = best
    fair = scores[f"mse, sgd tuned on meta-train ({rates['sgd']:g})"]
    blocks = min(SINE_STREAM_POINTS, fair.shape[-1])
    summary = {
        "trajectories": len(streams), "batches": int(fair.shape[-1]), "batch_size": oc.batch_size,
        "dt": float(test[0].dt), "rates": rates,
        "methods": {name: {"overall": overall(v), "per_seed": np.mean(v, axis=(0, 2)).tolist(),
                           "vs_sgd_tuned_on_meta_train": overall(v) / overall(fair),
                           "curve": [float(np.mean(part)) for part in np.array_split(v, blocks, axis=-1)]}
                    for name, v in scores.items()},
    }
    return scores, summary


def loss_weights(results: dict, normalizer, stream_sets, phase: str) -> dict:
    """What Fig. 7 and 8 draw, as numbers: the structured loss's phi_j per joint, and per joint the
    state-dependent loss's phi_j(q, qd) along the ``phase`` motion of every stream (mean, std, min, max
    over its samples, and the correlation of phi_j with q_j)."""
    joints = normalizer.num_joints
    summary = {}
    if "structured" in results and not results["structured"].config.learned_rate:
        summary["structured"] = np.asarray(make_loss("structured", joints).weights(results["structured"].loss_params)).tolist()
    if "state-dependent" in results and not results["state-dependent"].config.learned_rate:
        loss, params = make_loss("state-dependent", joints), results["state-dependent"].loss_params
        chosen = [traj for ds in stream_sets for traj in ds if traj.phase == phase] or [stream_sets[0][0]]
        samples = normalised_samples(type(stream_sets[0])(tuple(chosen)), normalizer)
        phi = np.asarray(loss.weights(params, samples.state))  # [N, J]
        q = np.concatenate([traj.q for traj in chosen])
        summary["state-dependent"] = {
            "phase": phase, "samples": int(len(phi)),
            "mean": phi.mean(0).tolist(), "std": phi.std(0).tolist(), "min": phi.min(0).tolist(),
            "max": phi.max(0).tolist(),
            "corr_with_q": [float(np.corrcoef(phi[:, j], q[:, j])[0, 1]) if phi[:, j].std() > 0 and q[:, j].std() > 0
                            else 0.0 for j in range(joints)],
        }
    return summary


def summarise(protocols: dict, stream) -> dict:
    """Per protocol and method: the overall mean online MSE, its mean per model seed (over trials and
    batches) and the Table I phase table."""
    summary = {}
    for protocol, methods in protocols.items():
        summary[protocol] = {
            name: {"overall": overall(scores), "per_seed": np.mean(scores, axis=(0, 2)).tolist(),
                   "phases": phase_table(scores, stream)}
            for name, scores in methods.items()
        }
    return summary


def _ratio(method: dict, baseline: dict) -> dict:
    """Overall mean online MSE / the baseline's, and the spread (std) of the same ratio per model seed."""
    per_seed = np.asarray(method["per_seed"]) / np.asarray(baseline["per_seed"])
    value = method["overall"] / baseline["overall"]
    return {"ratio": value if np.isfinite(value) else float("inf"),
            "seed_std": float(np.std(per_seed)) if np.all(np.isfinite(per_seed)) else float("inf")}


def relative_to_baselines(summary: dict, learned: list[str], anchors: dict) -> dict:
    """The ratios that say whether the learned losses earn their place (mean online MSE / baseline's;
    < 1 is better; ``seed_std``: the spread of that ratio over model seeds).

    * ``vs_best_anchor`` (the headline, fair): over the best of the anchors, every setting of which was
      chosen on meta-train data (``anchors[protocol]``: SGD, Adam, RLS on random features, linear RLS,
      ALPaCA; from a pretrained model, pretrained + SGD / Adam, RLS on its residual, an RLS head on its
      last hidden layer, ALPaCA); ``best_anchor`` names it;
    * from scratch: each method over SGD and over Adam on MSE with rates tuned on the evaluation stream
      (``vs_best_sgd``, ``vs_best_adam``) and over the lower of the two (``vs_best_tuned``): upper bounds
      of those baselines, not a choice a user could make;
    * pretrained: each method over the better of pretrained + SGD / Adam tuned on the stream
      (``vs_best_tuned``) and over the pretrained model left alone (``vs_not_adapted``);
    * best_learned: per protocol, the learned loss (``learned`` names, any rate) with the lowest error;
      choosing among a loss's variants (its rates, MetaGD) by this error looks at the stream, so this
      entry is the best case, not a validated choice."""
    scratch, warm = summary["from scratch"], summary["pretrained"]

    def best(methods, prefix):
        return min((v for k, v in methods.items() if k.startswith(prefix)), key=lambda v: v["overall"])

    sgd, adam = best(scratch, "mse, sgd best"), best(scratch, "mse, adam best")
    tuned = min(sgd, adam, key=lambda v: v["overall"])
    warm_tuned = min(best(warm, "pretrained + sgd best"), best(warm, "pretrained + adam best"), key=lambda v: v["overall"])
    alone = warm["pretrained, not adapted"]
    best_anchor = {protocol: min(names, key=lambda n: summary[protocol][n]["overall"])
                   for protocol, names in anchors.items()}
    fair = {protocol: summary[protocol][name] for protocol, name in best_anchor.items()}
    result = {
        "best_anchor": best_anchor,
        "from scratch": {name: {"vs_best_anchor": _ratio(v, fair["from scratch"]),
                                "vs_best_sgd": _ratio(v, sgd)["ratio"], "vs_best_adam": _ratio(v, adam)["ratio"],
                                "vs_best_tuned": _ratio(v, tuned)} for name, v in scratch.items()},
        "pretrained": {name: {"vs_best_anchor": _ratio(v, fair["pretrained"]), "vs_best_tuned": _ratio(v, warm_tuned),
                              "vs_not_adapted": _ratio(v, alone)}
                       for name, v in warm.items()},
    }
    ours = {"from scratch": [n for n in scratch if n in learned or n.removesuffix(" + MetaGD") in learned],
            "pretrained": [n for n in warm if any(n.startswith(f"pretrained + {name} (") for name in learned)]}
    result["best_learned"] = {}
    for protocol, names in ours.items():
        if names:
            name = min(names, key=lambda n: summary[protocol][n]["overall"])
            result["best_learned"][protocol] = {"method": name, **result[protocol][name]}
    return result


# --- the whole run -------------------------------------------------------------------------------------
def run(config: PipelineConfig, directory, progress: bool = True, log=print, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Run the pipeline into ``directory`` (resumable: data and loss checkpoints are reused); user data
    (the Schunk logs) is checked against ``limits``."""
    directory = make_directory(directory)
    started = time.time()
    log(f"[1/5] data: {config.data}")
    train, test, stream_sets = prepare_data(config, directory / "data", progress, limits)
    log(f"      meta-train {train.num_samples} samples, meta-test {test.num_samples}, "
        f"{len(stream_sets)} stream(s) of {stream_sets[0].num_samples} samples")

    log(f"[2/5] meta-train {', '.join(config.losses)} for {config.meta.epochs} epochs")
    results, reference = meta_train_losses(config, train, test, directory, progress)
    normalizer, model = reference.task.normalizer, reference.task.model
    transferred = {}
    if config.data == "sim2real":
        log(f"      and on the nominal robot's sine motions (the Sim2Real losses)")
        transferred = sim2real_losses(config, directory, progress)

    log(f"      and the ALPaCA anchor for {config.alpaca.epochs} epochs")
    learner, alpaca_params, alpaca_result = meta_train_alpaca(config, train, test, normalizer, directory, progress)

    log("[3/5] learning curves with the final losses (Fig. 3 c, d)")
    curves = final_curves(reference, results)

    log("[4/5] online adaptation and baselines (Table I)")
    streams = [sequential_stream(ds, normalizer, config.online.batch_size) for ds in stream_sets]
    starts = initial_models(model, config.online.seeds, config.online.seed)
    pretrained, pretrain_mse = _pretrained(config, model, normalised_samples(train, normalizer), directory)
    validation = warm_start_validation(config, model, train, normalizer)
    tuning = [sequential_stream(train, normalizer, config.online.batch_size)]
    protocols, grids, warm_rates, anchors = online_methods(config, model, {**results, **transferred}, streams, starts,
                                                           pretrained, validation, tuning, (learner, alpaca_params))
    summary = summarise(protocols, streams[0])
    sine_scores, sine_summary = {}, None
    if config.data != "schunk":  # Fig. 5; on the Schunk logs the meta-test logs are the stream above
        log("      and online on the meta-test trajectories (Fig. 5)")
        sine_scores, sine_summary = sine_stream(config, model, results, train, test, normalizer, starts)

    log("[5/5] figures and report")
    relative = relative_to_baselines(summary, list({**results, **transferred}), anchors)
    figure_files = figures.pipeline_figures(
        directory, config, results, curves, protocols, streams[0], normalizer, stream_sets, relative["best_learned"],
        sine_scores, sine_summary,
    )
    metrics = {
        "config": config_dict(config),
        "seconds": time.time() - started,
        "meta_training": {name: _meta_summary(r) for name, r in {**results, **transferred}.items()},
        "alpaca_meta_training": _meta_summary(alpaca_result),
        "final_curves": {split: {k: {"mean": v.mean(0).tolist(), "std": v.std(0).tolist()} for k, v in c.items()}
                         for split, c in curves.items()},
        "online": summary,
        "relative_to_baselines": relative,
        **({"sine_stream": sine_summary} if sine_summary else {}),
        "loss_weights": loss_weights(results, normalizer, stream_sets,
                                     "reach" if config.data != "schunk" else stream_sets[0][0].phase),
        "rate_grids": {k: {r if isinstance(r, str) else f"{r:g}": v for r, v in g.items()} for k, g in grids.items()},
        "warm_start_rates": warm_rates,
        **({"simulated_reality_gap": dataclasses.asdict(gap_of(config))} if config.data == "sim2real" else {}),
        "pretrain_mse_on_meta_train": np.asarray(pretrain_mse).tolist(),
        "figures": [f.name for f in figure_files],
    }
    write_json(directory / "metrics.json", metrics)
    atomic_write_text(directory / "report.md", pipeline_report.pipeline_report(metrics, figure_files))
    log(f"done in {metrics['seconds']:.0f} s: {directory / 'report.md'}")
    return metrics


def _pretrained(config: PipelineConfig, model, train_samples, directory: Path):
    """Pretrained models (one per seed), cached in the run directory."""
    path = directory / "pretrained.npz"
    template = initial_models(model, config.online.seeds, 0)
    if path.exists():
        tree, meta = load_pytree(path, {"params": template, "mse": np.zeros(config.online.seeds, np.float32)})
        if meta.get("online") == config_dict(config.online):
            return tree["params"], tree["mse"]
    params, final_mse = pretrain_models(model, train_samples, config.online)
    save_pytree(path, {"params": params, "mse": final_mse}, {"online": config_dict(config.online)})
    return params, final_mse


def _meta_summary(result) -> dict:
    history = result.history
    return {
        "epochs": history["epoch"][-1] if history["epoch"] else 0,
        "task_loss": [float(np.mean(v)) for v in history["task_loss"]],
        "eval_epoch": history["eval_epoch"],
        "eval": history["eval"],
        "baseline": history["baseline"],
        "best_seed": history.get("best_seed", 0),
        "selected_epoch": history.get("selected_epoch", 0),
    }
