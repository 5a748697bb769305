"""from_sklearn: encrypted models against the scikit-learn estimators' own predictions (held-out splits)."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.linear_model import (ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge, RidgeClassifier,
                                  SGDClassifier)
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import LinearSVC

import he_ml
from he_ml.errors import (DepthExhaustedError, EncodingOverflowError, NotFittedError, ParameterError,
                          SecretKeyMissingError, ShapeMismatchError, UnsupportedOperationError)
from he_ml.ml import encrypt_features, from_sklearn
from he_ml.ml.layout import EncryptedFeatures



def _split(loader, seed=0):
    X, y = loader(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y if loader is not load_diabetes else None)


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of short sklearn fits are not under test
        return est.fit(X, y)


def _run(model, X):
    ctx = model.context()
    out = model.decision_function(encrypt_features(ctx, X)) if model.task != "regression" else \
        model.predict(encrypt_features(ctx, X))
    return ctx, ctx.decrypt(out)


CLASSIFIERS = [
    ("binary LR, raw breast cancer", load_breast_cancer, lambda: make_pipeline(StandardScaler(), LogisticRegression())),
    ("multinomial LR, iris", load_iris, lambda: LogisticRegression(max_iter=2000)),
    ("one-vs-rest LR, wine", load_wine,
     lambda: make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression()))),
    ("LinearSVC, wine", load_wine, lambda: make_pipeline(RobustScaler(), LinearSVC())),
    ("SGDClassifier, iris", load_iris, lambda: make_pipeline(MinMaxScaler(), SGDClassifier(random_state=0))),
    ("RidgeClassifier, wine", load_wine, lambda: make_pipeline(MaxAbsScaler(), RidgeClassifier())),
    ("binary LinearSVC, breast cancer", load_breast_cancer,
     lambda: make_pipeline(StandardScaler(), MinMaxScaler(), LinearSVC())),
]


@pytest.mark.parametrize("label,loader,make", CLASSIFIERS, ids=[c[0] for c in CLASSIFIERS])
def test_linear_classifiers_match_sklearn_on_raw_features(label, loader, make, ckks_error_bound):
    X_tr, X_te, y_tr, y_te = _split(loader)
    est = _fit(make(), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    assert model.depth == 1 and model.is_linear
    ctx, scores = _run(model, X_te)  # RAW features: the scalers are folded into the weights
    ref = est.decision_function(X_te)
    assert scores.shape == ref.shape  # (n,) binary, (n, n_classes) multiclass
    assert np.max(np.abs(scores - ref)) <= ckks_error_bound(model, X_te, ctx)
    agreement = np.mean(model.predict_from_scores(scores) == est.predict(X_te))
    assert agreement >= 0.99, agreement


REGRESSORS = [LinearRegression, lambda: Ridge(alpha=0.5), lambda: Lasso(alpha=0.1), lambda: ElasticNet(alpha=0.01)]


@pytest.mark.parametrize("make", REGRESSORS, ids=["LinearRegression", "Ridge", "Lasso", "ElasticNet"])
def test_linear_regressors_match_sklearn(make, ckks_error_bound):
    X_tr, X_te, y_tr, _ = _split(load_diabetes)
    est = _fit(make_pipeline(StandardScaler(), make()), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    ctx, pred = _run(model, X_te)
    assert pred.shape == (len(X_te),)
    assert np.max(np.abs(pred - est.predict(X_te))) <= ckks_error_bound(model, X_te, ctx)


def test_multi_output_regressor_decrypts_to_n_by_k(ckks_error_bound):
    X_tr, X_te, y_tr, _ = _split(load_diabetes)
    Y = np.stack([y_tr, -2 * y_tr + 3], axis=1)
    est = Ridge().fit(X_tr, Y)
    model = from_sklearn(est, X_calibration=X_tr)
    ctx, pred = _run(model, X_te)
    assert pred.shape == (len(X_te), 2)
    assert np.max(np.abs(pred - est.predict(X_te))) <= ckks_error_bound(model, X_te, ctx)
    with pytest.raises(UnsupportedOperationError, match="call predict"):
        model.decision_function(encrypt_features(ctx, X_te[:2]))


@pytest.fixture(scope="module")
def digits_mlp():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    est = _fit(make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)),
               X_tr, y_tr)
    return X_tr, X_te[:200], y_tr, y_te[:200], est


@pytest.fixture(scope="module")
def mlp_run(digits_mlp):
    """One encrypted run, done by a server holding only the public bytes, on 200 held-out samples plus the
    64 calibration samples with the largest magnitudes (one batch: the cost is per ciphertext)."""
    X_tr, X_te, _, _, est = digits_mlp
    model = from_sklearn(est, X_calibration=X_tr)
    ctx = model.context()
    pub = he_ml.load_context(ctx.public_context().to_bytes())
    X_big = X_tr[np.argsort(-np.abs(X_tr).sum(axis=1))[:64]]
    batch = np.concatenate([X_te, X_big])
    out = model.decision_function(encrypt_features(pub, batch))
    scores = ctx.decrypt(ctx.ciphertext_from_bytes(out.to_bytes()))
    return model, ctx, pub, batch, scores


def test_mlp_classifier_relu_agrees_with_sklearn(digits_mlp, mlp_run, ckks_error_bound):
    X_tr, X_te, _, _, est = digits_mlp
    model, ctx, _, batch, all_scores = mlp_run
    scores = all_scores[:len(X_te)]
    assert model.depth == 1 + 3 + 1  # dense, degree-7 relu, dense
    assert scores.shape == (len(X_te), 10)
    # encrypted vs the float twin: CKKS noise only, within the propagated bound
    assert np.max(np.abs(scores - model.plain_scores(X_te))) <= ckks_error_bound(model, X_te, ctx)
    agreement = np.mean(model.predict_from_scores(scores) == est.predict(X_te))
    assert agreement >= 0.97, agreement
    # the converter itself is exact: the IR with the true relu reproduces sklearn's probabilities
    np.testing.assert_allclose(model.proba_from_scores(model.plain_scores(X_te, exact=True)),
                               est.predict_proba(X_te), atol=1e-9)
    # encrypted logits differ from the true ones by the relu polynomial's error carried through the
    # last layer (row sums of |W2| times max_error) plus CKKS noise, on inputs inside the interval
    act = [s.activation for s in model._stages if hasattr(s, "activation")][0]
    hidden = MinMaxScaler().fit(X_tr).transform(X_tr) @ est[-1].coefs_[0] + est[-1].intercepts_[0]
    assert act.interval[1] == pytest.approx(1.2 * np.max(np.abs(hidden)))
    inside = np.array([model.check_inputs(X_te[i:i + 1]) == 0 for i in range(len(X_te))])
    bound = np.max(np.abs(est[-1].coefs_[-1]).sum(axis=0)) * act.max_error * 1.01 + ckks_error_bound(model, X_te, ctx)
    err = np.abs(scores - model.plain_scores(X_te, exact=True))[inside]
    assert inside.mean() >= 0.95 and np.max(err) <= bound


@pytest.mark.parametrize("activation", ["tanh", pytest.param("logistic", marks=pytest.mark.slow), "identity"])
def test_mlp_regressor_and_binary_classifier(activation, ckks_error_bound):
    X_tr, X_te, y_tr, y_te = _split(load_breast_cancer)
    clf = _fit(make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(6,), activation=activation, max_iter=400,
                                                             random_state=0)), X_tr, y_tr)
    model = from_sklearn(clf, X_calibration=X_tr)
    ctx, scores = _run(model, X_te)
    assert scores.shape == (len(X_te),)
    assert np.mean(model.predict_from_scores(scores) == clf.predict(X_te)) >= 0.97
    # the converter is exact (true activations reproduce sklearn) ...
    np.testing.assert_allclose(model.proba_from_scores(model.plain_scores(X_te, exact=True)),
                               clf.predict_proba(X_te), atol=1e-9)
    # ... and encrypted scores differ from the true logits by the polynomial error carried through the
    # output layer (|W_out| row sums x max_error) plus CKKS noise, for samples inside the interval
    acts = [s.activation for s in model._stages if hasattr(s, "activation")]
    poly_err = acts[0].max_error * 1.01 if acts else 0.0
    inside = np.array([model.check_inputs(X_te[i:i + 1]) == 0 for i in range(len(X_te))])
    bound = np.abs(clf[-1].coefs_[-1]).sum() * poly_err + ckks_error_bound(model, X_te, ctx)
    assert np.max(np.abs(scores - model.plain_scores(X_te, exact=True))[inside]) <= bound
    Xd_tr, Xd_te, yd_tr, _ = _split(load_diabetes)
    reg = _fit(make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(5,), activation=activation, max_iter=300,
                                                            random_state=0)), Xd_tr, yd_tr)
    rmodel = from_sklearn(reg, X_calibration=Xd_tr)
    rctx, pred = _run(rmodel, Xd_te)
    assert np.max(np.abs(pred - rmodel.plain_scores(Xd_te))) <= ckks_error_bound(rmodel, Xd_te, rctx)
    if activation == "identity":  # exact: no polynomial, only CKKS noise
        assert rmodel.depth == 1  # identity activations: the two dense layers fuse into one
        assert np.max(np.abs(pred - reg.predict(Xd_te))) <= ckks_error_bound(rmodel, Xd_te, rctx)


def test_binary_predict_proba_decrypts_to_n_by_2(ckks_error_bound):
    X_tr, X_te, y_tr, _ = _split(load_breast_cancer)
    est = _fit(make_pipeline(StandardScaler(), LogisticRegression(C=0.05)), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    ctx = model.context(proba=True)
    assert ctx.max_depth == model.predict_proba_depth == 1 + 4
    proba = ctx.decrypt(model.predict_proba(encrypt_features(ctx, X_te)))
    assert proba.shape == (len(X_te), 2)
    sig = [s.activation for s in model._get_proba_stages() if hasattr(s, "activation")][0]
    # polynomial error on the calibrated logit range + CKKS noise (the bound of the proba program)
    stages, model._stages = model._stages, model._get_proba_stages()
    try:
        noise = ckks_error_bound(model, X_te, ctx)
    finally:
        model._stages = stages
    within = np.all(np.abs(est.decision_function(X_te)) <= sig.interval[1])
    assert within
    assert np.max(np.abs(proba - est.predict_proba(X_te))) <= sig.max_error * 1.01 + noise
    # client-side probabilities from decrypted scores are exact (sigmoid on the client)
    ctx2, scores = _run(model, X_te)
    np.testing.assert_allclose(model.proba_from_scores(scores), est.predict_proba(X_te), atol=1e-5)


def test_multiclass_proba_is_client_side_softmax_or_ovr():
    X_tr, X_te, y_tr, _ = _split(load_wine)
    for est in (make_pipeline(StandardScaler(), LogisticRegression()),
                make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression()))):
        _fit(est, X_tr, y_tr)
        model = from_sklearn(est, X_calibration=X_tr)
        ctx, scores = _run(model, X_te)
        np.testing.assert_allclose(model.proba_from_scores(scores), est.predict_proba(X_te), atol=1e-5)
        with pytest.raises(UnsupportedOperationError, match="softmax"):
            model.predict_proba(encrypt_features(ctx, X_te[:2]))


def test_raw_breast_cancer_needs_the_planned_context():
    """The README's raw-feature case: |x| up to 4254 overflows the default context but fits model.context()."""
    X, y = load_breast_cancer(return_X_y=True)
    est = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    model = from_sklearn(est, X_calibration=X)
    narrow = he_ml.CKKS(preset=None, poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 40], scale_bits=30)
    with pytest.raises(EncodingOverflowError):  # holds |x| < 2^9: raw areas up to 4254 do not fit
        encrypt_features(narrow, X)
    ctx = model.context()
    assert ctx.security_level >= 128
    assert ctx.value_bound >= 2 * np.max(np.abs(X))  # VALUE_MARGIN 2 x the calibration maximum, at least
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X)))
    assert np.mean(model.predict_from_scores(scores) == est.predict(X)) == 1.0


