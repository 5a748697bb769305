"""Slow pure-Python references for the native NTT tests, written for clarity.

Everything here uses Python's arbitrary-precision integers and follows the
definitions literally, so it shares no code (and no 64-bit tricks) with the
kernels under test:

* :func:`minimal_psi_reference` - smallest primitive 2n-th root of unity;
* :func:`ntt_definition` - ``A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i)``, O(n^2);
* :func:`ntt_fast_reference` / :func:`intt_fast_reference` - the same
  transform by the recursive even/odd split, O(n log n), for larger n
  (cross-checked against the definition in the tests);
* :func:`negacyclic_schoolbook` - ``a * b mod (X^n + 1, q)``, O(n^2);
* :func:`is_prime_reference` - trial division for small numbers, strong
  probable-prime tests with 20 fixed bases beyond.
"""
from __future__ import annotations

__all__ = [
    "bitrev",
    "intt_fast_reference",
    "is_prime_reference",
    "minimal_psi_reference",
    "negacyclic_schoolbook",
    "ntt_definition",
    "ntt_fast_reference",
]


def bitrev(j: int, bits: int) -> int:
    """Reverse the lowest ``bits`` bits of ``j``."""
    return int(format(j, f"0{bits}b")[::-1], 2) if bits else 0


def is_prime_reference(q: int) -> bool:
    """Primality for test data: exact by trial division below 10^6, else 20-base Miller-Rabin."""
    if q < 2:
        return False
    if q < 1_000_000:
        return all(q % d for d in range(2, int(q**0.5) + 1))
    d, s = q - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71):
        x = pow(a, d, q)
        if x in (1, q - 1):
            continue
        for _ in range(s - 1):
            x = x * x % q
            if x == q - 1:
                break
        else:
            return False
    return True


def minimal_psi_reference(n: int, q: int) -> int:
    """Smallest ``x`` with ``x^n == -1 (mod q)``: the smallest primitive 2n-th root.

    ``x^n == -1`` means the order of ``x`` divides ``2n`` but not ``n``; as ``2n``
    is a power of two the order is exactly ``2n``. All such roots are the odd
    powers of any one of them, so we find one and take the minimum.
    """
    assert (q - 1) % (2 * n) == 0
    for x in range(2, q):
        g = pow(x, (q - 1) // (2 * n), q)
        if pow(g, n, q) == q - 1:
            break
    return min(pow(g, k, q) for k in range(1, 2 * n, 2))


def ntt_definition(a: list[int], q: int, psi: int) -> list[int]:
    """Forward negacyclic NTT straight from the definition (bit-reversed output)."""
    n = len(a)
    log_n = n.bit_length() - 1
    return [
        sum(a[i] * pow(psi, (2 * bitrev(j, log_n) + 1) * i, q) for i in range(n)) % q
        for j in range(n)
    ]


def _evaluate_natural(a: list[int], q: int, omega: int, twist: int) -> list[int]:
    """``[sum_i a[i] twist^i omega^(k i) for k in range(n)]`` by the radix-2 split."""
    n = len(a)
    if n == 1:
        return [a[0] % q]
    # a(x) = even(x^2) + x odd(x^2): halves evaluated at omega^2 with twist^2
    even = _evaluate_natural(a[0::2], q, omega * omega % q, twist * twist % q)
    odd = _evaluate_natural(a[1::2], q, omega * omega % q, twist * twist % q)
    out = [0] * n
    w = twist  # twist * omega^k for k = 0 .. n/2 - 1
    for k in range(n // 2):
        t = w * odd[k] % q
        out[k] = (even[k] + t) % q
        out[k + n // 2] = (even[k] - t) % q
        w = w * omega % q
    return out


def ntt_fast_reference(a: list[int], q: int, psi: int) -> list[int]:
    """Same result as :func:`ntt_definition` in O(n log n).

    ``A[j] = a(psi^(2 bitrev(j) + 1))``: evaluate ``a(psi x)`` at the powers of
    ``omega = psi^2`` in natural order, then permute to bit-reversed order.
    """
    n = len(a)
    log_n = n.bit_length() - 1
    natural = _evaluate_natural(list(a), q, psi * psi % q, psi)
    return [natural[bitrev(j, log_n)] for j in range(n)]


def intt_fast_reference(values: list[int], q: int, psi: int) -> list[int]:
    """Inverse of :func:`ntt_fast_reference`: ``a[i] = n^-1 psi^-i sum_k A_k omega^(-k i)``."""
    n = len(values)
    log_n = n.bit_length() - 1
    natural = [values[bitrev(k, log_n)] for k in range(n)]
    psi_inv = pow(psi, -1, q)
    omega_inv = psi_inv * psi_inv % q
    summed = _evaluate_natural(natural, q, omega_inv, 1)
    n_inv = pow(n, -1, q)
    return [summed[i] * n_inv % q * pow(psi_inv, i, q) % q for i in range(n)]


def negacyclic_schoolbook(a: list[int], b: list[int], q: int) -> list[int]:
    """``a * b`` in ``Z_q[X]/(X^n + 1)``: ``X^n = -1`` folds high terms back with a minus sign."""
    n = len(a)
    out = [0] * n
    for i in range(n):
        if a[i] == 0:
            continue
        for j in range(n):
            k = i + j
            if k < n:
                out[k] += a[i] * b[j]
            else:
                out[k - n] -= a[i] * b[j]
    return [v % q for v in out]
