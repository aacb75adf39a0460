"""The ``fastadapt`` command line.

    fastadapt demo [--quick] [--out DIR] [key=value ...]     simulated end-to-end pipeline
    fastadapt run sim|schunk|sim2real [--quick] [--out DIR] [key=value ...]
    fastadapt data sine|pick-place OUT [--noise] [--force]  simulate and save (.npz or .csv)
    fastadapt data inspect PATH                              validate and summarise a data file
    fastadapt data convert IN OUT [--force]                  npz <-> csv
    fastadapt meta-train --train PATH --test PATH --out DIR [key=value ...]
    fastadapt adapt --loss LOSS.npz --stream PATH [--out DIR] [key=value ...]
    fastadapt lrmem rosenbrock|digits|id-batch|id-online [--quick] [--out DIR] [key=value ...]
    fastadapt ml3 sine [--quick] [--out DIR] [key=value ...]
    fastadapt rl mbrl-pointmass|mbrl-reacher [--quick] [--out DIR] [key=value ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from fastadapt.checkpoint import CheckpointError
from fastadapt.data.trajectory import DataError, Limits
from fastadapt.experiments.config import ConfigError, apply_overrides, config_dict, known_keys
from fastadapt.experiments.validation import require_at_least, require_positive_rates
from fastadapt.rundir import RunDirectory, RunDirectoryError, input_files

# the errors a user can cause; each ends the command with one line on stderr and exit status 2
USER_ERRORS = (DataError, ConfigError, CheckpointError, RunDirectoryError, ValueError, FloatingPointError, OSError)
INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C


def cmd_pipeline(args, data: str) -> int:
    from fastadapt.data.schunk import schunk_path
    from fastadapt.experiments.inverse_dynamics import PipelineConfig, quick, run

    config = PipelineConfig(data=data)
    if args.quick:
        config = quick(config)
    config = apply_overrides(config, args.overrides)
    limits = Limits.parse(getattr(args, "limit", None))
    inputs = input_files(schunk=schunk_path(config.schunk_path or None)) if data == "schunk" else {}
    name = f"{'demo' if args.command == 'demo' else data}{'-quick' if args.quick else ''}"
    identity = run_identity(config, inputs)
    with RunDirectory(Path(args.out or Path("runs") / name), identity, args.force, args.argv) as out:
        run(config, out, progress=not args.no_progress, limits=limits)
    return 0


def run_identity(config, inputs: dict, section: str | None = None) -> dict:
    """A run directory's identity: the config (under ``section`` if given), the input files, and the
    config class's defaults (which complete a config saved before a key was added)."""
    wrap = (lambda d: {section: d}) if section else (lambda d: d)
    return {"config": wrap(config_dict(config)), "inputs": inputs, "defaults": wrap(config_dict(type(config)()))}


def _registry(family: str):
    """The experiments of one paper: ``lrmem`` (the memory of learning rates), ``ml3`` or ML3's ``rl``."""
    import importlib

    return importlib.import_module({"lrmem": "fastadapt.experiments.lrmem", "ml3": "fastadapt.ml3",
                                    "rl": "fastadapt.rl"}[family])


def cmd_experiment(args) -> int:
    """``fastadapt lrmem|ml3|rl NAME``: one registered experiment into its run directory."""
    from fastadapt.checkpoint import write_json

    module = _registry(args.command).experiment(args.name)
    config = module.Config()
    if args.quick:
        config = module.quick(config)
    config = apply_overrides(config, args.overrides)
    source = getattr(config, "source", "sklearn")
    if source != "sklearn" and not Path(source).is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {source} (or pass source=sklearn)")
    inputs = input_files(source=source) if source != "sklearn" else {}
    name = f"{args.command}-{args.name}{'-quick' if args.quick else ''}"
    identity = run_identity(config, inputs)
    with RunDirectory(Path(args.out or Path("runs") / name), identity, args.force, args.argv) as out:
        write_json(out / "config.json", config_dict(config))
        module.run(config, out, progress=not args.no_progress)
    return 0


