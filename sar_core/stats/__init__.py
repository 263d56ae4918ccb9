"""Statistics: t quantiles, fault-level and seed-level intervals, verdicts, ``Summary``.

NumPy only (no torch, no scipy), so the CLI, the pages and the study tables share one rule.
"""
