"""Policies, rollouts and the learned dynamics model P of ML3's model-based RL (Algorithm 3, Appendix B).

* :class:`GoalPolicy`: a deterministic policy a = a_max tanh(f_theta([features(s), g])), f an MLP (tanh hidden
  layers, 64 x 64 as in the authors' code), for a system with state s and goal g.
* :func:`rollout`: s_0 -> s_1 ... s_T under ``step(s, a)`` with a_t = pi_theta(s_t, g), a ``lax.scan``
  that differentiates end to end (through the policy and the dynamics).
* :class:`DynamicsModel`: P, an MLP (tanh, 100 x 30 as in the authors' code) from (features(s), clip(a) / a_max) to the
  acceleration, stepped with the same semi-implicit Euler as the system (so P learns only what is
  unknown, the acceleration). It is fitted by full-batch Adam on the mean squared error of the
  accelerations (v' - v) / dt of the transitions collected so far (a fixed-capacity buffer: the oldest
  transitions are overwritten first). With ``members`` > 1 or ``probabilistic`` it is the authors' model
  instead: an ensemble of ``members`` networks, each with a mean and a variance head (softplus, at least
  1e-3), fitted on the Gaussian negative log-likelihood 0.5 log var + 0.5 (mean - target)^2 / var, each
  member leaving out every ``members``-th transition (a different one each: the authors' k-fold split);
  a rollout steps with the members' mean prediction.
* :class:`ClampedGoalPolicy`: the authors' reacher policy, u = a_max clip(f_theta([s, g_state] / scale),
  -1, 1) on the raw state and the goal *state*, the state detached as an input (their ``state.detach()``:
  the gradient through a rollout reaches theta through the actions only), f a tanh MLP with torch's
  initialisation.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from fastadapt.models.mlp import apply_mlp, init_mlp
from fastadapt.rl.envs import euler_step


@dataclasses.dataclass(frozen=True)
class GoalPolicy:
    """pi_theta(s, g) = a_max tanh(f_theta([features(s), g])) for the system ``env`` and 2-d goals."""

    env: object
    hidden: tuple[int, ...] = (64, 64)
    goal_dim = 2

    def init(self, key):
        return init_mlp(key, (self.env.feature_dim + self.goal_dim, *self.hidden, self.env.action_dim))

    def apply(self, theta, state, goal):
        features = self.env.features(state)
        goal = jnp.broadcast_to(goal, features.shape[:-1] + goal.shape[-1:])
        return self.env.max_action * jnp.tanh(apply_mlp(theta, jnp.concatenate([features, goal], -1), "tanh"))


@dataclasses.dataclass(frozen=True)
class ClampedGoalPolicy:
    """u = a_max clip(f_theta([s, g] / scale), -1, 1) for the system ``env``, goals being states (module
    docstring)."""

    env: object
    hidden: tuple[int, ...] = (64, 64)
    scale: tuple[float, ...] = (1.0, 1.0, 8.0, 8.0, 1.0, 1.0, 1.0, 1.0)  # the authors' norm_in

    @property
    def goal_dim(self) -> int:
        return self.env.state_dim

    def init(self, key):
        return init_mlp(key, (2 * self.env.state_dim, *self.hidden, self.env.action_dim), init="torch")

    def apply(self, theta, state, goal):
        state = jax.lax.stop_gradient(state)
        goal = jnp.broadcast_to(goal, state.shape[:-1] + goal.shape[-1:])
        x = jnp.concatenate([state, goal], -1) / jnp.asarray(self.scale)
        return self.env.max_action * jnp.clip(apply_mlp(theta, x, "tanh"), -1.0, 1.0)


def rollout(step, policy, theta, state, goal, horizon: int):
    """(states [T + 1, S], actions [T, A]) of pi_theta from ``state`` under ``step(s, a) -> s'``."""

    def body(s, _):
        a = policy.apply(theta, s, goal)
        return step(s, a), (s, a)

    last, (states, actions) = jax.lax.scan(body, state, None, length=horizon)
    return jnp.concatenate([states, last[None]]), actions


