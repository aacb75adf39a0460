"""What a meta-learning task tells the one meta-trainer (after google/learned_optimization, which keeps
tasks, learners and outer trainers apart).

A task owns the optimizee f_theta and its data. The trainer only calls these methods, all pure and
traceable (they run under jit, vmap and scan):

* ``start(key) -> theta_0``: the optimizee's parameters at the start of a meta-train batch (a fresh
  ``init`` or, for warm starts, a pretrained model picked with ``key``).
* ``meta_batches(key, count) -> (inner, outer)``: ``count`` meta-train batches stacked on a leading axis:
  the data of the inner update and of the task loss after it (the same data for ML3's tasks, the two
  halves of a window for inverse dynamics).
* ``loss_inputs(theta, batch) -> (pred, target, extra)``: what the meta-loss sees,
  M_phi(pred, target, extra); ``extra`` is, e.g., the robot state of a state-dependent loss, or None.
* ``task_loss(theta, batch) -> scalar``: L_T, the meta-train objective after an inner step (MSE,
  cross-entropy, or a shaped loss beta L + gamma L_extra that may read theta itself).
* ``score(theta, eval_set) -> scalar``: the metric of the evaluations (Algorithm 2, meta-test).
* ``eval_problem(split, key, index, steps) -> (theta_0, batches [steps], eval_set)``: one evaluation
  run on split ``split`` (one of ``eval_splits``); ``index`` numbers the runs of one evaluation (a task
  may use it to pick a meta-test function or a pretrained start).
* ``eval_splits``: names of the splits evaluated, the first being the one the best loss is selected on
  (meta-train data only; the meta-test data is never used to choose).
* ``baseline_loss``: the fixed loss the learned one is compared with (MSE, cross-entropy), a meta-loss
  without parameters.
* ``default_batches``: meta-train batches per epoch when the config says 0.
* ``saved_arrays() -> dict``: what must be stored beside a trained meta-loss to use it (a normaliser).
* optional ``saved_metadata() -> dict``: JSON stored beside it (the robot's name).

Optional, for a closed-form learner (``update='posterior'``, ALPaCA): ``meta_stream(key, steps)`` (a stream
of ``steps`` consecutive batches) and ``examples(batches) -> (x, y)``, the inputs and targets the learner
regresses on.

Optional, for RL tasks (:mod:`fastadapt.meta.algorithm` states the math):

* ``stepwise_batches``: True when ``meta_batches`` gives every inner step its own (inner, outer) pair on a
  leading axis of ``iters_max`` (used with ``update='unroll'``; ML3's Algorithm 4, where the rollout that
  scores one step is the next step's experience);
* ``minibatches`` > 1 with ``experience(theta, batch) -> data`` and ``minibatch_inputs(theta, data, k) ->
  (pred, target, extra)``: an inner step gathers the batch's experience once and takes one SGD step per
  minibatch of it, in meta-training and meta-test alike;
* ``refresh(epoch, loss, loss_params, config, key) -> task``: the task after an epoch (the trainer's
  docstring).

A meta-loss has ``init(key) -> phi`` and ``apply(phi, pred, target, extra) -> scalar``
(:mod:`fastadapt.losses`). A closed-form learner (``closed_form = True``, :class:`fastadapt.models.alpaca.ALPaCA`)
has ``init``, ``prior(phi)``, ``update(phi, prior, posterior, x, y)``, ``network(phi, posterior) -> theta``
(scored by ``task.score``) and ``stream_scores(phi, x, y) -> (nll [T], squared errors [T, out])``.
"""

from __future__ import annotations

from typing import Any, Protocol


class Task(Protocol):
    eval_splits: tuple[str, ...]
    baseline_loss: Any
    default_batches: int

    def start(self, key): ...

    def meta_batches(self, key, count): ...

    def loss_inputs(self, theta, batch): ...

    def task_loss(self, theta, batch): ...

    def score(self, theta, eval_set): ...

    def eval_problem(self, split: str, key, index, steps: int): ...

    def saved_arrays(self) -> dict: ...
