"""Warm-start meta-training against the paper's random starts, in the practitioner's protocol.

On the Schunk logs (meta-train on the even logs, stream the odd ones), each learned loss is
meta-trained from random models (Algorithm 1 as in the paper) and from pretrained ones
(``start='pretrained'``), with plain SGD and with Adam on phi, and then adapts the pretrained models
online at alpha. Prints each one's mean online MSE relative to the pretrained model left alone.

Usage: python benchmarks/warm_start.py [epochs=60] [schunk_path]
"""

from __future__ import annotations

import dataclasses
import sys

from fastadapt.adapt.online import Method, OnlineConfig, online_scores, overall, pretrain_models
from fastadapt.data.batches import Normalizer, normalised_samples, sequential_stream
from fastadapt.data.schunk import load_schunk, split_halves
from fastadapt.losses import make_loss
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, inverse_dynamics_trainer


def main(argv):
    epochs = int(next((a.split("=")[1] for a in argv if a.startswith("epochs=")), 60))
    path = next((a for a in argv if "=" not in a), None)
    train, held_out = split_halves(load_schunk(path))
    normalizer = Normalizer.fit(train)
    online = OnlineConfig()
    base = InverseDynamicsConfig(epochs=epochs, eval_every=5)
    model = base.model(train.num_joints)
    pretrained, _ = pretrain_models(model, normalised_samples(train, normalizer), online)
    streams = [sequential_stream(held_out, normalizer, online.batch_size)]
    alone = overall(online_scores(model, Method("alone", make_loss("mse", train.num_joints), {}, rate=0.0), pretrained, streams))
    print(f"pretrained, not adapted: {alone:.4g}\n")
    print("| loss | meta-train start | outer optimizer | / pretrained, not adapted |\n|---|---|---|---|")
    for loss_name in ("structured", "state-dependent"):
        for start in ("random", "pretrained"):
            for outer in ("sgd", "adam"):
                config = dataclasses.replace(base, loss=loss_name, start=start, meta_optimizer=outer)
                result = inverse_dynamics_trainer(config, train, held_out, normalizer).run(progress=False)
                method = Method(loss_name, make_loss(loss_name, train.num_joints), result.loss_params,
                                "sgd", config.alpha, "pretrained")
                ratio = overall(online_scores(model, method, pretrained, streams)) / alone
                print(f"| {loss_name} | {start} | {outer} | {ratio:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
