"""Ctrl-C that stops long work at a safe point.

Inside ``with deferred_interrupt() as stop:`` the first SIGINT only sets ``stop.requested`` (and says so
on stderr); the loop calls ``stop.check()`` after each checkpoint, which raises ``KeyboardInterrupt``
there, so the newest checkpoint is always whole. A second Ctrl-C interrupts at once, as usual. Outside
the main thread (where Python cannot install signal handlers) the block does nothing special.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading


class StopRequest:
    def __init__(self):
        self.requested = False

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupt(what: str = "the current epoch"):
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        stop.requested = True
        print(f"\ninterrupt: stopping after {what} is saved (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
