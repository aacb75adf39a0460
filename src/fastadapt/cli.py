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
    fastadapt rl mbrl-pointmass|mbrl-reacher|... [--quick] [--out DIR] [key=value ...]
    fastadapt sweep EXPERIMENT key=v1,v2 ... [--seeds N] [--address ADDR] [--workers N] [--out DIR]
    fastadapt data import BAG OUT.npz --topic /joint_states [--joints a,b] [--effort-topic T] [--rate HZ]
    fastadapt keys [EXPERIMENT]                              every key: default, type, one line of help

Every verb with a config takes ``--config runs/x/config.json`` (a saved run's config; key=value overrides
apply on top).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from fastadapt.checkpoint import CheckpointError
from fastadapt.data.trajectory import DataError, Limits
from fastadapt.experiments.config import ConfigError, apply_overrides, config_dict, describe_keys, load_config
from fastadapt.experiments.validation import require_at_least, require_positive_rates
from fastadapt.rundir import RunDirectory, RunDirectoryError, input_files

# the errors a user can cause; each ends the command with one line on stderr and exit status 2
USER_ERRORS = (DataError, ConfigError, CheckpointError, RunDirectoryError, ValueError, FloatingPointError, OSError)
INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C


def cmd_pipeline(args, data: str) -> int:
    from fastadapt.data.schunk import schunk_path
    from fastadapt.experiments.inverse_dynamics import PipelineConfig, quick, run, with_loss_rates

    config = build_config(args, PipelineConfig(data=data), quick)
    if config.data != data:
        raise ConfigError(f"{args.config} is the config of a '{config.data}' run; re-run it with "
                          f"`fastadapt run {config.data} --config {args.config}`")
    limits = Limits.parse(getattr(args, "limit", None))
    inputs = input_files(schunk=schunk_path(config.schunk_path or None)) if data == "schunk" else {}
    name = f"{'demo' if args.command == 'demo' else data}{'-quick' if args.quick else ''}"
    identity = run_identity(with_loss_rates(config), inputs)  # the rates the run uses, however they were given
    with RunDirectory(Path(args.out or Path("runs") / name), identity, args.force, args.argv) as out:
        run(config, out, progress=not args.no_progress, limits=limits)
    return 0


def build_config(args, default, quick=None):
    """The command's config: ``default`` (made small by ``quick`` with --quick) or the saved config of
    --config, then the key=value overrides on top."""
    if getattr(args, "config", None):
        if getattr(args, "quick", False):
            raise ConfigError("--quick and --config together: the saved config already sets every key "
                              "(add key=value overrides to change some)")
        default = load_config(args.config, default)
    elif getattr(args, "quick", False):
        default = quick(default)
    return apply_overrides(default, args.overrides)


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
    config = build_config(args, module.Config(), module.quick)
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
    if args.action == "import":
        from fastadapt.data.rosbag import import_bag

        if not args.out:
            raise ConfigError("data import needs BAG and OUT paths (OUT ending in .npz or .csv)")
        out = Path(args.out)
        _check_output_file(out, args.force)
        joints = tuple(j.strip() for j in args.joints.split(",")) if args.joints is not None else None
        dataset, notes = import_bag(args.path, args.topic, joints, args.effort_topic, args.rate, args.gap,
                                    args.robot, limits)
        for note in notes:
            print(f"  {note}")
        io.save(dataset, out, overwrite=args.force)
        print(f"wrote {len(dataset)} trajectories ({dataset.num_samples} samples, {dataset.num_joints} joints) to {out}")
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

    config = build_config(args, MetaTrainConfig())
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
    batch_size: int = 5  # samples per online step
    seeds: int = 5  # fresh models adapted per method
    rate: float | None = None  # SGD rate of both the trained loss and MSE (default: the loss file's own rate alpha)
    seed: int = 0  # random seed of the models' initialisation

    def __post_init__(self):
        require_at_least(self, 1, "batch_size", "seeds")
        require_at_least(self, 0, "seed")
        if self.rate is not None:
            require_positive_rates(self, "rate")


