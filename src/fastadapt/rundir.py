"""Run directories that never lose a user's files.

A run directory is marked as fastadapt's by a file ``.fastadapt-run.json`` in it, which records

* the run's **identity**: its config and the content hashes (sha256) of the input files it read. The
  same command with the same config on the same data resumes; anything else is another run;
* the files and folders fastadapt **wrote** there (``owned``, relative paths). ``--force`` (start the
  run afresh, whatever its identity) deletes only those, and only in a directory that carries the
  marker: a file a user put into a run directory survives ``--force``, and a directory fastadapt did
  not make is never cleared.

Ownership is recorded by difference: when a run starts, the marker notes what the directory holds
(``open.before``); when it ends (done, failed, interrupted) everything new is added to ``owned``. A run
killed before it could note its end (SIGKILL, power loss) is settled the same way when the directory is
next opened, so files written by a killed run are fastadapt's too. (A file a user adds to the directory
between a kill and the next run is counted as fastadapt's in that one case.)

A run that fails before it produced anything but its bookkeeping (config.json) is undone: its files and
the marker are removed again, and a directory it created is removed, so the corrected command starts
afresh instead of meeting a stale config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

from fastadapt.data.io import atomic_write_text

MARKER = ".fastadapt-run.json"
MARKER_FORMAT = 1
BOOKKEEPING = {"config.json"}  # files that are not a result: a run holding only these produced nothing


class RunDirectoryError(FileExistsError):
    """A run directory cannot be used as asked (it holds another run, or is not fastadapt's)."""


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(**paths) -> dict:
    """The identity of the input files a run reads: {name: {"path": absolute path, "sha256": hash}}.
    Only the hashes decide whether two runs are the same (a moved file with the same content is the
    same data); the paths are kept to say which file changed."""
    found = {}
    for name, path in paths.items():
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"data file not found: {path}")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            digest = hashlib.sha256("".join(f"{p.relative_to(path)}:{file_sha256(p)}\n" for p in files).encode())
            found[name] = {"path": str(path.resolve()), "sha256": digest.hexdigest()}
        else:
            found[name] = {"path": str(path.resolve()), "sha256": file_sha256(path)}
    return found


def _listing(directory: Path) -> set[str]:
    """Relative paths of every file and folder under ``directory`` except the marker; folders end in /."""
    entries = set()
    for root, folders, files in os.walk(directory):
        rel = Path(root).relative_to(directory)
        entries.update(f"{(rel / f).as_posix()}/" for f in folders)
        entries.update((rel / f).as_posix() for f in files)
    entries.discard(MARKER)
    return entries


