"""The reaper stops what a command started when the command ends: on close, and when it is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from fastadapt.reaper import Reaper, descendants, identify

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="the reaper reads /proc")


def _gone(pids_and_starts, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not identify(pid for pid, _ in pids_and_starts):
            return True
        time.sleep(0.05)
    return False


def test_close_stops_the_watched_process_and_its_children():
    reaper = Reaper.start()
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"])
    time.sleep(0.2)
    family = identify([parent.pid, *descendants(parent.pid)])
    assert len(family) == 3
    reaper.watch([parent.pid])
    reaper.close()
    parent.wait(timeout=10)
    assert _gone(family)


def test_a_killed_command_leaves_nothing_it_watched_running(tmp_path):
    script = textwrap.dedent("""
        import json, subprocess, sys, time
        from fastadapt.reaper import Reaper, descendants
        reaper = Reaper.start()
        child = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"])
        time.sleep(0.2)
        reaper.watch(descendants(__import__("os").getpid()))
        print(json.dumps([child.pid, *descendants(child.pid)]), flush=True)
        time.sleep(60)
    """)
    command = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    family = identify(json.loads(command.stdout.readline()))
    assert len(family) == 3
    command.send_signal(signal.SIGKILL)
    command.wait(timeout=10)
    assert _gone(family)
