"""Run directories that never lose a user's files and never touch anything outside themselves.

A run directory is marked as fastadapt's by a file ``.fastadapt-run.json`` in it, which records

* the run's **identity**: its config and the content hashes (sha256) of the input files it read. The
  same command with the same config on the same data resumes; anything else is another run;
* what fastadapt **wrote** there (``owned``): ``{relative path: {"kind": "file", "size": bytes, "sha256":
  hash}}`` for files, ``{"kind": "folder"}`` for folders it created, ``{"kind": "run"}`` for a run
  directory nested in it (a sweep's points). The entries come from fastadapt's own writers
  (:mod:`fastadapt.files`), which report each path as they write it, and the marker is rewritten then:
  a run killed at any moment has its files listed, and a file a user adds while a run goes on is never
  listed.

``--force`` (start the run afresh, whatever its identity) deletes only owned files that are still what
fastadapt wrote (a regular file, not through a symbolic link, of the recorded size and hash), then owned
folders left empty, and only in a directory that carries the marker. An owned file that changed since
(a user's edit, a damaged checkpoint) is moved aside (``report.md`` -> ``report.kept.md``) and named, so
that nothing is lost and the new run is not blocked by it; anything behind a symbolic link is left alone.
Every owned path must be relative, normalised and inside the directory: a marker that lists ``../x``,
an absolute path or anything else is refused as damaged, never used as a list of files to delete.

A run holds an advisory lock (``flock``) on its directory while it is open: a second run into the same
directory is refused with the first one's pid.

A run that fails before it produced anything but its bookkeeping (config.json) is undone: its files and
the marker are removed again, and a directory it created is removed, so the corrected command starts
afresh instead of meeting a stale config.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path, PurePosixPath

from fastadapt import files
from fastadapt.config import config_dict
from fastadapt.files import atomic_write_text
from fastadapt.errors import RunDirectoryError  # noqa: F401  (raised here, defined with the others)

MARKER = ".fastadapt-run.json"
MARKER_FORMAT = 2  # 1: "owned" was a list of paths, found by listing the directory before and after a run
BOOKKEEPING = {"config.json"}  # files that are not a result: a run holding only these produced nothing
KINDS = (files.FILE, files.FOLDER, files.RUN)


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_identity(config, inputs: dict, section: str | None = None) -> dict:
    """A run directory's identity: the config (under ``section`` if given: meta-train's runs were made so),
    the input files (:func:`input_files`), and the config class's defaults (which complete a config saved
    before a key was added)."""
    wrap = (lambda d: {section: d}) if section else (lambda d: d)
    return {"config": wrap(config_dict(config)), "inputs": inputs, "defaults": wrap(config_dict(type(config)()))}


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


def owned_path(rel) -> str:
    """``rel`` if it is a relative, normalised path inside a run directory (``a/b.npz``; a folder may end in
    ``/``), else ValueError: an absolute path, ``..``, ``.``, an empty part or a backslash is refused."""
    if not isinstance(rel, str) or not rel.strip("/"):
        raise ValueError(f"{rel!r} is not a path")
    body = rel[:-1] if rel.endswith("/") else rel
    parts = body.split("/")
    if rel.startswith("/") or PurePosixPath(body).is_absolute() or "\\" in rel or "\0" in rel:
        raise ValueError(f"{rel!r} is not a relative path")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{rel!r} is not a normalised path inside the run directory")
    return rel


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


def _entry_problem(rel: str, entry) -> str | None:
    """Why ``rel: entry`` cannot be an owned entry of a marker (None: it can)."""
    try:
        owned_path(rel)
    except ValueError as error:
        return str(error)
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
        return f"{rel!r} has no known kind"
    if (entry["kind"] == files.FILE) == rel.endswith("/"):
        return f"{rel!r}: a {entry['kind']} path {'must not' if entry['kind'] == files.FILE else 'must'} end in '/'"
    if entry["kind"] == files.FILE:
        versions = [entry, *entry.get("also", [])] if isinstance(entry.get("also", []), list) else [None]
        if not all(isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                   for v in versions):
            return f"{rel!r} has no size and hash"
    return None


def _matches(entry: dict, found: dict | None) -> bool:
    """Whether a file found on disk is one fastadapt wrote: the recorded version, or the one it was about
    to rename onto the path when it was killed (``also``)."""
    return found is not None and any((v["size"], v["sha256"]) == (found["size"], found["sha256"])
                                     for v in [entry, *entry.get("also", [])])


def _kept_name(target: Path) -> Path:
    """A free name beside ``target`` for a file moved aside: ``report.kept.md``, ``report.kept-2.md``, ..."""
    for n in range(1, 10_000):
        candidate = target.with_name(f"{target.stem}.kept{'' if n == 1 else f'-{n}'}{target.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise RunDirectoryError(f"no free name to move {target} aside")


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if no part of it below ``root`` is a symbolic link (so it is inside ``root``), else None."""
    target = root
    for part in rel.rstrip("/").split("/"):
        target = target / part
        if target.is_symlink():
            return None
    return target


