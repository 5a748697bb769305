"""`he-ml demo` and `he-ml bench` at 80 columns: nothing truncated, no zero-width column.

Rendered for real: the demo and a workload recommendation run as subprocesses with
``COLUMNS=80`` (what a user's terminal gives them); the many-configuration results table is
rendered with ``rich.console.Console(width=80)`` from measurements of known values.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from he_ml.bench import BenchConfig, Measurement, Timing
from he_ml.bench.measure import OPERATIONS
from he_ml.bench.report import results_tables

WIDTH = 80
ELLIPSES = ("…", "...")


def _run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS=str(WIDTH), NO_COLOR="1", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "he_ml.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _assert_fits(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= WIDTH, f"line of {len(line)} columns: {line!r}"
        for mark in ELLIPSES:
            assert mark not in line, f"truncated cell: {line!r}"
        # a zero-width column shows as two column borders with nothing between them
        assert "││" not in line and "┃┃" not in line, f"zero-width column: {line!r}"


def _cells(text: str) -> str:
    """All table text with borders and line breaks removed (to find wrapped values)."""
    for ch in "│┃┏┓┗┛┡┩━─┼╇┳┻┠┨╭╮╰╯├┤┬┴└┘┌┐":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def _columns(text: str) -> list[str]:
    """Each table column's cell text, wrapped lines joined (rows of the first table only)."""
    cols: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("│") and line.endswith("│"):
            cells = line.strip("│").split("│")
            while len(cols) < len(cells):
                cols.append([])
            for k, cell in enumerate(cells):
                cols[k].append(cell.strip())
        elif cols and line.startswith("└"):
            break
    return [" ".join(" ".join(c).split()) for c in cols]


def test_demo_at_80_columns_shows_every_value_whole(tmp_path):
    out_json = tmp_path / "demo.json"
    result = _run_cli("demo", "--json", str(out_json))
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_fits(result.stdout)
    columns = _columns(result.stdout)
    rows = json.loads(out_json.read_text())
    assert [r["scheme"] for r in rows] == ["ckks", "bfv", "paillier"]
    assert len(columns) == 1 + len(rows) and all(columns)
    for r, column in zip(rows, columns[1:]):
        # every parameter, e.g. "q bits=42, 36, 36, 36, 42", survives (wrapped at spaces at most)
        for part in r["parameters"].split("; "):
            assert part in column, (part, column)
        assert f"{r['encrypted_accuracy']:.1%}" in column


def _measurement(scheme: str, preset: str, seconds: float) -> Measurement:
    m = Measurement(BenchConfig(scheme, preset, {}, False))
    m.slot_count = m.values_per_op = 4096
    m.security_level = 128
    m.ciphertext_bytes = 250_000
    m.public_context_bytes = m.public_context_bytes_after_ops = 400_000
    # "195 ms (1 run)"-style cells for one sample, "2.78 ms ±4%" for several, plus per-value lines
    m.timings = {op.key: Timing(seconds, seconds * 0.9, seconds * 1.1, seconds * 0.8, seconds * 1.3,
                                1 if op.key == "keygen" else 5, 1)
                 for op in OPERATIONS}
    return m


def test_bench_table_with_many_configurations_splits_instead_of_truncating():
    configs = [("ckks", "sum", 0.0123), ("ckks", "inference", 0.0456), ("bfv", "sum", 0.0021),
               ("paillier", "general", 0.195), ("paillier", "sum", 0.000678)]
    ms = [_measurement(*c) for c in configs]
    tables = results_tables(ms, title="he-ml bench", width=WIDTH)
    assert len(tables) == 2  # 3 + 2 configurations
    console = Console(width=WIDTH, record=True, color_system=None)
    for t in tables:
        console.print(t)
    text = console.export_text()
    _assert_fits(text)
    for scheme, preset, _ in configs:
        assert f"{scheme}/{preset}" in text
    assert "195 ms (1 run)" in text  # one sample: the cell stays on one line
    assert "first sum() call" in text
    # wide terminals keep one table
    assert len(results_tables(ms, title="he-ml bench", width=200)) == 1


@pytest.mark.slow
def test_bench_workload_recommendation_at_80_columns():
    result = _run_cli("bench", "--quick", "--in-process", "--scheme", "paillier",
                      "--workload", "sum:100x1M", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_fits(result.stdout)
    flat = _cells(result.stdout)
    assert "Fastest:" in flat and "paillier/sum" in flat