def cmd_adapt(args) -> int:
    from fastadapt.checkpoint import write_json
    from fastadapt.data import io
    from fastadapt.meta.inverse_dynamics import load_loss
    from fastadapt.report.markdown import phase_table_markdown

    config = build_config(args, AdaptConfig())
    meta_config, loss, loss_params, normalizer = load_loss(args.loss)
    if config.rate is None:  # the rate the loss was meta-trained for, which it carries
        config = dataclasses.replace(config, rate=meta_config.alpha)
    dataset = io.load(args.stream, Limits.parse(args.limit))
    dataset.check_joints(normalizer.num_joints, f"stream {args.stream}")
    identity = run_identity(config, input_files(loss=args.loss, stream=args.stream))
    with RunDirectory(Path(args.out), identity, args.force, args.argv) if args.out else contextlib.nullcontext() as out:
        summary = _adapt_summary(config, meta_config, loss, loss_params, normalizer, dataset)
        if out is not None:
            write_json(out / "config.json", config_dict(config))
            write_json(out / "metrics.json", {"config": config_dict(config), "online": summary})
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


PIPELINE_EXPERIMENTS = ("demo", "sim", "schunk", "sim2real")


def experiment_command(name: str) -> tuple[list[str], object, object]:
    """An experiment by name, as ``fastadapt keys`` and ``fastadapt sweep`` take it: its command-line
    words, its default config and the module that runs it. Names: demo, sim, schunk, sim2real, an lrmem,
    ml3 or rl experiment (``ml3-NAME`` or ``rl-NAME`` where the short name is taken)."""
    from fastadapt.experiments import inverse_dynamics

    if name in PIPELINE_EXPERIMENTS:
        data = "sim" if name == "demo" else name
        words = ["demo"] if name == "demo" else ["run", name]
        return words, inverse_dynamics.PipelineConfig(data=data), inverse_dynamics
    registered, short_names = {}, []
    for family in ("ml3", "lrmem", "rl"):  # a short name two families use (digits) is lrmem's; ml3-digits is ML3's
        for short in _registry(family).EXPERIMENTS:
            registered[short] = registered[f"{family}-{short}"] = (family, short)
            short_names.append(short)
    if name not in registered:
        raise ConfigError(f"unknown experiment '{name}', expected one of "
                          f"{', '.join(dict.fromkeys([*PIPELINE_EXPERIMENTS, *short_names]))} (or FAMILY-NAME: ml3-digits)")
    family, short = registered[name]
    module = _registry(family).experiment(short)
    return [family, short], module.Config(), module


def cmd_sweep(args) -> int:
    """``fastadapt sweep EXPERIMENT key=v1,v2 ...``: every point of the grid (x seeds) as its own run, on Ray
    (local, or the cluster at --address) or one after another; then the summary table and figure."""
    import os

    from fastadapt import sweep as sweeps
    from fastadapt.checkpoint import write_json
    from fastadapt.files import atomic_write_text

    if args.experiment in ("meta-train", "adapt"):
        raise ConfigError(f"sweep runs experiments (demo, sim, schunk, sim2real, lrmem, ml3, rl ones), not "
                          f"'{args.experiment}', which reads data files given by the user")
    words, default, module = experiment_command(args.experiment)
    base = build_config(argparse.Namespace(quick=args.quick, config=args.config, overrides=[]), default,
                        getattr(module, "quick", None))
    grid, fixed = sweeps.parse_grid(args.overrides, base)
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.seeds:
        seed_keys = sweeps.seed_keys(base)
        if not seed_keys:
            raise ConfigError(f"`fastadapt {' '.join(words)}` has no seed key; --seeds cannot be used")
        clash = [k for k in [*grid, *(f.split("=", 1)[0] for f in fixed)] if k in seed_keys]
        if clash:
            raise ConfigError(f"--seeds sets {', '.join(seed_keys)}; do not also give {', '.join(clash)}")
    if not grid and not args.seeds:
        raise ConfigError("nothing to sweep: give a key with several values (key=v1,v2) or --seeds N")
    metric = args.metric or sweeps.default_metric(words)
    workers = args.workers or os.cpu_count() or 1
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    points = sweeps.grid_points(grid, args.seeds)
    sweeps.refuse_collisions(points, base, fixed)
    if args.address and sweeps.ray_available() and not args.serial:
        sweeps.check_address(args.address)
    extra = (["--quick"] if args.quick else []) + (["--config", str(Path(args.config).resolve())] if args.config else [])
    identity = {"config": {"experiment": words, "grid": grid, "fixed": fixed, "seeds": args.seeds or 0,
                           "quick": bool(args.quick)},
                "inputs": input_files(config=args.config) if args.config else {}}
    name = f"sweep-{'-'.join(words[1:] or words)}{'-quick' if args.quick else ''}"
    with RunDirectory(Path(args.out or Path("runs") / name), identity, args.force, args.argv) as out:
        sweep = sweeps.Sweep(words, base, grid, fixed, points, out, metric, extra)
        sweep.write_index()
        use_ray = sweeps.ray_available() and not args.serial
        if not use_ray:
            why = "--serial" if args.serial else "Ray is not installed (pip install 'fastadapt[distributed]')"
            print(f"fastadapt sweep: {why}; running the {len(sweep.points)} points one after another in this process")
        elif args.address:
            print(f"fastadapt sweep: {len(sweep.points)} points on the Ray cluster at {args.address}")
        else:
            print(f"fastadapt sweep: {len(sweep.points)} points on a local Ray with {workers} workers")
        results, timing = _run_sweep(sweep, use_ray, args, workers)
        summary = {**sweeps.summarise(sweep, results), "timing": timing}
        write_json(out / "summary.json", summary)
        atomic_write_text(out / "summary.md", sweeps.summary_markdown(summary))
        figure = sweeps.summary_figure(summary, out / "sweep.png")
    print(sweeps.summary_markdown(summary))
    print(f"wrote {out / 'summary.md'}" + (f" and {figure}" if figure else ""))
    if summary["failures"]:
        print(f"fastadapt sweep: {len(summary['failures'])} of {len(sweep.points)} points failed (their errors are "
              f"above and in their logs); the same command re-runs only the points not done", file=sys.stderr)
        return 1
    return 0


