"""Batched layouts: content against numpy, byte round trips, and errors."""
from __future__ import annotations

import numpy as np
import pytest

import he_ml
from he_ml.errors import (
    ContextMismatchError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from he_ml.ml import EncryptedFeatures, encrypt_features
from he_ml.ml.layout import DEFAULT_BFV_FEATURE_BITS, block_batch_size, blocks_needed
from he_ml.schemes._format import pack_blob, unpack_blob

rng = np.random.default_rng(3)


@pytest.fixture(scope="module")
def ckks():
    """CKKS n = 8192, [40, 30, 40]: one level, fast keys."""
    return he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 40], scale_bits=30)


@pytest.fixture(scope="module")
def bfv():
    return he_ml.BFV("sum")


@pytest.fixture(scope="module")
def paillier():
    # 1024-bit key: test speed only (insecure); the packing logic does not depend on the size
    return he_ml.Paillier(key_bits=1024, allow_insecure=True)


def _fresh_bound(ctx) -> float:
    """Max fresh CKKS error per slot: ~12 std of n / (6 * 2^scale) (see tests/schemes/test_ckks.py)."""
    return 2 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits


@pytest.mark.parametrize("scheme", ["ckks", "bfv", "paillier"])
def test_columns_layout_round_trips_through_bytes(scheme, request):
    ctx = request.getfixturevalue(scheme)
    X = rng.normal(size=(37, 4))
    enc = encrypt_features(ctx, X)
    assert (enc.layout, enc.n_samples, enc.n_features, len(enc.vectors)) == ("columns", 37, 4, 4)
    data = enc.to_bytes()
    assert enc.nbytes == len(data)
    back = EncryptedFeatures.from_bytes(ctx.public_context(), data)
    assert (back.layout, back.n_samples, back.n_features, back.fixed_point_bits) == \
        (enc.layout, enc.n_samples, enc.n_features, enc.fixed_point_bits)
    cols = np.stack([ctx.decrypt(ctx.ciphertext_from_bytes(v.to_bytes())) for v in back.vectors], axis=1)
    if scheme == "ckks":
        tol = _fresh_bound(ctx)
    elif scheme == "bfv":
        tol = 2.0 ** -(DEFAULT_BFV_FEATURE_BITS + 1)  # rounding to the fixed-point grid
    else:
        tol = 2.0 ** -(ctx.precision_bits + 1)
    assert np.max(np.abs(cols - X)) <= tol


def test_bfv_columns_are_fixed_point_and_decrypt_to_reals(bfv):
    X = rng.normal(size=(10, 2))
    f = bfv.fixed_point_bits  # the context carries the encoding
    enc = encrypt_features(bfv, X)
    assert enc.vectors[0].meta["fixed_point_bits"] == enc.fixed_point_bits == f
    np.testing.assert_array_equal(bfv.decrypt(enc.vectors[1]), np.rint(X[:, 1] * 2 ** f) / 2 ** f)
    with pytest.raises(ParameterError, match=r"differs from the context's encoding") as e:
        encrypt_features(bfv, X, fixed_point_bits=f - 5)
    # follow the advice: a context created with that encoding accepts it
    assert f"he_ml.BFV(..., fixed_point_bits={f - 5})" in str(e.value)
    other = he_ml.BFV("sum", fixed_point_bits=f - 5)
    assert encrypt_features(other, X, fixed_point_bits=f - 5).fixed_point_bits == f - 5


