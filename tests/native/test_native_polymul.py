"""Products: polymul vs big-integer schoolbook, pointwise, RNS forms vs per-prime calls."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from native_testutil import prime, random_coeffs, skip_unless_tier_runs
from ntt_reference import negacyclic_schoolbook

from he_ml import native


def test_kat_negacyclic_products(kat, path):
    for entry in kat["negacyclic_products"]:
        q = entry["q"]
        if path != "auto" and path not in native.available_tiers(q):
            continue
        a = np.array(entry["a"], dtype=np.uint64)
        b = np.array(entry["b"], dtype=np.uint64)
        assert native.polymul(a, b, q, tier=path).tolist() == entry["product"]


@functools.cache
def _schoolbook_case(n: int, bits: int) -> tuple[int, np.ndarray, np.ndarray, list[int]]:
    """(q, a, b, a*b) for one grid point, computed once and shared by every path."""
    q = prime(bits, n)
    rng = np.random.default_rng(n * 100 + bits)
    a = random_coeffs(rng, q, n)
    b = random_coeffs(rng, q, n)
    a[-1] = q - 1  # the wrap-around term X^(n-1) * X^(n-1) = -X^(n-2) is exercised
    b[-1] = q - 1
    a.flags.writeable = b.flags.writeable = False
    return q, a, b, negacyclic_schoolbook([int(v) for v in a], [int(v) for v in b], q)


@pytest.mark.parametrize("n,bits", [(2, 20), (4, 62), (16, 30), (64, 49), (128, 50), (256, 61),
                                    (512, 55), (1024, 40)])
def test_polymul_matches_schoolbook(path, n, bits):
    q, a, b, expected = _schoolbook_case(n, bits)
    skip_unless_tier_runs(path, q)
    got = native.polymul(a, b, q, tier=path)
    assert got.dtype == np.uint64
    assert got.tolist() == expected


def test_polymul_structure(impl):
    """X^i * X^j = X^(i+j) for i + j < n and -X^(i+j-n) beyond (negacyclic)."""
    n, q = 16, prime(40, 16)
    for i, j in [(0, 5), (3, 12), (9, 9), (15, 15)]:
        xi = np.zeros(n, dtype=np.uint64)
        xj = np.zeros(n, dtype=np.uint64)
        xi[i] = xj[j] = 1
        expected = np.zeros(n, dtype=np.uint64)
        k = i + j
        expected[k % n] = 1 if k < n else q - 1
        np.testing.assert_array_equal(native.polymul(xi, xj, q), expected)


def test_polymul_batch_and_out(impl, rng):
    n, q = 256, prime(50, 256)
    a = random_coeffs(rng, q, (3, n))
    b = random_coeffs(rng, q, (3, n))
    out = np.empty_like(a)
    assert native.polymul(a, b, q, out=out) is out
    for r in range(3):
        np.testing.assert_array_equal(out[r], native.polymul(a[r], b[r], q))


def test_polymul_equals_ntt_pointwise_intt(impl, rng):
    n, q = 1024, prime(60, 1024)
    a, b = random_coeffs(rng, q, n), random_coeffs(rng, q, n)
    via_ntt = native.intt(native.pointwise_mul(native.ntt(a, q), native.ntt(b, q), q), q)
    np.testing.assert_array_equal(native.polymul(a, b, q), via_ntt)


@pytest.mark.parametrize("bits", [20, 50, 61, 62])
def test_pointwise_mul_exact(impl, rng, bits):
    n = 1024
    q = prime(bits, n)
    a, b = random_coeffs(rng, q, (2, n)), random_coeffs(rng, q, (2, n))
    a[0, :4] = q - 1
    b[0, :4] = q - 1
    expected = (a.astype(object) * b.astype(object)) % q
    assert native.pointwise_mul(a, b, q).tolist() == expected.tolist()
    # in place into one of the operands is allowed
    c = a.copy()
    native.pointwise_mul(c, b, q, out=c)
    assert c.tolist() == expected.tolist()


# --------------------------------------------------------------------------
# RNS forms: one call for k primes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n,bits", [(8, 30), (1024, 50), (4096, 60), (2048, 62)])
def test_rns_forms_equal_per_prime_calls(path, rng, n, bits):
    moduli = [prime(bits, n, i) for i in range(3)]
    for q in moduli:
        skip_unless_tier_runs(path, q)
    a = np.stack([random_coeffs(rng, q, n) for q in moduli])
    b = np.stack([random_coeffs(rng, q, n) for q in moduli])
    f = native.ntt_rns(a, moduli, tier=path)
    g = native.intt_rns(a, moduli, tier=path)
    p = native.polymul_rns(a, b, moduli, tier=path)
    w = native.pointwise_mul_rns(a, b, moduli)
    for i, q in enumerate(moduli):
        np.testing.assert_array_equal(f[i], native.ntt(a[i], q, tier=path))
        np.testing.assert_array_equal(g[i], native.intt(a[i], q, tier=path))
        np.testing.assert_array_equal(p[i], native.polymul(a[i], b[i], q, tier=path))
        np.testing.assert_array_equal(w[i], native.pointwise_mul(a[i], b[i], q))
    np.testing.assert_array_equal(native.intt_rns(f, moduli, tier=path), a)


def test_rns_three_dimensional_batch(impl, rng):
    """(m, k, n): e.g. a ciphertext's two polynomials over k primes in one call."""
    n = 512
    moduli = [prime(50, n, 0), prime(55, n, 0), prime(50, n, 1)]
    a = np.stack([np.stack([random_coeffs(rng, q, n) for q in moduli]) for _ in range(2)])
    b = np.stack([np.stack([random_coeffs(rng, q, n) for q in moduli]) for _ in range(2)])
    f = native.ntt_rns(a, moduli)
    p = native.polymul_rns(a, b, moduli)
    assert f.shape == p.shape == (2, 3, n)
    for m in range(2):
        np.testing.assert_array_equal(f[m], native.ntt_rns(a[m], moduli))
        for i, q in enumerate(moduli):
            np.testing.assert_array_equal(p[m, i], native.polymul(a[m, i], b[m, i], q))


def test_rns_repeated_modulus(impl, rng):
    n, q = 64, prime(45, 64)
    a = random_coeffs(rng, q, (2, n))
    np.testing.assert_array_equal(native.ntt_rns(a, [q, q]), native.ntt(a, q))
