"""Online memory of learning rates (Meier, Kappler & Schaal, "Online Learning of a Memory for Learning
Rates", ICRA 2018) as an optax GradientTransformation.

Parameters are split into groups k (one per layer by default). Group k owns a memory of M local constant
models theta^k_m (learning rates) centred at c_m, evenly spaced in [-clip, clip], with squared-exponential
activations over the 1-D space of a gradient coordinate z:

    psi_m(z) = exp(-(z - c_m)^2 / (2 lambda^2)),   lambda = width * (c_{m+1} - c_m)

At step t the incoming update u^t (the raw gradient for MetaGD, Adam's direction for "Adam with memory")
is clipped to z^t = clip(u^t, -clip, clip) coordinate-wise, then

  memory (eqs. 12-13, with z^t z^{t-1} clipped to [-1, 1] instead of its sign, Section III-D):
    a^k_{m,d}  = clip(z^t_d z^{t-1}_d, -1, 1) psi_m(z^{t-1}_d)                 d over group k's D_k coordinates
    g^k_m      = -(1 / D_k) sum_d a^k_{m,d}                                     (d eta_m / d theta_m = 1)
    theta^k    = max(theta^k + memory_optimizer(g^k), min_rate)                 (SGD: theta + xi * mean_d a)

  prediction (eq. 11) with the updated memory, and the step:
    eta_d      = sum_m psi_m(z^t_d) theta^k_m / sum_m psi_m(z^t_d)
    update_d   = -eta_d z^t_d                                                   (optax adds updates)

Agreeing consecutive gradients (z^t z^{t-1} > 0) raise the rates of the local models near z^{t-1} (the
gradient whose rate was just applied); flipping ones lower them. All local models start at eta_init;
z^0 = 0, so the first step changes no memory. With ``memory_optimizer='sgd'`` this is MetaGD, with
``'adam'`` MetaGDMemAdam (Adam with step xi on g).

Sparse evaluation: a coordinate's activations are computed only for the ``2K + 1`` centres nearest to it,
K = ceil(cutoff * width); the others are below exp(-cutoff^2 / 2) of the peak and are treated as 0.
The default cutoff = 3 (K = 3, 7 centres; dropped terms below 1.1% of the peak) brought the memory
paper's online update under 3 ms p99 on one core (2.4 against 3.3 ms for cutoff = 5); Table I moved
within seed noise (docs/RESULTS.md). This makes a step O(D K) instead of O(D M), which matters for
M = 200 at 1 kHz.

All coordinates go in one pass, each reading and writing its own group's memory (flat index g M + m):
2K + 1 scatters and 2K + 1 gathers over D coordinates. At the memory paper's online setting (7 per-joint
networks, 54,397 parameters in 28 groups) the memory update alone measured p50 1.5 ms on one core (where
a pinned update process runs it) against 3.4 ms for the earlier leaf-by-leaf version (2K + 1 scatters
and gathers per leaf, 56 leaves), and 2.9-3.3 against 2.5-3.0 ms on two cores, where XLA spreads the
leaf-by-leaf version's many small operations over both (``benchmarks/latency_memory.py``). Where the
process may use one CPU only, the memory update's terms go in one [D, 2K + 1] scatter instead
(:func:`_one_scatter`).

The memory's state (``LRMemoryState.rates`` [G, M] and the memory optimizer's state) can be saved, loaded
and carried to a new task with :func:`transfer_memory`, where it keeps learning.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """Hyperparameters of a learning-rate memory; defaults are the paper's online inverse-dynamics ones
    (M = 200, memory rate 0.005, gradient clip 1.0)."""

    eta_init: float = 1e-3
    num_models: int = 200
    clip: float = 1.0
    memory_rate: float = 5e-3
    memory_optimizer: str = "sgd"  # "sgd": MetaGD; "adam": MetaGDMemAdam
    grouping: str = "layer"  # "layer" (leaves sharing a parent), "leaf", or "all"
    width: float = 1.0  # lambda in units of the spacing between centres
    cutoff: float = 3.0  # activations beyond cutoff * lambda are treated as 0 (below exp(-4.5) = 1.1% of the peak)
    min_rate: float = 0.0

    def __post_init__(self):
        if self.num_models < 2:
            raise ValueError(f"a memory needs num_models >= 2 local models, got {self.num_models}")
        for name in ("clip", "width", "cutoff"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"memory {name} must be > 0 and finite, got {getattr(self, name)}")
        for name in ("eta_init", "memory_rate", "min_rate"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"memory {name} must be finite and >= 0, got {getattr(self, name)}")
        if self.memory_optimizer not in MEMORY_OPTIMIZERS:
            raise ValueError(f"unknown memory optimizer '{self.memory_optimizer}', expected one of {sorted(MEMORY_OPTIMIZERS)}")
        if self.grouping not in GROUPINGS:
            raise ValueError(f"unknown grouping '{self.grouping}', expected one of {sorted(GROUPINGS)}")

    @property
    def spacing(self) -> float:
        return 2 * self.clip / (self.num_models - 1)

    @property
    def centres(self) -> jnp.ndarray:
        return jnp.linspace(-self.clip, self.clip, self.num_models)

    @property
    def half_window(self) -> int:
        return min(self.num_models, int(math.ceil(self.cutoff * self.width)))


MEMORY_OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {"sgd": optax.sgd, "adam": optax.adam}
GROUPINGS = {
    "layer": lambda path: tuple(path[:-1]) if len(path) > 1 else tuple(path),
    "leaf": lambda path: tuple(path),
    "all": lambda path: (),
}


class LRMemoryState(NamedTuple):
    rates: jnp.ndarray  # [G, M] local learning rates theta^k_m
    previous: jnp.ndarray  # z^{t-1}, all coordinates flattened in the parameters' leaf order [D]
    memory_opt_state: Any
    count: jnp.ndarray


def group_index(tree, grouping: str) -> tuple[list[int], int]:
    """For each leaf of ``tree`` (in flatten order) the index of its parameter group, and the number of
    groups. Groups are numbered in order of first appearance."""
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    keys, index = {}, []
    for path in paths:
        key = GROUPINGS[grouping](path)
        index.append(keys.setdefault(key, len(keys)))
    return index, max(len(keys), 1)


def _nearest(z, config: MemoryConfig):
    """For flat clipped z [D]: the nearest centre n [D] and f = (z + clip) / spacing - n in [-1/2, 1/2]."""
    pos = (z + config.clip) / config.spacing
    nearest = jnp.clip(jnp.round(pos), 0, config.num_models - 1).astype(jnp.int32)
    return nearest, pos - nearest


def predict_rates(rates_row, z, config: MemoryConfig):
    """eq. 11: eta(z) = sum_m psi_m(z) theta_m / sum_m psi_m(z) for every coordinate of z (any shape),
    with one group's memory ``rates_row`` [M]; z is clipped to [-clip, clip] first."""
    flat = jnp.clip(jnp.ravel(z), -config.clip, config.clip).astype(jnp.float32)
    return _predict_grouped(rates_row[None], flat, jnp.zeros(flat.shape, jnp.int32), config).reshape(jnp.shape(z))


