"""iLQR against the Riccati solution of a linear-quadratic problem, and on a nonlinear one."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from fastadapt.rl.envs import ReacherGoal
from fastadapt.rl.ilqr import Problem, ilqr, riccati_gains, total_cost, trajectory


@dataclasses.dataclass(frozen=True)
class LinearQuadratic:
    a: tuple
    b: tuple
    q: float = 1.0
    r: float = 0.1
    q_final: float = 10.0

    def dynamics(self, x, u):
        return jnp.asarray(self.a) @ x + jnp.asarray(self.b) @ u

    def running_cost(self, x, u):
        return self.q * x @ x + self.r * u @ u

    def final_cost(self, x):
        return self.q_final * x @ x


@pytest.mark.slow
def test_ilqr_solves_a_linear_quadratic_problem_as_the_riccati_recursion_does():
    with enable_x64():
        lq = LinearQuadratic(a=((1.0, 0.1), (0.0, 1.0)), b=((0.005,), (0.1,)))
        problem = Problem(lq.dynamics, lq.running_cost, lq.final_cost)
        x0, horizon = jnp.asarray([1.0, -0.5]), 30
        solution = ilqr(problem, x0, jnp.zeros((horizon, 1)), iterations=3, mu=0.0)
        gains = riccati_gains(jnp.asarray(lq.a), jnp.asarray(lq.b), lq.q * jnp.eye(2), lq.r * jnp.eye(1),
                              lq.q_final * jnp.eye(2), horizon)
        x, expected = x0, []
        for gain in gains:  # the optimal closed loop u_t = -K_t x_t
            u = -gain @ x
            expected.append(u)
            x = lq.dynamics(x, u)
        np.testing.assert_allclose(solution.controls, jnp.stack(expected), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(solution.gains, -gains, rtol=1e-8, atol=1e-10)
        assert len(solution.costs) >= 2 and solution.costs[1] == pytest.approx(solution.costs[-1], rel=1e-10)


@pytest.mark.slow
def test_ilqr_brings_the_reacher_to_a_goal():
    env = ReacherGoal()
    goal = jnp.asarray([-0.3, 0.6])

    def running(x, u):
        return 1e-3 * u @ u

    def final(x):
        return 100.0 * jnp.sum((env.position(x) - goal) ** 2) + 0.1 * x[2:] @ x[2:]

    problem = Problem(env.step, running, final)
    start = jnp.zeros((40, 2))
    solution = ilqr(problem, env.initial_state(), start, iterations=30)
    assert solution.costs[-1] < 0.01 * solution.costs[0]
    assert float(jnp.linalg.norm(env.position(solution.states[-1]) - goal)) < 0.02
    np.testing.assert_allclose(solution.states, trajectory(problem, env.initial_state(), solution.controls), rtol=1e-5)
    assert float(total_cost(problem, solution.states, solution.controls)) == pytest.approx(solution.costs[-1], rel=1e-5)
