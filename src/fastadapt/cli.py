"""The ``fastadapt`` command line.

    fastadapt demo [--quick|--paper] [--out DIR] [key=value ...]   simulated end-to-end pipeline
    fastadapt run sim|schunk|sim2real [--quick|--paper] [--out DIR] [key=value ...]
    fastadapt data sine|pick-place OUT [--noise] [--force]  simulate and save (.npz or .csv)
    fastadapt data inspect PATH                              validate and summarise a data file
    fastadapt data convert IN OUT [--force]                  npz <-> csv
    fastadapt meta-train --train PATH --test PATH --out DIR [key=value ...]
    fastadapt adapt --loss LOSS.npz --stream PATH [--out DIR] [key=value ...]
    fastadapt lrmem rosenbrock|digits|id-batch|id-online [--quick] [--out DIR] [key=value ...]
    fastadapt ml3 sine [--quick|--paper] [--out DIR] [key=value ...]
    fastadapt rl mbrl-pointmass|mbrl-reacher|... [--quick] [--out DIR] [key=value ...]
    fastadapt sweep EXPERIMENT key=v1,v2 ... [--seeds N] [--address ADDR] [--workers N] [--out DIR]
    fastadapt data import BAG OUT.npz --topic /joint_states [--joints a,b] [--effort-topic T] [--rate HZ]
    fastadapt data import LOG.csv|LOG.mat|LOG.npz OUT.npz [--rate HZ] [--robot NAME]   arrays with named columns
    fastadapt keys [EXPERIMENT]                              every key: default, type, one line of help

Every verb with a config takes ``--config runs/x/config.json`` (a saved run's config; key=value overrides
apply on top).

This module is the parser and the dispatch only: the experiments are the rows of
:mod:`fastadapt.experiments.registry`, the sweep is :mod:`fastadapt.sweep`, the errors a user can cause
and their one line are :mod:`fastadapt.errors`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from fastadapt.config import ConfigError, build_config as configured, describe_keys, saved_config
from fastadapt.data.trajectory import Limits
from fastadapt.errors import USER_ERRORS, describe
from fastadapt.experiments import registry
from fastadapt.rundir import RunDirectory, input_files, run_identity

INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C


def warn(lines) -> None:
    """Warnings about the user's data: one line each on stderr; the command goes on."""
    for line in lines:
        print(f"fastadapt: warning: {line}", file=sys.stderr)


def build_config(args, default, experiment=None):
    """The command's config: ``default`` (made small by the experiment's ``quick`` with --quick, or set to
    the paper's protocol by its ``PAPER_KEYS`` with --paper) or the saved config of --config, then the
    key=value overrides on top."""
    quick = experiment.quick if experiment is not None and getattr(args, "quick", False) else None
    paper = experiment.paper_keys() if experiment is not None and getattr(args, "paper", False) else None
    return configured(default, args.overrides, getattr(args, "config", None) or None, quick, paper)


def run_suffix(args) -> str:
    """The default run directory's suffix: '-quick' with --quick, '-paper' with --paper."""
    return "-quick" if args.quick else "-paper" if getattr(args, "paper", False) else ""


def write_config(out: Path, words, config, inputs: dict) -> None:
    """config.json, in its one shape (:func:`fastadapt.config.saved_config`)."""
    from fastadapt.checkpoint import write_json

    write_json(out / "config.json", saved_config(config, "fastadapt " + " ".join(words), inputs))


def cmd_pipeline(args, data: str) -> int:
    from fastadapt.data.schunk import schunk_path
    from fastadapt.experiments.pipeline import run, with_loss_rates

    experiment = registry.command(["demo"] if args.command == "demo" else ["run", data])
    config = build_config(args, experiment.default_config(), experiment)
    if config.data != data:
        raise ConfigError(f"{args.config} is the config of a '{config.data}' run; re-run it with "
                          f"`fastadapt run {config.data} --config {args.config}`")
    limits = Limits.parse(getattr(args, "limit", None))
    inputs = input_files(schunk=schunk_path(config.schunk_path or None)) if data == "schunk" else {}
    name = f"{'demo' if args.command == 'demo' else data}{run_suffix(args)}"
    identity = run_identity(with_loss_rates(config), inputs)  # the rates the run uses, however they were given
    with RunDirectory(Path(args.out or Path("runs") / name), identity, args.force, args.argv) as out:
        write_config(out, experiment.words, config, inputs)
        run(config, out, progress=not args.no_progress, limits=limits)
    return 0


