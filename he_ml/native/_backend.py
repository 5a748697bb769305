"""Backend selection (compiled core or numba fallback) and the NTT table caches.

Part of :mod:`he_ml.native` (import from there). The active backend lives in
this module's ``_active``; every other part of the package reads it from here,
so :func:`use_backend` switches all of them at once.
"""
from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

import numpy as np

from ..errors import ParameterError

__all__ = ["BACKEND_ENV_VAR", "DEFAULT_TABLE_CACHE_BYTES", "TABLE_CACHE_ENV_VAR",
           "clear_table_cache", "implementation", "set_table_cache_budget", "table_cache_info",
           "use_backend"]

BACKEND_ENV_VAR = "HE_ML_NATIVE_BACKEND"
# Byte budget of the per-(n, q) table caches (C++ and numba alike): 256 MiB holds about 50
# primes at n = 65536 with the AVX-512 IFMA tables (5 MiB each), or 100 at n = 32768.
DEFAULT_TABLE_CACHE_BYTES = 256 << 20
TABLE_CACHE_ENV_VAR = "HE_ML_NTT_CACHE_BYTES"

# ---------------------------------------------------------------------------
# Backend selection
# ---------------------------------------------------------------------------
try:
    from .. import _native as _cpp_module  # type: ignore[attr-defined]

    _CPP_IMPORT_ERROR: ImportError | None = None
except ImportError as _e:  # not built, or built for another interpreter
    _cpp_module = None
    _CPP_IMPORT_ERROR = _e


def _initial_backend() -> str:
    requested = os.environ.get(BACKEND_ENV_VAR, "auto").strip().lower() or "auto"
    if requested not in ("auto", "cpp", "numba"):
        raise ParameterError(
            f"{BACKEND_ENV_VAR} must be 'auto', 'cpp' or 'numba'; got {requested!r}. "
            "Unset it to pick the compiled core when available.")
    if requested == "cpp" and _cpp_module is None:
        raise ImportError(
            f"{BACKEND_ENV_VAR}=cpp but the compiled module he_ml._native does not import "
            f"({_CPP_IMPORT_ERROR}); build it with 'pip install .' or unset the variable "
            "to use the numba fallback") from _CPP_IMPORT_ERROR
    if requested == "auto":
        return "cpp" if _cpp_module is not None else "numba"
    return requested


_active = _initial_backend()


def _numba_module() -> ModuleType:
    # numba is imported only when the fallback is actually used (~0.5 s)
    module = importlib.import_module("he_ml.native._numba")
    if module._cache.budget != _table_cache_budget:
        module.set_table_cache_budget(_table_cache_budget)
    return module


def _raw() -> ModuleType:
    return _cpp_module if _active == "cpp" else _numba_module()


class _BackendSwitch:
    """Returned by :func:`use_backend`; restores the previous backend on ``__exit__``."""

    def __init__(self, previous: str, current: str) -> None:
        self.previous = previous
        self.current = current

    def __enter__(self) -> _BackendSwitch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _active
        _active = self.previous

    def __repr__(self) -> str:
        return f"use_backend({self.current!r})"


def use_backend(name: str) -> _BackendSwitch:
    """Switch the implementation used by every function of this module.

    Parameters
    ----------
    name : {"cpp", "numba", "auto"}
        ``"cpp"`` needs the compiled module ``he_ml._native``; ``"auto"``
        picks it when it imports, else numba.

    Returns
    -------
    _BackendSwitch
        The switch is effective immediately; used as a context manager it
        restores the previous backend on exit
        (``with native.use_backend("numba"): ...``).

    Raises
    ------
    ParameterError
        If ``name`` is not one of the three values, or ``"cpp"`` is asked for
        and the compiled module does not import.

    Notes
    -----
    The setting is process-wide and not thread-local: switch before starting
    threads that use this module.
    """
    global _active
    if name not in ("cpp", "numba", "auto"):
        raise ParameterError(f"backend name must be 'cpp', 'numba' or 'auto'; got {name!r}")
    if name == "auto":
        name = "cpp" if _cpp_module is not None else "numba"
    if name == "cpp" and _cpp_module is None:
        raise ParameterError(
            "backend 'cpp' needs the compiled module he_ml._native, which does not import "
            f"({_CPP_IMPORT_ERROR}); build it with 'pip install .' or use 'numba'")
    previous, _active = _active, name
    return _BackendSwitch(previous, name)


