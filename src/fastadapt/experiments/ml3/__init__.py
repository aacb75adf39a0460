"""Experiments of "Meta Learning via Learned Loss" (ML3), one module per figure, all on the one
meta-trainer (:mod:`fastadapt.meta.trainer`): each module defines a task and a config.

Each module has a frozen ``Config`` (defaults: the paper's settings), ``quick(config)`` (a small version
for tests and a first look) and ``run(config, directory, progress, log) -> metrics``, which writes
figures, ``metrics.json`` and ``report.md`` into ``directory``. The command line finds them in
:mod:`fastadapt.experiments.registry`: ``fastadapt ml3 NAME [key=value ...]``.
"""
