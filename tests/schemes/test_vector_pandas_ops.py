"""pandas labels through encrypted arithmetic, reductions and indexing, on CKKS, BFV and Paillier.

Every result is decrypted with ``to_pandas`` and compared with the same pandas expression on
the plaintext (``pandas.testing``), labels included; tolerances are derived per scheme below.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import he_ml  # noqa: E402
from he_ml.errors import ShapeMismatchError, UnsupportedOperationError  # noqa: E402
from he_ml.errors import LabelMismatchError  # noqa: E402
from he_ml.schemes.base import EncryptedVector  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ckks import fresh_error_bound, mul_error_bound  # noqa: E402
from test_vector_numpy import ckks_bound  # noqa: E402

SEED = 20261205


@pytest.fixture(scope="module")
def paillier():
    return he_ml.Paillier()


@pytest.fixture(params=["ckks", "bfv", "paillier"])
def case(request, ckks_light, bfv_inference, paillier):
    """(context, frame maker, single-operation tolerance or None for exact) per scheme.

    * CKKS "light" (n = 8192, scale 2^40), |values| <= 1: every result below is ONE operation on
      fresh ciphertexts, the worst being a ciphertext product, ``mul_error_bound(1, 1)`` =
      2e + e^2 + 2e with e the fresh bound (tests/schemes/test_ckks.py); a plaintext product with
      |w| <= 1 is |w| e + one encoding and one rescale rounding (<= 3e), sums of two fresh
      vectors 2e, so that bound covers every operation.
    * BFV "inference" (integers here, |values| <= 30): exact; the tracked bound keeps every
      result (at most 30 * 30 + 30) far inside the plain modulus, so tolerance None (exact).
    * Paillier (24 fractional bits): a fresh value is within q = 2^-25 of the input; a sum of two
      encodings is within 2q, a product with a dyadic multiplier |w| <= 2 (encoded exactly)
      within |w| q <= 2q. So 2q.
    """
    rng = np.random.default_rng(SEED)
    if request.param == "ckks":
        ctx = ckks_light
        tol = mul_error_bound(ctx, 1.0, 1.0)

        def make(rows, cols=3):
            return rng.uniform(-1, 1, size=(rows, cols))
    elif request.param == "bfv":
        ctx, tol = bfv_inference, None

        def make(rows, cols=None):
            return rng.integers(-30, 31, size=(rows, cols or ctx.slot_count)).astype(float)
    else:
        ctx, tol = paillier, 2.0 ** -24

        def make(rows, cols=None):
            return rng.uniform(-1, 1, size=(rows, cols or ctx.slot_count))

    def frame(rows=4, cols=None, **kw):
        values = make(rows) if cols is None else make(rows, cols)
        return pd.DataFrame(values, index=pd.Index([f"r{i}" for i in range(rows)], name="id"),
                            columns=[f"c{j}" for j in range(values.shape[1])], **kw)

    return request.param, ctx, frame, tol


def close(got, want, tol):
    """pandas' own equality check (labels, names, values) with the derived tolerance."""
    assert type(got) is type(want)
    kw = dict(check_exact=True, check_dtype=False) if tol is None else dict(rtol=0, atol=tol, check_dtype=False)
    if isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want, **kw)
    else:
        pd.testing.assert_series_equal(got, want, **kw)


def test_elementwise_operators_keep_labels(case):
    name, ctx, frame, tol = case
    df, other = frame(), frame()
    enc = EncryptedVector.from_pandas(ctx, df)
    enc2 = EncryptedVector.from_pandas(ctx, other)
    arr = other.to_numpy()
    # row-constant dyadic multipliers (integers for BFV): exact encodings, and a Paillier ciphertext
    # can multiply its slots only by one constant (its rows are whole ciphertexts here)
    w_rows = np.array([2.0, -1.0, 3.0, 1.0]) if name == "bfv" else np.array([0.5, -1.25, 2.0, 0.75])
    w = pd.DataFrame(np.repeat(w_rows[:, None], df.shape[1], axis=1), index=df.index, columns=df.columns)
    if name == "ckks":
        w = w / 2  # |w| <= 1 for the CKKS bound above
    results = {
        "enc + df": (enc + other, df + other),
        "df + enc (pandas defers)": (other + enc, other + df),
        "enc - numpy keeps labels": (enc - arr, df - arr),
        "numpy - enc keeps labels": (arr - enc, arr - df),
        "df - enc": (other - enc, other - df),
        "-enc": (-enc, -df),
        "enc * scalar": (enc * 2, df * 2),
        "enc * df": (enc * w, df * w),
        "df * enc": (w * enc, w * df),
        "enc + enc": (enc + enc2, df + other),
        "enc - enc": (enc - enc2, df - other),
    }
    if name != "bfv":  # BFV divides only by integers' inverses that are integers: none but 1
        results["enc / 4"] = (enc / 4, df / 4)
    if name != "paillier":  # a product of two Paillier ciphertexts does not exist
        results["enc * enc"] = (enc * enc2, df * other)
    for what, (got, want) in results.items():
        assert got.labels is not None, what
        close(got.to_pandas(ctx), want, tol)