def _run_sweep(sweep, use_ray: bool, args, workers: int) -> dict:
    import time

    from tqdm.auto import tqdm

    from fastadapt import sweep as sweeps

    started = time.time()
    with tqdm(total=len(sweep.points), desc="sweep", unit="point", disable=args.no_progress) as bar:
        def progress(point, result):
            bar.update(1)
            if result["status"] == "failed":
                tqdm.write(f"point {point.name} failed: {result['error']}", file=sys.stderr)

        if use_ray:
            results, init_seconds = sweeps.run_on_ray(sweep, progress, args.address, workers)
        else:
            results, init_seconds = sweeps.run_serial(sweep, progress), 0.0
    timing = {"wall_seconds": time.time() - started, "ray": use_ray, "workers": workers if use_ray else 1,
              "ray_init_seconds": init_seconds}
    return results, timing


GROUP_TITLES = {"TrainerConfig": "meta-training (the one trainer, fastadapt.meta.trainer)",
                "meta": "meta: meta-training of each loss", "online": "online: adaptation on the streams"}


def cmd_keys(args) -> int:
    """Every key of one experiment (default: the demo pipeline), with default, type and one line of help,
    grouped; ``meta-train`` and ``adapt`` are the two verbs that read data files."""
    from fastadapt.meta.inverse_dynamics import MetaTrainConfig

    name = args.experiment or "demo"
    verbs = {"meta-train": (["meta-train"], MetaTrainConfig()), "adapt": (["adapt"], AdaptConfig())}
    words, config = verbs[name] if name in verbs else experiment_command(name)[:2]
    rows = describe_keys(config)
    print(f"keys of `fastadapt {' '.join(words)}` (set with key=value; tuples comma-separated, nested ones "
          "with ';'):")
    width = max(len(r["key"]) for r in rows)
    dwidth = min(24, max(len(r["default"]) for r in rows))
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            title = GROUP_TITLES.get(group, f"{' '.join(words)}: the experiment's own" if group[0].isupper() else group)
            print(f"\n# {title}")
        default = row["default"] if len(row["default"]) <= dwidth else row["default"][:dwidth - 3] + "..."
        print(f"  {row['key']:<{width}}  {default:<{dwidth}}  {row['type']:<11}  {row['help']}".rstrip())
    return 0


COMMANDS = {"demo": lambda a: cmd_pipeline(a, "sim"), "run": lambda a: cmd_pipeline(a, a.data), "data": cmd_data,
            "meta-train": cmd_meta_train, "adapt": cmd_adapt, "lrmem": cmd_experiment,
            "ml3": cmd_experiment, "rl": cmd_experiment, "keys": cmd_keys, "sweep": cmd_sweep}
