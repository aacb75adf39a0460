"""Experiments of "Online Learning of a Memory for Learning Rates", one module per figure/table.

Each module has a frozen ``Config`` (defaults: the paper's settings), ``quick(config)`` (a small
version for tests and a first look) and ``run(config, directory, progress, log) -> metrics``, which
writes figures, ``metrics.json`` and ``report.md`` into ``directory``. The command line finds them in
:mod:`fastadapt.experiments.registry`: ``fastadapt lrmem NAME [key=value ...]``.
"""