def cmd_data(args) -> int:
    from fastadapt.data import io

    limits = Limits.parse(args.limit)
    if args.action in ("sine", "pick-place"):
        from fastadapt.sim import motions

        out = Path(args.path)
        _check_output_file(out, args.force)
        if args.action == "sine":
            dataset = motions.sine_dataset(noise=args.noise)
        else:
            from fastadapt.data.trajectory import concatenate

            dataset = concatenate(motions.pick_and_place_dataset(noise=args.noise))
        io.save(dataset, out, overwrite=args.force)
        print(f"wrote {len(dataset)} trajectories ({dataset.num_samples} samples) to {out}")
        return 0
    if args.action == "inspect":
        dataset = io.load(args.path, limits)
        print(f"{args.path}: {len(dataset)} trajectories, {dataset.num_samples} samples, "
              f"{dataset.num_joints} joints, robot '{dataset.robot}'")
        for i, traj in enumerate(dataset):
            print(f"  {i:3d} {traj.phase or '-':>12s}  T={len(traj):5d}  dt={traj.dt:.4g}s  payload={traj.payload:g}kg  "
                  f"|tau|max={abs(traj.tau).max():.3g}Nm")
        return 0
    if args.action == "convert":
        if not args.out:
            raise ConfigError("data convert needs IN and OUT paths")
        dataset = io.load(args.path, limits)
        _check_output_file(Path(args.out), args.force)
        io.save(dataset, args.out, overwrite=args.force)
        print(f"wrote {args.out}")
        return 0
    raise ConfigError(f"unknown data action '{args.action}'")


def _check_output_file(out: Path, force: bool) -> None:
    """An output data file: a .npz or .csv path that is not a directory, not replaced without --force."""
    if out.suffix not in (".npz", ".csv"):
        raise DataError(f"{out}: unknown data format '{out.suffix}', expected .npz or .csv")
    if out.is_dir():
        raise DataError(f"{out} is a directory; give a file path ending in .npz or .csv")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")


def cmd_meta_train(args) -> int:
    from fastadapt.checkpoint import write_json
    from fastadapt.data import io
    from fastadapt.meta.inverse_dynamics import MetaTrainConfig, inverse_dynamics_trainer

    config = apply_overrides(MetaTrainConfig(), args.overrides)
    limits = Limits.parse(args.limit)
    train, test = io.load(args.train, limits), io.load(args.test, limits)
    trainer = inverse_dynamics_trainer(config, train, test)  # validates data against config before a directory is made
    identity = run_identity(config, input_files(train=args.train, test=args.test), "meta_train")
    with RunDirectory(Path(args.out), identity, args.force, args.argv) as out:
        write_json(out / "config.json", {"config": identity["config"], "inputs": identity["inputs"]})
        result = trainer.run(out, progress=not args.no_progress)
    h = result.history
    chosen = h["eval"][h["eval_epoch"].index(h["selected_epoch"])]
    print(f"wrote {out / 'loss.npz'} (epoch {h['selected_epoch']}); MSE after {config.eval_steps} steps: "
          f"meta-train {chosen['meta-train']['mean'][h['best_seed']]:.4g}, "
          f"meta-test {chosen['meta-test']['mean'][h['best_seed']]:.4g} "
          f"(plain MSE loss: {h['baseline']['meta-test']['mean']:.4g})")
    return 0


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    batch_size: int = 5
    seeds: int = 5
    rate: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        require_at_least(self, 1, "batch_size", "seeds")
        require_at_least(self, 0, "seed")
        require_positive_rates(self, "rate")


def cmd_adapt(args) -> int:
    from fastadapt.checkpoint import write_json
    from fastadapt.data import io
    from fastadapt.meta.inverse_dynamics import load_loss
    from fastadapt.report.markdown import phase_table_markdown

    config = apply_overrides(AdaptConfig(), args.overrides)
    meta_config, loss, loss_params, normalizer = load_loss(args.loss)
    dataset = io.load(args.stream, Limits.parse(args.limit))
    dataset.check_joints(normalizer.num_joints, f"stream {args.stream}")
    identity = run_identity(config, input_files(loss=args.loss, stream=args.stream))
    with RunDirectory(Path(args.out), identity, args.force, args.argv) if args.out else contextlib.nullcontext() as out:
        summary = _adapt_summary(config, meta_config, loss, loss_params, normalizer, dataset)
        if out is not None:
            write_json(out / "metrics.json", {"config": dataclasses.asdict(config), "online": summary})
    print(phase_table_markdown(summary))
    if out is not None:
        print(f"wrote {out / 'metrics.json'}")
    return 0