# what survives a Ctrl-C, per command
ON_INTERRUPT = {
    "demo": "the last meta-training checkpoint is intact. Run the same command to resume",
    "run": "the last meta-training checkpoint is intact. Run the same command to resume",
    "meta-train": "the last checkpoint is intact. Run the same command to resume",
    "lrmem": "simulated data already made is kept. Run the same command to go on",
    "ml3": "the last meta-training checkpoint is intact. Run the same command to resume",
    "rl": "the last meta-training checkpoint is intact. Run the same command to resume",
    "sweep": "finished points are kept, the others resume from their checkpoints. Run the same command to go on",
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

    def config_arg(p):
        p.add_argument("--config", metavar="CONFIG.json",
                       help="start from a saved config (a run's config.json); key=value overrides apply on top")

    def pipeline_args(p):
        p.add_argument("--quick", action="store_true", help="a small configuration that runs in under a minute")
        out_args(p, what="run directory (default runs/<name>)")
        p.add_argument("--no-progress", action="store_true")
        config_arg(p)
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. meta.epochs=300")

    pipeline_args(sub.add_parser("demo", help="the simulated end-to-end pipeline"))
    run = sub.add_parser("run", help="the pipeline on simulated (sim), real Schunk (schunk) data, or Sim2Real on a "
                                      "simulated reality gap (sim2real)")
    run.add_argument("data", choices=["sim", "schunk", "sim2real"])
    pipeline_args(run)
    limit_arg(run)

    data = sub.add_parser("data", help="simulate, inspect and convert robot data")
    data.add_argument("action", choices=["sine", "pick-place", "inspect", "convert", "import"])
    data.add_argument("path", help="output file (sine, pick-place), input file (inspect, convert) or ROS bag (import: "
                                   "a ROS 1 .bag file or a ROS 2 bag directory, sqlite3 or MCAP)")
    data.add_argument("out", nargs="?", help="output file of convert and import (.npz or .csv)")
    data.add_argument("--topic", default="/joint_states", help="import: the sensor_msgs/JointState topic")
    data.add_argument("--joints", help="import: the joints to take, in this order (default: the first message's)")
    data.add_argument("--effort-topic", help="import: another JointState topic that carries the torques")
    data.add_argument("--rate", type=float, help="import: resample to this rate in Hz (default: the median rate, "
                                                 "and only if the sampling is irregular)")
    data.add_argument("--gap", type=float, help="import: a gap longer than this (s) splits the log (default: 10 steps)")
    data.add_argument("--robot", default="ros", help="import: the robot's name in the data file")
    data.add_argument("--noise", action="store_true", help="add sensor noise to simulated data")
    data.add_argument("--force", action="store_true", help="replace an existing output file")
    limit_arg(data)

    meta = sub.add_parser("meta-train", help="meta-train one learned loss (loss=... and other overrides)")
    meta.add_argument("--train", required=True)
    meta.add_argument("--test", required=True)
    out_args(meta, required=True)
    meta.add_argument("--no-progress", action="store_true")
    config_arg(meta)
    limit_arg(meta)
    meta.add_argument("overrides", nargs="*", metavar="key=value")

    adapt = sub.add_parser("adapt", help="adapt fresh models online on a stream with a trained loss")
    adapt.add_argument("--loss", required=True, help="loss.npz written by meta-train")
    adapt.add_argument("--stream", required=True, help="data file played in order")
    out_args(adapt, what="directory for metrics.json")
    config_arg(adapt)
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

    sweep = sub.add_parser("sweep", help="run an experiment over a grid of config values and seeds (on Ray if "
                                          "installed) and summarise")
    sweep.add_argument("experiment", help="demo, sim, schunk, sim2real, or an lrmem, ml3 or rl experiment")
    sweep.add_argument("--seeds", type=int, help="run every grid point with seeds 0..N-1 (every 'seed' key)")
    sweep.add_argument("--address", help="an existing Ray cluster (default: start Ray on this machine)")
    sweep.add_argument("--workers", type=int, help="local Ray's CPUs, one point each (default: all cores)")
    sweep.add_argument("--serial", action="store_true", help="run the points one after another in this process")
    sweep.add_argument("--metric", help="path into metrics.json ('/' between keys, '*' any key) to summarise")
    sweep.add_argument("--quick", action="store_true", help="every point with the experiment's --quick config")
    out_args(sweep, what="sweep directory (default runs/sweep-<name>); its points are in points/")
    sweep.add_argument("--no-progress", action="store_true")
    config_arg(sweep)
    sweep.add_argument("overrides", nargs="*", metavar="key=v1,v2",
                       help="swept keys (values comma-separated, tuple values separated by '|') and fixed overrides")

    keys = sub.add_parser("keys", help="list the config keys of an experiment (default: the demo pipeline)")
    keys.add_argument("experiment", nargs="?",
                      help="demo, sim, schunk, sim2real, meta-train, adapt, an lrmem, ml3 or rl experiment")
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
