"""Encrypted linear/logistic regression against their scikit-learn and plaintext twins.

Tolerances are derived from the parameters: CKKS fresh noise ``2n / 2^scale`` per slot
(about 12 standard deviations, see tests/schemes/test_ckks.py) times the weight mass that
multiplies it; BFV and Paillier rounding of features and weights to their fixed-point grids.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

import he_ml
from he_ml.errors import (
    DepthExhaustedError,
    EncodingOverflowError,
    NotFittedError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from he_ml.ml import (
    ClientAidedRefresh,
    EncryptedLinearRegression,
    EncryptedLogisticRegression,
    encrypt_features,
)


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    idx = np.random.default_rng(0).permutation(len(y))
    X, y = X[idx], y[idx]
    clf = LogisticRegression(max_iter=5000).fit(X[:400], y[:400])
    return X[:400], y[:400], X[400:480], y[400:480], clf


@pytest.fixture(scope="module")
def ckks3():
    """Depth 3 (= predict_proba_depth of a degree-3 sigmoid): n = 8192, [40, 30, 30, 30, 40]."""
    return he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 30, 40], scale_bits=30)


@pytest.fixture(scope="module")
def ckks4():
    """Depth 4 (a logistic training batch with a degree-1 sigmoid): n = 8192, [42, 32 x 4, 42].

    Scale primes must stay close to 2^scale: after a ciphertext product the scale is
    s^2 / q, and primes = 1 mod 2n near 2^29 already drift by ~1e-3 (he_ml refuses to add
    ciphertexts whose scales differ more), hence 32-bit primes here (and a 42-bit q0 for |values| < 512).
    """
    return he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[42] + [32] * 4 + [42], scale_bits=32)


def _ckks_score_tol(ctx, model) -> float:
    # each column carries fresh noise <= 2n/2^scale, multiplied by |w_j|; each product's rescale
    # adds about one more such error; the intercept is exact up to encoding
    unit = 2 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    return unit * (2 * np.sum(np.abs(model.coef_)) + model.coef_.size + 1)


# ----------------------------------------------------------------------------- inference
def test_ckks_scores_match_sklearn_and_predictions_agree(data, ckks3):
    X_tr, _, X_te, y_te, clf = data
    model = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr)
    enc = encrypt_features(ckks3, X_te)
    scores = ckks3.decrypt(model.decision_function(enc))
    assert np.max(np.abs(scores - clf.decision_function(X_te))) <= _ckks_score_tol(ckks3, model)
    np.testing.assert_array_equal(model.predict(enc), clf.predict(X_te))
    np.testing.assert_array_equal(model.predict_from_scores(scores), clf.predict(X_te))


def test_predict_proba_matches_the_polynomial_in_plaintext(data, ckks3):
    X_tr, _, X_te, _, clf = data
    model = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr, sigmoid_degree=3)
    assert model.predict_proba_depth == 3
    R = model.logit_range_
    z = clf.decision_function(X_tr)
    assert R == pytest.approx(1.25 * np.max(np.abs(z)))
    both = ckks3.decrypt(model.predict_proba(encrypt_features(ckks3, X_te)))
    assert both.shape == (len(X_te), 2)  # scikit-learn's shape; column 0 = 1 - column 1 (no level)
    proba = both[:, 1]
    unit0 = 2 * ckks3.poly_modulus_degree / 2.0 ** ckks3.scale_bits  # the subtraction adds no noise
    assert np.max(np.abs(both[:, 0] + proba - 1.0)) <= unit0
    t = clf.decision_function(X_te) / R
    expect = model.sigmoid_(t)
    # score noise (scaled by 1/R) propagated through p (|p'| <= ~R/4 * ... bounded by the coefficients)
    # plus the polynomial's own rescale noise, amplified by its noise_gain
    unit = 2 * ckks3.poly_modulus_degree / 2.0 ** ckks3.scale_bits
    slope = np.sum(np.abs(model.sigmoid_.coefficients[1:]) * np.arange(1, model.sigmoid_.coefficients.size))
    tol = slope * _ckks_score_tol(ckks3, model) / R + unit * (model.sigmoid_.noise_gain + 4)
    assert np.max(np.abs(proba - expect)) <= tol
    # and the polynomial is within max_error of the true sigmoid there
    assert np.max(np.abs(expect - clf.predict_proba(X_te)[:, 1])) <= model.sigmoid_.max_error + 1e-12


def test_bfv_scores_within_fixed_point_rounding(data):
    X_tr, _, X_te, _, clf = data
    ctx = he_ml.BFV("sum", fixed_point_bits=9)  # the context carries the encoding of X and w
    model = EncryptedLogisticRegression.from_sklearn(clf)
    fb = wb = 9
    enc = encrypt_features(ctx, X_te)
    scores = ctx.decrypt(model.decision_function(enc))
    assert scores.dtype == np.float64
    plain = clf.decision_function(X_te)
    # |x w - x~ w~| <= |x| |w - w~| + |w~| |x - x~|, plus the rounded intercept
    bound = (np.abs(X_te).sum(axis=1) * 2.0 ** -(wb + 1)
             + np.sum(np.abs(model.coef_) + 2.0 ** -(wb + 1)) * 2.0 ** -(fb + 1) + 2.0 ** -(fb + wb + 1))
    assert np.all(np.abs(scores - plain) <= bound)
    safe = np.abs(plain) > bound
    np.testing.assert_array_equal(model.predict_from_scores(scores)[safe], clf.predict(X_te)[safe])


def test_paillier_scores_within_precision_bits(data):
    _, _, X_te, _, clf = data
    ctx = he_ml.Paillier(key_bits=1024, allow_insecure=True)  # small key: speed; encoding is the same
    model = EncryptedLogisticRegression.from_sklearn(clf)
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X_te[:30])))
    p = ctx.precision_bits
    plain = clf.decision_function(X_te[:30])
    bound = (np.abs(X_te[:30]).sum(axis=1) + np.sum(np.abs(model.coef_)) + 2) * 2.0 ** -(p + 1)
    assert np.all(np.abs(scores - plain) <= bound)
    np.testing.assert_array_equal(model.predict_from_scores(scores), clf.predict(X_te[:30]))


def test_linear_regression_from_sklearn_on_ckks(ckks3):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 5))
    reg = LinearRegression().fit(X, X @ [1.0, -2.0, 0.5, 3.0, 0.0] + 0.25 + rng.normal(size=64) * 0.1)
    model = EncryptedLinearRegression.from_sklearn(reg)
    pred = ckks3.decrypt(model.predict(encrypt_features(ckks3, X)))
    assert np.max(np.abs(pred - reg.predict(X))) <= _ckks_score_tol(ckks3, model)


# ----------------------------------------------------------------------------- errors
def test_not_fitted_and_not_calibrated_messages_say_what_to_call(data, ckks3):
    _, _, X_te, _, clf = data
    enc = encrypt_features(ckks3, X_te[:4])
    model = EncryptedLogisticRegression()
    for call in (model.decision_function, model.predict_proba, model.predict):
        with pytest.raises(NotFittedError, match=r"Call fit\(enc_X, enc_y\).*from_sklearn\(model\)"):
            call(enc)
    with pytest.raises(NotFittedError, match="not fitted"):
        EncryptedLogisticRegression.from_sklearn(LogisticRegression())
    uncalibrated = EncryptedLogisticRegression.from_sklearn(clf)
    with pytest.raises(NotFittedError, match=r"calibrate\(X_calibration\).*logit_range=.*X_calibration=X"):
        uncalibrated.predict_proba(enc)


def test_out_of_range_logits_warn(data):
    X_tr, _, _, _, clf = data
    with pytest.warns(RuntimeWarning, match="fall outside"):
        EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr, logit_range=4.0)
    model = EncryptedLogisticRegression.from_sklearn(clf, logit_range=4.0)
    with pytest.warns(RuntimeWarning, match=r"exceed the sigmoid interval.*calibrate\(X\)"):
        frac = model.check_logits(X_tr)
    assert frac == pytest.approx(np.mean(np.abs(clf.decision_function(X_tr)) > 4.0))
    calibrated = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert calibrated.check_logits(X_tr) == 0.0


def test_depth_planning_errors(data, ckks3):
    X_tr, _, X_te, _, clf = data
    shallow = he_ml.CKKS("sum")  # depth 1
    model = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr, sigmoid_degree=7)
    assert model.predict_proba_depth == 4
    with pytest.raises(DepthExhaustedError, match=r"needs 4 multiplicative levels.*have 1.*plan\(depth=4\)"):
        model.predict_proba(encrypt_features(shallow, X_te[:3]))
    trainer = EncryptedLogisticRegression(epochs=1)
    assert trainer.training_depth == 5
    eX = encrypt_features(ckks3, X_tr[:16, :3], layout="blocks")
    ey = encrypt_features(ckks3, X_tr[:16, 0], layout="blocks", batch_size=eX.batch_size)
    with pytest.raises(DepthExhaustedError, match=r"needs 5 multiplicative levels.*has 3.*training_context"):
        trainer.fit(eX, ey)


def test_unsupported_schemes_and_shapes(data):
    _, _, X_te, _, clf = data
    bfv = he_ml.BFV("sum")
    model = EncryptedLogisticRegression.from_sklearn(clf, logit_range=10.0)
    enc = encrypt_features(bfv, X_te[:5])
    with pytest.raises(UnsupportedOperationError, match="call decision_function"):
        model.predict_proba(enc)
    with pytest.raises(UnsupportedOperationError, match="inference only"):
        EncryptedLogisticRegression().fit(enc, enc)
    with pytest.raises(ShapeMismatchError, match="expecting 30 features"):
        model.decision_function(encrypt_features(bfv, X_te[:5, :4]))
    with pytest.raises(ShapeMismatchError, match="label vector"):
        model.decision_function(encrypt_features(bfv, X_te[:5, 0]))
    with pytest.raises(ParameterError, match="expects encrypted features"):
        model.decision_function(X_te[:5])
    with pytest.raises(ShapeMismatchError, match=r"is binary.*he_ml.ml.from_sklearn"):
        EncryptedLogisticRegression.from_sklearn(
            LogisticRegression().fit(X_te[:60], np.arange(60) % 3))
    # a fitted Pipeline or MLP is not "not fitted": the message points to from_sklearn
    from sklearn.pipeline import make_pipeline
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_te[:60], np.arange(60) % 2)
    with pytest.raises(UnsupportedOperationError, match=r"got Pipeline.*he_ml.ml.from_sklearn"):
        EncryptedLogisticRegression.from_sklearn(pipe)


def test_parameter_validation_and_sklearn_contract():
    est = EncryptedLogisticRegression(learning_rate=-1)
    with pytest.raises(ParameterError, match=r"The 'learning_rate' parameter of EncryptedLogisticRegression "
                                             r"must be a float in the range \(0, inf\)\. Got -1 instead\."):
        est._check_params()
    for kw, expected in (({"epochs": 0}, "'epochs'"), ({"batch_size": 12}, "'batch_size'"),
                         ({"sigmoid_degree": 0}, "'sigmoid_degree'"), ({"logit_range": -2.0}, "'logit_range'"),
                         ({"fit_intercept": "yes"}, "'fit_intercept'"), ({"weight_bits": 99}, "'weight_bits'")):
        with pytest.raises(ParameterError, match=expected):
            EncryptedLogisticRegression(**kw)._check_params()
    est = EncryptedLogisticRegression(sigmoid_degree=5, epochs=3)
    assert est.get_params()["sigmoid_degree"] == 5
    copy = clone(est).set_params(epochs=7)
    assert copy.epochs == 7 and est.epochs == 3 and not hasattr(copy, "coef_")
    assert EncryptedLinearRegression().get_params()["learning_rate"] == 0.1


# ----------------------------------------------------------------------------- training
def test_linear_regression_training_matches_plain_twin():
    ctx = he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 30, 40], scale_bits=30)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(48, 3))
    y = X @ [0.5, -1.0, 0.25] + 0.3
    model = EncryptedLinearRegression(epochs=3, learning_rate=0.2)
    eX = encrypt_features(ctx, X, layout="blocks", batch_size=16)
    ey = encrypt_features(ctx, y, layout="blocks", batch_size=16)
    records = []
    assert model.fit(eX, ey, callback=records.append, eval_set=(X, y)) is model
    twin = model.plain_fit(X, y, batch_size=16, epochs=3)
    # every step adds CKKS noise of a few units (fresh + 3 rescales + rotations) relative to O(1) values
    unit = 2 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    tol = 3 * 3 * 64 * unit
    assert np.max(np.abs(np.r_[model.coef_, model.intercept_] - twin)) <= tol
    assert [r["epoch"] for r in records] == [1, 2, 3] and records[-1]["loss"] < records[0]["loss"]
    assert model.n_refreshes_ == 3 * 3 - 1      # depth 3 per batch, 3 levels: refresh before every batch but the first
    assert len(model.history_) == 3


def test_logistic_training_matches_polynomial_twin_and_learns(data, ckks4):
    X_tr, y_tr, X_te, y_te, _ = data
    X, y = X_tr[:64, :7], y_tr[:64].astype(float)
    model = EncryptedLogisticRegression(epochs=2, learning_rate=0.5, sigmoid_degree=1)
    assert model.training_depth == 4
    eX = encrypt_features(ckks4, X, layout="blocks", batch_size=32)
    ey = encrypt_features(ckks4, y, layout="blocks", batch_size=32)
    model.fit(eX, ey, eval_set=(X, y))
    twin = model.plain_fit(X, y, batch_size=32, epochs=2)
    unit = 2 * ckks4.poly_modulus_degree / 2.0 ** ckks4.scale_bits
    assert np.max(np.abs(np.r_[model.coef_, model.intercept_] - twin)) <= 4 * 64 * 8 * unit
    assert model.history_[-1]["accuracy"] >= 0.85
    assert model.logit_range_ == pytest.approx(1.25 * np.max(np.abs(X @ model.coef_ + model.intercept_)))


def test_public_context_training_needs_refresh_and_rotation_keys(data, ckks3):
    X_tr, y_tr, *_ = data
    X, y = X_tr[:16, :3], y_tr[:16].astype(float)
    model = EncryptedLinearRegression(epochs=1)
    fresh = he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 30, 40],
                       scale_bits=30).public_context()
    with pytest.raises(UnsupportedOperationError, match="rotation keys"):
        model.fit(encrypt_features(fresh, X, layout="blocks", batch_size=16),
                  encrypt_features(fresh, y, layout="blocks", batch_size=16),
                  refresh=ClientAidedRefresh(ckks3))
    ckks3.enable_rotations(model.rotation_steps(16, ckks3.slot_count // 16))
    pub = ckks3.public_context()
    eX = encrypt_features(pub, X, layout="blocks", batch_size=16)
    ey = encrypt_features(pub, y, layout="blocks", batch_size=16)
    with pytest.raises(SecretKeyMissingError, match="ClientAidedRefresh"):
        model.fit(eX, ey)
    refresh = ClientAidedRefresh(ckks3)
    model.fit(eX, ey, refresh=refresh)
    twin = model.plain_fit(X, y, batch_size=16, epochs=1)
    assert refresh.last is not None
    assert np.max(np.abs(np.r_[model.coef_, model.intercept_] - twin)) <= 1e-3
    with pytest.raises(SecretKeyMissingError):
        ClientAidedRefresh(pub)


def test_divergence_is_reported_not_silent(data, ckks3):
    X_tr, y_tr, *_ = data
    X, y = X_tr[:32, :4] * 4, y_tr[:32].astype(float)
    model = EncryptedLinearRegression(epochs=4, learning_rate=50.0)
    eX = encrypt_features(ckks3, X, layout="blocks", batch_size=16)
    ey = encrypt_features(ckks3, y, layout="blocks", batch_size=16)
    # caught either by the refresh (decrypted weights too large) or, earlier, by the CKKS bound
    # tracking (the next step could overflow the modulus): both name the divergence
    with pytest.raises((ParameterError, EncodingOverflowError), match="diverged"):
        model.fit(eX, ey, refresh=ClientAidedRefresh(ckks3, max_abs_weight=100.0))


@pytest.mark.slow
def test_training_context_declares_exactly_the_rotation_keys_and_trains_degree_3(data):
    X_tr, y_tr, *_ = data
    ctx = EncryptedLogisticRegression.training_context(7, 64, batch_size=32)
    model = EncryptedLogisticRegression(epochs=2, learning_rate=0.5)
    steps = model.rotation_steps(32, ctx.slot_count // 32)
    assert ctx.max_depth >= model.training_depth == 5
    assert len(ctx.rotation_steps_available) == len(steps)
    X, y = X_tr[:64, :7], y_tr[:64].astype(float)
    model.fit(encrypt_features(ctx, X, layout="blocks", batch_size=32),
              encrypt_features(ctx, y, layout="blocks", batch_size=32))
    twin = model.plain_fit(X, y, batch_size=32, epochs=2)
    unit = 2 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    assert np.max(np.abs(np.r_[model.coef_, model.intercept_] - twin)) <= 4 * 64 * 8 * unit



def test_dataframe_with_other_columns_is_refused_by_name(data, ckks3):
    """Fitted on a DataFrame, the model keeps feature_names_in_; renamed/reordered frames are refused."""
    pd = pytest.importorskip("pandas")
    X_tr, y_tr, X_te, _, _ = data
    cols = [f"f{j}" for j in range(X_tr.shape[1])]
    clf = LogisticRegression(max_iter=5000).fit(pd.DataFrame(X_tr, columns=cols), y_tr)
    model = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr)
    assert list(model.feature_names_in_) == cols
    frame = pd.DataFrame(X_te, columns=cols)
    ok = ckks3.decrypt(model.decision_function(encrypt_features(ckks3, frame)))
    assert np.max(np.abs(ok - clf.decision_function(frame))) <= _ckks_score_tol(ckks3, model)
    reordered = frame[cols[::-1]]
    with pytest.raises(ShapeMismatchError, match="another order") as exc:
        model.decision_function(encrypt_features(ckks3, reordered))
    assert "feature_names_in_" in str(exc.value)
    renamed = frame.rename(columns={"f0": "radius"})
    with pytest.raises(ShapeMismatchError, match=r"unseen at fit time: \['radius'\]"):
        model.predict(encrypt_features(ckks3, renamed))
    # the advice: encrypt the columns in the model's order
    fixed = reordered[model.feature_names_in_]
    again = ckks3.decrypt(model.decision_function(encrypt_features(ckks3, fixed)))
    assert np.max(np.abs(again - clf.decision_function(frame))) <= _ckks_score_tol(ckks3, model)
