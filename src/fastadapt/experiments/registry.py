"""THE one list of experiments: every figure and table fastadapt reproduces, as one row each.

A row says what the command line, ``fastadapt keys`` and ``fastadapt sweep`` need to know: the
experiment's name, its command-line words, the module that runs it, the config class in that module
(with any keyword arguments it is made with) and the metric a sweep summarises by default. Adding an
experiment is one row here plus its module, which defines

    quick(config) -> config                 a small version, for tests and a first look
    run(config, directory, progress, log)   figures, metrics.json and report.md into directory

and, where our defaults differ from the paper's protocol, ``PAPER_KEYS``: the key=value set of the
paper's own protocol and budget (``--paper`` applies it before the user's overrides);
and, where the experiment reads files the user names in its config, ``inputs(config) -> {name: path}``
(recorded in the run directory's identity, so a changed input is never resumed over).

Names: ``demo``, ``sim``, ``schunk``, ``sim2real`` (the learned-loss pipeline), and each paper
family's experiments by their short name (``rosenbrock``, ``sine``, ``mbrl-reacher``) or as
``FAMILY-NAME`` (``ml3-digits``: ``digits`` alone is the learning-rate memory's).
"""

from __future__ import annotations

import dataclasses
import importlib

from fastadapt.errors import ConfigError