def test_dataframe_with_renamed_or_reordered_columns_is_refused():
    """from_sklearn keeps the Pipeline's feature_names_in_; encrypted frames must match them (scikit-learn's rule)."""
    pd = pytest.importorskip("pandas")
    data = load_wine(as_frame=True)
    X_tr, X_te, y_tr, _ = train_test_split(data.data, data.target, test_size=0.3, random_state=0,
                                           stratify=data.target)
    est = _fit(make_pipeline(StandardScaler(), LogisticRegression()), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    assert list(model.feature_names_in_) == list(X_tr.columns)
    ctx = model.context()
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X_te)))
    assert np.mean(model.predict_from_scores(scores) == est.predict(X_te)) >= 0.99
    cols = list(X_te.columns)
    reordered = X_te[cols[1:] + cols[:1]]
    with pytest.raises(ShapeMismatchError, match="another order") as exc:
        model.decision_function(encrypt_features(ctx, reordered))
    assert "EncryptedModel.decision_function" in str(exc.value) and "feature_names_in_" in str(exc.value)
    renamed = X_te.rename(columns={"alcohol": "ethanol"})
    with pytest.raises(ShapeMismatchError, match=r"unseen at fit time: \['ethanol'\].*missing: \['alcohol'\]"):
        model.predict(encrypt_features(ctx, renamed))
    # following the advice (the columns in the model's order) works; numpy arrays carry no names
    fixed = ctx.decrypt(model.decision_function(encrypt_features(ctx, reordered[model.feature_names_in_])))
    np.testing.assert_array_equal(model.predict_from_scores(fixed), model.predict_from_scores(scores))
    model.decision_function(encrypt_features(ctx, X_te.to_numpy()))


