"""The Adapter's online updates in a process of their own (``Adapter(..., background=True)``).

On the control thread, ``observe`` writes a sample into shared memory and, every ``batch_size`` samples,
hands the batch over with one counter increment; ``predict`` runs the host
forward pass on the newest published parameters. The update process runs the same compiled step as an
Adapter updating in the loop (:class:`~fastadapt.adapt.step.GuardedUpdate`, built from the same
arguments), whose result includes the parameters folded for the host forward pass
(:meth:`HostForward.fold_flat`), and publishes those.

Why a process and not a thread: a thread shares the interpreter lock, so its dispatch and its result
handling stop the control thread for tens of microseconds at a time (tick p99 143-258 us measured with a
thread, against <= 100 us wanted); a process shares nothing but memory.

Shared memory (one block, ``multiprocessing.RawArray``):

    header  int64[13]      written (batches handed over), done (batches applied or dropped), rejected,
                           published slot, slot being read, failed, idle, dropped, heartbeat (ns),
                           a sequence counter per slot
    ring    float32[R, B, 4J]   batch k lives in ring[k % R] until it is done
    slots   float32[3, P]  three copies of the folded host parameters (a triple buffer)

Protocol. A ``multiprocessing.Lock`` guards every header access; taking it orders memory on every
architecture, so no reader can see a counter before the data it counts.

* control, ``observe``: writes rows into ring[written % R]; lock: written += 1. While batches keep
  coming, the update process looks for them every ``POLL_SECONDS`` (0.2 ms), so the control thread makes
  no system call (a byte down a pipe per batch cost p99 ~60 us on the control thread). After 50 ms
  without a batch it sets an ``idle`` flag and sleeps on the pipe (looking anyway every 10 ms, should
  the flag and a batch cross), and the control thread sends a byte only while that flag is set: an idle
  adapter costs 100 wake-ups a second, not 5,000.
  ``observe`` never waits. If the update process falls R batches behind (it cannot keep up, or it is
  stopped), the control thread writes on round the ring over the oldest batches, and the update process
  **drops the oldest**: before a batch k it skips to written - R + 1 when written - k >= R, and after
  copying batch k it reads ``written`` again and drops the copy if the control thread has meanwhile
  reached batch k + R (whose rows go into the same slot). ``dropped`` counts them.
* control, every ``observe`` and ``predict``: is the update process alive (``waitpid(WNOHANG)``, one
  system call of ~0.3 us)? If not, :class:`UpdateProcessError` at once, not a stale model.
* control, ``predict``: lock: s = published, reading = s; then the forward pass on slots[s].
* update process: for each new batch: the step; then lock: pick the slot that is neither published nor
  being read (of three, one always is), make its sequence counter odd; unlock; write the parameters
  there; lock: counter even again, published = it, done += 1, rejected = its count.

So a prediction always reads one whole parameter version: the update process never writes the slot that
is published or being read. On x86 (total store order: stores become visible in program order, loads
happen in program order) the control thread takes no lock at all, so it can never wait for a preempted
update process: it writes ``written`` after the rows, and ``predict`` reads ``published`` and the slot's
sequence counter, runs the forward pass, and reads the counter again; if it changed (the update process
wrote that slot meanwhile, which takes two more updates during one prediction) it runs again. ``pending_updates`` = written - done is the staleness. If the control
process dies, the pipe closes and the update process exits.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
import traceback
import warnings
import weakref

import cloudpickle
import numpy as np

SLOTS = 3
WRITTEN, DONE, REJECTED, PUBLISHED, READING, FAILED, IDLE, DROPPED, BEAT, SEQUENCE = range(10)  # SEQUENCE + s: slot s's
HEADER = SEQUENCE + SLOTS
RING = 64
POLL_SECONDS = 2e-4  # how often the update process looks for new batches while they keep coming
IDLE_AFTER_SECONDS = 0.05  # without a batch for this long it waits for a byte on the pipe instead
IDLE_POLL_SECONDS = 0.01  # (and looks anyway this often, in case that byte and its flag crossed)
_ALIGN = 64
# x86 keeps stores in order and loads in order (total store order), so a sequence counter is enough for a
# reader to know it read one whole slot; elsewhere both sides take the lock
TOTAL_STORE_ORDER = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


class SharedLayout:
    """Numpy views of the shared block: ``header``, ``ring`` [R, B, 4J] and per slot the folded host
    parameter arrays (shapes from ``array_shapes``)."""

    def __init__(self, raw, batch_size: int, row: int, array_shapes: list[tuple[int, ...]]):
        offset = 0

        def view(shape, dtype):
            nonlocal offset
            count = int(np.prod(shape))
            array = np.frombuffer(raw, dtype, count, offset).reshape(shape)
            offset += _aligned(count * np.dtype(dtype).itemsize)
            return array

        self.header = view((HEADER,), np.int64)
        self.ring = view((RING, batch_size, row), np.float32)
        size = sum(int(np.prod(shape)) for shape in array_shapes)
        self.vectors = [view((size,), np.float32) for _ in range(SLOTS)]  # what the update process writes
        self.slots = []  # the same memory as the host forward pass's arrays
        for vector in self.vectors:
            arrays, start = [], 0
            for shape in array_shapes:
                arrays.append(vector[start: start + int(np.prod(shape))].reshape(shape))
                start += int(np.prod(shape))
            self.slots.append(arrays)

    @staticmethod
    def nbytes(batch_size: int, row: int, array_shapes: list[tuple[int, ...]]) -> int:
        parameters = _aligned(sum(int(np.prod(shape)) for shape in array_shapes) * 4)
        return _aligned(HEADER * 8) + _aligned(RING * batch_size * row * 4) + SLOTS * parameters


class UpdateProcessError(RuntimeError):
    """The update process failed (its traceback is in the message) or is gone."""


class BatchesDroppedWarning(RuntimeWarning):
    """The update process fell a whole ring of batches behind; the oldest are being dropped."""


class UpdateProcess:
    """The control side of the update process (see the module docstring)."""

    def __init__(self, adapter_arguments: dict, initial_arrays: list[np.ndarray], batch_size: int, row: int,
                 cpus: set[int] | None = None):
        context = multiprocessing.get_context("spawn")  # fork is unsafe once JAX has started its threads
        shapes = [array.shape for array in initial_arrays]
        self._raw = context.RawArray("b", SharedLayout.nbytes(batch_size, row, shapes))
        self.layout = SharedLayout(self._raw, batch_size, row, shapes)
        for view, array in zip(self.layout.slots[0], initial_arrays):
            view[...] = array
        self.lock = context.Lock()
        self._commands_out, commands_in = context.Pipe(duplex=False)[::-1]
        replies_in, self._replies_out = context.Pipe(duplex=False)
        self._replies = replies_in
        self._process = context.Process(
            target=_serve, name="fastadapt-update", daemon=True,
            args=(cloudpickle.dumps(adapter_arguments), self._raw, batch_size, row, shapes, self.lock,
                  commands_in, self._replies_out, cpus))
        self._process.start()
        commands_in.close()
        self.batches = 0  # handed over (the control side's own count of header[WRITTEN])
        self._popen = self._process._popen
        self._warned_drop = False
        # an Adapter dropped without close() stops its process when it is collected
        self._finalizer = weakref.finalize(self, _stop, self._process, self._commands_out, self._replies)
        self.compile_seconds = self._receive("ready")

    # --- control side ---------------------------------------------------------------------------------
    def _receive(self, expected: str, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._replies.poll(0.05):
            if not self._process.is_alive():
                raise UpdateProcessError(f"the update process exited with code {self._process.exitcode}")
            if deadline is not None and time.monotonic() > deadline:
                raise UpdateProcessError(f"the update process did not answer within {timeout:g} s (is it stopped?)")
        try:
            kind, value = self._replies.recv()
        except EOFError:
            raise UpdateProcessError("the update process is gone") from None
        if kind == "error":
            raise UpdateProcessError(f"the update process failed:\n{value}")
        assert kind == expected, (kind, expected)
        return value

    def buffer(self) -> np.ndarray:
        """The ring slot [B, 4J] the next batch is written to; never waits: with the ring full, the oldest
        batch is overwritten (and the update process drops it)."""
        return self.layout.ring[self.batches % RING]

    def submit(self) -> None:
        """Hand over the batch written to ``buffer()``."""
        self.check()
        if not self._warned_drop and self.batches - int(self.layout.header[DONE]) >= RING - 1:
            self._warned_drop = True
            warnings.warn(f"the update process is {RING - 1} batches behind (is it stopped, or too slow?); the "
                          "oldest batches are dropped from now on (Adapter.dropped_batches counts them)",
                          BatchesDroppedWarning, stacklevel=3)
        self.batches += 1
        header = self.layout.header
        if TOTAL_STORE_ORDER:  # the ring rows were stored before this count
            header[WRITTEN] = self.batches
        else:
            with self.lock:
                header[WRITTEN] = self.batches
        if header[IDLE]:  # the update process sleeps on the pipe: wake it
            self._commands_out.send_bytes(b"b")

    def latest(self) -> tuple[list[np.ndarray], tuple[int, int]]:
        """The newest published parameters and a ticket for :meth:`intact`.

        With total store order: no lock; the slot's sequence counter is read before and (in ``intact``)
        after use, and a changed or odd counter means the update process wrote the slot meanwhile (then
        read again). Otherwise, under the lock, the slot is marked as being read, and the update process
        leaves it alone until the next call."""
        header = self.layout.header
        if TOTAL_STORE_ORDER:
            slot = int(header[PUBLISHED])
            return self.layout.slots[slot], (slot, int(header[SEQUENCE + slot]))
        with self.lock:
            slot = int(header[PUBLISHED])
            header[READING] = slot
        return self.layout.slots[slot], (slot, 0)

    def intact(self, ticket: tuple[int, int]) -> bool:
        """Whether the slot of ``ticket`` was not written while it was read."""
        if not TOTAL_STORE_ORDER:
            return True
        slot, sequence = ticket
        return sequence % 2 == 0 and self.layout.header[SEQUENCE + slot] == sequence

    @property
    def done(self) -> int:
        return int(self.layout.header[DONE])

    @property
    def rejected(self) -> int:
        return int(self.layout.header[REJECTED])

    @property
    def dropped(self) -> int:
        """Batches dropped because the update process fell a whole ring behind: those it skipped, and those
        already overwritten that it has not reached yet."""
        header = self.layout.header
        return int(header[DROPPED]) + max(0, self.batches - int(header[DONE]) - (RING - 1))

    @property
    def alive(self) -> bool:
        """Whether the update process is running and has not failed (one ``waitpid``, ~0.3 us)."""
        return self._popen.poll() is None and not self.layout.header[FAILED]

    @property
    def silent_seconds(self) -> float:
        """Seconds since the update process last went round its loop (it does every <= 10 ms while it runs;
        a large value: it is stopped or starved of CPU)."""
        return max(0.0, (time.monotonic_ns() - int(self.layout.header[BEAT])) * 1e-9)

    def check(self) -> None:
        """Raise :class:`UpdateProcessError` if the update process failed or is gone."""
        if self._popen.poll() is None and not self.layout.header[FAILED]:
            return
        if self.layout.header[FAILED]:
            self._receive("never", timeout=2.0)  # raises with the update process's traceback
        raise UpdateProcessError(f"the update process is gone (exit code {self._popen.poll()}, e.g. killed): the "
                                 "adapter's parameters no longer update; build a new Adapter")


    def wait(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.check()
        while self.done < self.batches:
            self.check()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the update process did not finish {self.batches - self.done} batches within "
                                   f"{timeout:g} s (is it stopped?)")
            time.sleep(1e-4)

    def state(self, timeout: float = 30.0):
        """(flat parameters, optimizer state) after every batch handed over so far, as numpy arrays."""
        self.check()
        self._commands_out.send_bytes(b"s")
        return self._receive("state", timeout)

    def close(self) -> None:
        self._finalizer()


def _stop(process, commands, replies) -> None:
    """Ask the update process to finish (after the batches already handed over); end it if it does not
    within 10 s."""
    if process.is_alive():
        try:
            commands.send_bytes(b"q")
        except OSError:
            pass
        process.join(timeout=10)
        if process.is_alive():  # stopped (SIGSTOP) or stuck: SIGKILL works on a stopped process too
            process.kill()
            process.join()
    commands.close()
    replies.close()


def _written(header, lock) -> int:
    with lock:
        return int(header[WRITTEN])


def _serve(arguments: bytes, raw, batch_size: int, row: int, shapes, lock, commands, replies, cpus) -> None:
    """The update process: build the Adapter's guarded update (:class:`~fastadapt.adapt.step.GuardedUpdate`,
    compiled for these buffers), then apply each batch handed over and publish the folded parameters."""
    layout = SharedLayout(raw, batch_size, row, shapes)
    header = layout.header
    if cpus:  # before JAX starts its threads, so that they inherit it
        os.sched_setaffinity(0, cpus)
    try:
        import jax

        from fastadapt.adapt.step import GuardedUpdate

        started = time.perf_counter()
        arguments = cloudpickle.loads(arguments)
        joints = arguments["normalizer"].num_joints
        del arguments["batch_size"]
        update = GuardedUpdate(**arguments)
        update.compile(np.zeros((batch_size, 4 * joints), np.float32), np.zeros(3 * joints, np.float32))
        state = update.initial
        header[BEAT] = time.monotonic_ns()  # before "ready": an adapter just built is heard from, so healthy
        replies.send(("ready", time.perf_counter() - started))
        done, dropped, message, last_batch = 0, 0, None, time.monotonic()
        while True:
            idle = time.monotonic() - last_batch > IDLE_AFTER_SECONDS
            header[IDLE] = idle
            if idle:  # a batch handed over before the flag was seen
                with lock:
                    idle = int(header[WRITTEN]) == done
            if commands.poll(IDLE_POLL_SECONDS if idle else POLL_SECONDS):  # a command, or the control process is gone
                try:
                    message = commands.recv_bytes()
                except EOFError:
                    return
                if message == b"q":
                    return
            header[BEAT] = time.monotonic_ns()
            written = _written(header, lock)
            if done < written:
                last_batch = time.monotonic()
                header[IDLE] = 0
            while done < written:
                if written - done >= RING:  # the control thread went round the ring: the oldest are gone
                    dropped += written - RING + 1 - done
                    done = written - RING + 1
                    with lock:
                        header[DONE], header[DROPPED] = done, dropped
                    continue
                batch = layout.ring[done % RING].copy()
                written = _written(header, lock)
                if written - done >= RING:  # overwritten while it was copied: dropped above
                    continue
                state = update.step(state, batch)
                host = np.array(state.host)  # the folded parameters, computed by the step
                rejected = int(state.rejected)
                with lock:  # the least recently published slot that is not being read
                    published = int(header[PUBLISHED])
                    slot = next(s for s in ((published + 1) % 3, (published + 2) % 3)
                                if TOTAL_STORE_ORDER or s != header[READING])
                    header[SEQUENCE + slot] += 1  # odd: being written
                layout.vectors[slot][...] = host
                done += 1
                with lock:
                    header[SEQUENCE + slot] += 1
                    header[PUBLISHED] = slot
                    header[DONE] = done
                    header[REJECTED] = rejected
                header[BEAT] = time.monotonic_ns()
                written = _written(header, lock)
            if message == b"s":
                message = None
                replies.send(("state", (np.array(state.flat), jax.tree.map(np.asarray, state.opt_state))))
    except BaseException:  # noqa: BLE001 - reported to the control process
        header[FAILED] = 1
        try:
            replies.send(("error", traceback.format_exc()))
        except OSError:
            pass
        os._exit(1)
