"""A 1 kHz control loop: each tick calls ``Adapter.predict`` then ``Adapter.observe``, paced by sleeping
to the next deadline. Reports, per configuration, how long construction took (compilation and
warm-up included), the tick latency (p50, p99, p99.9, max), missed deadlines (a tick that ends after
the next tick should start), and with ``background`` the staleness of ``predict`` (updates submitted
but not yet applied when it ran).

Configurations: MSE and each learned loss on the demo's network (21 -> 64 -> 64 -> 7, batches of 5)
with SGD and with a learning-rate memory (MetaGD, M = 200), updates on the control thread or on a
background process (``background=True``); and the memory paper's online setting (7 per-joint networks [100, 50, 10],
batches of 10, M = 200); and the Bayesian head (``head=BayesianHead(0.998)``: the last layer in closed
form with forgetting, issue 27's adapter), alone and with the body on the structured loss
(``adapt_body``), in the loop and in the background.

The data are a smooth synthetic 7-joint stream (sines; torques a fixed nonlinear function of the
state), so the timings do not depend on a simulator. ``--gc-freeze`` runs ``gc.collect(); gc.freeze()``
after construction, as a real-time process might.

``--against REV`` adds, for each configuration updated in the loop, the Adapter of git revision REV
(warmed up with 50 ticks first, counted in its construction time: before this change it compiled on
its first update).

``--pin`` pins the control thread to the first CPU and the update process to the others, as a real-time
process would (for an earlier revision: its update thread and XLA's threads). ``--spin-us`` sets how
long before each deadline the loop stops sleeping and spins (150 us by default).

``--rounds R`` builds every selected configuration first and lets them take turns, R rounds of
ticks / R ticks each, so that a burst of noise on the shared machine lands on all of them alike.

Usage: python benchmarks/control_loop.py [--ticks 10000] [--only NAME ...] [--gc-freeze] [--against REV]
                                         [--pin] [--spin-us 150] [--rounds 1]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import platform
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.adapter import Adapter
from fastadapt.adapt.head import BayesianHead
from fastadapt.data.batches import Normalizer
from fastadapt.losses import make_loss
from fastadapt.models.mlp import InverseDynamicsMLP, PerJointMLP
from fastadapt.optim import MemoryConfig, metagd
from revisions import adapter_class_at

J = 7
PERIOD = 1e-3


def stream(ticks: int) -> np.ndarray:
    """[ticks, 4J]: q, qd, qdd of sines at 1 kHz and a smooth nonlinear torque."""
    t = np.arange(ticks)[:, None] * PERIOD
    w = np.linspace(0.5, 2.0, J)[None, :]
    q, qd, qdd = np.sin(w * t), w * np.cos(w * t), -w ** 2 * np.sin(w * t)
    tau = 5 * np.sin(q) + 0.5 * qdd + 0.1 * qd + np.cos(q[:, ::-1])
    return np.concatenate([q, qd, qdd, tau], axis=1).astype(np.float32)


def control_loop(adapter: Adapter, data: np.ndarray, spin: float = 1.5e-4):
    """Run the paced loop: sleep until ``spin`` seconds before each deadline, then spin. Returns tick
    latencies (s), missed deadlines, staleness per tick and how many missed ticks that the operating system
    woke more than half a period late (misses the adapter did not cause, or not alone)."""
    latencies = np.empty(len(data))
    staleness = np.empty(len(data), np.int32)
    missed = late = 0
    start = time.perf_counter() + 0.01
    for i, row in enumerate(data):
        deadline = start + i * PERIOD
        while (now := time.perf_counter()) < deadline:
            if deadline - now > spin + 5e-5:
                time.sleep(deadline - now - spin)
        staleness[i] = getattr(adapter, "pending_updates", 0)
        t0 = time.perf_counter()
        adapter.predict(row[:J], row[J:2 * J], row[2 * J:3 * J])
        adapter.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])
        t1 = time.perf_counter()
        latencies[i] = t1 - t0
        if t1 > deadline + PERIOD:
            missed += 1
            late += t0 - deadline > PERIOD / 2
    adapter.wait()
    return latencies, missed, staleness, late


def pin_threads(control_cpu: int | None, other_cpus: set[int]) -> None:
    """Pin the calling (control) thread to ``control_cpu`` and every other thread of this process to
    ``other_cpus`` (control_cpu None: every thread to other_cpus)."""
    me = threading.get_native_id()
    for task in os.listdir("/proc/self/task"):
        tid = int(task)
        try:
            os.sched_setaffinity(tid, {control_cpu} if tid == me and control_cpu is not None else other_cpus)
        except OSError:  # the thread ended meanwhile
            pass


def configurations():
    norm = Normalizer(jnp.zeros(3 * J), jnp.ones(3 * J), jnp.zeros(J), jnp.full(J, 3.0))
    demo_net = InverseDynamicsMLP(J)
    memory = MemoryConfig(eta_init=1e-3, num_models=200, memory_rate=0.005, clip=1.0)
    for loss_name in ("mse", "structured", "state-dependent", "mlp"):
        for optimizer in ("sgd", "memory"):
            for background in (False, True):
                yield (f"{loss_name}, {optimizer}, {'background' if background else 'in the loop'}",
                       dict(model=demo_net, normalizer=norm, loss_name=loss_name, batch_size=5, background=background,
                            optimizer="sgd" if optimizer == "sgd" else metagd(memory)))
    for body in (False, True):
        for background in (False, True):
            yield (f"bayesian head (forgetting 0.998){' + body on structured, sgd' if body else ''}, "
                   f"{'background' if background else 'in the loop'}",
                   dict(model=demo_net, normalizer=norm, loss_name="structured" if body else "mse", batch_size=5,
                        background=background, optimizer="sgd", head=BayesianHead(0.998, adapt_body=body)))
    paper_net = PerJointMLP(J, (100, 50, 10))
    for background in (False, True):
        yield (f"memory paper: per-joint [100, 50, 10], batch 10, MetaGD M = 200, {'background' if background else 'in the loop'}",
               dict(model=paper_net, normalizer=norm, loss_name="structured", batch_size=10, background=background,
                    optimizer=metagd(memory), unit_loss=True))


def build(model, normalizer, loss_name, batch_size, background, optimizer, unit_loss=False, cls=Adapter,
          update_cpus=None, head=None):
    loss = make_loss(loss_name, J)
    loss_params = loss.init(None) if unit_loss else loss.init(jax.random.PRNGKey(1))
    accepted = inspect.signature(cls).parameters
    extra = {"background": background} if "background" in accepted else {}
    if background and update_cpus and "update_cpus" in accepted:
        extra["update_cpus"] = update_cpus
    if head is not None:
        extra["head"] = head
    return cls(model, normalizer, model.init(jax.random.PRNGKey(0)), loss, loss_params, optimizer, 1e-3,
               batch_size=batch_size, **extra)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--only", action="append",
                        help="run the configurations whose name contains this text (repeat: any of them)")
    parser.add_argument("--gc-freeze", action="store_true")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (s) for the run")
    parser.add_argument("--against", metavar="REV", help="also run the Adapter of this git revision")
    parser.add_argument("--spin-us", type=float, default=150.0,
                        help="sleep until this many microseconds before each deadline, then spin (default 150)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="build every selected configuration first, then let them take turns in this many "
                             "rounds of ticks/rounds ticks each (side by side, so noise lands on all alike)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the control thread to the first CPU and the update process (or an earlier "
                             "revision's update thread and XLA's threads) to the others")
    args = parser.parse_args()
    data = stream(args.ticks)
    if args.switch_interval:
        import sys

        sys.setswitchinterval(args.switch_interval)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}; {args.ticks} ticks at 1 kHz; sleep until {args.spin_us:g} us before each "
          f"deadline, then spin; gc {'frozen after construction' if args.gc_freeze else 'as usual'}; "
          f"{'control thread pinned to the first CPU, updates to the others' if args.pin else 'no pinning'}\n")
    print("| configuration | construction (s) | tick p50 (us) | p99 | p99.9 | max | missed deadlines | of them woken late by the OS | stale ticks | max staleness (updates) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    runs = [(name, spec, Adapter) for name, spec in configurations()]
    if args.against:
        old = adapter_class_at(args.against)
        old_background = "background" in inspect.signature(old).parameters
        old_head = "head" in inspect.signature(old).parameters
        runs += [(f"{name} @{args.against}", spec, old) for name, spec in configurations()
                 if (old_background or not spec["background"]) and (old_head or "head" not in spec)]
    runs = [run for run in runs if not args.only or any(text in run[0] for text in args.only)]
    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin and len(cpus) > 1
    update_cpus = set(cpus[1:]) if pinned else None

    def construct(spec, cls) -> Adapter:
        started = time.perf_counter()
        adapter = build(**spec, cls=cls, update_cpus=update_cpus)
        if cls is not Adapter:  # the old adapter compiled on first use
            control_loop(adapter, data[:50])  # paced, 50 ticks: compiles its update
            adapter.construction_seconds = time.perf_counter() - started
        return adapter

    def measure(adapter, ticks):
        if pinned:
            pin_threads(cpus[0], set(cpus[1:]))
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        result = control_loop(adapter, ticks, args.spin_us * 1e-6)
        if args.gc_freeze:
            gc.unfreeze()
        if pinned:
            pin_threads(None, set(cpus))
        return result

    def report(name, adapter, results):
        us = np.concatenate([r[0] for r in results]) * 1e6
        staleness = np.concatenate([r[2] for r in results])
        missed, late = sum(r[1] for r in results), sum(r[3] for r in results)
        print(f"| {name} | {adapter.construction_seconds:.2f} | {np.percentile(us, 50):.0f} | {np.percentile(us, 99):.0f} | "
              f"{np.percentile(us, 99.9):.0f} | {us.max():.0f} | {missed} | {late} | {int((staleness > 0).sum())} | "
              f"{staleness.max()} |", flush=True)

    if args.rounds == 1:  # one configuration at a time
        for name, spec, cls in runs:
            adapter = construct(spec, cls)
            results = [measure(adapter, data)]
            getattr(adapter, "close", lambda: None)()
            report(name, adapter, results)
        return
    adapters = {name: construct(spec, cls) for name, spec, cls in runs}
    results = {name: [] for name in adapters}
    for ticks in np.array_split(data, args.rounds):  # the configurations take turns
        for name, adapter in adapters.items():
            results[name].append(measure(adapter, ticks))
    for name, adapter in adapters.items():
        getattr(adapter, "close", lambda: None)()
        report(name, adapter, results[name])


if __name__ == "__main__":
    main()
