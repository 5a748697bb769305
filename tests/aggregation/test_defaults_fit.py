"""Defaults that fit (issue 10 item 6) and error hints that work when followed.

The context carries its fixed-point encoding; GradientAggregator, encrypt_features and the linear
models read it. Every hint that names parameters is followed here and the computation succeeds.
Tolerances: BFV is exact on the quantized integers, so the only error is quantization:
round(x * 2^f) is within 2^-(f+1) of x * 2^f per value.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import he_ml
from he_ml.aggregation import GradientAggregator, aggregation_context
from he_ml.errors import DepthExhaustedError, EncodingOverflowError, ParameterError
from he_ml.ml import EncryptedLogisticRegression, encrypt_features

rng = np.random.default_rng(10)


@pytest.fixture(scope="module")
def bfv_default():
    return he_ml.BFV()


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    yb = (y == 0).astype(int)
    return X, yb, LogisticRegression().fit(X, yb)


def _score_tolerance(X, coef, f):
    """|x w - x~ w~| <= |x| |w - w~| + |w~| |x - x~| plus the rounded intercept (all at f bits)."""
    q = 2.0 ** -(f + 1)
    return np.abs(X).sum(axis=1) * q + np.sum(np.abs(coef) + q) * q + 2.0 ** -(2 * f + 1)


def test_default_bfv_scores_standardized_wine(bfv_default, wine):
    X, yb, clf = wine
    model = EncryptedLogisticRegression.from_sklearn(clf)
    scores = bfv_default.decrypt(model.decision_function(encrypt_features(bfv_default.public_context(), X)))
    plain = clf.decision_function(X)
    tol = _score_tolerance(X, clf.coef_.ravel(), bfv_default.fixed_point_bits)
    assert np.all(np.abs(scores - plain) <= tol)
    safe = np.abs(plain) > tol
    np.testing.assert_array_equal(model.predict_from_scores(scores)[safe], clf.predict(X)[safe])


def test_default_bfv_aggregates_small_gradients(bfv_default):
    clients, size = 100, 500
    updates = rng.normal(0.0, 0.1, (clients, size))
    agg = GradientAggregator(bfv_default.public_context())
    assert agg.precision_bits == bfv_default.fixed_point_bits  # taken from the context
    total = agg.sum(agg.encrypt(u) for u in updates)
    got = GradientAggregator(bfv_default).decrypt(total)
    # each client's values are rounded to the 2^-f grid: error <= clients * 2^-(f+1)
    assert np.max(np.abs(got - updates.sum(axis=0))) <= clients * 2.0 ** -(bfv_default.fixed_point_bits + 1)


def test_planned_precision_reaches_the_aggregator_past_update_4096():
    ctx = aggregation_context("bfv", max_clients=25000, precision_bits=16)
    assert ctx.fixed_point_bits == 16
    server = GradientAggregator(ctx.public_context(), max_clients=25000, max_value=1.0)  # fits: 16 bits
    assert server.precision_bits == 16
    blob = GradientAggregator(ctx.public_context(), max_value=1.0).encrypt(np.array([1.0, -1.0, 0.5]))
    for _ in range(4200):
        server.add(blob)
    got = GradientAggregator(ctx).decrypt(server.result())
    np.testing.assert_array_equal(got, 4200 * np.array([1.0, -1.0, 0.5]))  # exact on the grid


def test_weight_bits_must_match_the_context_and_the_advice_works(wine):
    X, _, clf = wine
    ctx = he_ml.BFV("sum")
    model = EncryptedLogisticRegression.from_sklearn(clf, weight_bits=ctx.fixed_point_bits - 2)
    with pytest.raises(ParameterError, match=r"fixed_point_bits=\d+\) or leave weight_bits=None") as e:
        model.decision_function(encrypt_features(ctx, X[:5]))
    f = int(re.search(r"he_ml\.BFV\(\.\.\., fixed_point_bits=(\d+)\)", str(e.value)).group(1))
    fit = he_ml.BFV("sum", fixed_point_bits=f)
    scores = fit.decrypt(model.decision_function(encrypt_features(fit, X[:5])))
    assert np.all(np.abs(scores - clf.decision_function(X[:5])) <= _score_tolerance(X[:5], clf.coef_.ravel(), f))


# ---------------------------------------------------------------------------- hints, followed
def _call(message: str, pattern: str) -> str:
    m = re.search(pattern, message)
    assert m, message
    return m.group(0)


def test_bfv_declared_headroom_hint_is_followed(bfv_default):
    with pytest.raises(ParameterError) as e:
        GradientAggregator(bfv_default, max_clients=10 ** 6, max_value=1.0)
    call = _call(str(e.value), r"aggregation_context\('bfv'[^)]*\)")
    ctx = eval("he_ml.aggregation." + call)  # noqa: S307 - the hint is our own message
    agg = GradientAggregator(ctx, max_clients=10 ** 6, max_value=1.0)
    total = agg.sum([agg.encrypt(np.array([1.0, -0.25]))] * 3)
    np.testing.assert_allclose(agg.decrypt(total), [3.0, -0.75])


def test_ckks_declared_headroom_hint_is_followed_at_a_million_clients():
    ctx = he_ml.CKKS("sum")
    with pytest.raises(ParameterError) as e:
        GradientAggregator(ctx, max_clients=10 ** 6, max_value=1.0)
    call = _call(str(e.value), r"aggregation_context\('\w+'[^)]*\)")
    # since released CKKS sums are smudged, aggregation_context plans wide-scale 3-prime chains
    # that hold 10^6 clients at 24 bits; whatever scheme the hint names, following it works
    ctx2 = eval("he_ml.aggregation." + call)  # noqa: S307
    agg = GradientAggregator(ctx2, max_clients=10 ** 6, max_value=1.0)
    np.testing.assert_allclose(agg.decrypt(agg.sum([agg.encrypt(np.array([0.5]))] * 4)), [2.0])


def test_bfv_encrypt_overflow_hint_is_followed(bfv_default):
    agg = GradientAggregator(bfv_default)
    with pytest.raises(EncodingOverflowError) as e:
        agg.encrypt(np.array([1e6, 1.0]))
    call = _call(str(e.value), r"aggregation_context\('\w+'[^)]*\)")
    ctx = eval("he_ml.aggregation." + call)  # noqa: S307
    agg2 = GradientAggregator(ctx)
    got = agg2.decrypt(agg2.sum([agg2.encrypt(np.array([1e6, 1.0]))] * 2))
    np.testing.assert_allclose(got, [2e6, 2.0], atol=2 * 2.0 ** -(agg2.precision_bits + 1))


def test_bfv_depth_hint_is_followed_and_names_no_failing_plan(bfv_default):
    x = bfv_default.encrypt(np.array([2, -3]))
    y = x
    for _ in range(bfv_default.max_depth):
        y = y * x
    with pytest.raises(DepthExhaustedError) as e:
        y * x
    call = _call(str(e.value), r"he_ml\.plan\(depth=\d+, scheme='bfv'[^)]*\)\.context\([^)]*\)")
    ctx = eval(call)  # noqa: S307
    assert ctx.fixed_point_bits == bfv_default.fixed_point_bits
    x2 = ctx.encrypt(np.array([2, -3]))
    z = x2
    for _ in range(bfv_default.max_depth + 1):
        z = z * x2  # one product more than the default had: the real noise budget must allow it
    np.testing.assert_array_equal(ctx.decrypt(z), np.array([2, -3]) ** (bfv_default.max_depth + 2))


def test_ckks_depth_hint_is_followed():
    ctx = he_ml.CKKS("light")
    x = np.array([0.5, -1.25, 1.5])
    v = ctx.encrypt(x)
    v4 = (v * v) * (v * v)
    with pytest.raises(DepthExhaustedError) as e:
        v4 * v4
    msg = str(e.value)
    preset = re.search(r"preset '(\w+)' \(depth \d+\)", msg).group(1)
    call = _call(msg, r"he_ml\.plan\(depth=\d+, scheme='ckks'[^)]*\)\.context\(\)")
    for fit in (he_ml.CKKS(preset), eval(call)):  # noqa: S307
        w = fit.encrypt(x)
        w4 = (w * w) * (w * w)
        got = fit.decrypt(w4 * w4)
        # x^8 <= 25.6: relative precision ~ 8 products x unit(2n / 2^scale) of the result
        assert np.allclose(got, x ** 8, rtol=0, atol=64 * 8 * 26 * 2 * fit.poly_modulus_degree / 2.0 ** fit.scale_bits)


def test_bfv_value_overflow_hint_keeps_the_encoding_and_is_followed(wine):
    """The issue's trap: a 20-bit BFV context overflows on wine; the hint must not lead to another."""
    X, _, clf = wine
    small = he_ml.BFV(None, poly_modulus_degree=8192, plain_modulus_bits=20, fixed_point_bits=10)
    model = EncryptedLogisticRegression.from_sklearn(clf)
    with pytest.raises(EncodingOverflowError) as e:
        model.decision_function(encrypt_features(small, X))
    call = _call(str(e.value), r"he_ml\.plan\(depth=\d+, scheme='bfv', max_value=\d+\)\.context\([^)]*\)")
    ctx = eval(call)  # noqa: S307
    assert ctx.fixed_point_bits == 10
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X)))
    assert np.all(np.abs(scores - clf.decision_function(X)) <= _score_tolerance(X, clf.coef_.ravel(), 10))


