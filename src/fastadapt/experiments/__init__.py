"""The experiments, one module per paper figure or table, and THE one list of them (``registry``): the
learned-loss pipeline (``pipeline``), the two commands that read the user's data files (``user_data``),
and the papers' families ``lrmem/``, ``ml3/`` and ``rl/``. Only this package knows paper names."""
