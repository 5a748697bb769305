"""The numba fallback's 64-bit building blocks against Python big integers.

numba has no 128-bit integers; these primitives emulate them and every
transform depends on them, so they are tested on extreme values directly.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

nb = pytest.importorskip("he_ml.native._numba")

U64_MAX = (1 << 64) - 1
EDGE_64 = [0, 1, 2, 3, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 50) - 1, (1 << 62) - 1,
           1 << 63, U64_MAX - 1, U64_MAX]


def _u(v: int) -> np.uint64:
    return np.uint64(v)


def test_mulhi_extremes():
    rng = random.Random(1)
    pairs = [(a, b) for a in EDGE_64 for b in EDGE_64]
    pairs += [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(500)]
    for a, b in pairs:
        assert int(nb.mulhi(_u(a), _u(b))) == (a * b) >> 64, (a, b)


def test_div128_against_bigint():
    rng = random.Random(2)
    divisors = [1, 2, 3, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 62) - 57, 1 << 63,
                U64_MAX]
    divisors += [rng.getrandbits(rng.randint(1, 64)) | 1 for _ in range(400)]
    for d in divisors:
        for hi in {0, d - 1, rng.randrange(d)}:
            for lo in (0, U64_MAX, rng.getrandbits(64)):
                quot, rem = nb.div128(_u(hi), _u(lo), _u(d))
                assert (int(quot), int(rem)) == divmod((hi << 64) | lo, d), (hi, lo, d)


@pytest.mark.parametrize("bits", [2, 17, 31, 32, 33, 49, 50, 52, 60, 61, 62])
def test_mulmod_and_barrett(bits):
    rng = random.Random(bits)
    for _ in range(300):
        q = rng.randrange(1 << (bits - 1), 1 << bits) | 1
        q = max(q, 3)
        rh, rl = nb.barrett_ratio(_u(q))
        assert (int(rh) << 64) | int(rl) == (1 << 128) // q
        for a, b in ((q - 1, q - 1), (0, q - 1), (rng.randrange(q), rng.randrange(q))):
            assert int(nb.mulmod(_u(a), _u(b), _u(q))) == a * b % q
            assert int(nb.mulmod_barrett(_u(a), _u(b), _u(q), _u(rh), _u(rl))) == a * b % q


def test_mulmod_full_64bit_modulus():
    for q in ((1 << 64) - 59, (1 << 63) + 29, U64_MAX):
        for a, b in ((q - 1, q - 1), (q - 2, 12345678901234567), (1 << 63, 3)):
            a, b = a % q, b % q
            assert int(nb.mulmod(_u(a), _u(b), _u(q))) == a * b % q


def test_tables_layout():
    """tab[0] = psi^bitrev(i), tab[2] = psi^-bitrev(i), Shoup companions floor(w 2^64 / q)."""
    from ntt_reference import bitrev, minimal_psi_reference

    n, q = 16, 786433  # 3 * 2^18 + 1, prime
    tab, scal = nb.ntt_tables(n, q)
    p = minimal_psi_reference(n, q)
    p_inv = pow(p, -1, q)
    for i in range(n):
        assert int(tab[0, i]) == pow(p, bitrev(i, 4), q)
        assert int(tab[2, i]) == pow(p_inv, bitrev(i, 4), q)
        assert int(tab[1, i]) == (int(tab[0, i]) << 64) // q
        assert int(tab[3, i]) == (int(tab[2, i]) << 64) // q
    assert int(scal[1]) * n % q == 1
    assert int(scal[7]) == p
    assert not tab.flags.writeable  # shared cache entry is read-only
