"""Studies: a declarative spec (TOML) of tasks x methods x seeds x fault settings, expanded into
training, sharpness and campaign tasks, run on a local process pool or on Ray, cached by content
hash (an interrupted study resumes), written as tidy tables and one self-contained HTML report.

Modules: ``spec`` (parse / validate), ``plan`` (tasks and their graph), ``worker`` (what a task
runs), ``executors`` (local pool, Ray), ``cache`` (the study directory), ``results`` (tables),
``report`` (HTML), ``run`` (``run_study``), ``cli`` (the ``study`` command). Nothing heavy is
imported here.
"""
