"""NTT-friendly primes, primality and the transforms' root (:func:`find_primes`,
:func:`is_prime`, :func:`psi`).

Part of :mod:`he_ml.native` (import from there).
"""
from __future__ import annotations

from ..errors import ParameterError
from . import _backend
from ._backend import _raw
from ._validation import MAX_MODULUS_BITS, _as_int, _check_modulus, _check_n

__all__ = ["MAX_PRIME_COUNT", "find_primes", "is_prime", "psi"]

MAX_PRIME_COUNT = 65536  # find_primes(count=...) limit, the C++ core's (primes.cpp)


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
    _check_modulus(qi, n_i, _backend._active)
    try:
        return int(_raw().psi(n_i, qi))
    except ValueError as e:
        raise ParameterError(f"psi: {e}") from e


