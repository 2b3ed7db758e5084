"""Hydra multirun support: readable sweep folders, the end-of-sweep summary table, the job's context.

* :mod:`neo.sweeps.dirnames` - the ``neo.dirname`` resolver naming each sweep point's folder;
* :mod:`neo.sweeps.job` - what a task knows about its Hydra job (multirun?, overrides, per-point run name);
* :mod:`neo.sweeps.table` - rows from a sweep folder's run folders, written as CSV + Markdown;
* :mod:`neo.sweeps.callback` - the Hydra ``Callback`` that writes and prints the table.

Nothing here imports torch or Lightning: the callback runs in the process that launches the sweep.
"""
