"""Backend selection: environment switch, use_backend, backend() / tier reporting."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from native_testutil import CPP_AVAILABLE, need_cpp, prime

from he_ml import native
from he_ml.errors import ParameterError



def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports the same he_ml as this test process.

    The child starts in a temporary directory (``python -c`` puts the working directory first on
    sys.path, which would shadow an installed he_ml with the source tree's, whose compiled module
    is missing) and gets the directory holding the imported package on PYTHONPATH.
    """
    import tempfile

    import he_ml

    full_env = {**os.environ, **env}
    package_root = str(Path(he_ml.__file__).resolve().parents[1])
    full_env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                              text=True, timeout=300, check=False, cwd=cwd)


def test_env_switch_forces_numba():
    """HE_ML_NATIVE_BACKEND=numba selects the fallback, with the same bits as use_backend."""
    q = prime(61, 64)
    a = np.random.default_rng(5).integers(0, q, size=64, dtype=np.uint64)
    with native.use_backend("numba"):
        expected = native.ntt(a, q)
    code = (f"import numpy as np; from he_ml import native; "
            f"a = np.array({a.tolist()}, dtype=np.uint64); "
            f"print(native.implementation(), native.backend(), native.backend({q})); "
            f"print(native.ntt(a, {q}).tolist())")
    res = _run(code, HE_ML_NATIVE_BACKEND="numba")
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.strip().splitlines()
    assert first.split() == ["numba", "numba", "numba"]
    assert second == str(expected.tolist())


def test_env_switch_rejects_unknown_value():
    res = _run("import he_ml.native", HE_ML_NATIVE_BACKEND="gpu")
    assert res.returncode != 0
    assert "HE_ML_NATIVE_BACKEND must be 'auto', 'cpp' or 'numba'; got 'gpu'" in res.stderr


def test_env_switch_cpp_required():
    res = _run("from he_ml import native; print(native.implementation())",
               HE_ML_NATIVE_BACKEND="cpp")
    if CPP_AVAILABLE:
        assert res.returncode == 0 and res.stdout.strip() == "cpp", res.stderr
    else:
        assert res.returncode != 0 and "HE_ML_NATIVE_BACKEND=cpp" in res.stderr


def test_default_prefers_cpp():
    expected = "cpp" if CPP_AVAILABLE else "numba"
    with native.use_backend("auto"):
        assert native.implementation() == expected


def test_use_backend_context_manager_restores():
    before = native.implementation()
    with native.use_backend("numba") as switch:
        assert native.implementation() == "numba"
        assert native.backend() == "numba"
        assert native.available_tiers() == ["numba"]
        assert switch.previous == before
    assert native.implementation() == before


def test_use_backend_is_immediate():
    before = native.implementation()
    try:
        native.use_backend("numba")
        assert native.implementation() == "numba"
    finally:
        native.use_backend(before)


@pytest.mark.skipif(CPP_AVAILABLE, reason="the compiled module is available")
def test_use_backend_cpp_without_module():
    with pytest.raises(ParameterError, match="he_ml._native"):
        native.use_backend("cpp")


def test_backend_reports_cpp_dispatch():
    need_cpp()
    with native.use_backend("cpp"):
        tiers = set(native.available_tiers(prime(49, 8)))
        assert {"scalar", "reference"} <= tiers
        best = native.backend()
        assert best in ("avx512ifma", "avx512", "scalar")
        feats = native.cpu_features()
        # HE_ML_DISABLE_AVX512IFMA in the environment turns the IFMA tier off (HE_ML_DISABLE_AVX512
        # only the 64-bit-lane tier); a run under it must not expect IFMA
        ifma_off = os.environ.get("HE_ML_DISABLE_AVX512IFMA", "") not in ("", "0", "false", "FALSE", "False",
                                                                          "no", "NO", "off", "OFF")
        if feats.get("avx512ifma") and "avx512ifma" in native._cpp_module.compiled_tiers():
            assert (best == "avx512ifma") != ifma_off
        # IFMA needs q < 2^50: a 60-bit modulus never dispatches to it
        assert native.backend(prime(60, 8)) != "avx512ifma"
        assert "avx512ifma" not in native.available_tiers(prime(60, 8))
        assert native.backend(prime(60, 8)) == native.available_tiers(prime(60, 8))[0]


@pytest.mark.parametrize("switch,tier", [("HE_ML_DISABLE_AVX512IFMA", "avx512ifma"),
                                         ("HE_ML_DISABLE_AVX512", "avx512")])
def test_kill_switch_per_tier(switch, tier):
    need_cpp()
    code = ("from he_ml import native; q = native.find_primes(40, 8, 1)[0]; "
            "print(native.backend(q), ' '.join(native.available_tiers(q)))")
    res = _run(code, **{switch: "1"})
    assert res.returncode == 0, res.stderr
    chosen, *_ = res.stdout.split()
    assert chosen != tier


def test_cpu_features_is_a_dict_of_bools():
    feats = native.cpu_features()
    assert feats and all(isinstance(k, str) and isinstance(v, bool) for k, v in feats.items())