def cmd_experiment(args) -> int:
    """``fastadapt lrmem|ml3|rl NAME``: one registered experiment into its run directory."""
    experiment = registry.command([args.command, args.name])
    config = build_config(args, experiment.default_config(), experiment)
    inputs = input_files(**experiment.inputs(config))
    name = f"{args.command}-{args.name}{run_suffix(args)}"
    identity = run_identity(config, inputs)
    with RunDirectory(Path(args.out or Path("runs") / name), identity, args.force, args.argv) as out:
        write_config(out, experiment.words, config, inputs)
        experiment.load().run(config, out, progress=not args.no_progress)
    return 0


def cmd_data(args) -> int:
    from fastadapt.data import io
    from fastadapt.experiments import user_data

    limits = Limits.parse(args.limit)
    if args.action in ("sine", "pick-place"):
        out = user_data.check_output_file(Path(args.path), args.force)
        dataset = user_data.simulated_dataset(args.action, args.noise)
        io.save(dataset, out, overwrite=args.force)
        print(f"wrote {len(dataset)} trajectories ({dataset.num_samples} samples) to {out}")
        return 0
    if args.action == "inspect":
        dataset = io.load(args.path, limits)
        print("\n".join(user_data.describe_dataset(args.path, dataset)))
        warn(user_data.data_warnings(dataset, args.path))
        return 0
    if args.action == "import":
        from fastadapt.data.arrays import ARRAY_SUFFIXES, import_arrays
        from fastadapt.data.rosbag import import_bag

        if not args.out:
            raise ConfigError("data import needs IN and OUT paths (IN a ROS bag or a .csv/.mat/.npz; OUT ending in .npz "
                              "or .csv)")
        out = user_data.check_output_file(Path(args.out), args.force)
        if Path(args.path).suffix in ARRAY_SUFFIXES:
            dataset, notes = import_arrays(args.path, args.rate, args.gap, args.robot, limits)
        else:
            joints = tuple(j.strip() for j in args.joints.split(",")) if args.joints is not None else None
            dataset, notes = import_bag(args.path, args.topic, joints, args.effort_topic, args.rate, args.gap,
                                        args.robot or "ros", limits)
        for note in notes:
            print(f"  {note}")
        warn(user_data.data_warnings(dataset, str(out)))
        io.save(dataset, out, overwrite=args.force)
        print(f"wrote {len(dataset)} trajectories ({dataset.num_samples} samples, {dataset.num_joints} joints) to {out}")
        return 0
    if args.action == "convert":
        if not args.out:
            raise ConfigError("data convert needs IN and OUT paths")
        dataset = io.load(args.path, limits)
        user_data.check_output_file(Path(args.out), args.force)
        io.save(dataset, args.out, overwrite=args.force)
        print(f"wrote {args.out}")
        return 0
    raise ConfigError(f"unknown data action '{args.action}'")


def cmd_meta_train(args) -> int:
    import numpy as np

    from fastadapt.data import io
    from fastadapt.experiments import user_data
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, inverse_dynamics_trainer

    config = build_config(args, InverseDynamicsConfig())
    limits = Limits.parse(args.limit)
    train, test = io.load(args.train, limits), io.load(args.test, limits)
    warn(user_data.data_warnings(train, args.train) + user_data.data_warnings(test, args.test))
    trainer = inverse_dynamics_trainer(config, train, test)  # validates data against config before a directory is made
    inputs = input_files(train=args.train, test=args.test)
    identity = run_identity(config, inputs, "meta_train")
    with RunDirectory(Path(args.out), identity, args.force, args.argv) as out:
        write_config(out, ["meta-train"], config, inputs)
        result = trainer.run(out, progress=not args.no_progress)
    h = result.history
    chosen = h["eval"][h["eval_epoch"].index(h["selected_epoch"])]
    nm2 = float(np.mean(np.square(np.asarray(trainer.task.normalizer.y_std))))  # Nm^2 per normalised unit
    score = lambda value: f"{value:.4g} ({value * nm2:.4g} Nm^2)"
    print(f"wrote {out / 'loss.npz'} (epoch {h['selected_epoch']}); MSE after {config.eval_steps} steps: "
          f"meta-train {score(chosen['meta-train']['mean'][h['best_seed']])}, "
          f"meta-test {score(chosen['meta-test']['mean'][h['best_seed']])} "
          f"(plain MSE loss: {score(h['baseline']['meta-test']['mean'])})")
    return 0


