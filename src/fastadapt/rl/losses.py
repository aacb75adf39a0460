"""Meta-losses for policies (ML3 section 3.2) and the fixed task losses they are compared with.

A policy task shows a loss ``pred`` = the policy's actions a_t [T, A] (recomputed from the visited states,
so their gradient in theta is the policy's only: the meta-loss never differentiates through the system's
dynamics), ``target`` = the goal g, and ``extra`` = a dict with the visited states s_t [T, S] (constants)
and whatever a fixed task loss needs (:class:`ModelTaskLoss`).

* :class:`PolicyMetaLoss`, M_phi: the mean over the trajectory of g_phi([s_t, a_t, g]), g an MLP (ELU
  hidden layers, 400 x 400 as in the authors' code) with a softplus output (so L >= 0). Wrapped in
  :class:`~fastadapt.losses.regression.LearnedRateLoss` it also outputs the learning rate, as the paper's
  meta-network does.
* :class:`ModelTaskLoss`: the task loss through the learned dynamics model P, the baseline of Fig. 3 b, c
  (``extra["model_task_loss"]``, computed by the task and differentiable in theta through P).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fastadapt.models.mlp import apply_mlp, init_mlp


@dataclasses.dataclass(frozen=True)
class PolicyMetaLoss:
    state_dim: int
    action_dim: int
    goal_dim: int
    hidden: tuple[int, ...] = (400, 400)
    activation: str = "elu"
    name: str = "ML3"
    learned: bool = True

    @property
    def num_joints(self) -> int:
        return self.action_dim

    @property
    def input_dim(self) -> int:
        return self.state_dim + self.action_dim + self.goal_dim

    def init(self, key):
        return {"net": init_mlp(key, (self.input_dim, *self.hidden, 1))}

    def features(self, actions, goal, extra):
        states = jax.lax.stop_gradient(extra["states"])
        goal = jnp.broadcast_to(goal, actions.shape[:-1] + goal.shape[-1:])
        return jnp.concatenate([states, actions, goal], -1)

    def apply(self, params, pred, target, extra):
        return jnp.mean(jax.nn.softplus(apply_mlp(params["net"], self.features(pred, target, extra), self.activation)))


@dataclasses.dataclass(frozen=True)
class ModelTaskLoss:
    """The task's own loss as the task computes it (``extra["model_task_loss"]``): no parameters."""

    name: str = "task loss"
    learned: bool = False

    def init(self, key):
        return {}

    def apply(self, params, pred, target, extra):
        return extra["model_task_loss"]
