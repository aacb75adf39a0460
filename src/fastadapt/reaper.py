"""Stop the processes a command started when the command ends, however it ends (SIGKILL included).

    reaper = Reaper.start()          # a small watcher process, in a session of its own
    reaper.watch(pids)               # processes to stop when this process ends (and their descendants)
    ...
    reaper.close()                   # this process is done: stop what is still running now

The watcher reads process ids from a pipe. When the pipe closes (``close()``, a normal exit, a crash, a
SIGKILL: the kernel closes it in every case) it sends SIGTERM to every watched process that is still the
same process (same start time, so a reused pid is never hit) and to its descendants, and SIGKILL to those
left after ``GRACE_SECONDS``. It ignores SIGINT and SIGHUP and lives in its own session, so a Ctrl-C in
the terminal does not stop it before it did its work.

Used by ``fastadapt sweep`` for the processes of the local Ray it starts (raylet, GCS, the dashboard and
runtime-env agents, workers), which a killed driver otherwise leaves running. Linux only (``/proc``);
elsewhere :meth:`Reaper.start` returns None.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_SECONDS = 3.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None if there is none (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (name) "
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, their children, ...)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            children.setdefault(info[0], []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def identify(pids) -> list[tuple[int, int]]:
    """(pid, start time) of each live process of ``pids``."""
    return [(pid, info[1]) for pid in pids if (info := _stat(pid)) is not None]


class Reaper:
    """The control side: a pipe to the watcher process."""

    def __init__(self, process: subprocess.Popen):
        self._process = process

    @classmethod
    def start(cls) -> "Reaper | None":
        if not Path("/proc/self/stat").exists():
            return None
        process = subprocess.Popen([sys.executable, "-m", "fastadapt.reaper"], stdin=subprocess.PIPE,
                                   start_new_session=True, text=True)
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    def watch(self, pids) -> None:
        """Stop these processes (and their descendants) when this process ends."""
        lines = "".join(f"{pid} {start}\n" for pid, start in identify(p for p in pids if p != self.pid))
        if lines:
            self._process.stdin.write(lines)
            self._process.stdin.flush()

    def close(self) -> None:
        """This process is done: the watcher stops what it watches now, and exits."""
        self._process.stdin.close()
        self._process.wait()


def _same(pid: int, start: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start``."""
    info = _stat(pid)
    return info is not None and info[1] == start


def _stop(watched: dict[int, int]) -> None:
    alive = [pid for pid, start in watched.items() if _same(pid, start)]
    targets = identify(dict.fromkeys(alive + [d for pid in alive for d in descendants(pid)]))
    for pid, _ in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(_same(pid, start) for pid, start in targets):
        time.sleep(0.05)
    for pid, start in targets:
        if _same(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watched = {}
    for line in sys.stdin:
        try:
            pid, start = (int(v) for v in line.split())
        except ValueError:
            continue
        watched[pid] = start
    _stop(watched)


if __name__ == "__main__":
    _serve()
