"""he_ml.bench: workload parsing, cost model and recommendation, timing statistics, reports.

The recommendation logic is a pure function of measured per-operation costs, so it is
tested on synthetic measurements whose right answer is computed here by hand.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from he_ml.bench import (
    BenchConfig,
    BenchSettings,
    Measurement,
    Timing,
    estimate,
    measure,
    parse_workload,
    recommend,
    resolve_configs,
)
from he_ml.bench.report import format_bytes, format_seconds, markdown_table, to_document, write_plot
from he_ml.bench.timing import summarize, time_each, time_op
from he_ml.bench.workload import INFERENCE_DEPTH, Workload
from he_ml.errors import ParameterError


# --------------------------------------------------------------------------- helpers
def _t(seconds: float) -> Timing:
    return Timing(seconds, seconds, seconds, seconds, seconds, 5, 1)


def synthetic(scheme: str, preset: str, *, slots: int, ct_bytes: int, ctx_bytes: int,
              times: dict[str, float], security: int = 128, caps=("add", "mul_plain", "sum", "dot"),
              depth: int | None = None, reals: bool = True, ctx_bytes_rot: int | None = None,
              params: dict | None = None, insecure: bool = False) -> Measurement:
    """A Measurement with the given per-ciphertext costs (no scheme involved)."""
    m = Measurement(BenchConfig(scheme, preset, {}, insecure))
    m.slot_count = m.values_per_op = slots
    m.ciphertext_bytes = ct_bytes
    m.public_context_bytes = ctx_bytes
    m.public_context_bytes_after_ops = ctx_bytes_rot if ctx_bytes_rot is not None else ctx_bytes
    m.security_level = security
    m.capabilities = sorted(caps)
    m.max_depth = depth
    m.encodes_reals = reals
    m.scheme_parameters = dict(params or {})
    m.timings = {op: _t(s) for op, s in times.items()}
    if "mul" not in caps:
        m.unavailable["mul"] = "no ciphertext x ciphertext multiplication"
    return m


LATTICE_TIMES = {"keygen": 0.05, "encrypt": 4e-3, "decrypt": 2e-3, "add": 5e-5, "mul_plain": 1e-3,
                 "mul_scalar": 1e-3,
                 "mul": 1e-2, "sum": 0.05, "dot": 0.06, "serialize": 1e-3, "deserialize": 1e-3}
PAILLIER_TIMES = {"keygen": 5.0, "encrypt": 5e-3, "decrypt": 5e-3, "add": 2e-5, "mul_plain": 1e-3,
                  "mul_scalar": 1e-4,
                  "sum": 1e-3, "dot": 2e-3, "serialize": 5e-5, "deserialize": 5e-5}


@pytest.fixture
def lattice() -> Measurement:
    return synthetic("ckks", "sum", slots=4096, ct_bytes=300_000, ctx_bytes=1_000_000,
                     ctx_bytes_rot=10_000_000, times=LATTICE_TIMES,
                     caps=("add", "mul_plain", "mul", "sum", "dot"), depth=1)


@pytest.fixture
def paillier() -> Measurement:
    return synthetic("paillier", "3072", slots=64, ct_bytes=800, ctx_bytes=400, times=PAILLIER_TIMES)


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, expected", [
    ("sum:100x1000000", Workload("sum", 100, 1_000_000)),
    ("sum:100x1e6", Workload("sum", 100, 1_000_000)),
    ("sum:100x1M", Workload("sum", 100, 1_000_000)),
    (" SUM : 2k x 3.5k ", Workload("sum", 2_000, 3_500)),
    ("sum:5×7", Workload("sum", 5, 7)),
    ("dot:30", Workload("dot", 1, 30)),
    ("dot:30x1000", Workload("dot", 1000, 30)),
    ("inference:30x1000", Workload("inference", 1000, 30)),
    ("inference:784*1g", Workload("inference", 10**9, 784)),
])
def test_parse_valid_workloads(text, expected):
    w = parse_workload(text)
    assert (w.kind, w.vectors, w.length) == (expected.kind, expected.vectors, expected.length)
    assert w.text == text.strip()
    assert w.describe()


@pytest.mark.parametrize("text, fragment", [
    ("", "the workload is empty"),
    ("sum", "missing ':'"),
    ("mul:3x4", "unknown kind 'mul'"),
    ("sum:100", "sum needs CLIENTSxVALUES"),
    ("inference:30", "inference needs FEATURESxSAMPLES"),
    ("sum:0x5", "CLIENTS must be at least 1"),
    ("sum:1.5x10", "CLIENTS must be a whole number"),
    ("dot:-3", "counts must be positive numbers"),
    ("sum:10x1e13", "VALUES must be at most"),
    ("sum:axb", "counts must be positive numbers"),
    ("dot:3x4x5", "counts must be positive numbers"),
])
def test_parse_invalid_workloads_list_valid_forms(text, fragment):
    with pytest.raises(ParameterError) as info:
        parse_workload(text)
    msg = str(info.value)
    assert fragment in msg
    assert repr(text.strip()) in msg
    for form in ("sum:CLIENTSxVALUES", "dot:FEATURES", "dot:FEATURESxSAMPLES", "inference:FEATURESxSAMPLES"):
        assert form in msg


# --------------------------------------------------------------------------- cost model
def test_sum_estimate_matches_hand_computation(lattice):
    (e,) = estimate(parse_workload("sum:100x1e6"), lattice)
    k = math.ceil(1_000_000 / 4096)  # 245 ciphertexts per client vector
    assert k == 245
    expected = (100 * k * 4e-3            # clients encrypt
                + (100 * k + k) * 1e-3    # serialize uploads and the result
                + (100 * k + k) * 1e-3    # deserialize them
                + 99 * k * 5e-5           # server adds
                + k * 2e-3)               # key holder decrypts
    assert e.feasible
    assert e.total_seconds == pytest.approx(expected)
    assert e.ciphertexts == 100 * k
    assert e.ciphertext_bytes == (100 * k + k) * 300_000
    assert e.context_bytes == 1_000_000  # no rotations needed: the small public context
    assert e.op_counts == {"encrypt": 24_500, "serialize": 24_745, "deserialize": 24_745,
                           "add": 24_255, "decrypt": 245}


def test_traffic_counts_blob_overhead_once_per_vector(paillier):
    paillier.ciphertext_bytes, paillier.ciphertext_marginal_bytes = 876, 768  # 108-byte header
    assert paillier.blob_overhead_bytes == 108
    assert paillier.ciphertext_bytes_per_value == 768 / 64
    (e,) = estimate(parse_workload("sum:10x6400"), paillier)  # 100 ciphertexts per vector
    assert e.ciphertext_bytes == 11 * (108 + 100 * 768)  # 10 uploads + 1 result


def test_recommend_sum_picks_fastest_and_smallest(lattice, paillier):
    rec = recommend(parse_workload("sum:100x1e6"), [lattice, paillier])
    # lattice: ~149 s, 7.4 GB; paillier: 15,625 ct/vector -> ~7,900 s but 800-byte ciphertexts -> 1.26 GB
    assert rec.fastest.label == "ckks/sum"
    assert rec.smallest.label == "paillier/3072"
    pail = next(e for e in rec.estimates if e.scheme == "paillier")
    assert pail.ciphertexts == 100 * 15_625
    assert pail.total_bytes == (100 * 15_625 + 15_625) * 800 + 400
    assert any("faster than" in n for n in rec.notes)
    assert any("smaller than" in n for n in rec.notes)
    doc = rec.to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["fastest"] == "ckks/sum" and doc["smallest"] == "paillier/3072"


def test_recommend_skips_insecure_candidates_unless_nothing_else_fits(lattice):
    fast_but_weak = synthetic("paillier", "insecure-1024", slots=64, ct_bytes=10, ctx_bytes=10,
                              times={k: v / 1000 for k, v in PAILLIER_TIMES.items()}, security=80,
                              insecure=True)
    rec = recommend(parse_workload("sum:10x1000"), [lattice, fast_but_weak])
    assert rec.fastest.label == "ckks/sum" and rec.smallest.label == "ckks/sum"
    only_weak = recommend(parse_workload("sum:10x1000"), [fast_but_weak])
    assert only_weak.fastest is not None and only_weak.fastest.scheme == "paillier"
    assert any("no candidate reaches 128-bit" in n for n in only_weak.notes)


def test_sum_beyond_declared_additions_is_infeasible(paillier):
    paillier.scheme_parameters = {"max_additions": 50}
    (e,) = estimate(parse_workload("sum:100x1000"), paillier)
    assert not e.feasible and "maximum of 50 additions" in e.reason
    (ok,) = estimate(parse_workload("sum:50x1000"), paillier)
    assert ok.feasible


def test_dot_prefers_column_layout_for_many_samples(lattice):
    row, col = estimate(parse_workload("dot:30x1000"), lattice)
    assert (row.layout, col.layout) == ("row", "column")
    # row: 1000 samples x (encrypt + dot + 2 serialize + 2 deserialize + decrypt)
    assert row.total_seconds == pytest.approx(1000 * (4e-3 + 0.06 + 2e-3 + 2e-3 + 2e-3))
    assert row.context_bytes == 10_000_000  # rotation keys travel with the public context
    # column: 30 feature vectors of 1000 samples fit one ciphertext each
    assert col.total_seconds == pytest.approx(30 * 4e-3 + 30 * 1e-3 + 29 * 5e-5 + 31 * 2e-3 + 2e-3)
    assert col.context_bytes == 1_000_000
    rec = recommend(parse_workload("dot:30x1000"), [lattice])
    assert rec.fastest.name == rec.smallest.name == "ckks/sum [column]"
    assert rec.fastest.total_seconds == pytest.approx(col.total_seconds)


def test_single_dot_uses_row_layout_only(lattice, paillier):
    ests = estimate(parse_workload("dot:30"), lattice)
    assert [e.layout for e in ests] == ["row"]
    rec = recommend(parse_workload("dot:30"), [lattice, paillier])
    # paillier dot: 1 ct -> encrypt 5 ms + dot 2 ms + 4 x 50 us + decrypt 5 ms = 12.2 ms < 68 ms
    assert rec.fastest.scheme == "paillier"
    assert rec.fastest.total_seconds == pytest.approx(5e-3 + 2e-3 + 4 * 5e-5 + 5e-3)


def test_inference_requirements(lattice, paillier):
    deep = synthetic("ckks", "inference", slots=8192, ct_bytes=900_000, ctx_bytes=3_000_000,
                     times={k: 2 * v for k, v in LATTICE_TIMES.items()},
                     caps=("add", "mul_plain", "mul", "sum", "dot"), depth=4)
    integers = synthetic("bfv", "inference", slots=8192, ct_bytes=500_000, ctx_bytes=2_000_000,
                         times=LATTICE_TIMES, caps=("add", "mul_plain", "mul", "sum", "dot"), depth=4,
                         reals=False)
    w = parse_workload("inference:30x10000")
    (shallow,) = estimate(w, lattice)
    assert not shallow.feasible and f"depth {INFERENCE_DEPTH}" in shallow.reason
    (additive,) = estimate(w, paillier)
    assert not additive.feasible and "ciphertext × ciphertext" in additive.reason
    (ints,) = estimate(w, integers)
    assert not ints.feasible and "integers only" in ints.reason
    (ok,) = estimate(w, deep)
    k = math.ceil(10_000 / 8192)
    assert ok.feasible and ok.op_counts["mul"] == 2 * k and ok.op_counts["mul_scalar"] == 30 * k + 2 * k
    rec = recommend(w, [lattice, paillier, integers, deep])
    assert rec.fastest.name == rec.smallest.name == "ckks/inference [column]"
    assert rec.fastest.total_seconds == pytest.approx(ok.total_seconds)


def test_nothing_fits_is_reported(paillier):
    rec = recommend(parse_workload("inference:3x3"), [paillier])
    assert rec.fastest is None and rec.smallest is None
    assert any("no measured scheme" in n for n in rec.notes)


def test_missing_timing_makes_estimate_infeasible(lattice):
    del lattice.timings["add"]
    lattice.unavailable["add"] = "broken"
    (e,) = estimate(parse_workload("sum:3x3"), lattice)
    assert not e.feasible and e.reason == "needs add: broken"


# --------------------------------------------------------------------------- configs
def test_resolve_configs_defaults_and_errors():
    quick = resolve_configs(quick=True)
    assert [c.scheme for c in quick] == ["ckks", "bfv", "paillier"]
    assert not any(c.insecure for c in quick)
    assert [c.preset for c in quick] == ["sum", "sum", "sum"]
    cfgs = resolve_configs(["paillier", "ckks"], ["sum", "insecure-1024"])
    assert [(c.scheme, c.preset) for c in cfgs] == [
        ("paillier", "sum"), ("paillier", "insecure-1024"), ("ckks", "sum")]
    assert cfgs[0].params == {"key_bits": 3072, "preset": "sum"} and not cfgs[0].insecure
    assert cfgs[1].insecure and "INSECURE" in cfgs[1].label
    assert cfgs[1].params == {"key_bits": 1024, "preset": "general", "allow_insecure": True}
    (small,) = resolve_configs(["paillier"], ["general-2048"])
    assert small.params == {"key_bits": 2048, "preset": "general"}
    with pytest.raises(ParameterError, match="--scheme must be one of ckks, bfv, paillier; got 'rsa'"):
        resolve_configs(["rsa"])
    with pytest.raises(ParameterError, match="--preset 'huge' is not offered.*ckks: sum"):
        resolve_configs(["ckks"], ["huge"])


# --------------------------------------------------------------------------- timing
def test_summarize_quartiles():
    t = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (t.median, t.q1, t.q3, t.min, t.max, t.samples) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert t.spread == pytest.approx((4 - 2) / 2 / 3)
    assert t.scaled(0.5).median == 1.5
    assert Timing.from_dict(t.to_dict()) == t


def test_time_op_loops_fast_calls_and_returns_warmup_result():
    calls = []
    t, result = time_op(lambda: calls.append(1) or len(calls), repeats=4, min_sample_s=0.002, budget_s=1.0)
    assert result == 1  # the warm-up call's result
    assert t.samples == 4 and t.inner > 1
    assert t.first is not None and t.first >= 0
    assert len(calls) == 1 + 4 * t.inner


def test_time_op_respects_budget_but_keeps_three_samples():
    t, _ = time_op(lambda: time.sleep(0.01), repeats=50, min_sample_s=0.0, budget_s=0.05)
    assert 3 <= t.samples < 50
    assert t.median >= 0.009


def test_time_each_measures_first_call():
    seq = iter(range(100))
    t, first = time_each(lambda: next(seq), repeats=3, budget_s=10.0)
    assert first == 0 and t.samples == 3


def test_time_each_runs_expensive_calls_once():
    calls = []
    t, _ = time_each(lambda: calls.append(time.sleep(0.03)), repeats=5, budget_s=0.05)
    assert len(calls) == 1 and t.samples == 1 and t.median >= 0.029


# --------------------------------------------------------------------------- reports
def test_formatting():
    assert format_seconds(0.00123) == "1.23 ms"
    assert format_seconds(2.5e-7) == "250 ns"
    assert format_seconds(12.0) == "12 s"
    assert format_seconds(4191.0) == "69.8 min"
    assert format_seconds(22364.0) == "6.21 h"
    assert format_seconds(None) == "—"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024 ** 3) == "3 GiB"


def test_measurement_round_trip_and_document(lattice, paillier):
    lattice.checks = {"encrypt": True, "sum": False}
    back = Measurement.from_dict(json.loads(json.dumps(lattice.to_dict())))
    assert back.to_dict() == lattice.to_dict()
    assert back.per_value("encrypt").median == pytest.approx(4e-3 / 4096)
    assert back.per_value("keygen") is None
    doc = to_document([lattice, paillier], BenchSettings.quick(), quick=True, isolated=True)
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["schema"] == "he_ml.bench/1"
    assert doc["results"][1]["operations"]["mul"]["unavailable"]
    md = markdown_table([lattice, paillier])
    assert md.splitlines()[0] == "| operation | ckks/sum | paillier/3072 |"
    assert "| multiply (ct × ct) (per ciphertext) | 10 ms ±0% (2.44 µs/value) | n/a |" in md


def test_results_table_marks_wrong_unavailable_failed_and_single_runs(lattice, paillier):
    from rich.console import Console

    from he_ml.bench.report import results_table

    lattice.checks = {"sum": False, "encrypt": True}
    lattice.failures["dot"] = "RuntimeError: boom"
    del lattice.timings["dot"]
    paillier.timings["keygen"] = Timing(5.0, 5.0, 5.0, 5.0, 5.0, 1, 1)
    console = Console(record=True, width=200, color_system=None)
    console.print(results_table([lattice, paillier]))
    text = console.export_text()
    sum_row = next(line for line in text.splitlines() if "sum of all slots" in line)
    assert "50 ms" in sum_row and "⚠" in sum_row
    dot_row = next(line for line in text.splitlines() if "dot with plaintext" in line)
    assert "failed" in dot_row
    mul_row = next(line for line in text.splitlines() if "multiply (ct × ct)" in line)
    assert mul_row.rstrip(" │").endswith("n/a")
    keygen_row = next(line for line in text.splitlines() if "key generation" in line)
    assert "5 s (1 run)" in keygen_row


def test_plot_is_written(tmp_path, lattice, paillier):
    path = write_plot(tmp_path / "sub" / "bench.png", [lattice, paillier])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


# --------------------------------------------------------------------------- real measurement
def test_isolated_run_reports_errors_of_the_child():
    """A configuration rejected inside the subprocess comes back as an error, not an exception."""
    pytest.importorskip("he_ml.schemes.paillier")
    from he_ml.bench import run_benchmarks

    bad = BenchConfig("paillier", "1000", {"key_bits": 1000})  # insecure without the opt-in
    events = []
    (m,) = run_benchmarks([bad], BenchSettings.quick(), progress=lambda i, k: events.append((i, k)))
    assert m.error_type == "InsecureParametersError"
    assert "1000" in m.error and not m.timings
    assert events[-1] == (0, "done")



def test_measure_real_scheme_in_process():
    """One real scheme end to end (insecure 1024-bit Paillier keeps this to a second or two)."""
    pytest.importorskip("he_ml.schemes.paillier")
    cfg = resolve_configs(["paillier"], ["insecure-1024"])[0]
    settings = BenchSettings(repeats=3, min_sample_s=0.001, op_budget_s=0.1, keygen_budget_s=0.1)
    seen = []
    m = measure(cfg, settings, progress=seen.append)
    assert m.error is None and not m.failures
    assert seen[0] == "keygen" and seen[-1] == "done"
    assert all(m.checks.values()) and set(m.checks) >= {"encrypt", "decrypt", "add", "sum", "dot"}
    assert "mul" in m.unavailable and "mul" not in m.timings
    assert m.slot_count == m.values_per_op > 1
    assert m.ciphertext_bytes > 0 and m.public_context_bytes > 0
    assert 0 < m.ciphertext_marginal_bytes <= m.ciphertext_bytes
    assert m.ciphertext_bytes_per_value == m.ciphertext_marginal_bytes / m.slot_count
    assert np.isfinite([t.median for t in m.timings.values()]).all()
