"""The house rules: imports run downhill (the import-linter contracts in pyproject.toml), no module takes
another's private name, one registry that the command line, keys and sweep all read, one config.json."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastadapt
from fastadapt.cli import build_parser, main
from fastadapt.config import load_config
from fastadapt.experiments import registry

PACKAGE = Path(fastadapt.__file__).parent
PYPROJECT = PACKAGE.parent.parent / "pyproject.toml"


def test_the_layer_contracts_hold():
    linter = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([linter, "--config", str(PYPROJECT)], capture_output=True, text=True, cwd=PYPROJECT.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def private_imports(source: str) -> list[str]:
    """``from fastadapt.x import _y`` and ``fastadapt.x._y`` attribute reads in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastadapt"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            if any(part.startswith("_") for part in (node.module or "").split(".")):
                found.append(node.module)
    return found


def test_the_private_name_check_catches_one():
    assert private_imports("from fastadapt.report.plotting import _band, plt\nfrom fastadapt import files\n") == \
        ["fastadapt.report.plotting._band"]


def test_no_module_imports_a_private_name_of_another():
    found = {str(path.relative_to(PACKAGE)): private_imports(path.read_text()) for path in PACKAGE.rglob("*.py")}
    assert not {k: v for k, v in found.items() if v}


def test_only_the_experiments_know_paper_families():
    """Below ``experiments/`` no module is named after a paper (ml3, lrmem, mbrl, mfrl ...)."""
    papers = ("ml3", "lrmem", "mbrl", "mfrl", "mountaincar", "demos", "pipeline")
    named = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
             if p.relative_to(PACKAGE).parts[0] != "experiments" and any(w in p.stem for w in papers)]
    assert named == []


def test_the_parser_offers_exactly_the_registry():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices  # argparse keeps them there
    for family in registry.FAMILIES:
        names = next(a for a in sub[family]._actions if a.dest == "name").choices
        assert list(names) == [e.words[1] for e in registry.family(family)]
    data = next(a for a in sub["run"]._actions if a.dest == "data").choices
    assert list(data) == ["sim", "schunk", "sim2real"]


def test_every_row_loads_its_config_and_quick_version():
    for experiment in registry.EXPERIMENTS:
        config = experiment.default_config()
        assert type(experiment.quick(config)) is type(config), experiment.name
        assert callable(experiment.load().run)
    assert registry.find("ml3-digits").words == ("ml3", "digits") and registry.find("digits").words == ("lrmem", "digits")
    assert registry.find("rl-mfrl-ant").config == "AntConfig"
    with pytest.raises(ValueError, match="unknown experiment 'bogus', expected one of demo, sim, schunk, sim2real, "
                                         "rosenbrock, digits"):
        registry.find("bogus")
    with pytest.raises(ValueError, match=r"unknown rl experiment 'cosine', expected one of \['demos', "):
        registry.command(["rl", "cosine"])


def test_config_json_has_one_shape_and_the_old_shapes_still_load(tmp_path, capsys):
    from fastadapt.experiments.lrmem.rosenbrock import Config
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig

    out = tmp_path / "run"
    assert main(["lrmem", "rosenbrock", "--quick", "--no-progress", "--out", str(out), "steps=7"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert set(saved) == {"command", "config", "inputs"} and saved["command"] == "fastadapt lrmem rosenbrock"
    assert saved["config"]["steps"] == 7 and saved["inputs"] == {}
    assert load_config(out / "config.json", Config()).steps == 7
    # the shapes of earlier versions: the config itself, and meta-train's {"config": {"meta_train": ...}}
    (tmp_path / "plain.json").write_text(json.dumps({**saved["config"], "steps": 9}))
    assert load_config(tmp_path / "plain.json", Config()).steps == 9
    (tmp_path / "meta.json").write_text(json.dumps({"config": {"meta_train": {"alpha": 0.004}}, "inputs": {}}))
    assert load_config(tmp_path / "meta.json", InverseDynamicsConfig()).alpha == 0.004
