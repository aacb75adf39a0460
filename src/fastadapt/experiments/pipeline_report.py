"""The markdown report of a pipeline run (report.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.report.markdown import phase_table_markdown


def _ratio(r: dict) -> str:
    return f"{r['ratio']:.3g} +- {r['seed_std']:.2g}"


def pipeline_report(metrics: dict, figures: list[Path]) -> str:
    config = metrics["config"]
    out = [
        f"# fastadapt run: {config['data']} data" + (" (a simulated reality gap)" if config["data"] == "sim2real" else ""),
        "",
        f"Finished in {metrics['seconds']:.0f} s. MSE is in normalised torque units (1.0 = predicting the",
        "meta-train mean torque). Online MSE is measured on each batch of "
        f"{config['online']['batch_size']} samples *before* the model updates on it.",
        "",
    ]
    if "simulated_reality_gap" in metrics:
        gap = metrics["simulated_reality_gap"]
        out += [
            "Sim2Real on a **simulated reality gap** (not real hardware): the streams and the losses without a suffix "
            "come from a gap robot, the losses marked '(nominal sim)' were meta-trained on the nominal simulated "
            "robot. The gap robot differs from the nominal one in exactly these ways:",
            "",
            f"- link masses and inertias x {', '.join(f'{v:.3g}' for v in gap['mass_scale'])};",
            f"- joint friction with stiction: Coulomb {', '.join(f'{v:.3g}' for v in gap['coulomb'])} Nm, breakaway "
            f"{', '.join(f'{v:.3g}' for v in gap['stiction'])} Nm, viscous {', '.join(f'{v:.3g}' for v in gap['viscous'])} Nm s/rad;",
            f"- a {gap['delay_ticks']}-tick torque delay;",
            f"- torque-sensor noise of std {gap['torque_noise']:g} Nm and offset {', '.join(f'{v:.3g}' for v in gap['torque_offset'])} Nm.",
            "",
        ]
    out += [
        "## Meta-training (Fig. 3 a, b)",
        "",
        ("The loss kept is the one of the evaluation epoch with the lowest meta-train MSE (selected epoch)."
         if config["meta"].get("keep", "best") == "best" else
         "The loss kept is the last epoch's (meta.keep=final, the papers' protocol).")
        + " The last two columns score the final epoch's loss of the same seed, kept or not."
        + (f" Online meta-objective: the evaluations stream {config['meta']['eval_steps']} batches of "
           f"{config['meta']['stream_batch']} samples and report the mean online MSE."
           if config["meta"].get("update") == "online" else ""),
        "",
        "| loss | epochs | selected epoch | MSE after training, meta-train | meta-test | plain MSE loss: meta-train "
        "| meta-test | final epoch's loss: meta-train | meta-test |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["meta_training"].items():
        if not m["eval"]:
            continue
        chosen = m["eval"][m["eval_epoch"].index(m["selected_epoch"])] if m["selected_epoch"] else m["eval"][-1]
        best, base, final = m["best_seed"], m["baseline"], m["eval"][-1]
        out.append(
            f"| {name} | {m['epochs']} | {m['selected_epoch']} | {chosen['meta-train']['mean'][best]:.4g}"
            f" | {chosen['meta-test']['mean'][best]:.4g}"
            f" | {base['meta-train']['mean']:.4g} | {base['meta-test']['mean']:.4g}"
            f" | {final['meta-train']['mean'][best]:.4g} | {final['meta-test']['mean'][best]:.4g} |"
        )
    seeds = {name: len(m["eval"][-1]["meta-train"]["mean"]) for name, m in metrics["meta_training"].items() if m["eval"]}
    if any(n > 1 for n in seeds.values()):
        out += ["", "Every seed's final-epoch loss (mean +- std over the meta-training seeds; the table above is the "
                "seed kept, chosen by its meta-train score):", "",
                "| loss | seeds | meta-train | meta-test |", "|---|---|---|---|"]
        for name, m in metrics["meta_training"].items():
            if name in seeds:
                final = m["eval"][-1]
                out.append(f"| {name} | {seeds[name]} | {np.mean(final['meta-train']['mean']):.4g} +- "
                           f"{np.std(final['meta-train']['mean']):.2g} | {np.mean(final['meta-test']['mean']):.4g} +- "
                           f"{np.std(final['meta-test']['mean']):.2g} |")
    sine = metrics.get("sine_stream")
    if sine:
        out += ["", "## Online learning on the meta-test trajectories (Fig. 5)", "",
                f"Fresh models learn on each of the {sine['trajectories']} meta-test trajectories in order, "
                f"{sine['batches']} batches of {sine['batch_size']} consecutive samples, one gradient step per batch; "
                "the MSE on each batch is recorded before the step on it. Mean over trajectories and batches; "
                "+- the spread over model seeds. The tuned baselines' rates were chosen on the meta-train "
                "trajectories played the same way; the upper bound's on these streams.", "",
                "| method | mean online MSE | / SGD tuned on meta-train |", "|---|---|---|"]
        for name, m in sine["methods"].items():
            out.append(f"| {name} | {m['overall']:.4g} +- {np.std(m['per_seed']):.2g} "
                       f"| {m['vs_sgd_tuned_on_meta_train']:.3g} |")
    relative = metrics["relative_to_baselines"]
    anchor = relative["best_anchor"]
    out += ["", "## Online adaptation from a random model (Table I format; mean and std over trials x seeds)", ""]
    out.append(phase_table_markdown(metrics["online"]["from scratch"]))
    out += ["", "Relative to the baselines (mean online MSE / baseline's; < 1 is better; +- the spread of the ratio "
            "over model seeds). **The headline is the first column**: the best anchor, every setting of which was "
            "chosen on meta-train data (SGD and Adam on MSE, RLS on random Fourier features, linear RLS, ALPaCA: a "
            "Bayesian last layer on features meta-trained on the meta-train data), here "
            f"*{anchor['from scratch']}*. 'Best' SGD and Adam had their rates tuned on this very stream: upper "
            "bounds, not a choice a user could make.", "",
            "| method | / best anchor (fair) | / best SGD (upper bound) | / best Adam (upper bound) "
            "| / the better of the two |", "|---|---|---|---|---|"]
    for name, r in relative["from scratch"].items():
        out.append(f"| {name} | {_ratio(r['vs_best_anchor'])} | {r['vs_best_sgd']:.3g} | {r['vs_best_adam']:.3g} "
                   f"| {_ratio(r['vs_best_tuned'])} |")
    out += ["", "## The practitioner's protocol: a pretrained model adapted online", ""]
    out.append(phase_table_markdown(metrics["online"]["pretrained"]))
    out += ["", "The anchors here: pretrained + SGD / Adam, RLS on the pretrained model's residual and an RLS head on "
            "its last hidden layer (settings chosen on the meta-train validation stream), and ALPaCA (meta-trained "
            f"on the meta-train data, as a pretrained model is). The best: *{anchor['pretrained']}*.",
            "", "| method | / best anchor (fair) | / the better of pretrained + SGD or Adam tuned on this stream "
            "(upper bound) | / pretrained, not adapted |", "|---|---|---|---|"]
    for name, r in relative["pretrained"].items():
        out.append(f"| {name} | {_ratio(r['vs_best_anchor'])} | {_ratio(r['vs_best_tuned'])} | {_ratio(r['vs_not_adapted'])} |")
    for protocol, best in relative.get("best_learned", {}).items():
        out.append(f"\nBest learned loss {protocol}: {best['method']}, {_ratio(best['vs_best_anchor'])} x the best "
                   f"anchor, {_ratio(best['vs_best_tuned'])} x the better baseline tuned on the stream.")
    weights = metrics.get("loss_weights", {})
    if weights:
        out += ["", "## What the learned weights show (Fig. 7, 8)", ""]
        if "structured" in weights:
            out.append("Structured loss, phi_j per joint (1 at the start): "
                       + ", ".join(f"{w:.3g}" for w in weights["structured"]) + ".")
        if "state-dependent" in weights:
            sd = weights["state-dependent"]
            where = f"along '{sd['phase']}'" if sd["phase"] else "along every streamed log"
            out += ["", f"State-dependent loss, phi_j(q, qd) {where} ({sd['samples']} samples):", "",
                    "| joint | mean | std | min | max | corr(phi_j, q_j) |", "|---|---|---|---|---|---|"]
            for j in range(len(sd["mean"])):
                out.append(f"| {j + 1} | {sd['mean'][j]:.3g} | {sd['std'][j]:.2g} | {sd['min'][j]:.3g} | "
                           f"{sd['max'][j]:.3g} | {sd['corr_with_q'][j]:.2f} |")
    out += ["", "## Figures", ""]
    out += [f"![{f.stem}]({f.name})" for f in figures]
    return "\n".join(out) + "\n"
