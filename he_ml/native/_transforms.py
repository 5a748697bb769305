"""Forward and inverse NTT (:func:`ntt`, :func:`intt`, :func:`ntt_rns`, :func:`intt_rns`).

Part of :mod:`he_ml.native` (import from there): the repeated-call fast path,
then the fully validated path.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _backend
from ._backend import _cpp_module
from ._validation import (_call, _check_inputs_below, _check_tier, _moduli_array,
                          _moduli_array_cached, _prepare_out, _rns, _rows, _same_buffer, _single)

__all__ = ["intt", "intt_rns", "ntt", "ntt_rns"]

# ---------------------------------------------------------------------------
# Hot path
# ---------------------------------------------------------------------------
_UINT64 = np.dtype(np.uint64)
# (moduli, n) pairs that passed the full validation below; bounded so that a caller
# cycling through fresh moduli cannot grow it without limit.
_VALIDATED: set[tuple[tuple[int, ...], int]] = set()
_VALIDATED_MAX = 1024


# The compiled entry points of the fast path, looked up once (a dict hit instead of a string
# concatenation and a module getattr per call).
_RAW_COPY = {} if _cpp_module is None else {
    "forward_ntt": _cpp_module.forward_ntt_copy, "inverse_ntt": _cpp_module.inverse_ntt_copy}
_RAW_INTO = {} if _cpp_module is None else {
    "forward_ntt": _cpp_module.forward_ntt_into, "inverse_ntt": _cpp_module.inverse_ntt_into}


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
    if (_backend._active != "cpp" or type(tier) is not str or type(a) is not np.ndarray
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
            return _RAW_COPY[kind](a, _moduli_array_cached(mods), tier)
        _RAW_INTO[kind](a, out, _moduli_array_cached(mods), tier)
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
    if _backend._active == "cpp":
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


