"""Negacyclic NTT and polynomial multiplication over ``Z_q[X]/(X^n + 1)``.

The public face of the C++ core (private module ``he_ml._native``), with a
numba fallback that computes the same results bit for bit when the compiled
module is missing.

Conventions (shared by every backend and tier)
----------------------------------------------
* ``n`` is a power of two, ``2 <= n <= 65536``; ``q`` is a prime below
  ``2**62`` with ``q == 1 (mod 2n)`` (:func:`find_primes` makes such primes).
* ``psi`` is the smallest primitive ``2n``-th root of unity modulo ``q``.
* :func:`ntt` returns ``A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i) mod q``,
  i.e. the evaluations at the odd powers of ``psi`` in bit-reversed order;
  :func:`intt` inverts it. ``polymul(a, b, q) == intt(ntt(a) * ntt(b) mod q)``.
* Arrays are ``uint64``: ``(n,)`` for one polynomial, ``(rows, n)`` for a
  batch under one modulus (one call amortises the call overhead), and for the
  RNS forms ``(k, n)`` or ``(m, k, n)`` with ``k`` moduli, row ``i`` of every
  polynomial reduced modulo ``moduli[i]``. Values lie in ``[0, q)``.

Backends
--------
``implementation()`` is ``"cpp"`` when ``he_ml._native`` imports, else
``"numba"``. Set the environment variable ``HE_ML_NATIVE_BACKEND`` to
``numba`` (force the fallback), ``cpp`` (require the compiled module; import
fails otherwise) or ``auto`` (default) before importing; at run time use
:func:`use_backend`, which also works as a context manager. :func:`backend`
tells which kernel family runs for a modulus: ``"avx512ifma"``
(``q < 2**50``), ``"avx512"``, ``"scalar"`` or ``"numba"``. Per-tier kill
switches of the C++ core: ``HE_ML_DISABLE_AVX512IFMA=1``,
``HE_ML_DISABLE_AVX512=1``.

Input handling
--------------
C-contiguous ``uint64`` inputs are used without copies; other integer dtypes
and Python integer lists are converted when that is lossless (non-negative
values below ``2**64``). Floats, negative values, booleans and values that do
not fit raise :class:`he_ml.errors.ParameterError` (a ``ValueError``), as do
bad ``n``, bad ``q``, coefficients ``>= q`` and mismatched shapes. These checks
always run; the coefficient check costs one pass over the input (done inside
the compiled module on that path, in Python before the numba kernels).

Examples
--------
>>> import numpy as np
>>> from he_ml import native
>>> q = native.find_primes(50, 8, 1)[0]
>>> a = np.array([1, 2, 0, 0, 0, 0, 0, 0], dtype=np.uint64)
>>> b = np.array([0, 0, 0, 0, 0, 0, 0, 3], dtype=np.uint64)
>>> native.polymul(a, b, q)[:2] == np.array([q - 6, 0], dtype=np.uint64)  # X^8 = -1
array([ True,  True])
>>> bool((native.intt(native.ntt(a, q), q) == a).all())
True
"""
from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType

import numpy as np

from ..errors import ParameterError

__all__ = [
    "BACKEND_ENV_VAR",
    "MAX_MODULUS_BITS",
    "MAX_PRIME_COUNT",
    "MAX_N",
    "MIN_N",
    "TIERS",
    "DEFAULT_TABLE_CACHE_BYTES",
    "TABLE_CACHE_ENV_VAR",
    "available_tiers",
    "backend",
    "clear_table_cache",
    "cpu_features",
    "find_primes",
    "implementation",
    "intt",
    "intt_rns",
    "is_prime",
    "ntt",
    "ntt_rns",
    "pointwise_mul",
    "pointwise_mul_rns",
    "polymul",
    "polymul_rns",
    "psi",
    "set_table_cache_budget",
    "table_cache_info",
    "use_backend",
]

