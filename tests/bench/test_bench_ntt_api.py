"""Smoke test of benchmarks/bench_ntt.py's per-function table (issue 10: no out= vs out=).

The table's builder checks, before timing, that every function without out= gives the same
array as with out= and as the numba fallback; here it runs at a tiny n so that a broken
benchmark (or a public-API change it depends on) fails the fast suite instead of the next
measurement session.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ntt.py"


@pytest.fixture(scope="module")
def bench_ntt():
    spec = importlib.util.spec_from_file_location("bench_ntt_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_rows_cover_every_function_and_width(bench_ntt):
    rows = bench_ntt.api_rows((64,), repeats=2, sample_s=1e-5, progress=lambda msg: None)
    assert [(r["prime_bits"], r["function"]) for r in rows] == [
        (bits, f) for bits in bench_ntt.WIDTHS for f in bench_ntt.API_FUNCTIONS]
    for r in rows:
        assert r["out_us"] > 0 and r["no_out_us"] > 0
        assert r["no_out_over_out"] == pytest.approx(r["no_out_us"] / r["out_us"], rel=1e-2)
        assert r["meets_target"] is None  # n < 4096: outside the target's range
        assert r["shape"] == ([64] if r["function"] in ("ntt", "intt", "polymul")
                              else [2, bench_ntt.DATA_PRIMES, 64])


def test_target_verdict_at_4096(bench_ntt):
    rows = bench_ntt.api_rows((4096,), repeats=1, sample_s=1e-4, progress=lambda msg: None)
    for r in rows:
        assert r["meets_target"] is (r["no_out_over_out"] <= bench_ntt.NO_OUT_MAX_OVERHEAD)
