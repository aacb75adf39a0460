"""Experiments of ML3 for reinforcement learning (paper sections 3.2, 4.1.2, 4.1.3, 4.2.3, 4.2.4;
Appendices A-C), as tasks of the one meta-trainer (:mod:`fastadapt.meta.trainer`), on the library in
:mod:`fastadapt.rl` (environments, rollouts, iLQR, PPO).

Each module has a frozen ``Config`` (``mbrl.ReacherConfig`` and ``mfrl.AntConfig`` are the other systems'
settings), ``quick(config)`` and ``run(config, directory, progress, log) -> metrics`` (figures,
``metrics.json``, ``report.md``). The command line finds them in :mod:`fastadapt.experiments.registry`:
``fastadapt rl NAME [--quick] [key=value ...]``.
"""