def _differences(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two identities (nested dicts)."""
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} (saved) vs {json.dumps(b)} (now)")
    return out


def _with_defaults(saved, defaults):
    """``saved`` (a config, nested dicts) with the keys it lacks taken from ``defaults``: a key that a later
    fastadapt added behaves as its default did in runs made before it, so those runs still resume."""
    if not isinstance(saved, dict) or not isinstance(defaults, dict):
        return saved
    return {**defaults, **{k: _with_defaults(v, defaults.get(k)) for k, v in saved.items()}}


def _comparable(identity: dict, defaults: dict | None = None) -> dict:
    """The part of an identity that decides sameness: the config (completed from ``defaults``, the
    current config class's defaults) and the inputs' hashes."""
    inputs = {name: item["sha256"] for name, item in identity.get("inputs", {}).items()}
    return {"config": _with_defaults(identity.get("config"), defaults), "inputs": inputs}


@dataclasses.dataclass
class RunDirectory:
    """``with RunDirectory(out, identity, force) as path:`` opens ``out`` for a run with ``identity``
    ({"config": ..., "inputs": input_files(...), optionally "defaults": the config class's defaults, which
    complete the config saved by an older fastadapt}) and settles the marker when the block ends."""

    path: Path
    identity: dict
    force: bool = False
    command: str = ""

    def __post_init__(self):
        self.path = Path(self.path)
        self.created = False
        self.resumed = False

    # --- marker ----------------------------------------------------------------------------------------
    def _read_marker(self) -> dict:
        marker = self.path / MARKER
        try:
            data = json.loads(marker.read_text())
            if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
                raise ValueError("unknown format")
            data["owned"] = list(data.get("owned", []))
            return data
        except (OSError, ValueError) as error:
            raise RunDirectoryError(
                f"{marker} is damaged ({error}); fastadapt cannot tell which files there are its own. "
                "Choose another --out, or remove the directory yourself"
            ) from None

    def _write_marker(self, data: dict) -> None:
        atomic_write_text(self.path / MARKER, json.dumps(data, indent=1))

    @staticmethod
    def _settle(data: dict, now: set[str]) -> dict:
        """Count everything that appeared since the last run started as fastadapt's."""
        if data.get("open") is not None:
            new = now - set(data["open"].get("before", []))
            data["owned"] = sorted(set(data["owned"]) | new)
            data["open"] = None
        return data

    # --- opening ----------------------------------------------------------------------------------------
    def __enter__(self) -> Path:
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunDirectoryError(f"--out {path} is a file, not a directory; choose a directory path")
        marker = None
        if (path / MARKER).exists():
            marker = self._settle(self._read_marker(), _listing(path))
            if self.force:  # start afresh: the files fastadapt wrote go, the user's stay
                self._remove_owned(marker)
                marker = None
            elif _comparable(marker.get("identity", {}), self.identity.get("defaults")) == _comparable(self.identity):
                self.resumed = True
            else:
                changes = _differences(_comparable(marker.get("identity", {}), self.identity.get("defaults")),
                                       _comparable(self.identity))
                raise RunDirectoryError(
                    f"{path} holds a fastadapt run with another config or data ({'; '.join(changes[:4])}"
                    f"{'; ...' if len(changes) > 4 else ''}); choose another --out, or pass --force to "
                    "replace the files fastadapt wrote there"
                )
        elif path.exists() and any(path.iterdir()):
            raise RunDirectoryError(
                f"{path} exists and is not a fastadapt run directory (it has no {MARKER}); fastadapt does "
                "not write into or clear it, with or without --force: choose another --out"
            )
        else:
            try:
                self.created = not path.exists()
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise RunDirectoryError(f"cannot create run directory {path}: {error.strerror}") from None
        if marker is None:
            marker = {"format": MARKER_FORMAT, "command": self.command, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "identity": self.identity, "owned": [], "open": None}
        marker["open"] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "before": sorted(_listing(path))}
        try:
            self._write_marker(marker)
        except OSError as error:
            raise RunDirectoryError(f"cannot write to run directory {path}: {error.strerror}") from None
        self._marker = marker
        return path

    def _remove_owned(self, marker: dict) -> None:
        """Delete the files fastadapt wrote (then its folders, if they are empty); keep everything else."""
        owned = marker["owned"]
        for rel in owned:
            target = self.path / rel
            if not rel.endswith("/") and (target.is_file() or target.is_symlink()):
                target.unlink()
        for rel in sorted((r for r in owned if r.endswith("/")), key=lambda r: -r.count("/")):
            target = self.path / rel
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()
        (self.path / MARKER).unlink()

    # --- closing ----------------------------------------------------------------------------------------
    def __exit__(self, kind, error, traceback):
        marker = self._settle(self._marker, _listing(self.path))
        produced = {rel for rel in marker["owned"] if not rel.endswith("/")} - BOOKKEEPING
        failed = kind is not None and not issubclass(kind, KeyboardInterrupt)
        if failed and not produced and not self.resumed:
            self._remove_owned(marker)
            if self.created and not any(self.path.iterdir()):
                self.path.rmdir()
            return False
        marker["status"] = "done" if kind is None else ("interrupted" if not failed else "failed")
        self._write_marker(marker)
        return False