MIN_N = 2
MAX_N = 65536
MAX_MODULUS_BITS = 62  # q < 2^62: lazy butterflies keep values below 4q < 2^64
MAX_PRIME_COUNT = 65536  # find_primes(count=...) limit, the C++ core's (primes.cpp)
TIERS = ("auto", "reference", "scalar", "avx512ifma", "avx512")
BACKEND_ENV_VAR = "HE_ML_NATIVE_BACKEND"
# Byte budget of the per-(n, q) table caches (C++ and numba alike): 256 MiB holds about 50
# primes at n = 65536 with the AVX-512 IFMA tables (5 MiB each), or 100 at n = 32768.
DEFAULT_TABLE_CACHE_BYTES = 256 << 20
TABLE_CACHE_ENV_VAR = "HE_ML_NTT_CACHE_BYTES"

# backend() without a modulus reports the tier for a modulus below 2^50, i.e.
# the fastest family this machine runs (IFMA needs q < 2^50); only the size of
# q matters to dispatch. 2^48 + 241 is one of Intel HEXL's published test primes.
_PROBE_MODULUS = 281474976710897

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


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
def _as_int(value: object, name: str) -> int:
    """Accept Python / numpy integers only (no bools, no floats)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(
            f"{name} must be an integer; got {value!r} of type {type(value).__name__}. "
            f"Pass a Python int, e.g. {name}=int(...).")
    return int(value)


def _check_n(n: int) -> None:
    if not MIN_N <= n <= MAX_N or n & (n - 1):
        raise ParameterError(
            f"polynomial length n must be a power of two in [{MIN_N}, {MAX_N}]; got n = {n}. "
            "Pad the coefficients with zeros to the next power of two.")


@functools.lru_cache(maxsize=1024)
def _check_modulus(q: int, n: int, backend_name: str) -> None:
    # Cached per (q, n): Miller-Rabin runs once per modulus, not once per call.
    if q < 3 or q >= 1 << MAX_MODULUS_BITS:
        raise ParameterError(
            f"modulus q must satisfy 2 < q < 2^{MAX_MODULUS_BITS}; got q = {q} "
            f"({q.bit_length()} bits). Use find_primes(bits, n, count) with bits <= "
            f"{MAX_MODULUS_BITS}.")
    if q % (2 * n) != 1:
        raise ParameterError(
            f"modulus q must be 1 mod 2n = {2 * n} so that a primitive 2n-th root of unity "
            f"exists; got q = {q} (q mod {2 * n} = {q % (2 * n)}). Use find_primes(bits, {n}, "
            "count).")
    if not _raw().is_prime(q):
        raise ParameterError(
            f"modulus q must be prime; got q = {q}, which is composite. "
            f"Use find_primes(bits, {n}, count).")


@functools.lru_cache(maxsize=256)
def _check_moduli(mods: tuple[int, ...], n: int, backend_name: str) -> None:
    # one cache hit per call instead of one per modulus (RNS calls are the hot path)
    for q in mods:
        _check_modulus(q, n, backend_name)


def _moduli_list(moduli: object, name: str = "moduli") -> list[int]:
    if isinstance(moduli, (int, np.integer)) and not isinstance(moduli, (bool, np.bool_)):
        raise ParameterError(
            f"{name} must be a sequence of k moduli (one per RNS row); got the single integer "
            f"{int(moduli)}. Use the non-RNS function for one modulus, or pass [{int(moduli)}].")
    try:
        items = list(moduli)  # type: ignore[call-overload]
    except TypeError as e:
        raise ParameterError(
            f"{name} must be a sequence of integers; got {type(moduli).__name__}") from e
    if not items:
        raise ParameterError(f"{name} must hold at least one modulus; got an empty sequence")
    return [_as_int(v, f"{name}[{i}]") for i, v in enumerate(items)]


def _as_coeffs(a: object, name: str) -> np.ndarray:
    """``a`` as a uint64 array, without a copy when it already is one; lossless or error."""
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except (ValueError, OverflowError, TypeError):
            try:
                a = np.array(a, dtype=object)
            except ValueError as e:
                raise ParameterError(
                    f"{name} must be a rectangular array of integers; got a ragged "
                    f"{type(a).__name__}. Give every row the same length n.") from e
    kind = a.dtype.kind
    if a.dtype == np.uint64:
        return a
    if kind == "u":
        return a.astype(np.uint64)
    if kind == "i":
        if a.size and int(a.min()) < 0:
            raise ParameterError(
                f"{name} must hold non-negative integers (coefficients in [0, q)); got "
                f"dtype {a.dtype} with minimum {int(a.min())}. Reduce first: "
                f"np.mod({name}, q).astype(np.uint64).")
        return a.astype(np.uint64)
    if kind == "O":
        flat = a.reshape(-1)
        for i, v in enumerate(flat):
            if isinstance(v, (list, tuple, np.ndarray)):
                raise ParameterError(
                    f"{name} must be a rectangular array of integers; got a ragged or nested "
                    f"sequence (element {i} is a {type(v).__name__}). Give every row the same "
                    "length n.")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) \
                    or not 0 <= int(v) < 1 << 64:
                raise ParameterError(
                    f"{name} must hold integers in [0, 2^64) to convert to uint64; got "
                    f"{v!r} ({type(v).__name__}) at flat index {i}. Reduce modulo q first.")
        return np.array([int(v) for v in flat], dtype=np.uint64).reshape(a.shape)
    what = {"f": "floating point", "c": "complex", "b": "boolean"}.get(kind, "non-integer")
    raise ParameterError(
        f"{name} must be an array of integer coefficients (uint64 preferred); got {what} "
        f"dtype {a.dtype}. Convert exactly, e.g. np.asarray(np.rint(x), dtype=np.uint64) "
        "after checking the values are integers in [0, q).")


def _check_tier(tier: object, moduli: Iterable[int]) -> str:
    if not isinstance(tier, str) or tier not in TIERS:
        raise ParameterError(f"tier must be one of {TIERS}; got {tier!r}")
    if tier == "auto":
        return tier
    if _active == "numba":
        raise ParameterError(
            f"tier must be 'auto' while the numba fallback runs; got tier={tier!r}. "
            "Build the compiled core (pip install .) or call use_backend('cpp').")
    for q in set(moduli):
        if not _cpp_module.tier_supported(tier, q):
            raise ParameterError(
                f"tier {tier!r} cannot run for q = {q} ({q.bit_length()} bits) on this machine "
                f"and build; got tier={tier!r}. Tiers available for this q: "
                f"{available_tiers(q)} (avx512ifma needs q < 2^50 and an AVX-512 IFMA CPU).")
    return tier


def _check_below(a2d: np.ndarray, moduli_rows: np.ndarray, name: str) -> None:
    """Every coefficient of row r must be below moduli_rows[r] (one pass over the data)."""
    if a2d.size == 0:
        return
    too_big = a2d.max(axis=1) >= moduli_rows
    if too_big.any():
        r = int(np.argmax(too_big))
        j = int(np.argmax(a2d[r] >= moduli_rows[r]))
        raise ParameterError(
            f"coefficients of {name} must be in [0, q); got {int(a2d[r, j])} at row {r}, "
            f"column {j} with q = {int(moduli_rows[r])}. Reduce first: np.mod({name}, q).")


def _single(a: object, q: object, name: str = "a") -> tuple[np.ndarray, int, int]:
    """Validate a one-modulus operand: returns (uint64 array, q, n)."""
    arr = _as_coeffs(a, name)
    if arr.ndim not in (1, 2):
        raise ParameterError(
            f"{name} must have shape (n,) or (rows, n); got shape {arr.shape}. "
            "For k RNS moduli use the *_rns functions.")
    n = arr.shape[-1]
    _check_n(n)
    qi = _as_int(q, "q")
    _check_modulus(qi, n, _active)
    return arr, qi, n


def _rns(a: object, moduli: object, name: str = "a") -> tuple[np.ndarray, list[int], int]:
    """Validate an RNS operand: returns (uint64 array (k, n) or (m, k, n), moduli, n)."""
    arr = _as_coeffs(a, name)
    mods = _moduli_list(moduli)
    if arr.ndim not in (2, 3) or arr.shape[-2] != len(mods):
        raise ParameterError(
            f"{name} must have shape (k, n) or (m, k, n) with k = len(moduli) = {len(mods)}; "
            f"got shape {arr.shape}.")
    n = arr.shape[-1]
    _check_n(n)
    _check_moduli(tuple(mods), n, _active)
    return arr, mods, n


def _rows(arr: np.ndarray, n: int) -> np.ndarray:
    """(..., n) C-contiguous -> (rows, n) view."""
    return arr.reshape(-1, n)


def _moduli_array(mods: Sequence[int]) -> np.ndarray:
    """The k moduli as a read-only uint64 array; row i of a (rows, n) view uses entry i % k."""
    return _moduli_array_cached(tuple(mods))


@functools.lru_cache(maxsize=256)
def _moduli_array_cached(mods: tuple[int, ...]) -> np.ndarray:
    # cached: building it costs as much as validating a small input; k entries, not rows
    out = np.asarray(mods, dtype=np.uint64)
    out.flags.writeable = False
    return out


def _per_row(moduli: np.ndarray, rows: int) -> np.ndarray:
    """Modulus of every row (only for the numba pre-check and for phrasing errors)."""
    return moduli if moduli.shape[0] == rows else np.tile(moduli, rows // moduli.shape[0])


def _prepare_out(out: object, shape: tuple[int, ...], inputs: Sequence[np.ndarray],
                 may_alias: bool) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.uint64)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint64:
        got = f"dtype {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ParameterError(f"out must be a uint64 numpy array; got {got}")
    if out.shape != shape:
        raise ParameterError(f"out must have shape {shape}; got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ParameterError(
            "out must be C-contiguous and writable; got a strided or read-only array. "
            "Pass np.empty(shape, dtype=np.uint64).")
    for x in inputs:
        if may_alias and out is x:  # in place on the very same array: the common fast case
            continue
        if np.shares_memory(out, x) and not (may_alias and _same_buffer(out, x)):
            raise ParameterError(
                "out must not overlap the inputs of this operation"
                + (" (except by being the very same array)" if may_alias else "")
                + "; got an overlapping array. Pass a fresh np.empty_like(a).")
    return out


def _same_buffer(x: np.ndarray, y: np.ndarray) -> bool:
    return (x.__array_interface__["data"][0] == y.__array_interface__["data"][0]
            and x.shape == y.shape and x.strides == y.strides)


def _check_inputs_below(inputs: Sequence[tuple[np.ndarray, str]], moduli: np.ndarray) -> None:
    """Coefficient range check, done here only where the raw layer does not do it.

    The compiled module checks every coefficient against its row's modulus
    itself (fused with reading the data), so on that path the Python pass is
    skipped and only used to phrase the error (see :func:`_call`). The numba
    kernels do not check, so the pass runs before them.
    """
    if _active == "numba":
        for arr, name in inputs:
            _check_below(arr, _per_row(moduli, arr.shape[0]), name)


def _call(fn_name: str, args: tuple, inputs: Sequence[tuple[np.ndarray, str]],
          moduli: np.ndarray) -> object:
    try:
        return getattr(_raw(), fn_name)(*args)
    except ValueError as e:  # the native layer re-checks; keep our error type and wording
        for arr, name in inputs:
            _check_below(arr, _per_row(moduli, arr.shape[0]), name)
        raise ParameterError(f"{fn_name}: {e}") from e


# ---------------------------------------------------------------------------
# Hot path
# ---------------------------------------------------------------------------
_UINT64 = np.dtype(np.uint64)
# (moduli, n) pairs that passed the full validation below; bounded so that a caller
# cycling through fresh moduli cannot grow it without limit.
_VALIDATED: set[tuple[tuple[int, ...], int]] = set()
_VALIDATED_MAX = 1024


def _remember_valid(mods: Sequence[int], n: int) -> None:
    if len(_VALIDATED) >= _VALIDATED_MAX:
        _VALIDATED.clear()
    _VALIDATED.add((tuple(mods), n))


def _fast_transform(kind: str, a: object, moduli: object, tier: object, out: object,
                    rns: bool) -> np.ndarray | None:
    """The repeated call of RNS code, without the Python validation; ``None`` if unsure.

    Applies when ``a`` is a C-contiguous uint64 ndarray and ``moduli`` (a list
    or tuple of plain ints) was fully validated with this ``n`` by an earlier
    call. ``out=None``: the compiled core allocates the result (from its pool
    of warm buffers) in ``a``'s shape and writes it with the out-of-place
    kernels, whose first pass reads ``a`` (no copy sweep, no reshape here).
    ``out`` given: the core writes into it, in place when it is ``a``, else out
    of place. Everything else the slow path establishes is re-checked by the
    compiled layer on every call (dtype, C order, writability, shapes, overlap,
    each coefficient below its modulus, tier support); ``a`` is never changed
    by a failed check, so on any ``ValueError`` / ``TypeError`` the caller
    simply runs the full path, which raises the documented
    :class:`ParameterError`.
    """
    if (_active != "cpp" or type(tier) is not str or type(a) is not np.ndarray
            or a.dtype != _UINT64 or not a.flags.c_contiguous
            or (out is not None and type(out) is not np.ndarray)):
        return None
    if rns:
        if type(moduli) not in (list, tuple) or a.ndim not in (2, 3) \
                or a.shape[-2] != len(moduli):  # type: ignore[arg-type]
            return None
        mods = tuple(moduli)  # type: ignore[arg-type]
    else:
        if a.ndim not in (1, 2):
            return None
        mods = (moduli,)
    n = a.shape[-1]
    if (mods, n) not in _VALIDATED:
        return None
    for q in mods:  # a float equal to a valid modulus hashes alike: the slow path refuses it
        if type(q) is not int:
            return None
    try:
        if out is None:  # new array of a's shape, allocated and filled by the core
            return getattr(_cpp_module, kind + "_copy")(a, _moduli_array_cached(mods), tier)
        getattr(_cpp_module, kind + "_into")(a, out, _moduli_array_cached(mods), tier)
    except (ValueError, TypeError):
        return None
    return out


# ---------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------
def _transform(kind: str, arr: np.ndarray, moduli: np.ndarray, n: int, tier: str,
               out: object) -> np.ndarray:
    inputs = [(arr.reshape(-1, n), "a")]
    _check_inputs_below(inputs, moduli)
    if _active == "cpp":
        arr = np.ascontiguousarray(arr)
        if out is None:  # the core allocates the result and fuses the copy into its first pass
            return _call(kind + "_copy", (arr, moduli, tier), inputs, moduli)  # type: ignore
        res = _prepare_out(out, arr.shape, [arr], may_alias=True)
        _call(kind + "_into", (arr, res, moduli, tier), inputs, moduli)  # in place if res is arr
        return res
    res = _prepare_out(out, arr.shape, [arr], may_alias=True)
    if res is not arr and not _same_buffer(res, arr):
        np.copyto(res, arr)
    _call(kind, (_rows(res, n), moduli, tier), inputs, moduli)
    return res


def ntt(a: object, q: int, *, tier: str = "auto", out: np.ndarray | None = None) -> np.ndarray:
    """Forward negacyclic NTT modulo ``q`` (bit-reversed output order).

    Parameters
    ----------
    a : array_like of uint64, shape (n,) or (rows, n)
        Coefficients in ``[0, q)``; a 2-D array is a batch of polynomials
        transformed in one call.
    q : int
        Prime, ``q < 2**62``, ``q == 1 (mod 2n)``.
    tier : {"auto", "reference", "scalar", "avx512ifma", "avx512"}, default "auto"
        Kernel family of the compiled core; ``"auto"`` dispatches (see
        :func:`backend`). Other values need the compiled core and a tier that
        runs for ``q`` (:func:`available_tiers`).
    out : ndarray of uint64, optional
        C-contiguous array of ``a``'s shape to write into; pass ``a`` itself
        to transform in place without allocating.

    Returns
    -------
    ndarray of uint64, same shape as ``a``
        ``A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i) mod q`` with ``psi`` the
        smallest primitive ``2n``-th root of unity; values in ``[0, q)``.

    Raises
    ------
    ParameterError
        If ``a`` is not an integer array convertible without loss, has the
        wrong shape, ``n`` is not a power of two in ``[2, 65536]``, ``q`` is
        not a prime below ``2**62`` with ``q == 1 (mod 2n)``, a coefficient is
        ``>= q``, ``tier`` cannot run, or ``out`` is unusable.

    References
    ----------
    D. Harvey, "Faster arithmetic for number-theoretic transforms", 2014.
    P. Longa and M. Naehrig, "Speeding up the NTT for faster ideal
    lattice-based cryptography", 2016, Algorithm 1.

    Examples
    --------
    >>> import numpy as np
    >>> from he_ml import native
    >>> native.ntt(np.array([1, 1], dtype=np.uint64), 0xFFFFFFFFFFC0001).tolist()
    [288794978602139553, 864126526004445282]
    """
    res = _fast_transform("forward_ntt", a, q, tier, out, rns=False)
    if res is not None:
        return res
    arr, qi, n = _single(a, q)
    tier = _check_tier(tier, [qi])
    res = _transform("forward_ntt", arr, _moduli_array((qi,)), n, tier, out)
    _remember_valid((qi,), n)
    return res


def intt(a: object, q: int, *, tier: str = "auto", out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`ntt`: bit-reversed evaluations back to coefficients.

    Parameters, Returns and Raises as for :func:`ntt`; ``intt(ntt(a, q), q) == a``.
    """
    res = _fast_transform("inverse_ntt", a, q, tier, out, rns=False)
    if res is not None:
        return res
    arr, qi, n = _single(a, q)
    tier = _check_tier(tier, [qi])
    res = _transform("inverse_ntt", arr, _moduli_array((qi,)), n, tier, out)
    _remember_valid((qi,), n)
    return res


