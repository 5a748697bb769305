"""Wall-clock timing with medians and quartiles.

An operation is timed in ``repeats`` samples; each sample runs the operation
``inner`` times in a row and records the mean, so that operations of a few
microseconds (a CKKS addition) are not drowned in timer resolution and call
noise. ``inner`` is calibrated from one warm-up call so that a sample lasts at
least ``min_sample_s``. The warm-up call also triggers lazy set-up (TenSEAL's
Galois keys, caches) that would otherwise inflate the first sample, and its
result is handed back so the caller can check it against numpy.

Times are wall-clock (:func:`time.perf_counter`): SEAL may use several threads,
and what a user waits for is wall time.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["Timing", "summarize", "time_op", "time_each"]


@dataclass(frozen=True)
class Timing:
    """Summary of timing samples, in seconds per call.

    Attributes
    ----------
    median, q1, q3, min, max : float
        Median, first and third quartile, extremes of the samples.
    samples : int
        Number of samples (repeats) behind the summary.
    inner : int
        Calls per sample (each sample is the mean over ``inner`` back-to-back calls).
    first : float or None
        Duration of the warm-up call, which includes lazy set-up such as the
        rotation keys TenSEAL creates on the first ``sum``/``dot``.
    """

    median: float
    q1: float
    q3: float
    min: float
    max: float
    samples: int
    inner: int = 1
    first: float | None = None

    @property
    def spread(self) -> float:
        """Half the interquartile range relative to the median (0.02 means ±2 %)."""
        if self.median <= 0:
            return 0.0
        return (self.q3 - self.q1) / 2.0 / self.median

    def scaled(self, factor: float) -> "Timing":
        """The same summary with every time multiplied by ``factor`` (e.g. per value)."""
        return Timing(self.median * factor, self.q1 * factor, self.q3 * factor,
                      self.min * factor, self.max * factor, self.samples, self.inner,
                      None if self.first is None else self.first * factor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Timing":
        return cls(**{k: d[k] for k in ("median", "q1", "q3", "min", "max", "samples", "inner")},
                   first=d.get("first"))


def summarize(samples: list[float], inner: int = 1, first: float | None = None) -> Timing:
    """Median, quartiles and extremes of a non-empty list of per-call times."""
    if not samples:
        raise ValueError("summarize needs at least one sample")
    a = np.asarray(samples, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Timing(float(med), float(q1), float(q3), float(a.min()), float(a.max()), int(a.size), int(inner),
                  first)


def time_op(fn: Callable[[], Any], *, repeats: int, min_sample_s: float,
            budget_s: float) -> tuple[Timing, Any]:
    """Time ``fn()``: one warm-up call, then ``repeats`` samples of ``inner`` calls.

    Parameters
    ----------
    fn : callable
        The operation, without arguments.
    repeats : int
        Wanted number of samples (>= 1). Fewer are taken when they would exceed
        ``budget_s``, but never fewer than ``min(repeats, 3)``.
    min_sample_s : float
        Minimum duration of one sample; sets ``inner``.
    budget_s : float
        Soft cap on the total time spent on the samples.

    Returns
    -------
    (Timing, result of the warm-up call)
        ``Timing.first`` is the warm-up call's duration.
    """
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    per_call = max(first, 1e-7)
    inner = max(1, math.ceil(min_sample_s / per_call))
    affordable = int(budget_s // (per_call * inner)) if per_call * inner > 0 else repeats
    n = max(min(repeats, 3), min(repeats, affordable))
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return summarize(samples, inner, first), result


def time_each(fn: Callable[[], Any], *, repeats: int, budget_s: float) -> tuple[Timing, Any]:
    """Time calls that are too expensive to repeat freely (key generation).

    The first call is a sample (key generation has no warm-up to discard: its
    first run is what users pay). More calls are made only when at least
    ``min(repeats, 3)`` samples fit in ``budget_s`` (a median of two samples says
    nothing), and then while fewer than ``repeats`` exist and the budget lasts. A
    3072-bit Paillier key generation therefore runs once. Returns the summary and
    the result of the first call.
    """
    t_start = time.perf_counter()
    result = fn()
    samples = [time.perf_counter() - t_start]
    if samples[0] * min(repeats, 3) <= budget_s:
        while len(samples) < repeats and time.perf_counter() - t_start + samples[0] <= budget_s:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return summarize(samples), result
