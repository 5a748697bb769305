"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""
from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """Wall (``perf_counter``) and CPU (``process_time``) seconds of a ``with`` block.

    CPU time is what the scripts compare: on a shared 2-core machine it is far less disturbed
    by other processes than wall time, which is recorded alongside.
    """

    def __enter__(self) -> "Clock":
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
