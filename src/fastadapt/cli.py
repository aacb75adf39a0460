"""The ``fastadapt`` command line.

    fastadapt demo [--quick] [--out DIR] [key=value ...]     simulated end-to-end pipeline
    fastadapt run sim|schunk [--quick] [--out DIR] [key=value ...]
    fastadapt data sine|pick-place OUT [--noise] [--force]  simulate and save (.npz or .csv)
    fastadapt data inspect PATH                              validate and summarise a data file
    fastadapt data convert IN OUT [--force]                  npz <-> csv
    fastadapt meta-train --train PATH --test PATH --out DIR [key=value ...]
    fastadapt adapt --loss LOSS.npz --stream PATH [--out DIR] [key=value ...]
    fastadapt lrmem rosenbrock|digits|id-batch|id-online [--quick] [--out DIR] [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from fastadapt.data.trajectory import DataError
from fastadapt.experiments.config import ConfigError, apply_overrides, known_keys


def _run_directory(out: Path, config_json: dict, force: bool) -> Path:
    """A run directory is resumed when its config matches; another config needs --force, which only
    clears directories that fastadapt made (they hold a config.json)."""
    saved = out / "config.json"
    if saved.exists():
        if json.loads(saved.read_text()) == config_json:
            return out
        if not force:
            raise FileExistsError(
                f"{out} holds a run with another config; choose another --out or pass --force to replace it"
            )
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a fastadapt run directory; choose another --out")
    return out


class _RunDirectory:
    """Around a run: if it fails before producing anything, a run directory it created is removed again
    (so that fixing the config and re-running does not meet a stale config.json)."""

    def __init__(self, out: Path):
        self.out, self.existed = out, out.exists()

    def __enter__(self):
        return self.out

    def __exit__(self, kind, error, traceback):
        if kind is not None and not self.existed and self.out.exists():
            contents = {p.name for p in self.out.iterdir()}
            if contents <= {"config.json"}:
                shutil.rmtree(self.out)
        return False


def cmd_pipeline(args, data: str) -> int:
    from fastadapt.experiments.inverse_dynamics import PipelineConfig, quick, run
    from fastadapt.meta.trainer import config_dict

    config = PipelineConfig(data=data)
    if args.quick:
        config = quick(config)
    config = apply_overrides(config, args.overrides)
    name = f"{'demo' if args.command == 'demo' else data}{'-quick' if args.quick else ''}"
    out = _run_directory(Path(args.out or Path("runs") / name), config_dict(config), args.force)
    with _RunDirectory(out):
        run(config, out, progress=not args.no_progress)
    return 0


def cmd_lrmem(args) -> int:
    from fastadapt.experiments.lrmem import experiment
    from fastadapt.meta.trainer import config_dict

    module = experiment(args.name)
    config = module.Config()
    if args.quick:
        config = module.quick(config)
    config = apply_overrides(config, args.overrides)
    name = f"lrmem-{args.name}{'-quick' if args.quick else ''}"
    out = _run_directory(Path(args.out or Path("runs") / name), config_dict(config), args.force)
    with _RunDirectory(out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config_dict(config), indent=2))
        module.run(config, out, progress=not args.no_progress)
    return 0


def cmd_data(args) -> int:
    from fastadapt.data import io

    if args.action in ("sine", "pick-place"):
        from fastadapt.sim import motions

        out = Path(args.path)
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        if args.action == "sine":
            dataset = motions.sine_dataset(noise=args.noise)
        else:
            from fastadapt.data.trajectory import concatenate

            dataset = concatenate(motions.pick_and_place_dataset(noise=args.noise))
        io.save(dataset, out, overwrite=args.force)
        print(f"wrote {len(dataset)} trajectories ({dataset.num_samples} samples) to {out}")
        return 0
    if args.action == "inspect":
        dataset = io.load(args.path)
        print(f"{args.path}: {len(dataset)} trajectories, {dataset.num_samples} samples, "
              f"{dataset.num_joints} joints, robot '{dataset.robot}'")
        for i, traj in enumerate(dataset):
            print(f"  {i:3d} {traj.phase or '-':>12s}  T={len(traj):5d}  dt={traj.dt:.4g}s  payload={traj.payload:g}kg  "
                  f"|tau|max={abs(traj.tau).max():.3g}Nm")
        return 0
    if args.action == "convert":
        if not args.out:
            raise ConfigError("data convert needs IN and OUT paths")
        dataset = io.load(args.path)
        io.save(dataset, args.out, overwrite=args.force)
        print(f"wrote {args.out}")
        return 0
    raise ConfigError(f"unknown data action '{args.action}'")


def cmd_meta_train(args) -> int:
    from fastadapt.data import io
    from fastadapt.meta.trainer import MetaTrainConfig, MetaTrainer, config_dict

    config = apply_overrides(MetaTrainConfig(), args.overrides)
    train, test = io.load(args.train), io.load(args.test)
    out = Path(args.out)
    _run_directory(out, {"meta_train": config_dict(config)}, args.force)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"meta_train": config_dict(config)}, indent=2))
    result = MetaTrainer(config, train, test).run(out, progress=not args.no_progress)
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


def cmd_adapt(args) -> int:
    from fastadapt.adapt.online import Method, initial_models, online_scores, overall, phase_table
    from fastadapt.checkpoint import write_json
    from fastadapt.data import io
    from fastadapt.data.batches import sequential_stream
    from fastadapt.losses import make_loss
    from fastadapt.meta.trainer import load_loss
    from fastadapt.report.markdown import phase_table_markdown

    config = apply_overrides(AdaptConfig(), args.overrides)
    meta_config, loss, loss_params, normalizer = load_loss(args.loss)
    dataset = io.load(args.stream)
    dataset.check_joints(normalizer.num_joints, f"stream {args.stream}")
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
    print(phase_table_markdown(summary))
    if args.out:
        out = Path(args.out)
        if (out / "metrics.json").exists() and not args.force:
            raise FileExistsError(f"{out / 'metrics.json'} exists; pass --force to replace it")
        write_json(out / "metrics.json", {"config": dataclasses.asdict(config), "online": summary})
        print(f"wrote {out / 'metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastadapt", description="Meta-learned losses for fast online adaptation")
    sub = parser.add_subparsers(dest="command", required=True)

    def pipeline_args(p):
        p.add_argument("--quick", action="store_true", help="a small configuration that runs in under a minute")
        p.add_argument("--out", help="run directory (default runs/<name>); an existing run with the same config resumes")
        p.add_argument("--force", action="store_true", help="replace a run directory that holds another config")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. meta.epochs=300")

    pipeline_args(sub.add_parser("demo", help="the simulated end-to-end pipeline"))
    run = sub.add_parser("run", help="the pipeline on simulated (sim) or real Schunk (schunk) data")
    run.add_argument("data", choices=["sim", "schunk"])
    pipeline_args(run)

    data = sub.add_parser("data", help="simulate, inspect and convert robot data")
    data.add_argument("action", choices=["sine", "pick-place", "inspect", "convert"])
    data.add_argument("path", help="output file (sine, pick-place) or input file (inspect, convert)")
    data.add_argument("out", nargs="?", help="output file of convert")
    data.add_argument("--noise", action="store_true", help="add sensor noise to simulated data")
    data.add_argument("--force", action="store_true", help="replace an existing output file")

    meta = sub.add_parser("meta-train", help="meta-train one learned loss (loss=... and other overrides)")
    meta.add_argument("--train", required=True)
    meta.add_argument("--test", required=True)
    meta.add_argument("--out", required=True)
    meta.add_argument("--force", action="store_true")
    meta.add_argument("--no-progress", action="store_true")
    meta.add_argument("overrides", nargs="*", metavar="key=value")

    adapt = sub.add_parser("adapt", help="adapt fresh models online on a stream with a trained loss")
    adapt.add_argument("--loss", required=True, help="loss.npz written by meta-train")
    adapt.add_argument("--stream", required=True, help="data file played in order")
    adapt.add_argument("--out")
    adapt.add_argument("--force", action="store_true")
    adapt.add_argument("overrides", nargs="*", metavar="key=value")

    lrmem = sub.add_parser("lrmem", help="the learning-rate memory experiments (Fig. 2-5, Table I)")
    lrmem.add_argument("name", choices=["rosenbrock", "digits", "id-batch", "id-online"])
    pipeline_args(lrmem)

    keys = sub.add_parser("keys", help="list the config keys of the pipeline (or of an lrmem experiment)")
    keys.add_argument("experiment", nargs="?", help="an lrmem experiment name")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (``lrmem NAME --quick steps=10``), which argparse leaves over
    if extra and (not hasattr(args, "overrides") or any("=" not in item or item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        if args.command in ("demo", "run"):
            return cmd_pipeline(args, "sim" if args.command == "demo" else args.data)
        if args.command == "data":
            return cmd_data(args)
        if args.command == "meta-train":
            return cmd_meta_train(args)
        if args.command == "adapt":
            return cmd_adapt(args)
        if args.command == "lrmem":
            return cmd_lrmem(args)
        if args.command == "keys":
            if args.experiment:
                from fastadapt.experiments.lrmem import experiment

                print("\n".join(known_keys(experiment(args.experiment).Config())))
                return 0
            from fastadapt.experiments.inverse_dynamics import PipelineConfig

            print("\n".join(known_keys(PipelineConfig())))
            return 0
    except (DataError, ConfigError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"fastadapt: error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