def _file_entry(path: Path) -> dict | None:
    """{"kind": "file", "size", "sha256"} of a regular file (None if it is not one)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return {"kind": files.FILE, "size": info.st_size, "sha256": file_sha256(path)}


@dataclasses.dataclass
class RunDirectory:
    """``with RunDirectory(out, identity, force) as path:`` opens ``out`` for a run with ``identity``
    ({"config": ..., "inputs": input_files(...), optionally "defaults": the config class's defaults, which
    complete the config saved by an older fastadapt}), locks it, records what fastadapt writes into it
    while the block runs, and settles the marker when the block ends."""

    path: Path
    identity: dict
    force: bool = False
    command: str = ""

    def __post_init__(self):
        self.path = Path(os.path.abspath(self.path))
        self.created = False
        self.resumed = False
        self.kept = []  # owned files --force left alone because they changed since fastadapt wrote them
        self._lock = None
        self._marker = None

    # --- marker ----------------------------------------------------------------------------------------
    def _damaged(self, why: str) -> RunDirectoryError:
        return RunDirectoryError(
            f"{self.path / MARKER} is damaged ({why}); fastadapt cannot tell which files there are its own "
            "and deletes nothing. Choose another --out, or remove the directory yourself")

    def _read_marker(self) -> dict:
        marker = self.path / MARKER
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError, RecursionError) as error:
            raise self._damaged(str(error) or type(error).__name__) from None
        if not isinstance(data, dict) or data.get("format") not in (1, MARKER_FORMAT):
            raise self._damaged("unknown format")
        if data["format"] == 1:
            data = self._upgrade(data)
        owned = data.get("owned")
        if not isinstance(owned, dict):
            raise self._damaged("'owned' is not a table of paths")
        for rel, entry in owned.items():
            problem = _entry_problem(rel, entry)
            if problem:
                raise self._damaged(f"it lists {problem}")
        return data

    def _upgrade(self, data: dict) -> dict:
        """A marker of format 1 (a list of paths, no hashes): the paths that are still regular files inside
        the directory are recorded with their present size and hash; a path that is not inside is refused."""
        listed = data.get("owned", [])
        if not isinstance(listed, list):
            raise self._damaged("'owned' is not a list of paths")
        owned = {}
        for rel in listed:
            try:
                owned_path(rel)
            except ValueError as error:
                raise self._damaged(f"it lists {error}") from None
            target = _inside(self.path, rel)
            if target is None:
                continue
            if rel.endswith("/"):
                owned[rel] = {"kind": files.FOLDER}
            elif (entry := _file_entry(target)) is not None:
                owned[rel] = entry
        return {**data, "format": MARKER_FORMAT, "owned": owned}

    def _write_marker(self, data: dict) -> None:
        with files.recording(_Ignore()):  # the marker is not one of the run's files
            atomic_write_text(self.path / MARKER, json.dumps(data, indent=1))

    def record(self, path: Path, kind: str, pending=None) -> bool:
        """A file or folder fastadapt wrote (:mod:`fastadapt.files` calls this): recorded if it is inside
        this directory (True), else left to another recorder (False). ``pending``: the temporary file about
        to be renamed onto ``path`` (its version is recorded beside the present one until the rename)."""
        try:
            rel = path.relative_to(self.path).as_posix()
        except ValueError:
            return False
        if rel in (".", MARKER) or self._marker is None:
            return rel in (".", MARKER)
        if kind == files.FILE:
            entry = _file_entry(Path(pending) if pending is not None else path)
            if entry is None:
                return True
            present = self._marker["owned"].get(rel)
            if pending is not None and present is not None and present.get("kind") == files.FILE:
                entry["also"] = [{"size": present["size"], "sha256": present["sha256"]}]
        else:
            rel, entry = rel + "/", {"kind": kind}
        if self._marker["owned"].get(rel) != entry:
            self._marker["owned"][rel] = entry
            self._write_marker(self._marker)
        return True

    # --- opening ----------------------------------------------------------------------------------------
    def __enter__(self) -> Path:
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunDirectoryError(f"--out {path} is a file, not a directory; choose a directory path")
        if not path.exists():
            try:
                # a run directory inside another open one (a sweep's point) is that one's
                files.make_directory(path.parent)
                path.mkdir()
                self.created = True
            except FileExistsError:
                pass
            except OSError as error:
                raise RunDirectoryError(f"cannot create run directory {path}: {error.strerror}") from None
        try:
            self._take_lock()
            marker = self._open_marker()
            files.record(path, files.RUN)  # a run directory nested in an open one is that one's (sweep points)
            marker["open"] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "pid": os.getpid()}
            marker["status"] = "running"
            try:
                self._write_marker(marker)
            except OSError as error:
                raise RunDirectoryError(f"cannot write to run directory {path}: {error.strerror}") from None
        except BaseException:
            self._release(remove_created=True)
            raise
        self._marker = marker
        self._recording = files.recording(self)
        self._recording.__enter__()
        return path

    def _open_marker(self) -> dict:
        path = self.path
        if (path / MARKER).exists():
            marker = self._read_marker()
            if self.force:  # start afresh: the files fastadapt wrote go, the user's stay
                self._remove_owned(marker)
                if self.kept:
                    print(f"fastadapt: --force kept {len(self.kept)} file(s) in {path} that changed since fastadapt "
                          f"wrote them (moved aside where the new run writes): {', '.join(self.kept[:5])}"
                          f"{', ...' if len(self.kept) > 5 else ''}", file=sys.stderr)
            elif _comparable(marker.get("identity", {}), self.identity.get("defaults")) == _comparable(self.identity):
                self.resumed = True
                return marker
            else:
                changes = _differences(_comparable(marker.get("identity", {}), self.identity.get("defaults")),
                                       _comparable(self.identity))
                raise RunDirectoryError(
                    f"{path} holds a fastadapt run with another config or data ({'; '.join(changes[:4])}"
                    f"{'; ...' if len(changes) > 4 else ''}); choose another --out, or pass --force to "
                    "replace the files fastadapt wrote there"
                )
        elif not self.created and any(path.iterdir()):
            raise RunDirectoryError(
                f"{path} exists and is not a fastadapt run directory (it has no {MARKER}); fastadapt does "
                "not write into or clear it, with or without --force: choose another --out"
            )
        return {"format": MARKER_FORMAT, "command": self.command, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "identity": self.identity, "owned": {}, "open": None}

    def _take_lock(self) -> None:
        try:
            self._lock = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            raise RunDirectoryError(f"cannot open run directory {self.path}: {error.strerror}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            holder = "another process"
            try:
                opened = json.loads((self.path / MARKER).read_text()).get("open") or {}
                holder = f"pid {opened['pid']}, started {opened['started']}"
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
            raise RunDirectoryError(f"{self.path} is in use by another fastadapt run ({holder}); wait for it to "
                                    "finish, or choose another --out") from None

    def _release(self, remove_created: bool = False) -> None:
        if remove_created and self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    def _remove_owned(self, marker: dict) -> None:
        """Delete what fastadapt wrote and is unchanged (then its folders, if they are empty); keep
        everything else, and the files that changed (listed in ``self.kept``)."""
        owned = marker["owned"]
        for rel, entry in owned.items():
            target = _inside(self.path, rel)
            if target is None:
                self.kept.append(rel)
            elif entry["kind"] == files.RUN and target.is_dir():
                nested = RunDirectory(target, {}, force=True)
                try:
                    nested._take_lock()
                    if (target / MARKER).exists():
                        nested._remove_owned(nested._read_marker())
                except RunDirectoryError as error:
                    self.kept.append(f"{rel} ({error})")
                finally:
                    nested._release()
                self.kept += [f"{rel}{k}" for k in nested.kept]
            elif entry["kind"] == files.FILE and os.path.lexists(target):
                if _matches(entry, _file_entry(target)):
                    target.unlink()
                elif target.is_file() and not target.is_symlink():  # changed since: moved aside, not lost
                    kept = _kept_name(target)
                    os.rename(target, kept)
                    self.kept.append(f"{rel} -> {kept.relative_to(self.path).as_posix()}")
                else:
                    self.kept.append(rel)
        for rel in sorted((r for r in owned if r.endswith("/")), key=lambda r: -r.count("/")):
            target = _inside(self.path, rel)
            if target is not None and target.is_dir() and not any(target.iterdir()):
                target.rmdir()
        (self.path / MARKER).unlink()

    # --- closing ----------------------------------------------------------------------------------------
    def __exit__(self, kind, error, traceback):
        self._recording.__exit__(None, None, None)
        marker, self._marker = self._marker, None
        try:
            produced = {rel for rel, e in marker["owned"].items() if e["kind"] != files.FOLDER} - BOOKKEEPING
            failed = kind is not None and not issubclass(kind, KeyboardInterrupt)
            if failed and not produced and not self.resumed:
                self._remove_owned(marker)
                return False
            marker["status"] = "done" if kind is None else ("interrupted" if not failed else "failed")
            marker["open"] = None
            self._write_marker(marker)
        finally:
            self._release(remove_created=True)
        return False


class _Ignore:
    """A recorder that takes (and forgets) everything: for fastadapt's own bookkeeping files."""

    @staticmethod
    def record(path, kind, pending=None) -> bool:
        return True
