"""Argument validation shared by every public function of :mod:`he_ml.native`.

Limits first, before any allocation or native call; every failure is a
:class:`he_ml.errors.ParameterError` saying what was given and what to do.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import ParameterError
from . import _backend
from ._backend import _cpp_module, _raw

__all__ = ["MAX_MODULUS_BITS", "MAX_N", "MIN_N", "TIERS"]

MIN_N = 2
MAX_N = 65536
MAX_MODULUS_BITS = 62  # q < 2^62: lazy butterflies keep values below 4q < 2^64
TIERS = ("auto", "reference", "scalar", "avx512ifma", "avx512")


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
    if _backend._active == "numba":
        raise ParameterError(
            f"tier must be 'auto' while the numba fallback runs; got tier={tier!r}. "
            "Build the compiled core (pip install .) or call use_backend('cpp').")
    from ._introspection import available_tiers as _available_tiers  # error path only

    for q in set(moduli):
        if not _cpp_module.tier_supported(tier, q):
            raise ParameterError(
                f"tier {tier!r} cannot run for q = {q} ({q.bit_length()} bits) on this machine "
                f"and build; got tier={tier!r}. Tiers available for this q: "
                f"{_available_tiers(q)} (avx512ifma needs q < 2^50 and an AVX-512 IFMA CPU).")
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
    _check_modulus(qi, n, _backend._active)
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
    _check_moduli(tuple(mods), n, _backend._active)
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
    if _backend._active == "numba":
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