@dataclasses.dataclass(frozen=True)
class DynamicsModel:
    """P(s, a) -> s' for a system ``env`` (its dt, dof and action bound)."""

    env: object
    hidden: tuple[int, ...] = (100, 30)
    members: int = 1  # > 1: an ensemble (the authors' is 3)
    probabilistic: bool = False  # a variance head and the Gaussian likelihood

    @property
    def input_dim(self) -> int:
        return self.env.feature_dim + self.env.action_dim

    @property
    def ensemble(self) -> bool:
        return self.members > 1 or self.probabilistic

    def init(self, key):
        if not self.ensemble:
            return init_mlp(key, (self.input_dim, *self.hidden, self.env.dof), last_scale=0.1)
        outputs = 2 * self.env.dof if self.probabilistic else self.env.dof
        return jax.vmap(lambda k: init_mlp(k, (self.input_dim, *self.hidden, outputs), last_scale=0.1))(
            jax.random.split(key, self.members))

    def member_outputs(self, params, inputs):
        """Each member's (mean [E, ..., dof], variance [E, ..., dof] or None) at ``inputs``."""
        out = jax.vmap(lambda p: apply_mlp(p, inputs, "tanh"))(params)
        if not self.probabilistic:
            return out, None
        dof = self.env.dof
        return out[..., :dof], jnp.maximum(jax.nn.softplus(out[..., dof:]), 1e-3)

    def predict(self, params, inputs):
        """The predicted acceleration at ``inputs`` [..., S + A]: the network's, or the members' mean."""
        if not self.ensemble:
            return apply_mlp(params, inputs, "tanh")
        return jnp.mean(self.member_outputs(params, inputs)[0], 0)

    def inputs(self, state, action):
        limit = self.env.max_action
        return jnp.concatenate([self.env.features(state), jnp.clip(action, -limit, limit) / limit], -1)

    def acceleration(self, params, state, action):
        return self.predict(params, self.inputs(state, action))

    def step(self, params, state, action):
        """Semi-implicit Euler on the predicted acceleration, the velocity clipped to the system's
        ``max_speed`` (as the authors clamp theirs): a model extrapolating far from its data cannot blow a
        rollout up."""
        next_state = euler_step(self.env.dt, state, self.acceleration(params, state, action))
        dof, limit = self.env.dof, self.env.max_speed
        velocity = jnp.clip(next_state[dof:], -limit, limit)
        return jnp.concatenate([state[:dof] + self.env.dt * velocity, velocity])

    def transitions(self, states, actions):
        """Inputs [N, S + A] and target accelerations [N, dof] of rollouts (states [..., T + 1, S], actions
        [..., T, A]), flattened."""
        dof = self.env.dof
        inputs = self.inputs(states[..., :-1, :], actions)
        targets = (states[..., 1:, dof:] - states[..., :-1, dof:]) / self.env.dt
        return inputs.reshape(-1, self.input_dim), targets.reshape(-1, dof)


def empty_buffer(model: DynamicsModel, capacity: int) -> dict:
    return {"inputs": jnp.zeros((capacity, model.input_dim)), "targets": jnp.zeros((capacity, model.env.dof)),
            "count": jnp.zeros((), jnp.int32)}


def add_transitions(buffer: dict, inputs, targets) -> dict:
    """Write transitions at the buffer's next rows (wrapping around: the oldest are overwritten)."""
    capacity = buffer["inputs"].shape[0]
    rows = (buffer["count"] + jnp.arange(inputs.shape[0])) % capacity
    return {"inputs": buffer["inputs"].at[rows].set(inputs), "targets": buffer["targets"].at[rows].set(targets),
            "count": buffer["count"] + inputs.shape[0]}


def _filled(buffer: dict):
    return (jnp.arange(buffer["inputs"].shape[0]) < buffer["count"]).astype(buffer["inputs"].dtype)


def model_error(model: DynamicsModel, params, buffer: dict):
    """Mean squared acceleration error (of the prediction a rollout uses) over the filled rows of ``buffer``."""
    filled = _filled(buffer)
    errors = jnp.sum(jnp.square(model.predict(params, buffer["inputs"]) - buffer["targets"]), -1)
    return jnp.sum(filled * errors) / jnp.maximum(jnp.sum(filled), 1.0)


def training_loss(model: DynamicsModel, params, buffer: dict):
    """What a fit minimises: :func:`model_error` for one deterministic network; for an ensemble, the sum
    over members of the mean over the rows each member trains on (the filled rows but every
    ``members``-th, offset by the member's index) of the squared error, or with ``probabilistic`` of the
    Gaussian NLL 0.5 log var + 0.5 (mean - target)^2 / var (per output, averaged)."""
    if not model.ensemble:
        return model_error(model, params, buffer)
    rows = jnp.arange(buffer["inputs"].shape[0])
    members = jnp.arange(model.members)
    keep = _filled(buffer)[None] * ((rows[None] % model.members != members[:, None]) | (model.members == 1))
    mean, var = model.member_outputs(params, buffer["inputs"])
    if var is None:
        per_row = jnp.mean(jnp.square(mean - buffer["targets"]), -1)
    else:
        per_row = jnp.mean(0.5 * jnp.log(var) + 0.5 * jnp.square(mean - buffer["targets"]) / var, -1)
    return jnp.sum(jnp.sum(keep * per_row, 1) / jnp.maximum(jnp.sum(keep, 1), 1.0))


@functools.partial(jax.jit, static_argnames=("model", "steps"))
def fit_model(model: DynamicsModel, params, buffer: dict, steps: int, rate: float):
    """``steps`` full-batch Adam steps at ``rate`` on :func:`training_loss`; returns (params, the final
    :func:`model_error`)."""
    opt = optax.adam(rate)
    value_and_grad = jax.value_and_grad(functools.partial(training_loss, model))

    def body(carry, _):
        params, opt_state = carry
        value, grads = value_and_grad(params, buffer)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return params, model_error(model, params, buffer)
