"""The he-ml command line, through typer's CliRunner (same process, real schemes)."""
from __future__ import annotations

import json
from importlib import metadata

import pytest
from typer.testing import CliRunner

from he_ml import __version__
from he_ml.bench.measure import OP_NAMES
from he_ml.bench.sysinfo import DEPENDENCIES, MODULUS_WIDTHS
from he_ml.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "160", "NO_COLOR": "1"})


# --------------------------------------------------------------------------- top level
def test_help_lists_commands_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "info" in result.output and "bench" in result.output
    version = invoke("--version")
    assert version.exit_code == 0 and __version__ in version.output


def test_bench_help_has_examples_and_presets():
    from he_ml.bench.configs import DEFAULT_PRESETS, PRESETS
    from he_ml.bench.workload import WORKLOAD_FORMS

    result = invoke("bench", "--help")
    assert result.exit_code == 0
    out = " ".join(result.output.split())
    for text in ("--workload", "--quick", "--json", "--plot", "he-ml bench --workload sum:100x1M", "VmHWM"):
        assert text in out
    for scheme, labels in PRESETS.items():  # the help text lists every preset the command accepts
        listed = out.split(f"{scheme}: ", 1)[1]
        for label in labels:
            assert label in listed, (scheme, label)
    for scheme, labels in DEFAULT_PRESETS.items():
        assert f"{scheme} {' + '.join(labels)}" in out
    for form, _, _ in WORKLOAD_FORMS:
        assert form in out


# --------------------------------------------------------------------------- info
def test_info_tables():
    result = invoke("info")
    assert result.exit_code == 0, result.output
    out = result.output
    for dist, _ in DEPENDENCIES:
        assert dist in out
        try:
            assert metadata.version(dist) in out
        except metadata.PackageNotFoundError:
            assert "not installed" in out
    assert "native NTT core" in out and "CPU" in out
    for bits in MODULUS_WIDTHS:
        assert f"{bits}-bit q" in out


