"""Number theory: deterministic primality, NTT-friendly prime search, psi."""
from __future__ import annotations

import numpy as np
import pytest
from native_testutil import need_cpp
from ntt_reference import is_prime_reference, minimal_psi_reference

from he_ml import native

# strong pseudoprimes to small bases and other traps for a weak Miller-Rabin
COMPOSITES = [
    0, 1, 4, 561, 2047, 1373653, 25326001, 3215031751, 2152302898747, 3474749660383,
    341550071728321, 3825123056546413051, 318665857834031151167461 % (1 << 64),
    (1 << 61) + 1, (1 << 62) - 1, (1 << 64) - 1, 4294967297, 18446744030759878681,
]
PRIMES = [2, 3, 5, 97, 65537, 1032193, 281474976710897, 0xFFFFFFFFFFC0001, (1 << 61) - 1,
          (1 << 62) - 57, (1 << 64) - 59, 18446744073709551557]


def test_is_prime_known_values(impl):
    for c in COMPOSITES:
        assert native.is_prime(c) is False, c
        assert is_prime_reference(c) is False or c >= 1 << 64
    for p in PRIMES:
        assert native.is_prime(p) is True, p


def test_is_prime_small_range_exact(impl):
    for q in range(3000):
        assert native.is_prime(q) == is_prime_reference(q), q


def test_is_prime_random_64bit(impl):
    rng = np.random.default_rng(7)
    for v in rng.integers(1 << 40, 1 << 63, size=300, dtype=np.uint64):
        v = int(v) | 1
        assert native.is_prime(v) == is_prime_reference(v), v


@pytest.mark.parametrize("bits,n,count", [(20, 1024, 3), (30, 4096, 5), (49, 8192, 2),
                                          (50, 16384, 4), (60, 32768, 3), (62, 65536, 2),
                                          (6, 2, 4)])
def test_find_primes(impl, bits, n, count):
    primes = native.find_primes(bits, n, count)
    assert len(primes) == count == len(set(primes))
    assert primes == sorted(primes, reverse=True)
    for q in primes:
        assert q.bit_length() == bits and q % (2 * n) == 1 and is_prime_reference(q)
    # largest first: nothing was skipped between 2^bits and the last prime found
    q = (1 << bits) - 1
    q -= (q - 1) % (2 * n)
    expected = []
    while len(expected) < count:
        if is_prime_reference(q):
            expected.append(q)
        q -= 2 * n
    assert primes == expected


@pytest.mark.parametrize("n,bits", [(2, 62), (8, 20), (1024, 50), (65536, 61)])
def test_psi_is_smallest_primitive_root(impl, n, bits):
    q = native.find_primes(bits, n, 1)[0]
    p = native.psi(n, q)
    assert pow(p, n, q) == q - 1  # order exactly 2n
    if n <= 1024:
        assert p == minimal_psi_reference(n, q)


def test_number_theory_numba_equals_cpp():
    need_cpp()
    rng = np.random.default_rng(11)
    values = [int(v) for v in rng.integers(0, 1 << 63, size=200, dtype=np.uint64)]
    values += COMPOSITES + PRIMES
    with native.use_backend("numba"):
        nb = ([native.is_prime(v) for v in values], native.find_primes(55, 4096, 6),
              native.psi(4096, native.find_primes(55, 4096, 1)[0]))
    with native.use_backend("cpp"):
        cpp = ([native.is_prime(v) for v in values], native.find_primes(55, 4096, 6),
               native.psi(4096, native.find_primes(55, 4096, 1)[0]))
    assert nb == cpp
