"""Fixed-point encoding of real numbers as integers (no cryptography).

A real ``x`` is represented by the integer ``round(x * 2**s)`` at *scale* ``s``
(``s`` fractional bits).  Encoding is exact for integers and for every float
whose binary expansion stops within ``s`` fractional bits; otherwise it rounds
to nearest, so the quantization error of one value is at most ``2**-(s+1)``.

All functions return Python ``int`` objects (arbitrary precision): packed
Paillier slots routinely exceed 64 bits once a vector has been multiplied by
a plaintext, and silently wrapping an ``int64`` is exactly what this package
promises never to do.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = [
    "to_fixed",
    "from_fixed",
    "encode_multiplier",
    "encode_multipliers",
    "quantization_error",
]

# Below this magnitude an int64 array can be produced with numpy without any
# risk of overflow; beyond it we fall back to exact Python integers.
_INT64_SAFE = float(2**62)


def quantization_error(precision_bits: int) -> float:
    """Largest rounding error of one encoded value: ``2**-(precision_bits + 1)``."""
    return math.ldexp(1.0, -(int(precision_bits) + 1))


def to_fixed(values: np.ndarray, scale_bits: int) -> list[int]:
    """Encode a flat float64 or int64 array as integers ``round(v * 2**scale_bits)``.

    Parameters
    ----------
    values : numpy.ndarray, shape (n,)
        float64 (finite) or int64 values.
    scale_bits : int
        Number of fractional bits, >= 0.

    Returns
    -------
    list of int
        Exact Python integers; ties round half to even (numpy ``rint``).
    """
    s = int(scale_bits)
    arr = np.asarray(values).reshape(-1)
    if np.issubdtype(arr.dtype, np.integer):
        if s == 0:
            return arr.tolist()
        return [int(v) << s for v in arr.tolist()]
    # Multiplying by a power of two is exact in binary floating point (barring
    # overflow to inf, excluded by the finiteness checks upstream), so rint of
    # the scaled value is the correctly rounded fixed-point integer.
    with np.errstate(over="ignore"):
        scaled = np.rint(np.ldexp(arr.astype(np.float64, copy=False), s))
    if not np.all(np.isfinite(scaled)):
        raise OverflowError(f"values scaled by 2**{s} overflow float64")
    if scaled.size and float(np.max(np.abs(scaled))) < _INT64_SAFE:
        return scaled.astype(np.int64).tolist()
    return [int(v) for v in scaled.tolist()]  # int(float) is exact


def from_fixed(ints: list[int], scale_bits: int) -> np.ndarray:
    """Decode integers at scale ``scale_bits`` to float64 (correctly rounded)."""
    s = int(scale_bits)
    if ints and max(abs(v) for v in ints) < (1 << 53):
        return np.ldexp(np.asarray(ints, dtype=np.float64), -s)
    # Python's int / int true division is correctly rounded for any size.
    d = 1 << s
    return np.asarray([v / d for v in ints], dtype=np.float64)


def _fraction_bits_needed(x: float | int, max_bits: int) -> int | None:
    """Smallest j <= max_bits with x * 2**j an integer, or None."""
    if isinstance(x, (int, np.integer)):
        return 0
    fr = Fraction(float(x))
    den = fr.denominator  # a power of two for every finite float
    j = den.bit_length() - 1
    return j if j <= max_bits else None


def encode_multiplier(c: float | int, max_fraction_bits: int) -> tuple[int, int]:
    """Encode a plaintext multiplier as ``(c_int, j)`` with ``c ~= c_int / 2**j``.

    Uses the fewest fractional bits that represent ``c`` exactly (``2.0`` -> ``(2, 0)``,
    ``0.5`` -> ``(1, 1)``), else rounds at ``max_fraction_bits`` with error at most
    ``2**-(max_fraction_bits + 1)``.
    """
    j = _fraction_bits_needed(c, max_fraction_bits)
    if j is None:
        j = int(max_fraction_bits)
        return int(round(math.ldexp(float(c), j))), j
    if isinstance(c, (int, np.integer)):
        return int(c), 0
    return int(Fraction(float(c)) * (1 << j)), j


def encode_multipliers(w: np.ndarray, max_fraction_bits: int) -> tuple[list[int], int]:
    """Encode an array of multipliers with one common number of fractional bits.

    Returns ``(ints, j)`` where ``j`` is the smallest count (<= ``max_fraction_bits``)
    that represents every entry exactly, else ``max_fraction_bits`` with rounding.
    """
    arr = np.asarray(w).reshape(-1)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.tolist(), 0
    j = 0
    for v in np.unique(arr).tolist():
        need = _fraction_bits_needed(v, max_fraction_bits)
        if need is None:
            j = int(max_fraction_bits)
            break
        j = max(j, need)
    return to_fixed(arr, j), j
