"""Saved configs read back (``--config``), and the keys' help taken from the config dataclasses."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fastadapt.checkpoint import write_json
from fastadapt.cli import main
from fastadapt.experiments import registry
from fastadapt.config import (
    ConfigError, config_dict, describe_keys, field_docs, load_config, one_line,
)
from fastadapt.experiments.pipeline import PipelineConfig
from fastadapt.meta.trainer import TrainerConfig
from fastadapt.experiments.rl import mfrl


@pytest.mark.parametrize("config", [
    PipelineConfig(losses=("structured",), meta=PipelineConfig().meta.__class__(hidden=(8, 4), epochs=3)),
    mfrl.Config(architectures=((16,), (16, 16)), eta=3e-3),
])
def test_a_saved_config_reads_back_equal(tmp_path, config):
    path = write_json(tmp_path / "config.json", config_dict(config)) or tmp_path / "config.json"
    assert load_config(path, type(config)()) == config


def test_wrapped_and_older_configs(tmp_path):
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig

    config = InverseDynamicsConfig(loss="structured", epochs=7)
    # meta-train's config.json: {"config": {"meta_train": ...}, "inputs": ...}
    (tmp_path / "meta.json").write_text(json.dumps({"config": {"meta_train": config_dict(config)}, "inputs": {}}))
    assert load_config(tmp_path / "meta.json", InverseDynamicsConfig()) == config
    # a file written before a key existed: the key keeps its default
    saved = config_dict(config)
    del saved["layer_rates"]
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert load_config(tmp_path / "old.json", InverseDynamicsConfig()) == config


@pytest.mark.parametrize("content, message", [
    ({"meta": {"epochz": 3}}, r"unknown config key\(s\) 'meta.epochz' for InverseDynamicsConfig"),
    ({"noise": "yes"}, r"'noise': expected a value of type bool, got \"yes\""),
    ({"trials": 2}, r"'trials': expected a list, got 2"),
    ({"meta": 5}, r"'meta' is a group of keys, got 5"),
    ({"online": {"alpha": -1.0}}, r"config.json: .*alpha"),
    ([1, 2], r"expected a JSON object of config keys"),
])
def test_bad_saved_configs_name_what_is_wrong(tmp_path, content, message):
    (tmp_path / "config.json").write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "config.json", PipelineConfig())


def test_missing_and_damaged_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.json", PipelineConfig())
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad.json: not a JSON config"):
        load_config(tmp_path / "bad.json", PipelineConfig())


@pytest.mark.slow
def test_a_run_reruns_from_its_config_json_with_overrides_on_top(tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["lrmem", "rosenbrock", "--quick", "--no-progress", "--out", str(first), "steps=50"]) == 0
    saved = json.loads((first / "config.json").read_text())
    again = tmp_path / "again"
    assert main(["lrmem", "rosenbrock", "--config", str(first / "config.json"), "--no-progress", "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text()) == saved
    assert json.loads((again / "metrics.json").read_text())["runs"] == json.loads((first / "metrics.json").read_text())["runs"]
    other = tmp_path / "other"
    assert main(["lrmem", "rosenbrock", "--config", str(first / "config.json"), "--no-progress", "--out", str(other),
                 "steps=60"]) == 0
    assert json.loads((other / "config.json").read_text()) == {**saved, "config": {**saved["config"], "steps": 60}}
    capsys.readouterr()
    assert main(["lrmem", "rosenbrock", "--quick", "--config", str(first / "config.json")]) == 2
    assert "--quick and --config together" in capsys.readouterr().err
    write_json(tmp_path / "schunk.json", config_dict(PipelineConfig(data="schunk")))
    assert main(["run", "sim", "--config", str(tmp_path / "schunk.json"), "--out", str(tmp_path / "x")]) == 2
    assert "is the config of a 'schunk' run; re-run it with `fastadapt run schunk --config" in capsys.readouterr().err
    assert main(["ml3", "sine", "--config", str(first / "config.json"), "--out", str(tmp_path / "y")]) == 2
    assert "unknown config key(s) 'clip'" in capsys.readouterr().err and not (tmp_path / "y").exists()


@dataclasses.dataclass(frozen=True)
class _Base:
    rate: float = 0.1  # the step size. Longer explanation follows
    # how many steps
    # to take
    steps: int = 3


@dataclasses.dataclass(frozen=True)
class _Child(_Base):
    rate: float = 0.5
    mode: str = "a"  # "a" or "b"; the second
    # line goes on
    plain: int = 0  # its own
    bare: int = 1


def test_field_docs_come_from_comments_on_or_above_the_field_and_from_bases():
    docs = field_docs(_Child)
    assert docs == {"rate": "the step size. Longer explanation follows", "steps": "how many steps to take",
                    "mode": "\"a\" or \"b\"; the second line goes on", "plain": "its own"}  # 'bare' has none
    assert one_line(docs["rate"]) == "the step size" and one_line(docs["mode"]) == "\"a\" or \"b\""
    rows = describe_keys(_Child())
    assert rows[0] == {"key": "rate", "default": "0.5", "type": "float", "help": "the step size", "group": "_Base"}
    assert rows[2]["group"] == "_Child"


EXPERIMENTS = ["demo", "sim", "schunk", "sim2real", "rosenbrock", "digits", "id-batch", "id-online", "sine", "ml3-digits",
               "shaped-sine", "physics-prior", "transfer", "mbrl-pointmass", "mbrl-reacher", "mfrl-reacher", "mfrl-ant",
               "mountaincar", "demos"]


def test_every_key_of_every_experiment_has_help(capsys):
    from fastadapt.experiments.user_data import AdaptConfig
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig

    configs = {name: registry.find(name).default_config() for name in EXPERIMENTS}
    configs.update({"meta-train": InverseDynamicsConfig(), "adapt": AdaptConfig()})
    missing = [f"{name}: {row['key']}" for name, config in configs.items() for row in describe_keys(config)
               if not row["help"]]
    assert not missing, f"keys without help: {missing}"
    assert main(["keys", "mfrl-reacher"]) == 0
    out = capsys.readouterr().out
    assert "# meta-training (the one trainer" in out and "# rl mfrl-reacher: the experiment's own" in out
    trainer = [line for line in out.splitlines() if line.strip().startswith("alpha ")]
    assert trainer and "float" in trainer[0] and str(mfrl.Config().alpha) in trainer[0]
    assert set(field_docs(TrainerConfig)) == {f.name for f in dataclasses.fields(TrainerConfig)}


@pytest.mark.parametrize("name, overrides, expect", [
    ("shaped-sine", ["frequency_max=0.4", "frequency_min=0.1"], {"frequency_min": 0.1, "frequency_max": 0.4}),
    ("sine", ["amplitude_max=0.1", "amplitude_min=0.05"], {"amplitude_min": 0.05, "amplitude_max": 0.1}),
])
def test_overrides_that_relate_two_keys_are_validated_together_once(name, overrides, expect):
    """Both orders give the same config: validation sees the final values, not the state after each one."""
    from fastadapt.config import apply_overrides

    default = registry.find(name).default_config()
    for order in (overrides, overrides[::-1]):
        config = apply_overrides(default, order)
        assert {k: getattr(config, k) for k in expect} == expect


def test_fixed_length_and_empty_entries_are_refused_by_the_parser():
    from fastadapt.config import ConfigError, apply_overrides
    from fastadapt.experiments.rl import mbrl

    config = apply_overrides(mbrl.Config(), ["goal_radius=0.4,1.2"])
    assert config.goal_radius == (0.4, 1.2)
    for text, message in [("goal_radius=1", "expected exactly 2 values"), ("train_degrees=1,2,3", "expected exactly 2"),
                          ("goal_radius=1,", "an empty entry"), ("seed=2147483648", "out of range")]:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(mbrl.Config(), [text])
