"""What ``he-ml info`` reports: versions, CPU, native backend and NTT tier per modulus width.

Everything here degrades gracefully: a missing optional package is "not
installed", a native core that cannot load is reported with the reason, and a
CPU description falls back from he_ml.native's detection to /proc/cpuinfo.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["DEPENDENCIES", "CPU_FEATURES_OF_INTEREST", "MODULUS_WIDTHS", "KILL_SWITCHES",
           "collect_info", "dependency_versions", "cpu_info", "native_info"]

#: (distribution name, what he_ml uses it for)
DEPENDENCIES: tuple[tuple[str, str], ...] = (
    ("numpy", "arrays"),
    ("tenseal", "CKKS / BFV (Microsoft SEAL)"),
    ("phe", "Paillier keys"),
    ("gmpy2", "fast big integers for Paillier"),
    ("numba", "native fallback"),
    ("scikit-learn", "model import"),
    ("flwr", "Flower integration (optional)"),
    ("torch", "PyTorch integration (optional)"),
    ("dp-accounting", "differential-privacy accounting"),
)
CPU_FEATURES_OF_INTEREST = ("avx2", "bmi2", "adx", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                            "avx512ifma")
#: Modulus widths (bits) for which the NTT tier is shown: IFMA covers q < 2^50.
MODULUS_WIDTHS = (30, 49, 50, 60, 61)
KILL_SWITCHES = ("HE_ML_NATIVE_BACKEND", "HE_ML_DISABLE_AVX512IFMA", "HE_ML_DISABLE_AVX512")


def dependency_versions() -> list[dict[str, str]]:
    """Installed version of each dependency (from package metadata: nothing is imported)."""
    rows = []
    for dist, role in DEPENDENCIES:
        try:
            v = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v = "not installed"
        rows.append({"package": dist, "version": v, "role": role})
    return rows


def _proc_cpuinfo() -> dict[str, Any]:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "flags": flags}


def _features_from_native(native: Any) -> dict[str, bool] | None:
    fn = getattr(native, "cpu_features", None)
    if fn is None:
        return None
    try:
        feats = fn()
    except Exception:
        return None
    if isinstance(feats, dict):
        return {str(k): bool(v) for k, v in feats.items()}
    if isinstance(feats, (set, frozenset, list, tuple)):
        return {str(k): True for k in feats}
    names = [a for a in dir(feats) if not a.startswith("_")]
    return {a: bool(getattr(feats, a)) for a in names if isinstance(getattr(feats, a), bool)}


def cpu_info(native: Any | None = None) -> dict[str, Any]:
    """CPU model, core count and the SIMD features relevant to the NTT tiers.

    Features come from ``he_ml.native.cpu_features()`` (cpuid + OS support, what
    dispatch really uses) when available, else from the /proc/cpuinfo flags.
    """
    proc = _proc_cpuinfo()
    model = proc["model"] or platform.processor() or platform.machine()
    feats = _features_from_native(native) if native is not None else None
    if feats is not None:
        source = "he_ml.native.cpu_features()"
    else:
        source = "/proc/cpuinfo" if proc["flags"] else "unavailable"
        feats = {f: f in proc["flags"] for f in CPU_FEATURES_OF_INTEREST} if proc["flags"] else {}
    return {"model": model, "machine": platform.machine(), "logical_cpus": os.cpu_count(),
            "features": feats, "features_source": source}


def cpu_model() -> str:
    """The CPU model name benchmarks record next to every figure (from /proc/cpuinfo)."""
    return cpu_info()["model"] or "unknown"


def _import_native() -> tuple[Any | None, str | None]:
    try:
        from .. import native  # noqa: PLC0415 - optional, may still be under construction
    except Exception as e:  # any import failure is reported, not raised
        return None, f"{type(e).__name__}: {e}"
    return native, None


def _call(fn, *args):
    try:
        return fn(*args), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


def native_info(native: Any | None = None, import_error: str | None = None) -> dict[str, Any]:
    """Native implementation in use and the NTT tier chosen for each width in `MODULUS_WIDTHS`.

    ``he_ml.native.backend(q)`` depends only on the size of ``q``, so the probe for
    width ``b`` is ``q = 2^b - 1`` (no prime search, which would compile numba kernels).
    """
    env = {k: os.environ[k] for k in KILL_SWITCHES if k in os.environ}
    if native is None:
        return {"available": False, "error": import_error or "he_ml.native not importable",
                "implementation": None, "backend": None, "tiers": [], "environment": env}
    out: dict[str, Any] = {"available": True, "error": None, "environment": env}
    impl = getattr(native, "implementation", None)
    out["implementation"], err = _call(impl) if impl else (None, "he_ml.native.implementation missing")
    backend_fn = getattr(native, "backend", None)
    out["backend"], err2 = _call(backend_fn) if backend_fn else (None, "he_ml.native.backend missing")
    out["error"] = err or err2
    available = getattr(native, "available_tiers", None)
    tiers = []
    for bits in MODULUS_WIDTHS:
        q = (1 << bits) - 1
        row: dict[str, Any] = {"bits": bits, "tier": None, "available": None}
        if backend_fn is not None:
            tier, e = _call(backend_fn, q)
            row["tier"] = tier if e is None else f"error: {e}"
        if available is not None:
            tiers_ok, e = _call(available, q)
            row["available"] = list(tiers_ok) if e is None else None
        tiers.append(row)
    out["tiers"] = tiers
    return out


def collect_info() -> dict[str, Any]:
    """Everything ``he-ml info`` shows, as JSON-serializable data."""
    from .. import __version__
    native, err = _import_native()
    return {
        "he_ml": __version__,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": platform.platform(),
        "dependencies": dependency_versions(),
        "cpu": cpu_info(native),
        "native": native_info(native, err),
    }
