"""Element-wise and negacyclic products (:func:`pointwise_mul`, :func:`polymul` and
their RNS forms).

Part of :mod:`he_ml.native` (import from there).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ParameterError
from . import _backend
from ._validation import (_call, _check_inputs_below, _check_tier, _moduli_array,
                          _prepare_out, _rns, _rows, _single)

__all__ = ["pointwise_mul", "pointwise_mul_rns", "polymul", "polymul_rns"]

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
    if out is None and _backend._active == "cpp":  # the core allocates and returns the result
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


