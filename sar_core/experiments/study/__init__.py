"""Studies: a declarative spec (TOML) of tasks x methods x seeds x fault settings, expanded into
training, sharpness and campaign tasks (and double-win report tasks), run on a local process pool
or on Ray, cached by content hash (an interrupted study resumes), written as tidy tables and one
self-contained HTML report.

Modules: ``spec`` and ``spec_tables`` (parse / validate), ``plan`` (tasks and their graph),
``worker`` (what a task runs), ``executors`` (local pool, Ray), ``cache`` (the study directory),
``results`` (tables), ``summary`` (cross-seed statistics), ``double_win`` (the double-win
report's tables and README blocks), ``report`` (HTML), ``run`` (``run_study``); the ``study``
command is ``sar_core.cli.study``. Nothing heavy is imported here.
"""
