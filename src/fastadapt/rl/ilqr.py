"""A small iterative LQR trajectory optimiser (Li & Todorov 2004; Tassa et al. 2012/2014), in JAX: the
paper's MountainCar baseline (Fig. 6 a, b) and the expert of the demonstrations (Fig. 6 c, d).

Problem: minimise J(u) = sum_{t<T} l(x_t, u_t) + l_f(x_T) over controls u_0..u_{T-1}, with
x_{t+1} = f(x_t, u_t) from a given x_0. One iteration:

* backward pass, around the current trajectory (derivatives by automatic differentiation):
  Q_x = l_x + f_x' V_x,  Q_u = l_u + f_u' V_x,  Q_xx = l_xx + f_x' V_xx f_x,
  Q_uu = l_uu + f_u' V_xx f_u + mu I,  Q_ux = l_ux + f_u' V_xx f_x,
  k = -Q_uu^-1 Q_u,  K = -Q_uu^-1 Q_ux,
  V_x = Q_x + K' Q_uu k + K' Q_u + Q_ux' k,  V_xx = Q_xx + K' Q_uu K + K' Q_ux + Q_ux' K,
  from V_x = l_f,x(x_T), V_xx = l_f,xx(x_T) (second derivatives of f are dropped: iLQR, not DDP);
* forward pass with a line search: u_t <- u_t + a k_t + K_t (x_t^new - x_t) for a in ``steps`` until
  the cost decreases; if none does, mu grows tenfold (it shrinks after a success).

On a linear-quadratic problem one iteration with a = 1 and mu = 0 gives the Riccati solution exactly (the
test checks this).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Problem:
    """f(x, u) -> x', l(x, u) -> scalar, l_f(x) -> scalar; pure JAX functions (hashable: module-level
    functions or frozen dataclasses' methods)."""

    dynamics: object
    running_cost: object
    final_cost: object


def trajectory(problem: Problem, x0, us):
    """States [T + 1, n] of ``us`` [T, m] from x0."""

    def body(x, u):
        x2 = problem.dynamics(x, u)
        return x2, x2

    _, xs = jax.lax.scan(body, x0, us)
    return jnp.concatenate([x0[None], xs])


def total_cost(problem: Problem, xs, us):
    return jnp.sum(jax.vmap(problem.running_cost)(xs[:-1], us)) + problem.final_cost(xs[-1])


@functools.partial(jax.jit, static_argnames=("problem",))
def backward_pass(problem: Problem, xs, us, mu):
    """Gains (k [T, m], K [T, m, n]) around (xs, us), regularised by mu."""
    fx, fu = jax.vmap(jax.jacfwd(problem.dynamics, argnums=(0, 1)))(xs[:-1], us)
    lx, lu = jax.vmap(jax.grad(problem.running_cost, argnums=(0, 1)))(xs[:-1], us)
    (lxx, lxu), (_, luu) = jax.vmap(jax.hessian(problem.running_cost, argnums=(0, 1)))(xs[:-1], us)
    m = us.shape[-1]

    def step(value, t):
        vx, vxx = value
        qx = lx[t] + fx[t].T @ vx
        qu = lu[t] + fu[t].T @ vx
        qxx = lxx[t] + fx[t].T @ vxx @ fx[t]
        quu = luu[t] + fu[t].T @ vxx @ fu[t] + mu * jnp.eye(m)
        qux = lxu[t].T + fu[t].T @ vxx @ fx[t]
        k = -jnp.linalg.solve(quu, qu)
        gain = -jnp.linalg.solve(quu, qux)
        vx = qx + gain.T @ quu @ k + gain.T @ qu + qux.T @ k
        vxx = qxx + gain.T @ quu @ gain + gain.T @ qux + qux.T @ gain
        return (vx, 0.5 * (vxx + vxx.T)), (k, gain)

    final = (jax.grad(problem.final_cost)(xs[-1]), jax.hessian(problem.final_cost)(xs[-1]))
    _, (k, gains) = jax.lax.scan(step, final, jnp.arange(us.shape[0])[::-1])
    return k[::-1], gains[::-1]


@functools.partial(jax.jit, static_argnames=("problem",))
def forward_pass(problem: Problem, xs, us, k, gains, step_size):
    """The new controls and states: u_t + a k_t + K_t (x_t^new - x_t), rolled out from x_0."""

    def body(x, inputs):
        x_old, u_old, k_t, gain = inputs
        u = u_old + step_size * k_t + gain @ (x - x_old)
        return problem.dynamics(x, u), (x, u)

    last, (new_xs, new_us) = jax.lax.scan(body, xs[0], (xs[:-1], us, k, gains))
    return jnp.concatenate([new_xs, last[None]]), new_us


@dataclasses.dataclass
class Solution:
    states: jnp.ndarray  # [T + 1, n]
    controls: jnp.ndarray  # [T, m]
    gains: jnp.ndarray  # [T, m, n]: the feedback u = u_t + K_t (x - x_t) around the solution
    costs: list  # the cost after each iteration (the first entry: the initial controls')
    finals: list  # the final state after each iteration (the first entry: the initial controls')


def ilqr(problem: Problem, x0, us, iterations: int = 50, mu: float = 1e-6,
         steps: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01), tolerance: float = 1e-9) -> Solution:
    """iLQR from the controls ``us`` [T, m]; stops after ``iterations`` or once the relative improvement
    falls below ``tolerance``."""
    x0, us = jnp.asarray(x0), jnp.asarray(us)
    xs = trajectory(problem, x0, us)
    cost = float(total_cost(problem, xs, us))
    costs, finals, gains = [cost], [xs[-1]], jnp.zeros(us.shape + x0.shape)
    for _ in range(iterations):
        k, gains = backward_pass(problem, xs, us, mu)
        for a in steps:
            new_xs, new_us = forward_pass(problem, xs, us, k, gains, a)
            new_cost = float(total_cost(problem, new_xs, new_us))
            if new_cost < cost:
                break
        else:
            mu *= 10.0
            if mu > 1e8:
                break
            continue
        improvement = (cost - new_cost) / max(abs(cost), 1e-12)
        xs, us, cost = new_xs, new_us, new_cost
        costs.append(cost)
        finals.append(xs[-1])
        mu = max(mu / 10.0, 1e-9)
        if improvement < tolerance:
            break
    return Solution(xs, us, gains, costs, finals)


def riccati_gains(a, b, q, r, q_final, horizon: int):
    """The finite-horizon discrete LQR gains K_t (u_t = -K_t x_t) of x' = A x + B u with cost
    sum_t (x'Qx + u'Ru) + x_T' Q_f x_T, by the backward Riccati recursion
    K = (R + B'PB)^-1 B'PA,  P <- Q + A'P(A - BK), from P = Q_f."""
    p, gains = q_final, []
    for _ in range(horizon):
        gain = jnp.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p = q + a.T @ p @ (a - b @ gain)
        gains.append(gain)
    return jnp.stack(gains[::-1])
