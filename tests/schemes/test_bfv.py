"""BFV backend: exact against numpy int64, overflow tracking, depth, bytes and errors."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import he_ml
from he_ml.errors import (
    ContextMismatchError,
    DepthExhaustedError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    UnsupportedOperationError,
)
from he_ml.schemes._format import pack_blob, unpack_blob

rng = np.random.default_rng(7)


def test_roundtrip_chunk_boundaries_and_shapes(bfv_sum):
    s = bfv_sum.slot_count
    assert s == 8192
    for size in [1, s - 1, s, s + 1, 3 * s + 7]:
        v = rng.integers(-1000, 1000, size)
        x = bfv_sum.encrypt(v)
        assert x.num_ciphertexts == -(-size // s)
        np.testing.assert_array_equal(bfv_sum.decrypt(x), v)
    m = rng.integers(-5, 5, (4, 3, 2))
    np.testing.assert_array_equal(bfv_sum.decrypt(bfv_sum.encrypt(m) * 2), 2 * m)
    np.testing.assert_array_equal(bfv_sum.decrypt(bfv_sum.encrypt(m.astype(float))), m)  # integral floats


def test_arithmetic_exact(bfv_inference):
    ctx = bfv_inference
    n = ctx.slot_count + 11
    # |a|, |b| <= 30 -> tracked bound 32; t ~ 2^20 holds 32^3 and 32 * sum|w| for |w| <= 2
    a, b = rng.integers(-30, 31, n), rng.integers(-30, 31, n)
    w = rng.integers(-2, 3, n)
    ea, eb = ctx.encrypt(a), ctx.encrypt(b)
    np.testing.assert_array_equal(ctx.decrypt(ea + eb), a + b)
    np.testing.assert_array_equal(ctx.decrypt(ea - eb), a - b)
    np.testing.assert_array_equal(ctx.decrypt(-ea), -a)
    np.testing.assert_array_equal(ctx.decrypt(ea - ea), 0 * a)
    np.testing.assert_array_equal(ctx.decrypt(ea + 7), a + 7)
    np.testing.assert_array_equal(ctx.decrypt(7 - ea), 7 - a)
    np.testing.assert_array_equal(ctx.decrypt(ea + w), a + w)
    np.testing.assert_array_equal(ctx.decrypt(ea * -3), -3 * a)
    np.testing.assert_array_equal(ctx.decrypt(ea * w), a * w)
    np.testing.assert_array_equal(ctx.decrypt(ea * 0), 0 * a)
    np.testing.assert_array_equal(ctx.decrypt(ea * eb), a * b)
    np.testing.assert_array_equal(ctx.decrypt((ea * eb) * ea), a * b * a)
    np.testing.assert_array_equal(ctx.decrypt(ea.sum()), [a.sum()])
    np.testing.assert_array_equal(ctx.decrypt(ea.dot(w)), [a @ w])


def test_sum_dot_across_chunks(bfv_sum):
    s = bfv_sum.slot_count
    for size in [2, s - 1, s, s + 1, 2 * s + 5]:
        v = rng.integers(-100, 100, size)
        w = rng.integers(-3, 4, size)
        x = bfv_sum.encrypt(v)
        assert bfv_sum.decrypt(x.sum())[0] == v.sum()
        assert bfv_sum.decrypt(x.dot(w))[0] == v @ w
        # padding slots stay zero through scalar additions
        assert bfv_sum.decrypt((x * 4 - 1).sum())[0] == (v * 4 - 1).sum()
        assert bfv_sum.decrypt((7 - x).sum())[0] == (7 - v).sum()


@settings(max_examples=4, deadline=None)
@given(st.lists(st.integers(-10 ** 5, 10 ** 5), min_size=2, max_size=30), st.integers(-50, 50),
       st.integers(-50, 50))
def test_property_linearity(bfv_sum, vals, alpha, beta):
    v = np.array(vals, dtype=np.int64)
    w1 = np.arange(v.size) % 5 - 2
    w2 = np.arange(v.size) % 3 - 1
    x = bfv_sum.encrypt(v)
    lhs = bfv_sum.decrypt(x.dot(alpha * w1 + beta * w2))[0]
    rhs = bfv_sum.decrypt(x.dot(w1) * alpha + x.dot(w2) * beta)[0]
    assert lhs == rhs == v @ (alpha * w1 + beta * w2)
    k = v.size // 2
    assert bfv_sum.decrypt(bfv_sum.encrypt(v[:k]).sum() + bfv_sum.encrypt(v[k:]).sum())[0] == v.sum()


def test_bound_tracking_and_overflow(bfv_sum):
    half = bfv_sum.max_value
    assert half == (bfv_sum.plain_modulus - 1) // 2
    x = bfv_sum.encrypt([5, -3])
    assert x.meta["bound"] == 8 and bfv_sum.value_bound(x) == 8
    assert (x + x).meta["bound"] == 16
    assert (x * 3).meta["bound"] == 24
    assert x.sum().meta["bound"] == 16
    assert bfv_sum.headroom_bits(x) == pytest.approx(np.log2(half / 8))
    assert bfv_sum.check_overflow(x) == 8
    big = bfv_sum.encrypt([half])
    with pytest.raises(EncodingOverflowError, match=r"t=\d+.*plain_modulus_bits"):
        big + big
    with pytest.raises(EncodingOverflowError, match="sum of 2 values"):
        bfv_sum.encrypt([half, 1]).sum()
    with pytest.raises(EncodingOverflowError, match="holds only"):
        bfv_sum.encrypt([half + 1])
    with pytest.raises(EncodingOverflowError):
        x + np.array([half, 0])
    # explicit bound: reveals only what the caller chose
    y = bfv_sum.encrypt([5, -3], bound=1000)
    assert y.meta["bound"] == 1000
    with pytest.raises(ParameterError, match="bound must be an integer >= max"):
        bfv_sum.encrypt([5], bound=2)


def test_non_integers_rejected(bfv_sum):
    with pytest.raises(ParameterError, match="quantize"):
        bfv_sum.encrypt([1.5])
    x = bfv_sum.encrypt([1, 2])
    with pytest.raises(ParameterError, match="integers"):
        x * 0.5
    with pytest.raises(ParameterError, match="integers"):
        x / 2


def test_depth_tracking(bfv_inference):
    ctx = bfv_inference
    depth = ctx.max_depth
    assert depth == 3  # 30-bit plaintexts: bfv_depth_estimate(8192, [43, 43, 44, 44, 44], 30)
    x = ctx.encrypt([2, -1])
    y = x
    for i in range(depth):
        y = y * x
        assert y.level == depth - 1 - i
    np.testing.assert_array_equal(ctx.decrypt(y), [2 ** (depth + 1), (-1) ** (depth + 1)])
    with pytest.raises(DepthExhaustedError,
                       match=rf"used {depth} of the {depth} level.*he_ml.plan\(depth={depth + 1}"):
        y * x


def test_public_context_and_keys(bfv_sum):
    pub = he_ml.load_context(bfv_sum.to_bytes())
    sk = unpack_blob(bfv_sum.to_bytes(include_secret_key=True)).sections[4]
    assert sk not in bfv_sum.to_bytes() and sk[100:132] not in bfv_sum.public_context().to_bytes()
    assert not pub.has_secret_key
    x = pub.encrypt([1, 2, 3])
    with pytest.raises(SecretKeyMissingError):
        pub.decrypt(x)
    np.testing.assert_array_equal(bfv_sum.decrypt(bfv_sum.ciphertext_from_bytes(x.to_bytes())), [1, 2, 3])
    fresh = he_ml.BFV("sum")
    p2 = fresh.public_context()
    with pytest.raises(UnsupportedOperationError, match="rotations='sum'"):
        p2.encrypt([1, 2]).sum()
    with pytest.raises(UnsupportedOperationError, match="relin_keys=True"):
        p2.encrypt([1]) * p2.encrypt([1])


def test_pickle_and_foreign(bfv_sum):
    x = bfv_sum.encrypt(np.arange(6).reshape(3, 2))
    y = pickle.loads(pickle.dumps(x))
    np.testing.assert_array_equal(bfv_sum.decrypt(y), np.arange(6).reshape(3, 2))
    assert y.meta == x.meta
    other = he_ml.BFV("sum")
    with pytest.raises(ContextMismatchError):
        bfv_sum.ciphertext_from_bytes(other.encrypt([1]).to_bytes())


def test_malformed(bfv_sum):
    blob = bfv_sum.encrypt([1, 2]).to_bytes()
    b = unpack_blob(blob)
    for sections in ([b.sections[0][:-50]], [b"\x01" * 64], [], b.sections * 2):
        bad = pack_blob(b.kind, b.scheme, b.fingerprint, b.metadata, sections)
        with pytest.raises(InvalidCiphertextError):
            bfv_sum.ciphertext_from_bytes(bad)
    bad_meta = pack_blob(b.kind, b.scheme, b.fingerprint, {"shape": [2], "meta": {"bound": -1}}, b.sections)
    with pytest.raises(InvalidCiphertextError, match="bound"):
        bfv_sum.ciphertext_from_bytes(bad_meta)
    ckks_blob = he_ml.CKKS("sum").encrypt([1.0]).to_bytes()
    with pytest.raises(ContextMismatchError):
        bfv_sum.ciphertext_from_bytes(ckks_blob)


def test_parameters_and_presets():
    from he_ml.schemes.params import BFV_PRESETS, HE_STANDARD_MAX_BITS
    for p in BFV_PRESETS.values():
        assert sum(p.coeff_mod_bit_sizes) <= HE_STANDARD_MAX_BITS[p.poly_modulus_degree][128]
    with pytest.raises(ParameterError, match="plain_modulus_bits"):
        he_ml.BFV("sum", plain_modulus_bits=8)
    ctx = he_ml.BFV(None, poly_modulus_degree=4096, plain_modulus_bits=20, relin_keys=False)
    assert ctx.coeff_mod_bit_sizes == [36, 36, 37] and ctx.security_level == 128
    np.testing.assert_array_equal(ctx.decrypt(ctx.encrypt([-7, 7]) * 3), [-21, 21])