def test_server_runs_from_public_bytes_only():
    X_tr, X_te, y_tr, _ = _split(load_wine)
    est = _fit(make_pipeline(StandardScaler(), LogisticRegression()), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    ctx = model.context()
    pub = ctx.public_context()
    assert pub.rotation_steps_available == () and not pub.has_relin_keys  # linear: no evaluation keys
    server = he_ml.load_context(pub.to_bytes())
    upload = encrypt_features(server, X_te).to_bytes()  # a client needs only the public context too
    blob = model.decision_function(EncryptedFeatures.from_bytes(server, upload)).to_bytes()
    scores = ctx.decrypt(ctx.ciphertext_from_bytes(blob))
    assert scores.shape == (len(X_te), 3)
    assert np.mean(model.predict_from_scores(scores) == est.predict(X_te)) >= 0.99
    with pytest.raises(SecretKeyMissingError):
        model.predict(EncryptedFeatures.from_bytes(server, upload))


def test_mlp_public_context_has_relinearization_but_no_rotation_keys(mlp_run):
    model, ctx, pub, _, _ = mlp_run
    assert pub.has_relin_keys and pub.rotation_steps_available == ()
    assert not pub.has_secret_key


def test_planned_context_is_minimal_and_fits_calibration_range(mlp_run, ckks_error_bound):
    model, ctx, _, batch, scores = mlp_run
    assert ctx.security_level >= 128
    assert ctx.max_depth == model.depth
    # the calibration samples with the largest magnitudes ran without overflow (last 64 of the batch)
    big = batch[-64:]
    assert np.max(np.abs(scores[-64:] - model.plain_scores(big))) <= ckks_error_bound(model, big, ctx)
    assert ctx.value_bound >= 2 * model.calibration_["values"]
    # the ring is the smallest: the same chain would not be 128-bit secure on the next smaller ring
    from he_ml.schemes.params import HE_STANDARD_MAX_BITS
    assert sum(ctx.coeff_mod_bit_sizes) > HE_STANDARD_MAX_BITS[ctx.poly_modulus_degree // 2][128]
    # one level short is refused before computing, with the way out
    small = he_ml.CKKS(preset=None, poly_modulus_degree=16384, coeff_mod_bit_sizes=[50, 38, 38, 38, 38, 50],
                       scale_bits=38)
    with pytest.raises(DepthExhaustedError, match="model.context"):
        model.decision_function(encrypt_features(small, batch[:4]))


def test_planned_context_holds_every_bound_the_tracker_computes():
    """model.context() plans for CKKS's public magnitude bounds (not only the calibration magnitudes):
    every bound the run will carry is below its level's limit, and the run's bounds are the predicted ones."""
    X_tr, X_te, y_tr, _ = _split(load_iris)
    est = _fit(make_pipeline(StandardScaler(), MLPClassifier((6,), activation="tanh", max_iter=300,
                                                             random_state=0)), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    ctx = model.context()
    tracked = model._tracked_requirements(model._stages, False)
    assert max(u for _, u in tracked) == model.depth == ctx.max_depth
    for bound, used in tracked:  # chain index = levels left = max_depth - used
        assert bound < ctx._level_limit(ctx.max_depth - used), (bound, used)
    out = model.decision_function(encrypt_features(ctx, X_te))
    assert out.level == 0
    assert out.bound <= max(b for b, u in tracked if u == model.depth) * (1 + 1e-9)
    assert np.all(np.abs(ctx.decrypt(out)) <= out.bound)
    assert np.mean(model.predict_from_scores(ctx.decrypt(out)) == est.predict(X_te)) >= 0.9


def test_inputs_beyond_the_planned_bounds_are_refused_with_a_plan_that_fits(ckks_error_bound):
    """The plan covers inputs under the calibration data's powers of two; 8 times larger inputs are
    refused before the linear layer runs, and the hinted parameters evaluate them correctly."""
    X_tr, X_te, y_tr, _ = _split(load_iris)
    est = _fit(LogisticRegression(max_iter=2000), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    ctx = model.context()
    X_big = X_te * 8.0  # still below the context's value_bound (encryptable), not the tracked bounds
    with pytest.raises(EncodingOverflowError, match=r"linear layer.*he_ml\.plan\(depth=1, max_value=") as exc:
        model.decision_function(encrypt_features(ctx, X_big))
    hinted = float(re.search(r"he_ml\.plan\(depth=1, max_value=([0-9.e+]+)\)", str(exc.value)).group(1))
    fit = he_ml.plan(depth=1, max_value=hinted).context()
    scores = fit.decrypt(model.decision_function(encrypt_features(fit, X_big)))
    assert np.max(np.abs(scores - est.decision_function(X_big))) <= ckks_error_bound(model, X_big, fit)


def test_bfv_and_paillier_for_linear_models():
    X_tr, X_te, y_tr, _ = _split(load_wine)
    est = _fit(make_pipeline(StandardScaler(), LogisticRegression()), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    ref = est.decision_function(X_te)
    W = model._stages[0].matrix.toarray()
    bctx = model.context("bfv")
    enc = encrypt_features(bctx, X_te)
    scores = bctx.decrypt(model.decision_function(enc))
    # fixed point: features rounded to 2^-(f+1), weights to 2^-(wb+1), bias to 2^-(f+wb+1)
    f, wb = enc.fixed_point_bits, model.bfv_weight_bits_
    tol = (np.abs(W).sum(axis=1) * 2.0 ** -(f + 1) + np.abs(X_te) @ np.full(W.shape[1], 2.0 ** -(wb + 1))[:, None]
           ).max() + 2.0 ** -(f + wb)
    assert scores.shape == ref.shape
    assert np.max(np.abs(scores - ref)) <= tol
    assert np.mean(model.predict_from_scores(scores) == est.predict(X_te)) >= 0.99
    assert bctx.fixed_point_bits == f  # the planned context carries the encoding t was sized for
    # a context whose encoding is too fine for its t is refused before computing; the hint fits
    t_bits = bctx.parameters["plain_modulus_bits"]
    fine = he_ml.BFV(preset=None, poly_modulus_degree=bctx.poly_modulus_degree,
                     coeff_mod_bit_sizes=bctx.coeff_mod_bit_sizes, plain_modulus_bits=t_bits,
                     fixed_point_bits=min(t_bits - 2, f + 8), relin_keys=False)
    with pytest.raises(ParameterError, match="would wrap") as exc:
        model.decision_function(encrypt_features(fine, X_te))
    hint = re.search(r"plain_modulus_bits=(\d+), fixed_point_bits=(\d+)", str(exc.value))
    hinted = he_ml.BFV(preset=None, poly_modulus_degree=bctx.poly_modulus_degree,
                       coeff_mod_bit_sizes=bctx.coeff_mod_bit_sizes, plain_modulus_bits=int(hint.group(1)),
                       fixed_point_bits=int(hint.group(2)), relin_keys=False)
    enc = encrypt_features(hinted, X_te)
    f = enc.fixed_point_bits
    tol = (np.abs(W).sum(axis=1) * 2.0 ** -(f + 1) + np.abs(X_te) @ np.full(W.shape[1], 2.0 ** -(wb + 1))[:, None]
           ).max() + 2.0 ** -(f + wb)
    assert np.max(np.abs(hinted.decrypt(model.decision_function(enc)) - ref)) <= tol


@pytest.mark.slow
def test_paillier_linear_model():
    X_tr, X_te, y_tr, _ = _split(load_breast_cancer)
    est = _fit(make_pipeline(StandardScaler(), LogisticRegression()), X_tr, y_tr)
    model = from_sklearn(est, X_calibration=X_tr)
    pctx = model.context("paillier")
    assert pctx.security_level >= 128
    scores = pctx.decrypt(model.decision_function(encrypt_features(pctx, X_te)))
    W = model._stages[0].matrix.toarray()
    # 24 fractional bits for features and weights: error <= sum_j (|w_j| + |x_j|) 2^-25 + bias 2^-25
    tol = float(np.max((np.abs(X_te) + np.abs(W[0])).sum(axis=1))) * 2.0 ** -24
    assert np.max(np.abs(scores - est.decision_function(X_te))) <= tol
    assert np.mean(model.predict_from_scores(scores) == est.predict(X_te)) == 1.0


def test_networks_refuse_bfv_and_paillier(digits_mlp):
    X_tr, _, _, _, est = digits_mlp
    model = from_sklearn(est, X_calibration=X_tr, degree=3)
    for scheme in ("bfv", "paillier"):
        with pytest.raises(UnsupportedOperationError, match="linear models only"):
            model.context(scheme)


def test_unsupported_and_unfitted_estimators_are_named():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(UnsupportedOperationError, match="KNeighborsClassifier.*supported estimators: LogisticRegression"):
        from_sklearn(KNeighborsClassifier().fit(X, y))
    with pytest.raises(UnsupportedOperationError, match="Pipeline step PCA"):
        from_sklearn(make_pipeline(PCA(2), LogisticRegression()).fit(X, y))
    with pytest.raises(UnsupportedOperationError, match="clip"):
        from_sklearn(_fit(make_pipeline(MinMaxScaler(clip=True), LogisticRegression()), X, y))
    with pytest.raises(NotFittedError, match="LogisticRegression is not fitted; call .fit"):
        from_sklearn(LogisticRegression())
    with pytest.raises(NotFittedError, match="StandardScaler is not fitted"):
        from_sklearn(_unfitted_pipeline())
    multilabel = _fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=50, random_state=0), X, np.stack([y == 0, y == 1], axis=1))
    with pytest.raises(UnsupportedOperationError, match="multi-label"):
        from_sklearn(multilabel, X_calibration=X)


def _unfitted_pipeline():
    """A fitted model behind a scaler that was never fitted."""
    from sklearn.pipeline import Pipeline
    X, y = load_iris(return_X_y=True)
    return Pipeline([("s", StandardScaler()), ("m", LogisticRegression(max_iter=2000).fit(X, y))])


def test_mlp_needs_calibration_and_following_the_advice_works(digits_mlp):
    X_tr, _, _, _, est = digits_mlp
    with pytest.raises(ParameterError, match="pass X_calibration=X"):
        from_sklearn(est)
    model = from_sklearn(est, X_calibration=X_tr[:100], degree=3)
    assert model.depth == 1 + 2 + 1
    linear = from_sklearn(_fit(LogisticRegression(max_iter=2000), *load_iris(return_X_y=True)))
    with pytest.raises(NotFittedError, match="calibrate"):
        linear.context()
    X, _ = load_iris(return_X_y=True)
    assert linear.calibrate(X).context().security_level >= 128


def test_wrong_feature_count_and_plain_input():
    X_tr, X_te, y_tr, _ = _split(load_iris)
    model = from_sklearn(_fit(LogisticRegression(max_iter=2000), X_tr, y_tr), X_calibration=X_tr)
    ctx = model.context()
    with pytest.raises(ShapeMismatchError, match="expects 4 input values"):
        model.decision_function(encrypt_features(ctx, X_te[:, :3]))
    with pytest.raises(ParameterError, match="encrypt_features"):
        model.decision_function(X_te)
    with pytest.raises(ParameterError, match=r"X_calibration must have shape \(n, 4\)"):
        from_sklearn(LogisticRegression(max_iter=2000).fit(X_tr, y_tr), X_calibration=X_tr[:, :2])


@pytest.mark.slow
def test_error_report_measures_every_stage(digits_mlp, mlp_run, ckks_error_bound):
    X_tr, X_te, _, _, est = digits_mlp
    model, ctx, _, _, _ = mlp_run
    rep = model.error_report(X_te[:40], context=ctx)
    assert len(rep.layers) == 1 and rep.layers[0]["name"] == "relu" and rep.layers[0]["degree"] == 7
    assert rep.layers[0]["measured_error"] <= rep.layers[0]["max_error"] * 1.01 or rep.layers[0]["outside_interval"] > 0
    assert rep.encrypted_vs_twin <= ckks_error_bound(model, X_te[:40], ctx)
    assert rep.encrypted_vs_source == pytest.approx(
        np.max(np.abs(ctx.decrypt(model.decision_function(encrypt_features(ctx, X_te[:40])))
                      - model.plain_scores(X_te[:40], exact=True))), abs=2 * rep.encrypted_vs_twin)
    assert "relu" in str(rep) and "agreement" in str(rep)


def test_batches_over_several_ciphertexts_keep_padding_slots_zero(ckks_error_bound):
    """4100 samples span two ciphertexts (4096 slots each); the second is mostly padding."""
    rng = np.random.default_rng(21)
    X = rng.normal(size=(4100, 3)) * [1.0, 10.0, 100.0]
    y = (X @ [1.0, 0.1, -0.01] > 0).astype(int)
    est = LogisticRegression().fit(X, y)
    model = from_sklearn(est, X_calibration=X)
    ctx = model.context()
    assert ctx.slot_count == 4096
    enc = encrypt_features(ctx, X)
    assert len(enc.vectors[0].chunks) == 2
    out = model.decision_function(enc)
    scores = ctx.decrypt(out)
    assert np.max(np.abs(scores - est.decision_function(X))) <= ckks_error_bound(model, X, ctx)
    # the bias went to the samples' slots only: summing the whole ciphertexts (padding included) gives
    # the sum of the 4100 scores; the rotations of sum() add key-switching noise of a few 1e-9 per slot
    # (he_ml.CKKS docs), summed over 2 x 4096 slots.
    # The model's context is planned for the scores only: the sum of 4100 of them could be 4100 times
    # larger (tracked bound), which this context cannot represent at the last level -- refused before
    # computing; following the hint's plan gives a context where it fits.
    with pytest.raises(EncodingOverflowError, match=r"he_ml\.plan\(depth=1, max_value=") as exc:
        out.sum()
    hinted = float(re.search(r"he_ml\.plan\(depth=1, max_value=([0-9.e+]+)\)", str(exc.value)).group(1))
    ctx = he_ml.plan(depth=1, max_value=hinted).context()
    assert ctx.slot_count == 4096
    out = model.decision_function(encrypt_features(ctx, X))
    assert np.max(np.abs(ctx.decrypt(out) - est.decision_function(X))) <= ckks_error_bound(model, X, ctx)
    total = float(ctx.decrypt(out.sum())[0])
    n_slots = 2 * ctx.slot_count
    tol = n_slots * ckks_error_bound(model, X, ctx) + n_slots * 12 * 4 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    assert abs(total - est.decision_function(X).sum()) <= tol


def test_oversized_stage_is_refused_before_computing(monkeypatch):
    import he_ml.ml.model as model_module
    X_tr, X_te, y_tr, _ = _split(load_iris)
    model = from_sklearn(_fit(LogisticRegression(max_iter=2000), X_tr, y_tr), X_calibration=X_tr)
    ctx = model.context()
    monkeypatch.setattr(model_module, "MAX_STAGE_BYTES", 1 << 16)
    with pytest.raises(ParameterError, match="latency layout"):
        model.decision_function(encrypt_features(ctx, X_te))


def test_n_jobs_splits_wide_linear_stages_over_processes():
    import resource
    rng = np.random.default_rng(31)
    X = rng.normal(size=(50, 200))
    y = rng.integers(0, 4, size=50)
    est = LogisticRegression(max_iter=3000).fit(X, y)
    model = from_sklearn(est, X_calibration=X)
    ctx = model.context()
    enc = encrypt_features(ctx, X)
    serial = ctx.decrypt(model.decision_function(enc))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    parallel = ctx.decrypt(model.decision_function(enc, n_jobs=2))
    # the same operations on the same ciphertexts, split by output neuron: bit-identical results
    assert np.array_equal(serial, parallel)
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime > before  # a worker computed some rows
    with pytest.raises(ParameterError, match="n_jobs"):
        model.decision_function(enc, n_jobs=0)