FAMILIES = {
    "lrmem": "the learning-rate memory experiments (Fig. 2-5, Table I)",
    "ml3": "the ML3 (meta learning via learned loss) experiments (Fig. 2, 5)",
    "rl": "ML3 for reinforcement learning (Fig. 3, 4, 6)",
}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: ``fastadapt WORDS [--quick] [key=value ...]`` runs ``module.run`` on a
    ``module.<config>(**options)`` with the overrides applied."""

    name: str  # how keys, sweep and the registry call it: 'demo', 'sine', 'mfrl-ant'
    words: tuple[str, ...]  # its command line: ('demo',), ('run', 'sim'), ('ml3', 'sine')
    module: str  # the module with quick() and run()
    config: str = "Config"  # the config class in that module
    options: tuple[tuple[str, object], ...] = ()  # keyword arguments the config class is made with
    metric: str | None = None  # the path into metrics.json a sweep summarises by default

    @property
    def family(self) -> str | None:
        """The paper family (lrmem, ml3, rl) whose command runs it, or None (the pipeline's commands)."""
        return self.words[0] if self.words[0] in FAMILIES else None

    def load(self):
        return importlib.import_module(self.module)

    def default_config(self):
        return getattr(self.load(), self.config)(**dict(self.options))

    def quick(self, config):
        return self.load().quick(config)

    def paper_keys(self, required: bool = True) -> tuple[str, ...]:
        """The key=value set that runs the paper's own protocol and budget (``--paper``): the config
        class's ``PAPER_KEYS`` (where two experiments of one module differ), else the module's. If there
        is none: () when not ``required``, else a ConfigError naming the experiments that have one."""
        module = self.load()
        keys = tuple(getattr(getattr(module, self.config), "PAPER_KEYS", None) or getattr(module, "PAPER_KEYS", ()))
        if keys or not required:
            return keys
        having = [" ".join(e.words) for e in EXPERIMENTS if e.paper_keys(required=False)]
        raise ConfigError(f"`fastadapt {' '.join(self.words)}` has no --paper key set (its defaults are the "
                          f"paper's, or RESULTS says where they differ); --paper is known to: {', '.join(having)}")

    def inputs(self, config) -> dict:
        """The files the config names (``{name: path}``), each checked to exist; {} for most."""
        inputs = getattr(self.load(), "inputs", None)
        return inputs(config) if inputs is not None else {}


_PIPELINE = "fastadapt.experiments.pipeline"
_SCRATCH = "online/from scratch/*/overall"
_REACHED = "final_distance/meta-test/ML3/mean"

EXPERIMENTS = (
    Experiment("demo", ("demo",), _PIPELINE, "PipelineConfig", (("data", "sim"),), _SCRATCH),
    Experiment("sim", ("run", "sim"), _PIPELINE, "PipelineConfig", (("data", "sim"),), _SCRATCH),
    Experiment("schunk", ("run", "schunk"), _PIPELINE, "PipelineConfig", (("data", "schunk"),), _SCRATCH),
    Experiment("sim2real", ("run", "sim2real"), _PIPELINE, "PipelineConfig", (("data", "sim2real"),),
               "online/*/*/overall"),
    Experiment("rosenbrock", ("lrmem", "rosenbrock"), "fastadapt.experiments.lrmem.rosenbrock", metric="runs/*/final_f"),
    Experiment("digits", ("lrmem", "digits"), "fastadapt.experiments.lrmem.digits"),
    Experiment("id-batch", ("lrmem", "id-batch"), "fastadapt.experiments.lrmem.id_batch"),
    Experiment("id-online", ("lrmem", "id-online"), "fastadapt.experiments.lrmem.id_online"),
    Experiment("sine", ("ml3", "sine"), "fastadapt.experiments.ml3.sine", metric="meta_test_final_mse/ML3/mean"),
    Experiment("ml3-digits", ("ml3", "digits"), "fastadapt.experiments.ml3.digits",
               metric="meta_test_final_accuracy/ML3/mean"),
    Experiment("shaped-sine", ("ml3", "shaped-sine"), "fastadapt.experiments.ml3.shaped_sine"),
    Experiment("physics-prior", ("ml3", "physics-prior"), "fastadapt.experiments.ml3.physics_prior"),
    Experiment("transfer", ("ml3", "transfer"), "fastadapt.experiments.ml3.transfer"),
    Experiment("mbrl-pointmass", ("rl", "mbrl-pointmass"), "fastadapt.experiments.rl.mbrl", metric=_REACHED),
    Experiment("mbrl-reacher", ("rl", "mbrl-reacher"), "fastadapt.experiments.rl.mbrl", "ReacherConfig",
               metric=_REACHED),
    Experiment("mfrl-reacher", ("rl", "mfrl-reacher"), "fastadapt.experiments.rl.mfrl", metric="samples_to_80/*/final"),
    Experiment("mfrl-ant", ("rl", "mfrl-ant"), "fastadapt.experiments.rl.mfrl", "AntConfig",
               metric="samples_to_80/*/final"),
    Experiment("mountaincar", ("rl", "mountaincar"), "fastadapt.experiments.rl.mountaincar"),
    Experiment("demos", ("rl", "demos"), "fastadapt.experiments.rl.demos", metric=_REACHED),
)


def family(name: str) -> list[Experiment]:
    """The experiments of one paper family, in the table's order."""
    return [e for e in EXPERIMENTS if e.family == name]


def names() -> list[str]:
    """Every name ``find`` takes, the table's names first."""
    return [e.name for e in EXPERIMENTS] + [f"{e.family}-{e.words[1]}" for e in EXPERIMENTS
                                           if e.family and f"{e.family}-{e.words[1]}" != e.name]


def find(name: str) -> Experiment:
    """The experiment called ``name`` (its name, or FAMILY-NAME); a ConfigError listing them if none."""
    for experiment in EXPERIMENTS:
        if name == experiment.name or (experiment.family and name == f"{experiment.family}-{experiment.words[1]}"):
            return experiment
    short = dict.fromkeys(e.words[1] if e.family else e.name for e in EXPERIMENTS)
    raise ConfigError(f"unknown experiment '{name}', expected one of {', '.join(short)} (or FAMILY-NAME: ml3-digits)")


def command(words) -> Experiment:
    """The experiment a command line's words run (``('ml3', 'sine')``); a ConfigError if none does."""
    words = tuple(words)
    for experiment in EXPERIMENTS:
        if experiment.words == words:
            return experiment
    if words and words[0] in FAMILIES:
        known = [e.words[1] for e in family(words[0])]
        raise ConfigError(f"unknown {words[0]} experiment '{' '.join(words[1:])}', expected one of {sorted(known)}")
    raise ConfigError(f"no experiment runs as `fastadapt {' '.join(words)}`")


def default_metric(experiment: Experiment) -> str:
    if experiment.metric is None:
        raise ConfigError(f"no default metric for `fastadapt {' '.join(experiment.words)}`; pass --metric PATH (keys "
                          "of a run's metrics.json joined by '/', '*' for any key, e.g. runs/*/final_f)")
    return experiment.metric