def test_series_operators_names_and_dot(case):
    name, ctx, frame, tol = case
    df = frame(rows=1)
    n = df.shape[1]
    s = pd.Series(df.to_numpy()[0], index=[f"k{i}" for i in range(n)], name="x")
    t = pd.Series(frame(rows=1).to_numpy()[0], index=s.index, name="y")
    es, et = EncryptedVector.from_pandas(ctx, s), EncryptedVector.from_pandas(ctx, t)
    close((es + t).to_pandas(ctx), s + t, tol)          # names differ -> None, as in pandas
    close((es + es).to_pandas(ctx), s + s, tol)         # same name kept
    close((es - et).to_pandas(ctx), s - t, tol)
    close((es * 2).to_pandas(ctx), s * 2, tol)
    # Series.dot requires the same index; the result is a scalar (unlabelled, shape (1,))
    wv = pd.Series(np.where(np.arange(n) % 2, 1, -1), index=s.index)
    got = ctx.decrypt(es.dot(wv))
    # CKKS dot: the product and a rotate-and-add over the slots (test_ckks sum_error_bound: sqrt(n)
    # per-slot errors plus 20 std of the rotations' key switching); BFV exact; Paillier n values of 2q.
    if name == "ckks":
        from test_ckks import sum_error_bound

        bound = sum_error_bound(ctx, ctx.slot_count, 3 * fresh_error_bound(ctx))
        np.testing.assert_allclose(got, [s.dot(wv)], rtol=0, atol=bound)
    elif name == "bfv":
        np.testing.assert_array_equal(got, [s.dot(wv)])
    else:
        np.testing.assert_allclose(got, [s.dot(wv)], rtol=0, atol=n * tol)
    with pytest.raises(LabelMismatchError, match="reindex_like"):
        es.dot(wv.iloc[::-1])
    # following the advice: reindex the weights like the data, then dot equals pandas' aligned dot
    fixed = wv.iloc[::-1].reindex_like(s)
    np.testing.assert_allclose(ctx.decrypt(es.dot(fixed)), [s.dot(wv.iloc[::-1])], rtol=0,
                               atol=0 if name == "bfv" else (n * tol if name == "paillier" else bound))


def test_reductions_and_row_selections_keep_labels(case):
    name, ctx, frame, tol = case
    df = frame(rows=4)
    enc = EncryptedVector.from_pandas(ctx, df)
    if name == "ckks":
        # a row is a gather of <= 2 shifts per output ciphertext (ckks_bound, test_vector_numpy); a
        # column of 4 rows one shift per row; axis sums add 4 (axis=0) or 3 (axis=1) such selections
        # or use log2(4) rotations and one mask (the same bound with groups=4 covers it)
        sel, col = ckks_bound(ctx, groups=2), ckks_bound(ctx, groups=4)
        sum0, sum1 = ckks_bound(ctx, groups=4, terms=4), ckks_bound(ctx, groups=4, terms=3)
    elif name == "bfv":
        sel = col = sum0 = sum1 = None
    else:
        # whole ciphertexts: selections are fresh values (q); a column sum adds 4 of them (4q)
        sel, sum0 = tol / 2, 4 * tol / 2
    close(enc[1:3].to_pandas(ctx), df.iloc[1:3], sel)
    close(enc[2].to_pandas(ctx), df.iloc[2], sel)
    close(enc[-1].to_pandas(ctx), df.iloc[-1], sel)
    close(enc[[0, 3]].to_pandas(ctx), df.iloc[[0, 3]], sel)
    mask = np.array([True, False, True, True])
    close(enc[mask].to_pandas(ctx), df.iloc[mask], sel)
    close([r for r in enc][1].to_pandas(ctx), df.iloc[1], sel)  # iteration over rows
    close(enc.sum(axis=0).to_pandas(ctx), df.sum(axis=0), sum0)
    close(enc.sum(axis=-2).to_pandas(ctx), df.sum(axis=0), sum0)
    assert enc.sum().labels is None  # a whole-array sum is a scalar, as df.sum(axis=None)
    if name == "paillier":
        # mean = sum * 1/4 (exact dyadic multiplier): the 4q of the sum divided by 4
        close(enc.mean(axis=0).to_pandas(ctx), df.mean(axis=0), sum0 / 4)
    if name == "ckks":
        # mean: one more plaintext product (|1/count| e + 2e on top of the sum's error)
        close(enc.mean(axis=0).to_pandas(ctx), df.mean(axis=0), sum0 + 3 * fresh_error_bound(ctx))
        close(enc.sum(axis=1).to_pandas(ctx), df.sum(axis=1), sum1)
        close(enc.mean(axis=1).to_pandas(ctx), df.mean(axis=1), sum1 + 3 * fresh_error_bound(ctx))
        close(enc[:, 1].to_pandas(ctx), df.iloc[:, 1], col)
        close(enc[1:3, 0:2].to_pandas(ctx), df.iloc[1:3, 0:2], col)
        close(enc[:, [0, 2]].to_pandas(ctx), df.iloc[:, [0, 2]], col)
        close(enc[2, [True, False, True]].to_pandas(ctx), df.iloc[2, [True, False, True]], col)
        # numpy pairs two index arrays up, iloc takes their outer product: no labels rather than wrong ones
        assert enc[[0, 1], [0, 1]].labels is None
        assert enc[1, 2].labels is None
        # labels survive a chain (two levels: the product, the sum's mask). Each of the 4 summed values
        # enters with 0.5 e (product) + 2 e (its rounding) + e (the plaintext addend's encoding) instead
        # of a fresh e: 2.5 e more per value on top of sum0
        chain = (enc * 0.5 + df).sum(axis=0)
        close(chain.to_pandas(ctx), (df * 0.5 + df).sum(axis=0), sum0 + 4 * 2.5 * fresh_error_bound(ctx))
    else:
        with pytest.raises(UnsupportedOperationError):
            enc[:, 1]  # columns are not whole ciphertexts: BFV/Paillier cannot move slots


