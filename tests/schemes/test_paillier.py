"""Packed Paillier against numpy, with tolerances derived from the encoding parameters.

Tolerance derivation (q = 2**-(precision_bits+1), the quantization error of one value):

* a fresh value decodes within q;
* a sum of N encrypted values (or x + y, N = 2) within N q (errors add);
* x + a for a plaintext a encoded at the vector's scale s: q + 2**-(s+1);
* x * c: c is encoded as c~ = c_int / 2**j with |c - c~| <= e_c (e_c = 0 when c has <= precision_bits
  fractional bits, else 2**-(precision_bits+1)), so |x c - x~ c~| <= |c| q + |x| e_c + q e_c;
* dot(x, w): the sum of the per-term product errors, sum_i (|w_i| q + |x_i| e_w + q e_w);
* decoding to float64 adds a relative 2**-52 (covered by rtol=1e-12).
"""
from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import he_ml
from he_ml.errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InsecureParametersError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from he_ml.schemes._format import Kind, pack_blob, unpack_blob
from he_ml.schemes.paillier import DEFAULT_PAILLIER_KEY_BITS, Paillier

F = 24
Q = 2.0 ** -(F + 1)
RTOL = 1e-12


def assert_close(actual, expected, tol) -> None:
    """|actual - expected| <= tol (elementwise, derived above) + float64 decoding slack."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    err = np.abs(actual - expected)
    limit = np.asarray(tol) + RTOL * np.abs(expected)
    assert np.all(err <= limit), f"max error {err.max():.3g} exceeds the derived bound {np.max(limit):.3g}"


def e_mult(c: np.ndarray | float) -> np.ndarray | float:
    """Encoding error of multipliers at 24 fractional bits (0 if exactly representable)."""
    c = np.asarray(c, dtype=np.float64)
    exact = np.ldexp(c, F) == np.rint(np.ldexp(c, F))
    return np.where(exact, 0.0, Q)


# ---------------------------------------------------------------- fixtures (insecure on purpose)
@pytest.fixture(scope="session")
def insecure_tiny_key() -> Paillier:
    """1024-bit key, general preset: fast and INSECURE (80-bit), for tests only."""
    return Paillier(1024, allow_insecure=True)


@pytest.fixture(scope="session")
def insecure_tiny_dense_key() -> Paillier:
    """1024-bit key, dense 'sum' preset with max_additions=3 (headroom tests)."""
    return Paillier(1024, preset="sum", max_additions=3, max_value=8.0, allow_insecure=True)


@pytest.fixture(scope="session")
def insecure_tiny_other_key() -> Paillier:
    return Paillier(1024, allow_insecure=True)


@pytest.fixture(scope="session")
def insecure_one_slot_key() -> Paillier:
    return Paillier(1024, slots_per_ciphertext=1, allow_insecure=True)


@pytest.fixture(scope="session")
def default_key() -> Paillier:
    """The real default: 3072-bit, 128-bit security (key generation takes ~1 s; used sparingly)."""
    return Paillier()


rng = np.random.default_rng(20240611)


def data(shape, scale=100.0):
    return rng.uniform(-scale, scale, shape)


# ---------------------------------------------------------------- keys and security
def test_insecure_key_sizes_are_refused():
    with pytest.raises(InsecureParametersError, match=r"key_bits=1024 gives 80-bit .*key_bits=3072"):
        Paillier(1024)
    with pytest.raises(InsecureParametersError, match="randomness_bits=100"):
        Paillier(2048, randomness_bits=100)
    with pytest.raises(ParameterError, match="key_bits must be an integer"):
        Paillier("3072")


def test_default_key_is_3072_bits_with_128_bit_security(default_key):
    ctx = default_key
    assert DEFAULT_PAILLIER_KEY_BITS == 3072
    assert ctx.key_bits == 3072 and ctx.security_level == 128
    assert ctx.public_key.n.bit_length() == 3072
    assert ctx.parameters["randomness_bits"] == 256
    assert ctx.capabilities == frozenset({"add", "mul_plain", "sum", "dot"})
    x = data(50, 1000.0)
    assert_close(ctx.decrypt(ctx.encrypt(x)), x, Q)


def test_2048_bit_keys_report_112_bits():
    ctx = Paillier(2048, preset="sum")
    assert ctx.security_level == 112 and ctx.parameters["randomness_bits"] == 224
    x = data(40)
    assert_close(ctx.decrypt(ctx.encrypt(x)), x, Q)


def test_raw_encrypt_is_a_standard_paillier_ciphertext(insecure_tiny_key):
    ctx = insecure_tiny_key
    n = ctx.public_key.n
    m = 123456789
    # exponent 0: randomizer h_s^0 = 1, so the ciphertext is exactly (1 + m n) mod n^2
    assert ctx.raw_encrypt(m, exponent=0) == (1 + m * n) % (n * n)
    c = ctx.raw_encrypt(m)
    assert ctx.raw_decrypt(c) == m
    assert ctx.private_key.raw_decrypt(c) == m  # python-paillier decrypts our DJN ciphertexts
    c2 = ctx.public_key.raw_encrypt(m)  # and we decrypt python-paillier's
    assert ctx.raw_decrypt(c2) == m
    with pytest.raises(ParameterError, match=r"integer in \[0, n\)"):
        ctx.raw_encrypt(n)
    with pytest.raises(InvalidCiphertextError):
        ctx.raw_decrypt(0)


def test_from_phe_keys(insecure_tiny_key):
    pk, sk = insecure_tiny_key.public_key, insecure_tiny_key.private_key
    ctx = Paillier.from_phe_keys(pk, sk, preset="sum", allow_insecure=True)
    x = data(30)
    assert_close(ctx.decrypt(ctx.encrypt(x)), x, Q)
    enc_only = Paillier.from_phe_keys(pk, allow_insecure=True)
    assert not enc_only.has_secret_key
    with pytest.raises(ParameterError, match="unknown encoding parameter"):
        Paillier.from_phe_keys(pk, allow_insecure=True, precision=3)


def test_two_encryptions_differ(insecure_tiny_key):
    x = np.array([1.0, 2.0, 3.0])
    a, b = insecure_tiny_key.encrypt(x), insecure_tiny_key.encrypt(x)
    assert a.to_bytes() != b.to_bytes()
    r = insecure_tiny_key.rerandomize(a)
    assert r.chunks[0] != a.chunks[0]
    assert_close(insecure_tiny_key.decrypt(r), x, Q)


# ---------------------------------------------------------------- round trips, shapes, chunking
@pytest.mark.parametrize("shape", [(1,), (5,), (3, 4), (2, 3, 5), (40,)])
def test_round_trip_keeps_shape(insecure_tiny_key, shape):
    x = data(shape)
    enc = insecure_tiny_key.encrypt(x)
    out = insecure_tiny_key.decrypt(enc)
    assert out.shape == shape
    assert_close(out, x, Q)


def test_integers_booleans_and_range_boundaries(insecure_tiny_key):
    ctx = insecure_tiny_key
    ints = np.array([-1024, 0, 7, 1024], dtype=np.int64)
    np.testing.assert_array_equal(ctx.decrypt(ctx.encrypt(ints)), ints)
    np.testing.assert_array_equal(ctx.decrypt(ctx.encrypt([True, False])), [1.0, 0.0])
    with pytest.raises(EncodingOverflowError, match=r"value 1024.5 at flat index 1 .*max_value=1024"):
        ctx.encrypt([0.0, 1024.5])


@pytest.mark.parametrize("extra", [-1, 0, 1, 7])
def test_chunk_boundaries_for_every_operation(insecure_tiny_key, extra):
    ctx = insecure_tiny_key
    k = ctx.slot_count
    size = 2 * k + extra
    x, y, w = data(size), data(size), rng.uniform(-3, 3, size)
    ex, ey = ctx.encrypt(x), ctx.encrypt(y)
    assert ex.num_ciphertexts == -(-size // k)
    assert_close(ctx.decrypt(ex + ey), x + y, 2 * Q)
    assert_close(ctx.decrypt(ex.sum()), [x.sum()], size * Q)
    # a broadcast plaintext must not leak into the padding slots of the last ciphertext
    assert_close(ctx.decrypt((ex + 3.0).sum()), [x.sum() + 3.0 * size], size * Q)
    tol = np.sum(np.abs(w) * Q + np.abs(x) * e_mult(w) + Q * e_mult(w))
    assert_close(ctx.decrypt(ex.dot(w)), [x @ w], tol)


# ---------------------------------------------------------------- operations vs numpy
def test_add_sub_neg_plain(insecure_tiny_key):
    ctx = insecure_tiny_key
    x, y, a = data((4, 5)), data((4, 5)), data((4, 5))
    ex, ey = ctx.encrypt(x), ctx.encrypt(y)
    assert_close(ctx.decrypt(ex - ey), x - y, 2 * Q)
    assert_close(ctx.decrypt(-ex), -x, Q)
    assert_close(ctx.decrypt(ex + 3.25), x + 3.25, Q)
    assert_close(ctx.decrypt(ex + a), x + a, 2 * Q)
    assert_close(ctx.decrypt(a - ex), a - x, 2 * Q)
    assert_close(ctx.decrypt(a + ex), a + x, 2 * Q)
    assert_close(ctx.decrypt(ex - 1), x - 1, Q)


@pytest.mark.parametrize("c", [3, -2, 2.5, -0.1, 0.3333, 0, 1e-3])
def test_scalar_multiplication(insecure_tiny_key, c):
    ctx = insecure_tiny_key
    x = data(25)
    ex = ctx.encrypt(x)
    out = ctx.decrypt(ex * c)
    ec = float(e_mult(c))
    assert_close(out, x * c, abs(c) * Q + np.abs(x) * ec + Q * ec)
    assert ctx.decrypt(c * ex).shape == (25,)


def test_division_and_scale_alignment(insecure_tiny_key):
    ctx = insecure_tiny_key
    x, y = data(9), data(9)
    ex, ey = ctx.encrypt(x), ctx.encrypt(y)
    half = ex / 4  # exact: 2 extra fractional bits
    assert half.meta["scale"] == F + 2
    assert_close(ctx.decrypt(half), x / 4, Q / 4)
    # x*0.3 has scale 48; adding y (scale 24) shifts y up by 2^24 first
    mixed = ex * 0.3 + ey
    tol = 0.3 * Q + np.abs(x) * Q + Q * Q + Q
    assert_close(ctx.decrypt(mixed), 0.3 * x + y, tol)


def test_reductions_combine_with_fresh_scalars(insecure_tiny_key):
    ctx = insecure_tiny_key
    x, w = data(30), rng.uniform(-2, 2, 30)
    ex = ctx.encrypt(x)
    s = ctx.encrypt([5.0])
    dot = ex.dot(w)
    assert dot.shape == (1,) and dot.meta["reduce"] == [ctx.slot_count - 1, ctx.slot_count]
    tol = np.sum(np.abs(w) * Q + np.abs(x) * Q + Q * Q) + 2 * Q
    assert_close(ctx.decrypt(dot + s), [x @ w + 5.0], tol)
    assert_close(ctx.decrypt(s - dot), [5.0 - x @ w], tol)
    assert_close(ctx.decrypt(ex.sum() * 2 + 1.0), [2 * x.sum() + 1], 2 * 30 * Q + Q)
    assert_close(ctx.decrypt(ex.sum() + dot), [x.sum() + x @ w], tol + 30 * Q)
    assert_close(ctx.decrypt(s.sum()), [5.0], Q)
    assert_close(ctx.decrypt(s.dot([2.0])), [10.0], 2 * Q)


def test_elementwise_array_product(insecure_tiny_key, insecure_one_slot_key):
    ctx = insecure_tiny_key
    k = ctx.slot_count
    x = data(3 * k)
    ex = ctx.encrypt(x)
    per_chunk = np.repeat([2.0, -0.5, 3.0], k)  # constant over each ciphertext: supported
    assert_close(ctx.decrypt(ex * per_chunk), x * per_chunk, 3 * Q)
    with pytest.raises(UnsupportedOperationError, match=r"non-constant plaintext array.*slots_per_ciphertext=1"):
        ex * np.arange(3 * k)
    one = insecure_one_slot_key
    assert one.slot_count == 1 and "mul_plain_array" in one.capabilities
    y, w = data(12), rng.uniform(-4, 4, 12)
    ey = one.encrypt(y)
    tol = np.abs(w) * Q + np.abs(y) * e_mult(w) + Q * e_mult(w)
    assert_close(one.decrypt(ey * w), y * w, tol)
    assert_close(one.decrypt(ey.dot(w)), [y @ w], tol.sum())
    assert_close(one.decrypt(ey.sum()), [y.sum()], 12 * Q)


def test_ciphertext_product_is_unsupported(insecure_tiny_key):
    ex = insecure_tiny_key.encrypt([1.0, 2.0])
    with pytest.raises(UnsupportedOperationError, match="ciphertext x ciphertext"):
        ex * ex


def test_dense_layout_sums_but_refuses_dot(insecure_tiny_dense_key):
    ctx = insecure_tiny_dense_key
    assert 2 * ctx.slot_count - 1 > ctx.encoding.slot_layout.digits  # no room for the product
    assert "dot" not in ctx.capabilities
    x = rng.uniform(-8, 8, ctx.slot_count + 3)
    ex = ctx.encrypt(x)
    assert_close(ctx.decrypt(ex.sum()), [x.sum()], x.size * Q)
    assert_close(ctx.decrypt((ex - 0.5).sum()), [x.sum() - 0.5 * x.size], x.size * Q)
    with pytest.raises(UnsupportedOperationError, match=r"dot on a dense layout.*layout='product'"):
        ex.dot(np.ones(x.size))


def test_shape_mismatch(insecure_tiny_key):
    ctx = insecure_tiny_key
    with pytest.raises(ShapeMismatchError):
        ctx.encrypt(np.ones(3)) + ctx.encrypt(np.ones(4))
    with pytest.raises(ShapeMismatchError):
        ctx.encrypt(np.ones(3)) + np.ones(4)


# ---------------------------------------------------------------- property tests
@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=20),
       st.floats(-4, 4, allow_nan=False), st.floats(-50, 50, allow_nan=False))
def test_linearity_of_scalar_products(insecure_tiny_key, values, c, b):
    ctx = insecure_tiny_key
    x = np.array(values)
    out = ctx.decrypt(ctx.encrypt(x) * c + b)
    ec = float(e_mult(c))
    tol = abs(c) * Q + np.abs(x) * ec + Q * ec + Q
    assert_close(out, x * c + b, tol)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.lists(st.floats(-100, 100, allow_nan=False), min_size=6, max_size=6),
                min_size=2, max_size=5))
def test_sums_are_associative(insecure_tiny_key, rows):
    ctx = insecure_tiny_key
    encs = [ctx.encrypt(np.array(r)) for r in rows]
    left = encs[0]
    for e in encs[1:]:
        left = left + e
    right = encs[-1]
    for e in reversed(encs[:-1]):
        right = e + right
    a, b = ctx.decrypt(left), ctx.decrypt(right)
    np.testing.assert_array_equal(a, b)  # exact integer arithmetic: identical results
    assert_close(a, np.sum(rows, axis=0), len(rows) * Q)


# ---------------------------------------------------------------- overflow detection
def test_headroom_of_max_additions_is_enforced(insecure_tiny_dense_key):
    ctx = insecure_tiny_dense_key  # max_additions=3
    x = np.full(5, 8.0)  # the extreme of the declared range
    e = ctx.encrypt(x)
    total = e + e + e
    assert_close(ctx.decrypt(total), 3 * x, 3 * Q)
    assert total.meta["terms"] == 3 and ctx.max_additions == 3
    with pytest.raises(EncodingOverflowError, match=r"combine 4 encryptions .*max_additions=3"):
        total + e


def test_scalar_multiplication_growth_is_detected():
    ctx = Paillier(1024, preset="sum", max_value=8.0, max_additions=2, multiplier_bits=4,
                   allow_insecure=True)
    e = ctx.encrypt(np.array([8.0, -8.0]))
    assert_close(ctx.decrypt(e * 15), [120.0, -120.0], 15 * Q)
    with pytest.raises(EncodingOverflowError, match=r"multiplication by a plaintext would let a slot reach \|v\| <= \d+"):
        e * 1000
    with pytest.raises(EncodingOverflowError, match="multiplier_bits"):
        (e * 15) * 15


def test_slot_overflow_of_plain_addition_and_sum_is_detected():
    ctx = Paillier(1024, preset="sum", max_value=1.0, max_additions=1, allow_insecure=True)
    cap = ctx.encoding.cap
    e = ctx.encrypt(np.ones(3))
    with pytest.raises(EncodingOverflowError, match=rf"adding a plaintext .* holds at most {cap}"):
        e + 2.0 ** 20
    big = ctx.encrypt(np.ones(ctx.slot_count * 4))
    with pytest.raises(EncodingOverflowError, match=r"sum of \d+ values"):
        big.sum()


# ---------------------------------------------------------------- serialization and keys
def test_public_context_has_no_secret_key(insecure_tiny_key):
    ctx = insecure_tiny_key
    blob = ctx.to_bytes()
    p, q = ctx.private_key.p, ctx.private_key.q
    for prime in (p, q):
        raw = prime.to_bytes((prime.bit_length() + 7) // 8, "big")
        assert raw not in blob
        assert raw in ctx.to_bytes(include_secret_key=True)
    assert unpack_blob(blob).kind == Kind.PUBLIC_CONTEXT
    # a 1024-bit test key: the caller opts in (the blob cannot, see tests/schemes/test_limits.py)
    pub = he_ml.load_context(blob, allow_insecure=True)
    assert not pub.has_secret_key and pub.fingerprint == ctx.fingerprint
    assert ctx.public_context().to_bytes() == blob
    x = data(7)
    enc = pub.encrypt(x) + pub.encrypt(x)  # encrypt and compute: yes
    with pytest.raises(SecretKeyMissingError, match="no secret key"):
        pub.decrypt(enc)
    with pytest.raises(SecretKeyMissingError):
        pub.private_key
    assert_close(ctx.decrypt(enc), 2 * x, 2 * Q)


def test_secret_context_round_trip(insecure_tiny_key):
    ctx = insecure_tiny_key
    again = he_ml.load_context(ctx.to_bytes(include_secret_key=True), allow_insecure=True)
    assert again.has_secret_key and again.fingerprint == ctx.fingerprint
    x = data(11)
    assert_close(again.decrypt(ctx.encrypt(x)), x, Q)


def test_ciphertext_bytes_round_trip_and_pickle(insecure_tiny_key):
    ctx = insecure_tiny_key
    x = data((3, 7))
    enc = ctx.encrypt(x) * 0.5
    back = ctx.ciphertext_from_bytes(enc.to_bytes())
    assert back.shape == (3, 7) and back.meta == enc.meta
    assert_close(ctx.decrypt(back), x / 2, Q)
    unpickled = pickle.loads(pickle.dumps(enc))
    assert_close(ctx.decrypt(unpickled), x / 2, Q)
    dot = pickle.loads(pickle.dumps(ctx.encrypt(x).sum()))
    assert_close(ctx.decrypt(dot), [x.sum()], 21 * Q)


def test_wrong_key_is_rejected(insecure_tiny_key, insecure_tiny_other_key):
    a, b = insecure_tiny_key, insecure_tiny_other_key
    ea, eb = a.encrypt([1.0]), b.encrypt([1.0])
    with pytest.raises(ContextMismatchError, match="different contexts"):
        ea + eb
    with pytest.raises(ContextMismatchError, match="belongs to another key"):
        a.ciphertext_from_bytes(eb.to_bytes())
    with pytest.raises(ContextMismatchError):
        a.decrypt(eb)


def _ct_blob(ctx, meta, section: bytes, shape=(3,)) -> bytes:
    return pack_blob(Kind.CIPHERTEXT, "paillier", ctx.fingerprint, {"shape": list(shape), "meta": meta},
                     [section])


def test_malformed_ciphertexts_are_rejected(insecure_tiny_key):
    ctx = insecure_tiny_key
    enc = ctx.encrypt(np.ones(3))
    good = enc.to_bytes()
    for cut in (1, 10, len(good) // 2, len(good) - 1):
        with pytest.raises(InvalidCiphertextError):
            ctx.ciphertext_from_bytes(good[:cut])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40
    with pytest.raises(InvalidCiphertextError, match="checksum"):
        ctx.ciphertext_from_bytes(bytes(flipped))
    w = (ctx.public_key.nsquare.bit_length() + 7) // 8
    meta = dict(enc.meta)
    # valid container (CRC recomputed) with garbage payloads
    with pytest.raises(InvalidCiphertextError, match="section lengths"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, meta, b"\x01" * (w - 1)))
    with pytest.raises(InvalidCiphertextError, match="not an element"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, meta, b"\xff" * w))  # >= n^2
    with pytest.raises(InvalidCiphertextError, match="not an element"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, meta, b"\x00" * w))
    n = ctx.public_key.n
    with pytest.raises(InvalidCiphertextError, match="not an element"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, meta, n.to_bytes(w, "big")))  # shares the factor n
    with pytest.raises(InvalidCiphertextError, match="'bound'"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, dict(meta, bound=ctx.encoding.cap + 1), enc.chunks[0].to_bytes(w, "big")))
    with pytest.raises(InvalidCiphertextError, match="'reduce'"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, dict(meta, reduce=[0, 1]), int(enc.chunks[0]).to_bytes(w, "big")))
    with pytest.raises(InvalidCiphertextError, match="must have keys"):
        ctx.ciphertext_from_bytes(_ct_blob(ctx, {"scale": 24}, int(enc.chunks[0]).to_bytes(w, "big")))
    # a well-formed unit that is not our encoding: decryption detects it instead of returning garbage
    junk = ctx.public_key.raw_encrypt(1 << 1000)
    forged = ctx.ciphertext_from_bytes(_ct_blob(ctx, meta, junk.to_bytes(w, "big")))
    with pytest.raises((InvalidCiphertextError, EncodingOverflowError)):
        ctx.decrypt(forged)


def test_malformed_context_blobs_are_rejected(insecure_tiny_key):
    ctx = insecure_tiny_key
    blob = unpack_blob(ctx.to_bytes())
    fp = blob.fingerprint
    with pytest.raises(InvalidCiphertextError, match="2 sections"):
        Paillier.from_bytes(pack_blob(Kind.PUBLIC_CONTEXT, "paillier", fp, blob.metadata, blob.sections[:1]),
                            allow_insecure=True)
    with pytest.raises(InvalidCiphertextError, match="modulus has"):
        Paillier.from_bytes(pack_blob(Kind.PUBLIC_CONTEXT, "paillier", fp, blob.metadata,
                                      [b"\x03" * 5, blob.sections[1]]), allow_insecure=True)
    with pytest.raises(InvalidCiphertextError, match="malformed"):
        Paillier.from_bytes(pack_blob(Kind.PUBLIC_CONTEXT, "paillier", fp, {"key_bits": 1024},
                                      blob.sections), allow_insecure=True)
    # the blob cannot opt itself in: without the caller's keyword a 1024-bit key is refused,
    # whatever its metadata says (older blobs carried an "allow_insecure" field)
    with pytest.raises(InsecureParametersError, match=r"load_context\(blob, allow_insecure=True\)"):
        Paillier.from_bytes(pack_blob(Kind.PUBLIC_CONTEXT, "paillier", fp,
                                      dict(blob.metadata, allow_insecure=True), blob.sections))
    with pytest.raises(InvalidCiphertextError, match="fingerprint"):
        Paillier.from_bytes(pack_blob(Kind.PUBLIC_CONTEXT, "paillier", bytes(16), blob.metadata, blob.sections),
                            allow_insecure=True)
    secret = unpack_blob(ctx.to_bytes(include_secret_key=True))
    bad_p = (int.from_bytes(secret.sections[2], "big") + 2).to_bytes(len(secret.sections[2]), "big")
    with pytest.raises(InvalidCiphertextError, match="do not factor n"):
        Paillier.from_bytes(pack_blob(Kind.SECRET_CONTEXT, "paillier", fp, secret.metadata,
                                      secret.sections[:2] + [bad_p, secret.sections[3]]), allow_insecure=True)


def test_error_messages_name_what_to_do(insecure_tiny_key):
    with pytest.raises(EncodingOverflowError) as info:
        insecure_tiny_key.encrypt([5000.0])
    msg = str(info.value)
    assert "5000" in msg and re.search(r"larger max_value", msg)


def _recrc(body: bytes) -> bytes:
    import zlib

    return body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


def test_mutated_blobs_with_valid_checksums_raise_only_he_errors(insecure_tiny_key):
    """Mutations that keep the CRC valid reach the Paillier parsers; they must fail cleanly."""
    ctx = insecure_tiny_key
    mut_rng = np.random.default_rng(99)  # seeded mutations (test data, not key material)
    blobs = [ctx.encrypt(data(40)).to_bytes(), ctx.encrypt(data(5)).dot(np.ones(5)).to_bytes(),
             ctx.to_bytes(), ctx.to_bytes(include_secret_key=True)]
    for i in range(200):
        base = blobs[i % len(blobs)][:-4]
        body = bytearray(base)
        for _ in range(int(mut_rng.integers(1, 4))):
            pos = int(mut_rng.integers(0, len(body)))
            body[pos] = int(mut_rng.integers(0, 256))
        blob = _recrc(bytes(body))
        try:
            if i % len(blobs) < 2:
                ctx.decrypt(ctx.ciphertext_from_bytes(blob))
            else:
                he_ml.load_context(blob, allow_insecure=True)
        except he_ml.errors.HEError:
            pass
