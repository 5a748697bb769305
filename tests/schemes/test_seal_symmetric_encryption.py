"""Key-holder (symmetric, secret-key) encryption vs public-key encryption on CKKS and BFV.

The key holder's context encrypts with SEAL's symmetric encryption; a public context
encrypts with the public key. Both must decrypt to the plaintext within the fresh-noise
bound of CKKS (n / 2^scale_bits per slot, see test_ckks.fresh_error_bound: max over slots
~12 std = 2n / 2^scale) or exactly for BFV, and mix freely in arithmetic.
"""
from __future__ import annotations

import numpy as np

rng = np.random.default_rng(5)


def test_ckks_symmetric_and_public_ciphertexts_agree(ckks_light):
    ctx, pub = ckks_light, ckks_light.public_context()
    x = rng.normal(size=3000)
    bound = 2 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    a, b = ctx.encrypt(x), pub.encrypt(x)
    assert np.max(np.abs(ctx.decrypt(a) - x)) < bound
    assert np.max(np.abs(ctx.decrypt(b) - x)) < bound
    np.testing.assert_allclose(ctx.decrypt(a + b), 2 * x, atol=2 * bound)
    np.testing.assert_allclose(ctx.decrypt((a * 0.5) * b), 0.5 * x * x, atol=50 * bound)
    # bytes of a symmetric ciphertext load and compute on the server like any other
    c = pub.ciphertext_from_bytes(a.to_bytes())
    np.testing.assert_allclose(ctx.decrypt(c * 2.0 + b), 3 * x, atol=4 * bound)


def test_ckks_fresh_ciphertexts_are_randomized(ckks_light):
    x = np.zeros(16)
    a, b = ckks_light.encrypt(x).to_bytes(), ckks_light.encrypt(x).to_bytes()
    assert a != b


def test_bfv_symmetric_and_public_ciphertexts_agree(bfv_sum):
    ctx, pub = bfv_sum, bfv_sum.public_context()
    x = rng.integers(-1000, 1000, 500)
    a, b = ctx.encrypt(x), pub.encrypt(x)
    np.testing.assert_array_equal(ctx.decrypt(a), x)
    np.testing.assert_array_equal(ctx.decrypt(a - b), np.zeros_like(x))
    np.testing.assert_array_equal(ctx.decrypt(a * 3 + b), 4 * x)
