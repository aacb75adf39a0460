"""The Adapter's online updates in a process of their own (``Adapter(..., background=True)``).

On the control thread, ``observe`` writes a sample into shared memory and, every ``batch_size`` samples,
hands the batch over with one counter increment; ``predict`` runs the host
forward pass on the newest published parameters. The update process runs the same compiled step as an
Adapter updating in the loop (it *is* one, built from the same arguments), whose result includes the
parameters folded for the host forward pass (:meth:`HostForward.fold_flat`), and publishes those.

Why a process and not a thread: a thread shares the interpreter lock, so its dispatch and its result
handling stop the control thread for tens of microseconds at a time (tick p99 143-258 us measured with a
thread, against <= 100 us wanted); a process shares nothing but memory.

Shared memory (one block, ``multiprocessing.RawArray``):

    header  int64[8]       written (batches handed over), done (updates published), rejected,
                           published slot, slot being read, failed
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
  If R batches are still waiting (the updates cannot keep up), the next batch waits for a free ring slot.
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
import weakref

import cloudpickle
import numpy as np

WRITTEN, DONE, REJECTED, PUBLISHED, READING, FAILED, IDLE, SEQUENCE = range(8)  # SEQUENCE + s: slot s's
HEADER = 11
SLOTS = 3
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
        # an Adapter dropped without close() stops its process when it is collected
        self._finalizer = weakref.finalize(self, _stop, self._process, self._commands_out, self._replies)
        self.compile_seconds = self._receive("ready")

    # --- control side ---------------------------------------------------------------------------------
    def _receive(self, expected: str):
        while not self._replies.poll(0.05):
            if not self._process.is_alive():
                raise UpdateProcessError(f"the update process exited with code {self._process.exitcode}")
        try:
            kind, value = self._replies.recv()
        except EOFError:
            raise UpdateProcessError("the update process is gone") from None
        if kind == "error":
            raise UpdateProcessError(f"the update process failed:\n{value}")
        assert kind == expected, (kind, expected)
        return value

    def buffer(self) -> np.ndarray:
        """The ring slot [B, 4J] the next batch is written to (waits while the ring is full)."""
        header = self.layout.header
        while self.batches - header[DONE] >= RING:
            self._check_alive()
            time.sleep(1e-4)
        return self.layout.ring[self.batches % RING]

    def submit(self) -> None:
        """Hand over the batch written to ``buffer()``."""
        self.check()
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

    def check(self) -> None:
        if self.layout.header[FAILED]:
            self._receive("never")  # raises with the update process's traceback

    def _check_alive(self) -> None:
        self.check()
        if not self._process.is_alive():
            raise UpdateProcessError(f"the update process exited with code {self._process.exitcode}")

    def wait(self) -> None:
        while self.done < self.batches:
            self._check_alive()
            time.sleep(1e-4)

    def state(self):
        """(flat parameters, optimizer state) after every batch handed over so far, as numpy arrays."""
        self._check_alive()
        self._commands_out.send_bytes(b"s")
        return self._receive("state")

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
        if process.is_alive():
            process.terminate()
            process.join()
    commands.close()
    replies.close()


def _serve(arguments: bytes, raw, batch_size: int, row: int, shapes, lock, commands, replies, cpus) -> None:
    """The update process: build an Adapter updating in its own loop, then apply each batch handed over
    and publish the folded parameters."""
    layout = SharedLayout(raw, batch_size, row, shapes)
    header = layout.header
    if cpus:  # before JAX starts its threads, so that they inherit it
        os.sched_setaffinity(0, cpus)
    try:
        import jax

        from fastadapt.adapt.adapter import Adapter

        adapter = Adapter(**cloudpickle.loads(arguments), warmup=True, background=False)
        replies.send(("ready", adapter.construction_seconds))
        done, message, last_batch = 0, None, time.monotonic()
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
            with lock:
                written = int(header[WRITTEN])
            if done < written:
                last_batch = time.monotonic()
                header[IDLE] = 0
            while done < written:
                state = adapter._step(adapter._state, adapter._flat_loss_params, layout.ring[done % RING].copy())
                adapter._state = state
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
            if message == b"s":
                message = None
                replies.send(("state", (np.array(adapter._state.flat),
                                        jax.tree.map(np.asarray, adapter._state.opt_state))))
    except BaseException:  # noqa: BLE001 - reported to the control process
        header[FAILED] = 1
        try:
            replies.send(("error", traceback.format_exc()))
        except OSError:
            pass
        os._exit(1)
