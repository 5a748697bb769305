"""pandas round trips of EncryptedVector (labels kept locally) and feature-name checks."""
from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import he_ml  # noqa: E402
from he_ml.errors import ParameterError, ShapeMismatchError  # noqa: E402
from he_ml.ml.feature_names import check_feature_names, feature_names_of, record_feature_names  # noqa: E402
from he_ml.schemes.base import EncryptedVector  # noqa: E402


@pytest.fixture(scope="module")
def paillier():
    return he_ml.Paillier()


@pytest.fixture(scope="module")
def ckks():
    return he_ml.CKKS("light")


# Paillier with 24 fractional bits: every decrypted value is within 2^-25 of the input, a sum
# of m values within m 2^-25 (the sums themselves are exact on the encoded integers).
Q = 2.0 ** -25


def frame(rows: int, cols: int, k: int) -> "pd.DataFrame":
    rng = np.random.default_rng(5)
    return pd.DataFrame(rng.uniform(-1, 1, size=(rows, cols * k)),
                        index=pd.Index([f"r{i}" for i in range(rows)], name="id"),
                        columns=[f"c{j}" for j in range(cols * k)])


def test_dataframe_round_trip_keeps_index_and_columns(paillier):
    df = frame(4, 2, paillier.slot_count)
    enc = EncryptedVector.from_pandas(paillier, df)
    back = enc.to_pandas(paillier)
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_index_equal(back.index, df.index)
    pd.testing.assert_index_equal(back.columns, df.columns)
    np.testing.assert_allclose(back.to_numpy(), df.to_numpy(), atol=Q)
    # row selections and column sums keep the matching labels
    rows = enc[1:3].to_pandas(paillier)
    pd.testing.assert_index_equal(rows.index, df.index[1:3])
    one = enc[2].to_pandas(paillier)
    assert isinstance(one, pd.Series) and one.name == "r2"
    pd.testing.assert_index_equal(one.index, df.columns)
    total = enc.sum(axis=0).to_pandas(paillier)
    pd.testing.assert_series_equal(total, df.sum(axis=0), atol=4 * Q, check_names=False)
    # the labels are local: the bytes do not carry them
    # (the ciphertexts are random bytes, which contain the 2-byte string "c0" about once in 16 blobs:
    # look for the labels where they would be written -- the JSON metadata -- and as JSON strings)
    import json
    from he_ml.schemes._format import unpack_blob
    data = enc.to_bytes()
    header = json.dumps(unpack_blob(data).metadata)
    assert "c0" not in header and "r1" not in header
    assert b'"c0"' not in data and b'"r1"' not in data
    # operators keep the labels (tests/schemes/test_vector_pandas_ops.py); a reshape to another shape
    # drops them, and like= gives them back
    doubled = (enc * 2).reshape(-1).reshape(df.shape)
    with pytest.raises(ParameterError, match="like="):
        doubled.to_pandas(paillier)
    back = doubled.to_pandas(paillier, like=df)
    np.testing.assert_allclose(back.to_numpy(), 2 * df.to_numpy(), atol=2 * Q)
    pd.testing.assert_index_equal(back.columns, df.columns)


def test_series_round_trip_and_row_sums_on_ckks(ckks):
    s = pd.Series([0.5, -0.25, 0.75], index=[10, 20, 30], name="score")
    enc = EncryptedVector.from_pandas(ckks, s)
    back = enc.to_pandas(ckks)
    pd.testing.assert_index_equal(back.index, s.index)
    assert back.name == "score"
    np.testing.assert_allclose(back.to_numpy(), s.to_numpy(), atol=1e-6)  # fresh CKKS error ~1e-8
    df = pd.DataFrame(np.arange(6.0).reshape(3, 2) / 8, index=list("abc"), columns=["u", "v"])
    row_sums = EncryptedVector.from_pandas(ckks, df).sum(axis=1).to_pandas(ckks)
    pd.testing.assert_index_equal(row_sums.index, df.index)
    # 3 rows, each a gather of <= 3 shifts and one mask (tests/schemes/test_vector_numpy.py bound)
    np.testing.assert_allclose(row_sums.to_numpy(), df.sum(axis=1).to_numpy(), atol=1e-5)


def test_pandas_errors_say_what_to_do(paillier):
    with pytest.raises(ParameterError, match="ctx.encrypt"):
        EncryptedVector.from_pandas(paillier, np.zeros(3))
    df = frame(2, 1, paillier.slot_count)
    enc = EncryptedVector.from_pandas(paillier, df)
    with pytest.raises(ShapeMismatchError, match="pass like="):
        enc.to_pandas(paillier, like=df.iloc[:1])


def test_feature_names_recorded_and_checked(paillier):
    from sklearn.linear_model import LogisticRegression

    X = frame(30, 1, 3)
    y = (X["c0"] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    assert list(feature_names_of(X)) == list(clf.feature_names_in_)
    assert feature_names_of(X.to_numpy()) is None
    enc = he_ml.ml.encrypt_features(paillier, X)
    record_feature_names(enc, X)
    check_feature_names(clf, enc)  # same names, same order: fine
    shuffled = record_feature_names(he_ml.ml.encrypt_features(paillier, X[X.columns[::-1]]), X[X.columns[::-1]])
    with pytest.raises(ShapeMismatchError, match="another order") as info:
        check_feature_names(clf, shuffled)
    # following the advice works
    fixed = X[X.columns[::-1]][clf.feature_names_in_]
    check_feature_names(clf, record_feature_names(he_ml.ml.encrypt_features(paillier, fixed), fixed))
    renamed = X.rename(columns={"c1": "other"})
    with pytest.raises(ShapeMismatchError, match="unseen at fit time: \\['other'\\]"):
        check_feature_names(clf, record_feature_names(he_ml.ml.encrypt_features(paillier, renamed), renamed))
    assert "feature_names_in_" in str(info.value)