def ntt_rns(a: object, moduli: Sequence[int], *, tier: str = "auto",
            out: np.ndarray | None = None) -> np.ndarray:
    """Forward NTT of RNS polynomials, row ``i`` modulo ``moduli[i]``, in one call.

    Parameters
    ----------
    a : array_like of uint64, shape (k, n) or (m, k, n)
        ``k`` residue rows per polynomial (e.g. a ciphertext's 2 polynomials
        as ``m = 2``); row ``i`` in ``[0, moduli[i])``.
    moduli : sequence of k int
        NTT-friendly primes as for :func:`ntt` (may repeat).
    tier, out
        As for :func:`ntt`.

    Returns
    -------
    ndarray of uint64, same shape as ``a``
        Equal to ``ntt(a[..., i, :], moduli[i])`` for every ``i``.

    Raises
    ------
    ParameterError
        As for :func:`ntt`, and when ``a.shape[-2] != len(moduli)``.

    Notes
    -----
    For the inner loop of RNS code pass a C-contiguous uint64 array and
    ``out=a``: once ``moduli`` (a list or tuple of ints) has been validated for
    this ``n``, such calls skip the Python-side checks and cost within a few
    per cent of the raw kernel; the compiled core still checks every input
    (shapes, dtype, each coefficient against its modulus) on every call.
    """
    res = _fast_transform("forward_ntt", a, moduli, tier, out, rns=True)
    if res is not None:
        return res
    arr, mods, n = _rns(a, moduli)
    tier = _check_tier(tier, mods)
    res = _transform("forward_ntt", arr, _moduli_array(mods), n, tier, out)
    _remember_valid(mods, n)
    return res