def _adapt_summary(config: AdaptConfig, meta_config, loss, loss_params, normalizer, dataset) -> dict:
    """Fresh models adapted online on ``dataset`` with the trained loss and with MSE, at one rate."""
    from fastadapt.adapt.online import Method, initial_models, online_scores, overall, phase_table
    from fastadapt.data.batches import sequential_stream
    from fastadapt.losses import make_loss

    model = meta_config.model(normalizer.num_joints)
    stream = sequential_stream(dataset, normalizer, config.batch_size)
    starts = initial_models(model, config.seeds, config.seed)
    mse = make_loss("mse", normalizer.num_joints)
    methods = {
        f"{loss.name}, sgd {config.rate:g}": Method(loss.name, loss, loss_params, "sgd", config.rate),
        f"mse, sgd {config.rate:g}": Method("mse", mse, {}, "sgd", config.rate),
    }
    summary = {}
    for name, method in methods.items():
        scores = online_scores(model, method, starts, [stream])
        summary[name] = {"overall": overall(scores), "phases": phase_table(scores, stream)}
    return summary


def cmd_keys(args) -> int:
    """The keys of one experiment: demo/sim (default), schunk, sim2real, meta-train, adapt, an lrmem or an ml3 experiment
    (``ml3-sine``, or ``sine`` where the name is not an lrmem one)."""
    from fastadapt.experiments.inverse_dynamics import PipelineConfig
    from fastadapt.meta.inverse_dynamics import MetaTrainConfig

    name = args.experiment or "demo"
    configs = {"demo": PipelineConfig(), "sim": PipelineConfig(), "schunk": PipelineConfig(data="schunk"),
               "sim2real": PipelineConfig(data="sim2real"),
               "meta-train": MetaTrainConfig(), "adapt": AdaptConfig()}
    registered = {n: (family, n) for family in ("ml3", "lrmem", "rl") for n in _registry(family).EXPERIMENTS}
    registered.update({f"ml3-{n}": ("ml3", n) for n in _registry("ml3").EXPERIMENTS})
    if name in configs:
        config = configs[name]
    elif name in registered:
        family, short = registered[name]
        config = _registry(family).experiment(short).Config()
    else:
        raise ConfigError(f"unknown experiment '{name}', expected one of {', '.join([*configs, *registered])}")
    print("\n".join(known_keys(config)))
    return 0


COMMANDS = {"demo": lambda a: cmd_pipeline(a, "sim"), "run": lambda a: cmd_pipeline(a, a.data), "data": cmd_data,
            "meta-train": cmd_meta_train, "adapt": cmd_adapt, "lrmem": cmd_experiment,
            "ml3": cmd_experiment, "rl": cmd_experiment, "keys": cmd_keys}