def test_predict_proba_depth_hint_is_followed(wine):
    X, _, clf = wine
    model = EncryptedLogisticRegression.from_sklearn(clf).calibrate(X)
    shallow = he_ml.CKKS("sum")
    with pytest.raises(DepthExhaustedError) as e:
        model.predict_proba(encrypt_features(shallow, X[:8]))
    call = _call(str(e.value), r"he_ml\.plan\(depth=\d+\)\.context\(\)")
    ctx = eval(call)  # noqa: S307
    proba = ctx.decrypt(model.predict_proba(encrypt_features(ctx, X[:8])))
    expect = model.sigmoid_(clf.decision_function(X[:8]) / model.logit_range_)
    assert proba.shape == (8, 2)  # scikit-learn's layout: column 1 is the positive class
    assert np.max(np.abs(proba[:, 1] - expect)) < 1e-3  # CKKS noise at 20-bit precision, amplified by p
    assert np.max(np.abs(proba[:, 0] - (1 - expect))) < 1e-3


def test_ckks_aggregation_at_full_planned_capacity():
    """Declared bounds travel with the vectors, so the planned capacity is usable to the last client."""
    clients = 1000
    ctx = aggregation_context("ckks", max_clients=clients, max_value=1.0)
    server = GradientAggregator(ctx.public_context(), max_clients=clients, max_value=1.0)
    blob = GradientAggregator(ctx.public_context(), max_value=1.0).encrypt(np.array([1.0, -1.0, 0.75]))
    for _ in range(clients):
        server.add(blob)
    got = GradientAggregator(ctx).decrypt(server.result())
    # the same ciphertext added `clients` times: its fresh error (<= 2n / 2^scale) times clients
    tol = clients * 2 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    assert np.max(np.abs(got - clients * np.array([1.0, -1.0, 0.75]))) <= tol