def test_blocks_layout_places_feature_j_of_sample_i_at_slot_jB_plus_i(ckks):
    X = rng.normal(size=(100, 5))
    enc = encrypt_features(ckks, X, layout="blocks", batch_size=64)
    B, D = enc.batch_size, enc.n_blocks
    assert (B, D, len(enc.vectors)) == (64, ckks.slot_count // 64, 2)
    assert [enc.batch_rows(k) for k in range(2)] == [64, 36]
    for k, v in enumerate(enc.vectors):
        grid = ckks.decrypt(v).reshape(D, B)
        expect = np.zeros((D, B))
        rows = X[64 * k:64 * (k + 1)]
        expect[:5, :rows.shape[0]] = rows.T
        assert np.max(np.abs(grid - expect)) <= _fresh_bound(ckks)
    y = rng.integers(0, 2, 100).astype(float)
    ey = encrypt_features(ckks, y, layout="blocks", batch_size=64)
    grid = ckks.decrypt(ey.vectors[1]).reshape(D, B)
    assert np.max(np.abs(grid[:, :36] - y[None, 64:])) <= _fresh_bound(ckks)   # labels in every block
    back = EncryptedFeatures.from_bytes(ckks, enc.to_bytes())
    assert (back.layout, back.batch_size, back.n_samples) == ("blocks", 64, 100)


def test_block_batch_size_defaults_and_limits():
    assert blocks_needed(0) == 1 and blocks_needed(3) == 4 and blocks_needed(30) == 32 and blocks_needed(31) == 32
    assert block_batch_size(4096, 100, 30, None) == 128          # next power of two of the samples
    assert block_batch_size(4096, 10_000, 30, None) == 128       # capped: 32 blocks x 128 = 4096 slots
    with pytest.raises(ShapeMismatchError, match="Use batch_size <= 128"):
        block_batch_size(4096, 100, 30, 256)
    with pytest.raises(ParameterError, match="power of two"):
        block_batch_size(4096, 100, 30, 100)
    with pytest.raises(ShapeMismatchError, match="do not fit one ciphertext"):
        block_batch_size(16, 10, 40, None)


def test_layout_errors(ckks, bfv):
    X = rng.normal(size=(8, 2))
    with pytest.raises(ParameterError, match="layout must be 'columns' or 'blocks'; got 'rows'"):
        encrypt_features(ckks, X, layout="rows")
    with pytest.raises(UnsupportedOperationError, match="use he_ml.CKKS for encrypted training"):
        encrypt_features(bfv, X, layout="blocks")
    with pytest.raises(ParameterError, match="BFV only"):
        encrypt_features(ckks, X, fixed_point_bits=8)
    with pytest.raises(ParameterError, match="layout='blocks' only"):
        encrypt_features(ckks, X, batch_size=8)
    with pytest.raises(ShapeMismatchError, match="got shape"):
        encrypt_features(ckks, np.zeros((2, 2, 2)))
    with pytest.raises(ShapeMismatchError, match="at least one sample and one feature"):
        encrypt_features(ckks, np.zeros((3, 0)))
    with pytest.raises(ParameterError, match="finite"):
        encrypt_features(ckks, np.array([[1.0, np.nan]]))


def test_from_bytes_rejects_foreign_and_tampered_blobs(ckks):
    enc = encrypt_features(ckks, rng.normal(size=(6, 3)))
    other = he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 40], scale_bits=30)
    with pytest.raises(ContextMismatchError):
        EncryptedFeatures.from_bytes(other, enc.to_bytes())
    blob = unpack_blob(enc.to_bytes())
    dropped = pack_blob(blob.kind, blob.scheme, blob.fingerprint, blob.metadata, blob.sections[:2])
    with pytest.raises(InvalidCiphertextError, match="hold 2 vectors; their layout needs 3"):
        EncryptedFeatures.from_bytes(ckks, dropped)
    for bad in ({"layout": "diagonal"}, {"n_samples": 0}, {"n_samples": "x"}, {"n_samples": 7}):
        meta = {"features": dict(blob.metadata["features"], **bad)}
        data = pack_blob(blob.kind, blob.scheme, blob.fingerprint, meta, blob.sections)
        with pytest.raises(InvalidCiphertextError, match="encrypted features"):
            EncryptedFeatures.from_bytes(ckks, data)
    blocks = encrypt_features(ckks, rng.normal(size=(6, 3)), layout="blocks")
    b = unpack_blob(blocks.to_bytes())
    meta = {"features": dict(b.metadata["features"], batch_size=3)}
    with pytest.raises(InvalidCiphertextError, match="power of two"):
        EncryptedFeatures.from_bytes(ckks, pack_blob(b.kind, b.scheme, b.fingerprint, meta, b.sections))


@pytest.mark.parametrize("scheme", ["ckks", "bfv"])
def test_images_are_one_column_per_pixel_in_c_order(scheme, request):
    ctx = request.getfixturevalue(scheme)
    rng = np.random.default_rng(7)
    imgs = rng.integers(-8, 8, size=(5, 2, 3, 4)).astype(np.float64)
    enc = encrypt_features(ctx, imgs)
    assert enc.layout == "columns" and enc.n_samples == 5 and enc.n_features == 2 * 3 * 4
    back = EncryptedFeatures.from_bytes(ctx, enc.to_bytes())
    flat = imgs.reshape(5, -1)
    for j in (0, 7, 23):  # pixel (c, h, w) = flat index c*12 + h*4 + w
        # CKKS: fresh noise below _fresh_bound per slot; BFV: integers are exact at 8 fractional bits
        tol = _fresh_bound(ctx) if scheme == "ckks" else 0.0
        np.testing.assert_allclose(ctx.decrypt(back.vectors[j]), flat[:, j], rtol=0, atol=tol)
    with pytest.raises(ShapeMismatchError, match="columns"):
        encrypt_features(ctx, imgs, layout="blocks")
    with pytest.raises(ShapeMismatchError, match="images"):
        encrypt_features(ctx, imgs[..., None])
