"""The Adapter of an earlier git revision, to time it side by side with today's in one run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path


def adapter_class_at(revision: str):
    """The Adapter class of ``src/fastadapt/adapt/adapter.py`` as it was at a git revision."""
    source = subprocess.run(["git", "show", f"{revision}:src/fastadapt/adapt/adapter.py"], capture_output=True,
                            text=True, check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    path = Path(tempfile.mkdtemp()) / f"adapter_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"adapter_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Adapter