def implementation() -> str:
    """``"cpp"`` if the compiled core runs, ``"numba"`` if the fallback does."""
    return _active


# ---------------------------------------------------------------------------
# Table cache
# ---------------------------------------------------------------------------
def _check_budget(nbytes: object, what: str) -> int:
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, (int, np.integer)) \
            or not 0 <= int(nbytes) < 1 << 63:
        raise ParameterError(
            f"{what} must be a non-negative integer number of bytes below 2^63; got "
            f"{nbytes!r}. Pass e.g. {DEFAULT_TABLE_CACHE_BYTES} (256 MiB, the default) or 0 "
            "to disable caching.")
    return int(nbytes)


def set_table_cache_budget(nbytes: int) -> None:
    """Bound the memory of the NTT table caches (both backends) to ``nbytes``.

    Every ``(n, q)`` pair used by a transform gets precomputed tables: about
    ``32 n`` bytes for the portable kernels plus ``48 n`` (IFMA) or ``32 n``
    (AVX-512) bytes for the SIMD tiers, i.e. 5 MiB per prime at ``n = 65536``.
    They live in a least-recently-used cache whose total size never exceeds
    the budget; older entries are evicted (arrays and calls in flight keep
    theirs alive until they finish).

    Parameters
    ----------
    nbytes : int
        The budget in bytes, default :data:`DEFAULT_TABLE_CACHE_BYTES`
        (256 MiB; the environment variable ``HE_ML_NTT_CACHE_BYTES`` read at
        import overrides it). ``0`` disables caching: every call rebuilds its
        tables, which is correct but slow (milliseconds per prime at large n).

    Raises
    ------
    ParameterError
        If ``nbytes`` is not an integer in ``[0, 2**63)``.

    Examples
    --------
    >>> from he_ml import native
    >>> native.set_table_cache_budget(64 << 20)
    >>> native.table_cache_info()["budget"]
    67108864
    >>> native.set_table_cache_budget(native.DEFAULT_TABLE_CACHE_BYTES)
    """
    global _table_cache_budget
    budget = _check_budget(nbytes, "nbytes")
    _table_cache_budget = budget
    if _cpp_module is not None:
        _cpp_module.set_table_cache_budget(budget)
    numba_mod = sys.modules.get("he_ml.native._numba")
    if numba_mod is not None:
        numba_mod.set_table_cache_budget(budget)


def table_cache_info() -> dict[str, int]:
    """State of the active backend's table cache.

    Returns
    -------
    dict
        ``entries``, ``bytes`` (always ``<= budget``), ``budget``, and the
        counters ``hits``, ``misses`` (lookups that built tables) and
        ``evictions``.
    """
    return {str(k): int(v) for k, v in _raw().table_cache_info().items()}


def clear_table_cache() -> None:
    """Drop every cached table of both backends and reset the counters."""
    if _cpp_module is not None:
        _cpp_module.clear_table_cache()
    numba_mod = sys.modules.get("he_ml.native._numba")
    if numba_mod is not None:
        numba_mod.clear_table_cache()


def _initial_table_cache_budget() -> int:
    raw = os.environ.get(TABLE_CACHE_ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_TABLE_CACHE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ParameterError(
            f"{TABLE_CACHE_ENV_VAR} must be a non-negative integer number of bytes; got "
            f"{raw!r}. Set e.g. {TABLE_CACHE_ENV_VAR}={DEFAULT_TABLE_CACHE_BYTES} or unset it.")
    return _check_budget(value, TABLE_CACHE_ENV_VAR)


_table_cache_budget = _initial_table_cache_budget()
if _cpp_module is not None:
    _cpp_module.set_table_cache_budget(_table_cache_budget)