def intt_rns(a: object, moduli: Sequence[int], *, tier: str = "auto",
             out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`ntt_rns`; arguments as there."""
    res = _fast_transform("inverse_ntt", a, moduli, tier, out, rns=True)
    if res is not None:
        return res
    arr, mods, n = _rns(a, moduli)
    tier = _check_tier(tier, mods)
    res = _transform("inverse_ntt", arr, _moduli_array(mods), n, tier, out)
    _remember_valid(mods, n)
    return res


# ---------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------
def _binary(kind: str, a: np.ndarray, b: np.ndarray, moduli: np.ndarray, n: int,
            tier: str | None, out: object) -> np.ndarray:
    if a.shape != b.shape:
        raise ParameterError(
            f"a and b must have the same shape; got {a.shape} and {b.shape}")
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    a2, b2 = _rows(a, n), _rows(b, n)
    inputs = [(a2, "a"), (b2, "b")]
    _check_inputs_below(inputs, moduli)
    extra = () if kind == "pointwise_mul" else (tier,)
    if out is None and _active == "cpp":  # the core allocates and returns the result
        res = _call(kind, (a2, b2, None, moduli) + extra, inputs, moduli)
        return res.reshape(a.shape)  # type: ignore[union-attr]
    res = _prepare_out(out, a.shape, [a, b], may_alias=(kind == "pointwise_mul"))
    _call(kind, (a2, b2, _rows(res, n), moduli) + extra, inputs, moduli)
    return res


def pointwise_mul(a: object, b: object, q: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Element-wise ``a * b mod q`` (the product of two NTT-domain polynomials).

    Parameters
    ----------
    a, b : array_like of uint64, same shape (n,) or (rows, n)
        Values in ``[0, q)``.
    q : int
        NTT-friendly prime as for :func:`ntt`.
    out : ndarray of uint64, optional
        Destination; may be ``a`` or ``b`` itself.

    Returns
    -------
    ndarray of uint64, shape of ``a``

    Raises
    ------
    ParameterError
        As for :func:`ntt`, and when the shapes of ``a`` and ``b`` differ.
    """
    arr_a, qi, n = _single(a, q, "a")
    arr_b, _, _ = _single(b, q, "b")
    return _binary("pointwise_mul", arr_a, arr_b, _moduli_array((qi,)), n,
                   None, out)


def pointwise_mul_rns(a: object, b: object, moduli: Sequence[int], *,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Element-wise product of RNS arrays, row ``i`` modulo ``moduli[i]``; see :func:`ntt_rns`."""
    arr_a, mods, n = _rns(a, moduli, "a")
    arr_b, _, _ = _rns(b, mods, "b")
    return _binary("pointwise_mul", arr_a, arr_b, _moduli_array(mods), n, None, out)


def polymul(a: object, b: object, q: int, *, tier: str = "auto",
            out: np.ndarray | None = None) -> np.ndarray:
    """Negacyclic product ``a * b mod (X^n + 1, q)``.

    Parameters
    ----------
    a, b : array_like of uint64, same shape (n,) or (rows, n)
        Coefficients in ``[0, q)``, lowest degree first; 2-D inputs multiply
        row by row.
    q : int
        Prime, ``q < 2**62``, ``q == 1 (mod 2n)``.
    tier : str, default "auto"
        As for :func:`ntt`.
    out : ndarray of uint64, optional
        Destination, overlapping neither input.

    Returns
    -------
    ndarray of uint64, shape of ``a``
        ``c[k] = sum_{i+j=k} a_i b_j - sum_{i+j=k+n} a_i b_j mod q``.

    Raises
    ------
    ParameterError
        As for :func:`ntt`, when the shapes differ, or ``out`` overlaps an input.

    Notes
    -----
    Computed as ``intt(ntt(a) * ntt(b))``: O(n log n) instead of the
    schoolbook O(n^2). For ``a * b`` with several primes use
    :func:`polymul_rns` (one call per RNS polynomial, not one per prime).

    Examples
    --------
    >>> import numpy as np
    >>> from he_ml import native
    >>> q = native.find_primes(30, 4, 1)[0]
    >>> x = np.array([0, 1, 0, 0], dtype=np.uint64)        # X
    >>> x3 = np.array([0, 0, 0, 1], dtype=np.uint64)       # X^3
    >>> native.polymul(x, x3, q).tolist() == [q - 1, 0, 0, 0]   # X^4 = -1
    True
    """
    arr_a, qi, n = _single(a, q, "a")
    arr_b, _, _ = _single(b, q, "b")
    tier = _check_tier(tier, [qi])
    return _binary("polymul", arr_a, arr_b, _moduli_array((qi,)), n, tier, out)


def polymul_rns(a: object, b: object, moduli: Sequence[int], *, tier: str = "auto",
                out: np.ndarray | None = None) -> np.ndarray:
    """Negacyclic products of RNS polynomials, row ``i`` modulo ``moduli[i]``, in one call.

    Parameters
    ----------
    a, b : array_like of uint64, same shape (k, n) or (m, k, n)
        Row ``i`` in ``[0, moduli[i])``.
    moduli : sequence of k int
        NTT-friendly primes as for :func:`ntt`.
    tier, out
        As for :func:`polymul`.

    Returns
    -------
    ndarray of uint64, shape of ``a``
        Equal to ``polymul(a[..., i, :], b[..., i, :], moduli[i])`` for every ``i``.

    Raises
    ------
    ParameterError
        As for :func:`polymul`, and when ``a.shape[-2] != len(moduli)``.
    """
    arr_a, mods, n = _rns(a, moduli, "a")
    arr_b, _, _ = _rns(b, mods, "b")
    tier = _check_tier(tier, mods)
    return _binary("polymul", arr_a, arr_b, _moduli_array(mods), n, tier, out)


# ---------------------------------------------------------------------------
# Number theory
# ---------------------------------------------------------------------------
def find_primes(bits: int, n: int, count: int) -> list[int]:
    """Distinct NTT-friendly primes: ``bits`` bits exactly, ``q == 1 (mod 2n)``.

    Parameters
    ----------
    bits : int
        Bit length of every prime, ``log2(n) + 2 <= bits <= 62``; the primes
        lie in ``[2**(bits-1), 2**bits)``.
    n : int
        Polynomial length (power of two in ``[2, 65536]``) the primes must support.
    count : int
        Number of primes wanted, ``1 <= count <= MAX_PRIME_COUNT`` (65536).

    Returns
    -------
    list of int
        The ``count`` largest such primes, largest first (deterministic).

    Raises
    ------
    ParameterError
        If an argument is out of range or fewer than ``count`` such primes exist.
        Every limit is checked before any search or allocation, on both
        backends, so ``find_primes(2, 2, 10**9)`` fails at once.

    Examples
    --------
    >>> from he_ml import native
    >>> native.find_primes(20, 1024, 2)
    [1038337, 1032193]
    """
    bits_i = _as_int(bits, "bits")
    n_i = _as_int(n, "n")
    count_i = _as_int(count, "count")
    # All limits before any work or allocation (the backends size their output by count).
    _check_n(n_i)
    min_bits = n_i.bit_length() + 1  # log2(n) + 2: below, no q == 1 mod 2n has `bits` bits
    if not min_bits <= bits_i <= MAX_MODULUS_BITS:
        raise ParameterError(
            f"bits must be in [{min_bits}, {MAX_MODULUS_BITS}] for n = {n_i} (primes q == 1 "
            f"mod 2n need at least log2(n) + 2 bits; the core needs q < 2^62); got {bits_i}. "
            f"Ask for between {min_bits} and {MAX_MODULUS_BITS} bits.")
    if count_i < 1:
        raise ParameterError(f"count must be at least 1; got {count_i}")
    if count_i > MAX_PRIME_COUNT:
        raise ParameterError(
            f"count must be at most {MAX_PRIME_COUNT} (find_primes' documented limit); got "
            f"{count_i}. Ask for fewer primes: an RNS modulus rarely needs more than 64.")
    candidates = (1 << (bits_i - 1)) // (2 * n_i)  # q = k 2n + 1 in [2^(bits-1), 2^bits)
    if count_i > candidates:
        raise ParameterError(
            f"count must be at most the {candidates} candidates q == 1 mod {2 * n_i} of "
            f"{bits_i} bits (not all prime); got {count_i}. Ask for fewer primes or more bits.")
    try:
        return [int(q) for q in _raw().find_primes(bits_i, n_i, count_i)]
    except ValueError as e:
        raise ParameterError(
            f"cannot find {count_i} primes of {bits_i} bits with q == 1 mod {2 * n_i}: {e}. "
            "Ask for fewer primes or more bits.") from e


def is_prime(q: int) -> bool:
    """Deterministic primality test for ``0 <= q < 2**64`` (Miller-Rabin, 12 fixed bases)."""
    qi = _as_int(q, "q")
    if not 0 <= qi < 1 << 64:
        raise ParameterError(f"q must be in [0, 2^64); got {qi}")
    return bool(_raw().is_prime(qi))


def psi(n: int, q: int) -> int:
    """The smallest primitive ``2n``-th root of unity modulo ``q`` (the transforms' root).

    Raises
    ------
    ParameterError
        If ``n`` or ``q`` are invalid as for :func:`ntt`.
    """
    n_i = _as_int(n, "n")
    _check_n(n_i)
    qi = _as_int(q, "q")
    _check_modulus(qi, n_i, _active)
    try:
        return int(_raw().psi(n_i, qi))
    except ValueError as e:
        raise ParameterError(f"psi: {e}") from e


# ---------------------------------------------------------------------------
# Introspection
# ---------------------------------------------------------------------------
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
    if _active == "numba":
        return "numba"
    return str(_cpp_module.select_tier(qi))


def available_tiers(q: int | None = None) -> list[str]:
    """Tiers that can run for ``q`` here (fastest first), for the ``tier=`` argument.

    ``["numba"]`` while the fallback runs; ``q`` defaults as in :func:`backend`.
    """
    qi = _probe_q(q)
    if _active == "numba":
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
