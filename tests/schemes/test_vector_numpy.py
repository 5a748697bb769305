"""numpy conventions of EncryptedVector: ndim, len, iteration, indexing/slicing, sum(axis=...).

Every result is decrypted and compared with the same numpy expression on the plaintext.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_ml
from he_ml.errors import ParameterError, ShapeMismatchError, UnsupportedOperationError

rng = np.random.default_rng(20261205)


def ckks_bound(ctx, groups: int, terms: int = 1) -> float:
    """Error of one output value of a CKKS selection, summed over ``terms`` added selections.

    Each selected value carries its fresh error e = 12 n/6 / 2^scale (tests/schemes/test_ckks.py,
    fresh_error_bound), at most one rotation of key-switching noise (400 std of
    sqrt(n/2) sqrt(L n) 3.2 (q_max/P) / sqrt(12) / 2^scale, keyswitch_std there) and the mask
    product's encoding and rescale rounding (two more fresh bounds, |values| <= 1). The other
    groups added into the same ciphertext contribute their masked noise (<= 2e each).
    """
    n = ctx.poly_modulus_degree
    primes = list(ctx._primes)
    data, special = primes[:-1], primes[-1]
    e = 12 * (n / 6) / 2.0 ** ctx.scale_bits
    ks = math.sqrt(n / 2) * math.sqrt(len(data) * n) * 3.2 * (max(data) / special) / math.sqrt(12) \
        / 2.0 ** ctx.scale_bits
    return terms * (3 * e + 400 * ks + 2 * e * groups)


def sum_bound(ctx) -> float:
    """Error of sum() over all slots (tests/schemes/test_ckks.py, sum_error_bound): sqrt(slots) fresh
    errors (padding slots encrypt zeros with noise) plus 20 std of sqrt(slots) key-switching noise."""
    n = ctx.poly_modulus_degree
    primes = list(ctx._primes)
    data, special = primes[:-1], primes[-1]
    e = 12 * (n / 6) / 2.0 ** ctx.scale_bits
    ks = math.sqrt(n / 2) * math.sqrt(len(data) * n) * 3.2 * (max(data) / special) / math.sqrt(12) \
        / 2.0 ** ctx.scale_bits
    return (e + 20 * ks) * math.sqrt(ctx.slot_count)


@pytest.fixture(scope="module")
def ckks():
    """Depth 2 (a mask after a mask, e.g. sum(axis=1) of a selection): n = 8192, [60, 40, 40, 60]."""
    return he_ml.CKKS("light")


@pytest.fixture(scope="module")
def paillier():
    return he_ml.Paillier()


def test_shape_ndim_len_and_iteration(ckks):
    x = rng.uniform(-1, 1, size=(5, 3))
    e = ckks.encrypt(x)
    assert e.shape == (5, 3) and e.ndim == 2 and len(e) == 5 and e.size == 15
    rows = list(e)
    assert len(rows) == 5 and all(r.shape == (3,) for r in rows)
    tol = ckks_bound(ckks, groups=2)
    for r, row in zip(rows, x):
        np.testing.assert_allclose(ckks.decrypt(r), row, atol=tol)


@pytest.mark.parametrize("key", [2, -1, slice(1, 4), slice(None, None, 2), (3, 1), (-1, 2),
                                 (slice(None), 1), (slice(1, 3), slice(0, 2)), [0, 4, 2], "mask"])
def test_ckks_indexing_matches_numpy(ckks, key):
    x = rng.uniform(-1, 1, size=(6, 4))
    if isinstance(key, str):
        key = x[:, 0] > 0
    e = ckks.encrypt(x)
    got = e[key]
    want = x[key]
    assert got.shape == np.shape(want)
    groups = np.unique(np.asarray(np.arange(24).reshape(6, 4)[key]).reshape(-1) - np.arange(np.size(want))).size
    np.testing.assert_allclose(ckks.decrypt(got), want, rtol=0, atol=ckks_bound(ckks, groups))


def test_ckks_selection_across_ciphertexts(ckks):
    s = ckks.slot_count
    x = rng.uniform(-1, 1, size=2 * s + 10)
    e = ckks.encrypt(x)
    assert e.num_ciphertexts == 3
    whole = e[s:2 * s]  # one whole ciphertext: reused as is, no noise added
    assert whole.num_ciphertexts == 1 and whole.chunks[0] is e.chunks[1]
    tail = e[2 * s:]  # the last, partial ciphertext
    assert tail.chunks[0] is e.chunks[2]
    shifted = e[s - 5:s + 20]  # spans two ciphertexts: two shifts
    np.testing.assert_allclose(ckks.decrypt(shifted), x[s - 5:s + 20], atol=ckks_bound(ckks, groups=2))
    np.testing.assert_allclose(ckks.decrypt(whole), x[s:2 * s], atol=ckks_bound(ckks, groups=0))
    # what follows the selection in its ciphertext is zero: sum() sees only the selected values
    total = ckks.decrypt(e[3:10].sum())
    assert abs(total[0] - x[3:10].sum()) < 100 * ckks_bound(ckks, groups=2)


@pytest.mark.parametrize("shape, axis", [((6, 4), 0), ((6, 4), 1), ((6, 4), -1), ((3, 2, 4), 0),
                                         ((3, 2, 4), 1), ((3, 2, 4), 2), ((5,), 0)])
def test_ckks_sum_axis_matches_numpy(ckks, shape, axis):
    x = rng.uniform(-1, 1, size=shape)
    e = ckks.encrypt(x)
    got = e.sum(axis=axis)
    want = x.sum(axis=axis)
    assert got.shape == (np.shape(want) or (1,))
    terms = shape[axis]
    # the sum of rows/columns adds `terms` selections, each with up to max(shape) shifts; the
    # sum of a 1-D vector is sum() (rotate-and-add over all slots, 20 std of sqrt(slots) ks noise)
    tol = ckks_bound(ckks, groups=max(shape), terms=terms) + sum_bound(ckks)
    np.testing.assert_allclose(ckks.decrypt(got).reshape(np.shape(want)), want, rtol=0, atol=tol)


def test_paillier_selects_and_sums_whole_ciphertexts(paillier):
    k = paillier.slot_count
    x = rng.uniform(-1, 1, size=(4, 2 * k))
    e = paillier.encrypt(x)
    # 24 fractional bits: each value is exact up to 2^-25; a sum of 4 up to 4 * 2^-25
    q = 2.0 ** -(paillier.encoding.precision_bits + 1)
    np.testing.assert_allclose(paillier.decrypt(e[2]), x[2], atol=q)
    np.testing.assert_allclose(paillier.decrypt(e[1:3]), x[1:3], atol=q)
    np.testing.assert_allclose(paillier.decrypt(e.sum(axis=0)), x.sum(axis=0), atol=4 * q)
    with pytest.raises(UnsupportedOperationError, match=rf"packs {k} values per ciphertext") as info:
        e[:, 1]
    # following the advice works: whole ciphertexts of the flat vector
    flat = e.reshape(-1)[k:2 * k]
    np.testing.assert_allclose(paillier.decrypt(flat), x.reshape(-1)[k:2 * k], atol=q)
    assert "e.reshape(-1)" in str(info.value)


def test_bfv_selects_whole_ciphertexts_only():
    bfv = he_ml.BFV("sum")
    s = bfv.slot_count
    x = rng.integers(-1000, 1000, size=(2, s))
    e = bfv.encrypt(x)
    np.testing.assert_array_equal(bfv.decrypt(e[1]), x[1])
    np.testing.assert_array_equal(bfv.decrypt(e.sum(axis=0)), x.sum(axis=0))
    with pytest.raises(UnsupportedOperationError, match="whole ciphertexts"):
        e[0, 3:9]


def test_index_errors_are_named_with_a_hint(ckks):
    e = ckks.encrypt(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ShapeMismatchError, match="does not fit an encrypted array of shape"):
        e[5]
    with pytest.raises(ShapeMismatchError, match="selects no value"):
        e[1:1]
    with pytest.raises(ParameterError, match="cannot index"):
        e[1.5]
    with pytest.raises(ShapeMismatchError, match="axis 2 is out of bounds"):
        e.sum(axis=2)
    with pytest.raises(ParameterError, match="axis must be an int"):
        e.sum(axis="rows")


def test_column_of_a_column_stacked_vector_is_its_block(ckks, paillier):
    """Vectors whose meta records ``columns = k`` keep column j in its own ciphertexts (the layout
    of per-class scores of a batched model): e[:, j] returns that block, no computation."""
    for ctx in (ckks, paillier):
        cols = [rng.uniform(-1, 1, size=7) for _ in range(3)]
        encs = [ctx.encrypt(c) for c in cols]
        meta = dict(encs[0].meta, columns=3)
        stacked = he_ml.EncryptedVector(ctx, [ct for e in encs for ct in e.chunks], (7, 3), meta)
        for j in range(3):
            col = stacked[:, j]
            assert col.shape == (7,) and "columns" not in col.meta
            assert col.chunks == encs[j].chunks
            # the block is the column's own fresh ciphertexts: Paillier 2^-25 (24 fractional bits),
            # CKKS one fresh error 12 n/6 / 2^scale
            tol = 2.0 ** -25 if ctx.name == "paillier" else 12 * (ctx.poly_modulus_degree / 6) / 2.0 ** ctx.scale_bits
            np.testing.assert_allclose(ctx.decrypt(col), cols[j], atol=tol)
        with pytest.raises(UnsupportedOperationError, match="select one whole column"):
            stacked[1:3, 0]


def test_mean_and_numpy_names_without_an_encrypted_meaning(ckks, paillier):
    x = rng.uniform(-1, 1, size=(4, 3))
    e = ckks.encrypt(x)
    tol = ckks_bound(ckks, groups=4, terms=4) + sum_bound(ckks)  # axis path, or the all-slot sum()
    np.testing.assert_allclose(ckks.decrypt(e.mean(axis=0)), x.mean(axis=0), atol=tol)
    np.testing.assert_allclose(ckks.decrypt(e.mean()), [x.mean()], atol=tol)
    k = paillier.slot_count
    xp = rng.uniform(-1, 1, size=(2, k))
    ep = paillier.encrypt(xp)
    np.testing.assert_allclose(paillier.decrypt(ep.mean(axis=0)), xp.mean(axis=0), atol=2.0 ** -20)
    for name, fragment in (("max", "comparisons are not defined"), ("T", "transpose the data"),
                           ("tolist", "decrypt first")):
        with pytest.raises(UnsupportedOperationError, match=fragment):
            getattr(e, name)
    assert not hasattr(e, "tolist") and getattr(e, "max", None) is None  # still an AttributeError
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        e.nonsense
    import copy
    import pickle

    assert copy.copy(e).shape == e.shape  # dunder lookups still fall through to AttributeError
    assert pickle.loads(pickle.dumps(e)).shape == e.shape