# what survives a Ctrl-C, per command
ON_INTERRUPT = {
    "demo": "the last meta-training checkpoint is intact. Run the same command to resume",
    "run": "the last meta-training checkpoint is intact. Run the same command to resume",
    "meta-train": "the last checkpoint is intact. Run the same command to resume",
    "lrmem": "simulated data already made is kept. Run the same command to go on",
    "ml3": "the last meta-training checkpoint is intact. Run the same command to resume",
    "rl": "the last meta-training checkpoint is intact. Run the same command to resume",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastadapt", description="Meta-learned losses for fast online adaptation")
    sub = parser.add_subparsers(dest="command", required=True)

    def out_args(p, required=False, what="run directory"):
        p.add_argument("--out", required=required,
                       help=f"{what}; an existing run with the same config and data resumes")
        p.add_argument("--force", action="store_true",
                       help="start the run afresh (e.g. with another config or data): removes only the files "
                            "fastadapt wrote there")

    def limit_arg(p):
        p.add_argument("--limit", action="append", metavar="QUANTITY=VALUE",
                       help="physical limit of q (rad), qd (rad/s), qdd (rad/s^2) or tau (Nm) beyond which data is "
                            "refused; defaults: q=1e3, qd=1e3, qdd=1e5, tau=1e5 (repeat for several)")

    def pipeline_args(p):
        p.add_argument("--quick", action="store_true", help="a small configuration that runs in under a minute")
        out_args(p, what="run directory (default runs/<name>)")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. meta.epochs=300")

    pipeline_args(sub.add_parser("demo", help="the simulated end-to-end pipeline"))
    run = sub.add_parser("run", help="the pipeline on simulated (sim), real Schunk (schunk) data, or Sim2Real on a "
                                      "simulated reality gap (sim2real)")
    run.add_argument("data", choices=["sim", "schunk", "sim2real"])
    pipeline_args(run)
    limit_arg(run)

    data = sub.add_parser("data", help="simulate, inspect and convert robot data")
    data.add_argument("action", choices=["sine", "pick-place", "inspect", "convert"])
    data.add_argument("path", help="output file (sine, pick-place) or input file (inspect, convert)")
    data.add_argument("out", nargs="?", help="output file of convert")
    data.add_argument("--noise", action="store_true", help="add sensor noise to simulated data")
    data.add_argument("--force", action="store_true", help="replace an existing output file")
    limit_arg(data)

    meta = sub.add_parser("meta-train", help="meta-train one learned loss (loss=... and other overrides)")
    meta.add_argument("--train", required=True)
    meta.add_argument("--test", required=True)
    out_args(meta, required=True)
    meta.add_argument("--no-progress", action="store_true")
    limit_arg(meta)
    meta.add_argument("overrides", nargs="*", metavar="key=value")

    adapt = sub.add_parser("adapt", help="adapt fresh models online on a stream with a trained loss")
    adapt.add_argument("--loss", required=True, help="loss.npz written by meta-train")
    adapt.add_argument("--stream", required=True, help="data file played in order")
    out_args(adapt, what="directory for metrics.json")
    limit_arg(adapt)
    adapt.add_argument("overrides", nargs="*", metavar="key=value")

    lrmem = sub.add_parser("lrmem", help="the learning-rate memory experiments (Fig. 2-5, Table I)")
    lrmem.add_argument("name", choices=["rosenbrock", "digits", "id-batch", "id-online"])
    pipeline_args(lrmem)

    ml3 = sub.add_parser("ml3", help="the ML3 (meta learning via learned loss) experiments (Fig. 2)")
    ml3.add_argument("name", choices=sorted(_registry("ml3").EXPERIMENTS))
    pipeline_args(ml3)

    rl = sub.add_parser("rl", help="ML3 for reinforcement learning (Fig. 3, 4, 6)")
    rl.add_argument("name", choices=sorted(_registry("rl").EXPERIMENTS))
    pipeline_args(rl)

    keys = sub.add_parser("keys", help="list the config keys of an experiment (default: the demo pipeline)")
    keys.add_argument("experiment", nargs="?", help="demo, sim, schunk, sim2real, meta-train, adapt, an lrmem, ml3 or rl experiment")
    return parser


def parse(argv=None) -> argparse.Namespace:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (``lrmem NAME --quick steps=10``), which argparse leaves over
    if extra and (not hasattr(args, "overrides") or any("=" not in item or item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    args.argv = "fastadapt " + " ".join(argv)
    return args


def run(argv=None) -> int:
    """Parse and run a command; errors propagate (``main`` turns them into one line and a status)."""
    args = parse(argv)
    return COMMANDS[args.command](args)


def describe(error: BaseException) -> str:
    """One line naming what was wrong."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    args = parse(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as error:
        print(f"fastadapt: error: {describe(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ON_INTERRUPT:
            print(f"fastadapt: interrupted; {ON_INTERRUPT[args.command]}: {args.argv}", file=sys.stderr)
        else:
            print("fastadapt: interrupted; nothing was half-written", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