def test_mismatched_labels_raise_and_the_hint_works(case):
    name, ctx, frame, tol = case
    df, other = frame(), frame()
    enc = EncryptedVector.from_pandas(ctx, df)
    shuffled = other.iloc[[2, 0, 3, 1]]
    # never silently misalign: a frame whose rows are in another order is refused
    with pytest.raises(LabelMismatchError, match="index labels differ") as info:
        enc + shuffled
    assert isinstance(info.value, ShapeMismatchError) and isinstance(info.value, ValueError)
    assert "reindex_like" in str(info.value) and "align" in str(info.value)
    # following the hint gives pandas' aligned result
    close((enc + shuffled.reindex_like(df)).to_pandas(ctx), df + shuffled, tol)
    # ... or the other way: align on the plaintext side before encrypting
    a, b = df.align(shuffled, join="inner")
    close((EncryptedVector.from_pandas(ctx, a) + b).to_pandas(ctx), df + shuffled, tol)
    # columns that differ, between two encrypted operands
    renamed = EncryptedVector.from_pandas(ctx, other.rename(columns={"c0": "zz"}))
    with pytest.raises(LabelMismatchError, match="columns labels differ"):
        enc - renamed
    # to combine by position, drop the labels (pass a numpy array): the left labels are kept
    close((enc - other.rename(columns={"c0": "zz"}).to_numpy()).to_pandas(ctx), df - other, tol)
    # a Series against a DataFrame: pandas would broadcast along the columns
    col = df.iloc[:, 0]
    with pytest.raises(LabelMismatchError, match="broadcast"):
        EncryptedVector.from_pandas(ctx, col) * pd.Series(np.ones(len(col)), index=col.index).to_frame()
    # an unlabelled vector of another shape against a DataFrame: reshape first, as the hint says
    flat = ctx.encrypt(df.to_numpy().reshape(-1))
    with pytest.raises(LabelMismatchError, match="Reshape"):
        flat + other
    close((flat.reshape(df.shape) + other).to_pandas(ctx), df + other, tol)
    # dividing by a ciphertext (pandas and numpy defer to the encrypted operand) is a named error
    with pytest.raises(UnsupportedOperationError, match="division by a ciphertext"):
        other / enc
    with pytest.raises(UnsupportedOperationError, match="division by a ciphertext"):
        other.to_numpy() / enc
    # reshaping to another shape drops the labels; to the same shape keeps them
    assert enc.reshape(-1).labels is None and enc.reshape(df.shape).labels is not None


def test_result_labels_stay_local(ckks_sum):
    """Labels of operator results are not serialized either (a server never sees them)."""
    ctx = ckks_sum
    df = pd.DataFrame(np.ones((2, 2)), index=["secret_row", "b"], columns=["secret_col", "d"])
    out = EncryptedVector.from_pandas(ctx, df) + df
    assert out.labels is not None
    data = out.to_bytes()
    assert b"secret_row" not in data and b"secret_col" not in data
    assert ctx.ciphertext_from_bytes(data).labels is None