def cmd_adapt(args) -> int:
    from fastadapt.checkpoint import write_json
    from fastadapt.config import config_dict
    from fastadapt.data import io
    from fastadapt.experiments import user_data
    from fastadapt.experiments.user_data import AdaptConfig, adapt_summary, with_loss_rate
    from fastadapt.report.markdown import phase_table_markdown
    from fastadapt.tasks.inverse_dynamics import load_loss, loss_robot

    config = build_config(args, AdaptConfig())
    meta_config, loss, loss_params, normalizer = load_loss(args.loss)
    config = with_loss_rate(config, meta_config)  # the rate the loss was meta-trained for, which it carries
    dataset = io.load(args.stream, Limits.parse(args.limit))
    dataset.check_joints(normalizer.num_joints, f"stream {args.stream}")
    warn(user_data.data_warnings(dataset, args.stream) + user_data.robot_warnings(loss_robot(args.loss), dataset, args.stream))
    inputs = input_files(loss=args.loss, stream=args.stream)
    identity = run_identity(config, inputs)
    with RunDirectory(Path(args.out), identity, args.force, args.argv) if args.out else contextlib.nullcontext() as out:
        summary = adapt_summary(config, meta_config, loss, loss_params, normalizer, dataset)
        if out is not None:
            write_config(out, ["adapt"], config, inputs)
            write_json(out / "metrics.json", {"config": config_dict(config), "online": summary})
    print(phase_table_markdown(summary))
    print()
    print(user_data.physical_table(summary))
    if out is not None:
        print(f"wrote {out / 'metrics.json'}")
    return 0


def cmd_sweep(args) -> int:
    from fastadapt.sweep import SweepRequest, sweep

    request = SweepRequest(args.experiment, list(args.overrides), args.seeds, args.address, args.workers, args.serial,
                           args.metric, bool(args.quick), args.config, args.out, args.force, args.no_progress, args.argv,
                           bool(args.paper))
    return sweep(request, run)


GROUP_TITLES = {"TrainerConfig": "meta-training (the one trainer, fastadapt.meta.trainer)",
                "meta": "meta: meta-training of each loss", "online": "online: adaptation on the streams"}
VERBS_WITH_DATA = ("meta-train", "adapt")  # the two verbs that read the user's data files


def cmd_keys(args) -> int:
    """Every key of one experiment (default: the demo pipeline), with default, type and one line of help,
    grouped; ``meta-train`` and ``adapt`` are the two verbs that read data files."""
    from fastadapt.experiments.user_data import AdaptConfig
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig

    name = args.experiment or "demo"
    verbs = {"meta-train": (["meta-train"], InverseDynamicsConfig()), "adapt": (["adapt"], AdaptConfig())}
    if name in verbs:
        words, config = verbs[name]
    else:
        experiment = registry.find(name)
        words, config = list(experiment.words), experiment.default_config()
    rows = describe_keys(config)
    print(f"keys of `fastadapt {' '.join(words)}` (set with key=value; tuples comma-separated, nested ones "
          "with ';'):")
    width = max(len(r["key"]) for r in rows)
    dwidth = min(24, max(len(r["default"]) for r in rows))
    shown = None
    for row in rows:
        group = row["group"]
        title = GROUP_TITLES.get(group, f"{' '.join(words)}: the experiment's own" if group[0].isupper() else group)
        if title != shown:
            shown = title
            print(f"\n# {title}")
        default = row["default"] if len(row["default"]) <= dwidth else row["default"][:dwidth - 3] + "..."
        print(f"  {row['key']:<{width}}  {default:<{dwidth}}  {row['type']:<11}  {row['help']}".rstrip())
    paper = registry.find(name).paper_keys(required=False) if name not in verbs else ()
    if paper:
        print(f"\n# --paper: the paper's own protocol and budget\n  {' '.join(paper)}")
    return 0