def test_info_json_parses_and_agrees_with_the_runtime():
    from he_ml import native

    result = invoke("info", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["he_ml"] == __version__
    assert {d["package"] for d in data["dependencies"]} == {d for d, _ in DEPENDENCIES}
    assert data["cpu"]["features"] == native.cpu_features()
    assert data["native"]["implementation"] == native.implementation()
    tiers = {row["bits"]: row["tier"] for row in data["native"]["tiers"]}
    assert tiers == {b: native.backend((1 << b) - 1) for b in MODULUS_WIDTHS}


# --------------------------------------------------------------------------- bench
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick bench of the CKKS "sum" preset in a fresh subprocess (a few seconds)."""
    out = tmp_path_factory.mktemp("bench")
    result = invoke("bench", "--scheme", "ckks", "--preset", "sum", "--quick", "--repeats", "3",
                    "--json", str(out / "r.json"), "--plot", str(out / "r.png"),
                    "--markdown", str(out / "r.md"))
    return result, out


def test_bench_quick_table(quick_run):
    result, _ = quick_run
    assert result.exit_code == 0, result.output + result.stderr
    out = result.output
    assert "ckks/sum" in out
    for title in ("key generation", "encrypt", "decrypt", "add (ct + ct)", "multiply by plaintext vector",
                  "multiply (ct × ct)", "sum of all slots", "dot with plaintext", "serialize",
                  "deserialize", "ciphertext bytes / value", "public context", "peak memory",
                  "first sum() call"):
        assert title in out
    assert "/value" in out and "⚠" not in out.split("median per ciphertext")[0]


def test_bench_json_schema(quick_run):
    _, out = quick_run
    doc = json.loads((out / "r.json").read_text())
    assert doc["schema"] == "he_ml.bench/1"
    assert doc["he_ml_version"] == __version__
    assert {"python", "platform", "cpu", "logical_cpus"} <= set(doc["machine"])
    s = doc["settings"]
    assert s["quick"] is True and s["repeats"] == 3 and s["isolated"] is True
    assert "VmHWM" in s["memory_method"] and "perf_counter" in s["timing_method"]
    assert doc["recommendation"] is None
    (r,) = doc["results"]
    assert r["config"] == {"scheme": "ckks", "preset": "sum", "params": {"preset": "sum"},
                           "insecure": False, "label": "ckks/sum"}
    assert r["error"] is None and r["security_level"] >= 128
    assert r["slot_count"] == r["values_per_op"] > 0
    assert set(r["operations"]) == set(OP_NAMES)
    for key, entry in r["operations"].items():
        assert entry["per"] in ("context", "ciphertext")
        sec = entry["seconds"]
        assert set(sec) == {"median", "q1", "q3", "min", "max", "samples", "inner", "first"}
        assert 0 < sec["min"] <= sec["q1"] <= sec["median"] <= sec["q3"] <= sec["max"]
        if key != "keygen":
            assert entry["verified"] is True
            assert entry["seconds_per_value"] == pytest.approx(sec["median"] / r["slot_count"])
    sizes = r["sizes"]
    # SEAL compresses ciphertexts, so one more ciphertext may even outweigh a whole 1-ciphertext blob
    assert sizes["ciphertext_marginal_bytes"] > 0
    assert sizes["blob_overhead_bytes"] == max(0, sizes["ciphertext_bytes"] - sizes["ciphertext_marginal_bytes"])
    assert sizes["ciphertext_bytes_per_value"] == pytest.approx(
        sizes["ciphertext_marginal_bytes"] / r["slot_count"])
    assert 0 < sizes["public_context_bytes"] <= sizes["public_context_bytes_after_ops"]
    assert r["peak_memory_bytes"] > 0


def test_bench_plot_and_markdown_written(quick_run):
    _, out = quick_run
    png = (out / "r.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    md = (out / "r.md").read_text().splitlines()
    assert md[0] == "| operation | ckks/sum |"
    assert len(md) == 2 + len(OP_NAMES) + 9


def test_bench_workload_recommends(tmp_path):
    pytest.importorskip("he_ml.schemes.paillier")
    result = invoke("bench", "--scheme", "paillier", "--preset", "insecure-1024", "--quick", "--in-process",
                    "--workload", "sum:20x500", "--json", str(tmp_path / "w.json"))
    assert result.exit_code == 0, result.output + result.stderr
    assert "INSECURE" in result.stderr  # warned before measuring
    assert "Workload: element-wise sum of 20 encrypted vectors of 500 values" in result.output
    assert "Fastest:" in result.output and "Smallest:" in result.output
    doc = json.loads((tmp_path / "w.json").read_text())
    rec = doc["recommendation"]
    assert rec["workload"]["kind"] == "sum" and rec["fastest"] == rec["smallest"]
    (est,) = rec["estimates"]
    slots = doc["results"][0]["slot_count"]
    k = -(-500 // slots)
    assert est["ciphertexts"] == 20 * k
    assert est["op_counts"]["add"] == 19 * k
    # only the operations the workload needs were timed
    ops = doc["results"][0]["operations"]
    assert "seconds" not in ops["mul_plain"] and "seconds" not in ops["dot"]
    assert doc["settings"]["memory_method"].startswith("not measured")


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, fragment", [
    (("bench", "--workload", "sum:100"), "sum needs CLIENTSxVALUES"),
    (("bench", "--workload", "fly:3"), "Valid forms: sum:CLIENTSxVALUES"),
    (("bench", "--scheme", "rsa"), "--scheme must be one of ckks, bfv, paillier; got 'rsa'"),
    (("bench", "--scheme", "ckks", "--preset", "tiny"), "--preset 'tiny' is not offered"),
])
def test_bench_errors_are_short_red_messages(args, fragment):
    result = invoke(*args)
    assert result.exit_code == 2
    assert "ParameterError" in result.stderr and fragment in result.stderr
    assert "Traceback" not in result.stderr + result.output
    assert result.stdout == ""  # nothing measured, nothing printed on stdout


def test_bench_usage_error_exit_code():
    result = invoke("bench", "--repeats", "0")
    assert result.exit_code == 2
