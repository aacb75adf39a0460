"""Every file and folder fastadapt writes goes through here, so that a run directory knows what is its own.

* :func:`atomic_write` calls ``write(tmp)`` on a temporary file beside ``path`` and renames it onto
  ``path``: a reader never sees a half-written file. The file gets the permissions an ordinary
  ``open(path, "w")`` would (``0o666`` less the umask), not the temporary file's ``0o600``. An error names
  ``path``, the file the user asked for, not the temporary one.
* :func:`make_directory` creates a folder (and its missing parents).

Each writes, then tells the **recorders** that are listening (:func:`recording`): a run directory
(:class:`fastadapt.rundir.RunDirectory`) listens while its run is open and records each path inside it
as fastadapt's, with the file's size and SHA-256. So ownership comes from what fastadapt wrote, never
from listing a folder: a file a user adds to a run directory while a run goes on stays the user's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE, FOLDER, RUN = "file", "folder", "run"  # what a recorder is told: a file, a folder, a nested run directory

_RECORDERS: list = []  # objects with .record(path: Path, kind: str), innermost last


@contextlib.contextmanager
def recording(recorder):
    """While the block runs, ``recorder.record(path, kind)`` hears of every file and folder written."""
    _RECORDERS.append(recorder)
    try:
        yield recorder
    finally:
        _RECORDERS.remove(recorder)


def record(path, kind: str = FILE, pending=None) -> None:
    """Tell the recorders that fastadapt wrote ``path`` (also for files another process wrote for this
    one, e.g. a sweep point's log written by a Ray worker). With ``pending`` (a temporary file about to be
    renamed onto ``path``): the content ``path`` is about to have, told before the rename, so that a run
    killed between the rename and the record still knows the file as its own."""
    path = Path(os.path.abspath(path))
    for recorder in reversed(_RECORDERS):
        if recorder.record(path, kind, pending):  # the innermost run directory that holds the path takes it
            return


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_directory(path) -> Path:
    """``mkdir -p path``; each folder it creates is recorded."""
    path = Path(path)
    missing = []
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):
        record(folder, FOLDER)
    return path


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    try:
        make_directory(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise type(error)(error.errno, error.strerror, str(path)) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        record(path, FILE, pending=tmp)
        os.replace(tmp, path)
    except OSError as error:
        if error.filename == tmp or error.filename is None:
            raise type(error)(error.errno, error.strerror, str(path)) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    record(path, FILE)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