def _one_scatter() -> bool:
    """Whether to scatter the signal's 2K + 1 terms per coordinate as one [D, 2K + 1] update (faster where
    this process may use one CPU only, e.g. a pinned update process: 0.75 against 1.5 ms at the memory
    paper's setting) or as 2K + 1 [D] updates (faster on several CPUs, where XLA splits the one big
    scatter: 1.0-1.4 against 2.0-2.4 ms). Both give the same sums."""
    return len(os.sched_getaffinity(0)) == 1 if hasattr(os, "sched_getaffinity") else False


def _grouped_signal(z, previous, segment, groups: int, config: MemoryConfig):
    """sum_d a_{m,d} for each group's memory (eq. 12), as [G, M]: coordinate d of group g adds to
    entry (g, m). ``segment`` [D] is g M for each coordinate.

    Every coordinate's terms go to its group at the same index g M + n (n: the centre nearest to
    z^{t-1}_d), into sums S_o [G, M], one per neighbour offset o; then signal[g, m] = sum_o
    S_o[g, m - o], read from S_o padded with K zeros on each side, which drops the terms of centres
    outside [0, M) as the activation's 0 there does."""
    m, k = config.num_models, config.half_window
    agreement = jnp.clip(z * previous, -1.0, 1.0)
    nearest, f = _nearest(previous, config)
    index = segment + nearest
    if _one_scatter():
        offsets = jnp.arange(-k, k + 1, dtype=jnp.float32)
        terms = agreement[:, None] * jnp.exp(-0.5 * jnp.square((f[:, None] - offsets) / config.width))
        table = jax.ops.segment_sum(terms, index, num_segments=groups * m).reshape(groups, m, 2 * k + 1)
        sums = [table[:, :, j] for j in range(2 * k + 1)]
    else:
        sums = [jax.ops.segment_sum(agreement * jnp.exp(-0.5 * jnp.square((f - o) / config.width)), index,
                                    num_segments=groups * m).reshape(groups, m) for o in range(-k, k + 1)]
    padded = [jnp.pad(s, ((0, 0), (k, k))) for s in sums]
    return sum(padded[j][:, 2 * k - j: 2 * k - j + m] for j in range(2 * k + 1))