COMMANDS = {"demo": lambda a: cmd_pipeline(a, "sim"), "run": lambda a: cmd_pipeline(a, a.data), "data": cmd_data,
            "meta-train": cmd_meta_train, "adapt": cmd_adapt, "keys": cmd_keys, "sweep": cmd_sweep,
            **{name: cmd_experiment for name in registry.FAMILIES}}
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
        p.add_argument("--paper", action="store_true",
                       help="the paper's own protocol and budget (the experiment's PAPER_KEYS, listed by "
                            "`fastadapt keys`); key=value overrides apply on top")
        out_args(p, what="run directory (default runs/<name>)")
        p.add_argument("--no-progress", action="store_true")
        config_arg(p)
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. meta.epochs=300")

    pipeline_args(sub.add_parser("demo", help="the simulated end-to-end pipeline"))
    run = sub.add_parser("run", help="the pipeline on simulated (sim), real Schunk (schunk) data, or Sim2Real on a "
                                      "simulated reality gap (sim2real)")
    run.add_argument("data", choices=[e.words[1] for e in registry.EXPERIMENTS if e.words[0] == "run"])
    pipeline_args(run)
    limit_arg(run)

    data = sub.add_parser("data", help="simulate, inspect and convert robot data")
    data.add_argument("action", choices=["sine", "pick-place", "inspect", "convert", "import"])
    data.add_argument("path", help="output file (sine, pick-place), input file (inspect, convert) or the log to import "
                                   "(a ROS 1 .bag file, a ROS 2 bag directory, sqlite3 or MCAP, or arrays with named "
                                   "columns: .csv, .mat, .npz)")
    data.add_argument("out", nargs="?", help="output file of convert and import (.npz or .csv)")
    data.add_argument("--topic", default="/joint_states", help="import: the sensor_msgs/JointState topic")
    data.add_argument("--joints", help="import: the joints to take, in this order (default: the first message's)")
    data.add_argument("--effort-topic", help="import: another JointState topic that carries the torques")
    data.add_argument("--rate", type=float, help="import: resample to this rate in Hz (default: the median rate, "
                                                 "and only if the sampling is irregular)")
    data.add_argument("--gap", type=float, help="import: a gap longer than this (s) splits the log (default: 10 steps)")
    data.add_argument("--robot", help="import: the robot's name in the data file (default: the file's, else 'ros' "
                                      "for a bag, 'robot' for arrays)")
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

    for family, help_text in registry.FAMILIES.items():
        experiments = sub.add_parser(family, help=help_text)
        experiments.add_argument("name", choices=[e.words[1] for e in registry.family(family)])
        pipeline_args(experiments)

    sweep = sub.add_parser("sweep", help="run an experiment over a grid of config values and seeds (on Ray if "
                                          "installed) and summarise")
    sweep.add_argument("experiment", help="demo, sim, schunk, sim2real, or an lrmem, ml3 or rl experiment")
    sweep.add_argument("--seeds", type=int, help="run every grid point with seeds 0..N-1 (every 'seed' key)")
    sweep.add_argument("--address", help="an existing Ray cluster (default: start Ray on this machine)")
    sweep.add_argument("--workers", type=int, help="local Ray's CPUs, one point each (default: all cores)")
    sweep.add_argument("--serial", action="store_true", help="run the points one after another in this process")
    sweep.add_argument("--metric", help="path into metrics.json ('/' between keys, '*' any key) to summarise")
    sweep.add_argument("--quick", action="store_true", help="every point with the experiment's --quick config")
    sweep.add_argument("--paper", action="store_true", help="every point on the paper's protocol (--paper)")
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
