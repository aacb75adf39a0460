"""Meta-losses for policies (ML3 section 3.2) and the fixed task losses they are compared with.

A policy task shows a loss ``pred`` = the policy's actions a_t [T, A] (recomputed from the visited states,
so their gradient in theta is the policy's only: the meta-loss never differentiates through the system's
dynamics), ``target`` = the goal g, and ``extra`` = a dict with the visited states s_t [T, S] (constants)
and whatever a fixed task loss needs (:class:`ModelTaskLoss`).

* :class:`PolicyMetaLoss`, M_phi: the mean over the trajectory of g_phi([s_t, a_t, g]), g an MLP (ELU
  hidden layers, 400 x 400 as in the authors' code) with a softplus output (so L >= 0). Wrapped in
  :class:`~fastadapt.losses.regression.LearnedRateLoss` it also outputs the learning rate, as the paper's
  meta-network does. Two switches give the authors' MountainCar loss: ``detach_states=False`` lets the
  inner gradient run through the visited states, grad_theta M_phi = sum_t (dM/ds_t ds_t/dtheta + dM/da_t
  da_t/dtheta), i.e. through the differentiable system (the task then passes the rollout's own states
  and actions), and ``positive=False`` leaves g's output linear (L may be negative).
* :class:`ModelTaskLoss`: the task loss through the learned dynamics model P, the baseline of Fig. 3 b, c
  (``extra["model_task_loss"]``, computed by the task and differentiable in theta through P).

Model-free RL (:mod:`fastadapt.experiments.rl.mfrl`) shows a loss ``pred`` = {"mu", "sigma"}: the Gaussian policy's mean
and std at the sampled states [N, T, A] (differentiable in theta), ``target`` = the sampled actions, and
``extra`` = {"states" [N, T, O] (the goal is part of them), "returns" [N, T]: the reward-to-go normalised
over the batch, "advantage" [N, T]: each episode's normalised return}, all constants.

* :class:`GaussianPolicyMetaLoss`: M_phi(s, a, mu, sigma, R), the mean over samples of a softplus MLP
  (Appendix C: the policy's mean and std as inputs work better than its probability pi(a|s)).
* :class:`PolicyGradientLoss`: the surrogate of eq. 8, -mean_n A_n (1/T) sum_t log N(a_nt; mu_nt, sigma_nt),
  the task loss of model-free meta-training and the plain policy-gradient baseline.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fastadapt.models.mlp import apply_mlp, init_mlp


class _SampleMeanLoss:
    """What both policy meta-losses share: M_phi = mean over samples of softplus(g_phi(features)), g an MLP
    from ``input_dim`` features through ``hidden`` layers to one output."""

    @property
    def num_joints(self) -> int:
        return self.action_dim

    init_weights = "lecun"  # init_mlp's initialisation of g

    def init(self, key):
        return {"net": init_mlp(key, (self.input_dim, *self.hidden, 1), init=self.init_weights)}

    positive = True  # softplus on the output (L >= 0); False: linear

    def apply(self, params, pred, target, extra):
        out = apply_mlp(params["net"], self.features(pred, target, extra), self.activation)
        return jnp.mean(jax.nn.softplus(out) if self.positive else out)


@dataclasses.dataclass(frozen=True)
class PolicyMetaLoss(_SampleMeanLoss):
    state_dim: int
    action_dim: int
    goal_dim: int
    hidden: tuple[int, ...] = (400, 400)
    activation: str = "elu"
    name: str = "ML3"
    learned: bool = True
    detach_states: bool = True  # the states are constants to M_phi (False: its gradient runs through them)
    positive: bool = True  # a softplus output (False: linear, as the authors' MountainCar loss)
    init_weights: str = "lecun"  # g's initialisation (init_mlp's: lecun, xavier, torch)
    scale: tuple[float, ...] = ()  # g sees [s, a, g] / scale (the authors' norm_in); () for none

    @property
    def input_dim(self) -> int:
        return self.state_dim + self.action_dim + self.goal_dim

    def features(self, actions, goal, extra):
        states = jax.lax.stop_gradient(extra["states"]) if self.detach_states else extra["states"]
        goal = jnp.broadcast_to(goal, actions.shape[:-1] + goal.shape[-1:])
        x = jnp.concatenate([states, actions, goal], -1)
        return x / jnp.asarray(self.scale) if self.scale else x


# the ML3 authors' reacher meta-loss sees [q, qd, u, ||s_T - goal state||] divided by this (their norm_in)
AUTHORS_REACHER_SCALE = (1.0, 1.0, 8.0, 8.0, 1.0, 1.0, 1.0)


def authors_reacher_meta_loss(state_dim: int, action_dim: int, hidden: tuple[int, ...]) -> PolicyMetaLoss:
    """The ML3 authors' reacher meta-loss (``ml3/learnable_losses.py``, MBRL reacher): softplus(g([s_t,
    u_t, ||s_T - goal state||] / scale)), ELU, torch's initialisation, the states constants; the scale is
    theirs for a two-joint arm (state_dim 4) and none otherwise."""
    return PolicyMetaLoss(state_dim, action_dim, 1, hidden, init_weights="torch",
                          scale=AUTHORS_REACHER_SCALE if state_dim == 4 else ())


@dataclasses.dataclass(frozen=True)
class ModelTaskLoss:
    """The task's own loss as the task computes it (``extra[key]``): no parameters."""

    name: str = "task loss"
    key: str = "model_task_loss"
    learned: bool = False

    def init(self, key):
        return {}

    def apply(self, params, pred, target, extra):
        return extra[self.key]


@dataclasses.dataclass(frozen=True)
class GaussianPolicyMetaLoss(_SampleMeanLoss):
    """M_phi = mean over samples of softplus(g_phi([s, a, mu, sigma, R])) (ELU MLP ``hidden``)."""

    state_dim: int
    action_dim: int
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "elu"
    name: str = "ML3"
    learned: bool = True

    @property
    def input_dim(self) -> int:
        return self.state_dim + 3 * self.action_dim + 1

    def features(self, pred, actions, extra):
        const = jax.lax.stop_gradient
        mu, sigma = pred["mu"], jnp.broadcast_to(pred["sigma"], pred["mu"].shape)
        return jnp.concatenate([const(extra["states"]), const(actions), mu, sigma, const(extra["returns"])[..., None]], -1)


def gaussian_log_prob(actions, mu, sigma):
    """log N(a; mu, diag(sigma^2)), summed over the action's entries: [..., A] -> [...]."""
    z = (actions - mu) / sigma
    return jnp.sum(-0.5 * z * z - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi), -1)


def surrogate(pred, actions, advantage):
    """Eq. 8 per sample, averaged: -mean_{n,t} A_n log pi(a_nt | s_nt) (the 1/T of the mean keeps the scale
    independent of the horizon)."""
    logp = gaussian_log_prob(jax.lax.stop_gradient(actions), pred["mu"], pred["sigma"])
    return -jnp.mean(jax.lax.stop_gradient(advantage) * logp)


@dataclasses.dataclass(frozen=True)
class PolicyGradientLoss:
    """The task's surrogate (eq. 8) as a loss without parameters: plain policy gradient (REINFORCE with
    the batch's mean return as baseline)."""

    name: str = "policy gradient"
    learned: bool = False

    def init(self, key):
        return {}

    def apply(self, params, pred, target, extra):
        return surrogate(pred, target, extra["advantage"])