def _predict_grouped(rates, z, window_start, config: MemoryConfig):
    """eq. 11 for flat clipped z [D] whose coordinate d reads its group's memory: rates [G, M], padded
    with K zeros on each side and flattened, read at g (M + 2K) + n + K + o (``window_start`` [D] =
    g (M + 2K)); the activation of a centre outside [0, M) is 0."""
    m, k = config.num_models, config.half_window
    padded = jnp.pad(rates, ((0, 0), (k, k))).reshape(-1)
    nearest, f = _nearest(z, config)
    start = window_start + nearest
    numerator, denominator = jnp.zeros_like(z), jnp.zeros_like(z)
    for j in range(2 * k + 1):
        o = j - k
        inside = (nearest + o >= 0) & (nearest + o < m)
        psi = jnp.where(inside, jnp.exp(-0.5 * jnp.square((f - o) / config.width)), 0.0)
        numerator = numerator + psi * padded[start + j]
        denominator = denominator + psi
    return numerator / denominator


def lr_memory(config: MemoryConfig | None = None, **overrides) -> optax.GradientTransformation:
    """The memory as the last transform of a chain: outputs -eta(z) * z (see the module docstring)."""
    config = dataclasses.replace(config or MemoryConfig(), **overrides)
    memory_optimizer = MEMORY_OPTIMIZERS[config.memory_optimizer](config.memory_rate)

    def init_fn(params):
        _, groups = group_index(params, config.grouping)
        rates = jnp.full((groups, config.num_models), config.eta_init, jnp.float32)
        size = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
        return LRMemoryState(rates, jnp.zeros(size, jnp.float32), memory_optimizer.init(rates), jnp.zeros([], jnp.int32))

    def update_fn(updates, state: LRMemoryState, params=None):
        del params
        index, groups = group_index(updates, config.grouping)
        if state.rates.shape[0] != groups:
            raise ValueError(f"the memory has {state.rates.shape[0]} parameter groups, these updates have {groups}")
        leaves, treedef = jax.tree.flatten(updates)
        sizes = [int(np.size(leaf)) for leaf in leaves]
        if sum(sizes) != state.previous.shape[0]:
            raise ValueError(f"the memory was made for {state.previous.shape[0]} parameters, these updates have {sum(sizes)}")
        # all coordinates in one pass, each reading and writing its own group's memory
        group_of = np.repeat(np.asarray(index, np.int32), sizes)
        segment = jnp.asarray(group_of * config.num_models)
        window_start = jnp.asarray(group_of * (config.num_models + 2 * config.half_window))
        per_group = np.bincount(group_of, minlength=groups).astype(np.float32)
        z = jnp.clip(jnp.concatenate([jnp.ravel(u).astype(jnp.float32) for u in leaves]), -config.clip, config.clip)
        signal = _grouped_signal(z, state.previous, segment, groups, config)
        memory_grad = -signal / jnp.asarray(per_group)[:, None]
        memory_updates, memory_opt_state = memory_optimizer.update(memory_grad, state.memory_opt_state, state.rates)
        rates = jnp.maximum(optax.apply_updates(state.rates, memory_updates), config.min_rate)
        step = -_predict_grouped(rates, z, window_start, config) * z
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        out = [step[offsets[i]:offsets[i + 1]].reshape(np.shape(leaf)).astype(leaf.dtype) for i, leaf in enumerate(leaves)]
        return treedef.unflatten(out), LRMemoryState(rates, z, memory_opt_state, state.count + 1)

    return optax.GradientTransformation(init_fn, update_fn)


def metagd(config: MemoryConfig | None = None, **overrides) -> optax.GradientTransformation:
    """MetaGD (memory updated by SGD) or, with memory_optimizer='adam', MetaGDMemAdam."""
    return lr_memory(config, **overrides)


def adam_with_memory(config: MemoryConfig | None = None, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                     **overrides) -> optax.GradientTransformation:
    """Adam's direction m_hat / (sqrt(v_hat) + eps), scaled per coordinate by the memory."""
    return optax.chain(optax.scale_by_adam(b1, b2, eps), lr_memory(config, **overrides))


def _is_memory(node) -> bool:
    return isinstance(node, LRMemoryState)


def find_memory(opt_state) -> LRMemoryState:
    """The (first) LRMemoryState inside an optimizer state, however it is chained."""
    found = [n for n in jax.tree.leaves(opt_state, is_leaf=_is_memory) if _is_memory(n)]
    if not found:
        raise ValueError("this optimizer state holds no learning-rate memory")
    return found[0]


def transfer_memory(new_state, old):
    """``new_state`` (freshly initialised for a new task) with the memory of ``old`` (an optimizer state
    or an LRMemoryState): its rates and memory-optimizer state carry over, the previous gradient restarts
    at 0 and everything else (e.g. Adam's moments) stays new. The memory keeps learning on the new task."""
    source = old if _is_memory(old) else find_memory(old)

    def swap(node):
        if not _is_memory(node):
            return node
        if node.rates.shape != source.rates.shape:
            raise ValueError(f"cannot transfer a memory of shape {source.rates.shape} (groups, models) into one of {node.rates.shape}")
        return node._replace(rates=source.rates, memory_opt_state=source.memory_opt_state)

    return jax.tree.map(swap, new_state, is_leaf=_is_memory)
