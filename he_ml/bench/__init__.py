"""Benchmarking of the schemes behind ``he-ml bench``: measure, extrapolate, recommend, report.

Reusable from Python::

    from he_ml.bench import resolve_configs, BenchSettings, run_benchmarks, parse_workload, recommend
    results = run_benchmarks(resolve_configs(["ckks"], ["sum"]), BenchSettings.quick())
    rec = recommend(parse_workload("sum:100x1e6"), results)
    rec.fastest.name, rec.fastest.total_seconds

Modules: `configs` (what to measure), `timing` (medians/IQR), `measure` (one
configuration in-process), `runner` (fresh subprocess per configuration, peak
memory, progress), `workload` (``--workload`` parsing, cost model,
recommendation), `report` (tables, JSON, plot), `sysinfo` (``he-ml info``).
"""
from __future__ import annotations

from .configs import DEFAULT_PRESETS, PRESETS, QUICK_PRESETS, BenchConfig, resolve_configs
from .measure import OPERATIONS, BenchSettings, Measurement, measure
from .runner import MEMORY_METHOD, run_benchmarks
from .timing import Timing
from .workload import (
    EXTRAPOLATION_NOTE,
    WORKLOAD_FORMS,
    Estimate,
    Recommendation,
    Workload,
    estimate,
    parse_workload,
    recommend,
)

__all__ = [
    "BenchConfig",
    "BenchSettings",
    "DEFAULT_PRESETS",
    "EXTRAPOLATION_NOTE",
    "Estimate",
    "MEMORY_METHOD",
    "Measurement",
    "OPERATIONS",
    "PRESETS",
    "QUICK_PRESETS",
    "Recommendation",
    "Timing",
    "WORKLOAD_FORMS",
    "Workload",
    "estimate",
    "measure",
    "parse_workload",
    "recommend",
    "resolve_configs",
    "run_benchmarks",
]
