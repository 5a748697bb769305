"""The NTT table caches (C++ and numba) are bounded by bytes, not entries.

Issue 10: 300 distinct primes at n = 65536 grew the C++ cache by 1.2 GB, never freed.
Now an LRU keeps the sum of table bytes under a documented, configurable budget.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from native_testutil import need_cpp, random_coeffs

from he_ml import native
from he_ml.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]
# Subprocesses import the same he_ml as this test (installed, or a source tree with the compiled
# module in it) and start outside the source tree, whose he_ml/ has no _native in a clean clone.
import he_ml as _he_ml  # noqa: E402

_HE_ML_PARENT = str(Path(_he_ml.__file__).resolve().parents[1])
_OUTSIDE = str(Path(__file__).resolve().anchor)


@pytest.fixture
def restore_budget():
    yield
    native.set_table_cache_budget(native.DEFAULT_TABLE_CACHE_BYTES)
    native.clear_table_cache()


def test_budget_bounds_bytes_and_evicts(impl, rng, restore_budget):
    n = 1024
    primes = native.find_primes(50, n, 12)
    native.clear_table_cache()
    native.ntt(np.zeros(n, dtype=np.uint64), primes[0])
    one = native.table_cache_info()["bytes"]  # one prime's tables (numba: + its stack)
    assert one > 0
    native.set_table_cache_budget(3 * one)
    native.clear_table_cache()
    inputs = {q: random_coeffs(rng, q, n) for q in primes}
    first = {q: native.ntt(x, q) for q, x in inputs.items()}
    info = native.table_cache_info()
    assert info["bytes"] <= info["budget"] == 3 * one
    assert info["evictions"] > 0 and info["entries"] >= 1
    # evicted tables are rebuilt on demand: the answers do not change
    for q, x in inputs.items():
        np.testing.assert_array_equal(native.ntt(x, q), first[q])
        np.testing.assert_array_equal(native.intt(first[q], q), x)
    # budget 0: nothing is kept, everything still works
    native.set_table_cache_budget(0)
    assert native.table_cache_info()["bytes"] == 0
    q = primes[3]
    np.testing.assert_array_equal(native.ntt(inputs[q], q), first[q])
    assert native.table_cache_info()["entries"] == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True, 1 << 63, None])
def test_bad_budget_is_a_parameter_error(bad):
    with pytest.raises(ParameterError, match="non-negative integer number of bytes"):
        native.set_table_cache_budget(bad)


def test_bad_environment_budget_fails_import_with_advice():
    env = {**os.environ, "HE_ML_NTT_CACHE_BYTES": "lots", "PYTHONPATH": _HE_ML_PARENT}
    res = subprocess.run([sys.executable, "-c", "import he_ml.native"], env=env,
                         capture_output=True, text=True, timeout=120, cwd=_OUTSIDE)
    assert res.returncode != 0
    assert "ParameterError" in res.stderr and "HE_ML_NTT_CACHE_BYTES" in res.stderr
    env["HE_ML_NTT_CACHE_BYTES"] = str(32 << 20)  # following the advice works
    res = subprocess.run(
        [sys.executable, "-c",
         "from he_ml import native; print(native.table_cache_info()['budget'])"],
        env=env, capture_output=True, text=True, timeout=120, cwd=_OUTSIDE)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) == 32 << 20


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from he_ml import native
    native.use_backend("cpp")
    n = 65536
    primes = native.find_primes(55, n, 300)
    x = np.zeros(n, dtype=np.uint64)
    native.ntt(x, primes[0]); native.ntt(x, primes[0])  # warm: first allocations done
    native.clear_table_cache()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for q in primes:
        native.ntt(x, q)
    info = native.table_cache_info()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(grown * 1024, info["bytes"], info["budget"], info["evictions"])
""")


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's convention")
def test_300_primes_at_n65536_stay_under_the_budget():
    """The issue's scenario, measured in a fresh process: peak RSS grows by at most the
    budget plus 16 MiB (one entry being built and the interpreter's own churn)."""
    need_cpp()
    budget = 128 << 20
    env = {**os.environ, "PYTHONPATH": _HE_ML_PARENT, "HE_ML_NTT_CACHE_BYTES": str(budget)}
    res = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, cwd=_OUTSIDE)
    assert res.returncode == 0, res.stderr
    grown, cached, reported_budget, evictions = map(int, res.stdout.split())
    assert reported_budget == budget
    assert cached <= budget
    assert evictions >= 300 - budget // (2 << 20)  # each entry holds >= 32 n bytes = 2 MiB
    assert grown <= budget + (16 << 20), f"RSS grew {grown / 2**20:.0f} MiB"


def test_threads_share_the_cache_under_eviction(rng, restore_budget):
    """The bindings release the GIL around the kernels: threads transforming with more
    primes than the budget holds evict each other's tables mid-flight; every result must
    still equal the single-threaded one."""
    need_cpp()
    from concurrent.futures import ThreadPoolExecutor

    with native.use_backend("cpp"):
        n = 4096
        primes = native.find_primes(48, n, 8)
        inputs = [random_coeffs(rng, q, (2, n)) for q in primes]
        expected = [native.ntt(x, q) for x, q in zip(inputs, primes)]
        native.clear_table_cache()
        native.ntt(inputs[0], primes[0])
        native.set_table_cache_budget(2 * native.table_cache_info()["bytes"])

        def work(t: int) -> bool:
            ok = True
            for rep in range(6):
                for k in range(len(primes)):
                    j = (k * 3 + t + rep) % len(primes)
                    fwd = native.ntt(inputs[j], primes[j])
                    ok &= bool(np.array_equal(fwd, expected[j]))
                    ok &= bool(np.array_equal(native.intt(fwd, primes[j]), inputs[j]))
            return ok

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(work, range(4)))
        info = native.table_cache_info()
        assert info["bytes"] <= info["budget"] and info["evictions"] > 0
