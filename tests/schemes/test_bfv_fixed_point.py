"""BFV fixed point: ``meta["fixed_point_bits"]`` is honoured by decrypt and propagated by ops.

A BFV vector whose metadata says ``fixed_point_bits = f`` holds integers ``round(x * 2**f)``;
decrypting returns ``integers / 2**f`` as float64. Results are compared with the exact
integer arithmetic done in numpy, divided by the same power of two (BFV is exact, so the
comparison is exact too).
"""
from __future__ import annotations

import numpy as np
import pytest

from he_ml.errors import InvalidCiphertextError, ParameterError
from he_ml.schemes._format import pack_blob, unpack_blob

rng = np.random.default_rng(11)


def _fixed(ctx, values, bits):
    """Quantize, encrypt and mark a vector as fixed point (what he_ml.ml.encrypt_features does)."""
    ints = np.rint(np.asarray(values) * 2.0 ** bits).astype(np.int64)
    v = ctx.encrypt(ints)
    v.meta["fixed_point_bits"] = bits
    return v, ints


def test_decrypt_divides_by_the_scale_and_returns_float(bfv_sum):
    x = rng.normal(size=50) * 10
    v, ints = _fixed(bfv_sum, x, 8)
    out = bfv_sum.decrypt(v)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, ints / 256.0)
    assert np.max(np.abs(out - x)) <= 2.0 ** -9  # rounding to 8 fractional bits


def test_plain_integer_vectors_still_decrypt_to_int64(bfv_sum):
    v = bfv_sum.encrypt(np.array([1, -2, 3]))
    assert "fixed_point_bits" not in v.meta
    out = bfv_sum.decrypt(v)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [1, -2, 3])


def test_operations_propagate_the_scale(bfv_inference):
    ctx = bfv_inference
    a, ia = _fixed(ctx, rng.normal(size=20), 6)
    b, ib = _fixed(ctx, rng.normal(size=20), 6)
    scale = 2.0 ** 6
    np.testing.assert_array_equal(ctx.decrypt(a + b), (ia + ib) / scale)
    np.testing.assert_array_equal(ctx.decrypt(a - b), (ia - ib) / scale)
    np.testing.assert_array_equal(ctx.decrypt(-a), -ia / scale)
    np.testing.assert_array_equal(ctx.decrypt(a * 3), ia * 3 / scale)     # integer factor keeps f
    np.testing.assert_array_equal(ctx.decrypt(a + 5), (ia + 5) / scale)   # addend already at scale
    np.testing.assert_array_equal(ctx.decrypt(a.sum()), [ia.sum() / scale])
    w = rng.integers(-4, 5, 20)
    np.testing.assert_array_equal(ctx.decrypt(a.dot(w)), [ia @ w / scale])
    prod = a * b                                                          # product adds the bits
    assert prod.meta["fixed_point_bits"] == 12
    np.testing.assert_array_equal(ctx.decrypt(prod), ia * ib / 2.0 ** 12)
    plain = ctx.encrypt(rng.integers(-3, 4, 20))
    assert (a * plain).meta["fixed_point_bits"] == 6                      # integer x fixed point


def test_mismatched_scales_raise(bfv_sum):
    a, _ = _fixed(bfv_sum, [1.0, 2.0], 4)
    b, _ = _fixed(bfv_sum, [1.0, 2.0], 8)
    c = bfv_sum.encrypt(np.array([1, 2]))
    for x, y in ((a, b), (a, c)):
        with pytest.raises(ParameterError, match="fixed-point scales") as e:
            x + y
        assert "fixed_point_bits" in str(e.value)
        with pytest.raises(ParameterError, match="fixed-point scales"):
            x - y


def test_scale_survives_bytes_and_bad_values_are_rejected(bfv_sum):
    a, ints = _fixed(bfv_sum, rng.normal(size=5), 10)
    back = bfv_sum.ciphertext_from_bytes(a.to_bytes())
    assert back.meta["fixed_point_bits"] == 10
    np.testing.assert_array_equal(bfv_sum.decrypt(back), ints / 1024.0)
    blob = unpack_blob(a.to_bytes())
    for bad in (-1, 500, "8", True, 2.5):
        meta = dict(blob.metadata)
        meta["meta"] = dict(meta["meta"], fixed_point_bits=bad)
        data = pack_blob(blob.kind, blob.scheme, blob.fingerprint, meta, blob.sections)
        with pytest.raises(InvalidCiphertextError, match="fixed_point_bits"):
            bfv_sum.ciphertext_from_bytes(data)
