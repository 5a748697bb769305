"""Which kernel runs where (:func:`backend`, :func:`available_tiers`, :func:`cpu_features`).

Part of :mod:`he_ml.native` (import from there).
"""
from __future__ import annotations

from . import _backend
from ._backend import _cpp_module
from ._validation import MAX_MODULUS_BITS, _as_int
from ..errors import ParameterError

__all__ = ["available_tiers", "backend", "cpu_features"]

# backend() without a modulus reports the tier for a modulus below 2^50, i.e.
# the fastest family this machine runs (IFMA needs q < 2^50); only the size of
# q matters to dispatch. 2^48 + 241 is one of Intel HEXL's published test primes.
_PROBE_MODULUS = 281474976710897


def _probe_q(q: object) -> int:
    if q is None:
        return _PROBE_MODULUS
    qi = _as_int(q, "q")
    if not 2 < qi < 1 << MAX_MODULUS_BITS:
        raise ParameterError(f"q must satisfy 2 < q < 2^{MAX_MODULUS_BITS}; got {qi}")
    return qi


def backend(q: int | None = None) -> str:
    """Which kernel family runs for modulus ``q``.

    Parameters
    ----------
    q : int, optional
        Modulus (only its size matters). Without it: the answer for a modulus
        below ``2**50``, i.e. the fastest family this machine runs.

    Returns
    -------
    str
        ``"numba"`` when the fallback runs; otherwise the C++ dispatch
        decision: ``"avx512ifma"`` (needs ``q < 2**50``), ``"avx512"`` or
        ``"scalar"`` (compiled in, CPU has it, not disabled by
        ``HE_ML_DISABLE_AVX512IFMA`` / ``HE_ML_DISABLE_AVX512``).
    """
    qi = _probe_q(q)
    if _backend._active == "numba":
        return "numba"
    return str(_cpp_module.select_tier(qi))


def available_tiers(q: int | None = None) -> list[str]:
    """Tiers that can run for ``q`` here (fastest first), for the ``tier=`` argument.

    ``["numba"]`` while the fallback runs; ``q`` defaults as in :func:`backend`.
    """
    qi = _probe_q(q)
    if _backend._active == "numba":
        return ["numba"]
    return [t for t in ("avx512ifma", "avx512", "scalar", "reference")
            if _cpp_module.tier_supported(t, qi)]


def cpu_features() -> dict[str, bool]:
    """CPU features relevant to the kernels (detected once by the compiled core).

    Without the compiled module the host features reported by LLVM (through
    llvmlite, a numba dependency) are used instead.
    """
    if _cpp_module is not None:
        return {str(k): bool(v) for k, v in _cpp_module.cpu_features().items()}
    from llvmlite import binding as llvm

    host = llvm.get_host_cpu_features()
    names = ("avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512ifma")
    return {name: bool(host.get(name, False)) for name in names}
