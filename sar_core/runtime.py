"""Process-wide runtime settings, chosen on purpose in one documented place.

torch's default intra-op thread count is the number of cores. The models of this project are
small (a few thousand to a few hundred thousand weights), so one thread is fastest, and on a
busy machine the default was measured 10-20x slower than one thread (threads fighting for cores).
Nothing here runs on import: the CLI calls :func:`configure_threads` once at start for commands
that use torch; the dashboard and the benchmarks call it the same way.
"""

from __future__ import annotations

import os

ENV_VAR = "SAR_NUM_THREADS"
DEFAULT_THREADS = 1  # small models: one intra-op thread (see the module docstring)
MAX_THREADS = 1024


def resolve_threads(n: int | None = None) -> int:
    """The thread count to use: ``n`` if given, else $SAR_NUM_THREADS, else DEFAULT_THREADS."""
    source = "threads"
    if n is None:
        text = os.environ.get(ENV_VAR, "").strip()
        if not text:
            return DEFAULT_THREADS
        source = ENV_VAR
        try:
            n = int(text)
        except ValueError:
            raise ValueError(
                f"Invalid {source}={text!r}: must be an integer in [1, {MAX_THREADS}]"
            ) from None
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"Invalid {source}={n!r}: must be an integer in [1, {MAX_THREADS}]")
    return n


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count (``n``, else $SAR_NUM_THREADS, else 1); returns it.

    Call it once at program start, before torch does parallel work. Inter-op threads are left
    alone: torch allows setting them only once per process, and nothing here uses them.
    """
    threads = resolve_threads(n)
    import torch  # here, not at module level: importing sar_core.runtime must stay instant

    torch.set_num_threads(threads)
    return threads
