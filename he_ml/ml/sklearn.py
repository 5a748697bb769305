"""``from_sklearn``: lower a fitted scikit-learn estimator (or Pipeline) to the model IR.

Supported (anything else raises `UnsupportedOperationError` naming the estimator and this list):

============================================  ===============================================
Estimator                                     Lowered to
============================================  ===============================================
LogisticRegression (binary, multinomial)       Dense; binary: 1 score, else 1 logit per class
OneVsRestClassifier(LogisticRegression, ...)  Dense, one score per class (one-vs-rest)
LinearSVC, SGDClassifier, RidgeClassifier     Dense (decision scores)
LinearRegression, Ridge, Lasso, ElasticNet    Dense (single or multi-output)
MLPClassifier, MLPRegressor                   Dense + activation per hidden layer: identity
                                              exact; relu/tanh/logistic -> minimax polynomial
                                              on the calibrated interval; output layer's
                                              logistic/softmax left to the client
Pipeline(scalers..., one of the above)        StandardScaler, MinMaxScaler, MaxAbsScaler,
                                              RobustScaler folded into the first layer, so
                                              the client encrypts RAW features
============================================  ===============================================
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NotFittedError, ParameterError, UnsupportedOperationError
from .ir import Activation, Dense, ModelIR
from .model import EncryptedModel, calibrate_layers

__all__ = ["from_sklearn", "SUPPORTED_ESTIMATORS", "SUPPORTED_SCALERS"]

SUPPORTED_ESTIMATORS = ("LogisticRegression", "LinearSVC", "SGDClassifier", "RidgeClassifier",
                        "LinearRegression", "Ridge", "Lasso", "ElasticNet", "MLPClassifier", "MLPRegressor",
                        "OneVsRestClassifier")
SUPPORTED_SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
_CLASSIFIERS = ("LogisticRegression", "LinearSVC", "SGDClassifier", "RidgeClassifier")
_REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet")
_MLP_ACTIVATION = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid"}


def _supported_text() -> str:
    return (f"supported estimators: {', '.join(SUPPORTED_ESTIMATORS)}; and Pipelines of "
            f"{', '.join(SUPPORTED_SCALERS)} followed by one of them")


def _unsupported(what: str, why: str = "") -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"from_sklearn cannot convert {what}{': ' + why if why else ''}. {_supported_text()}.")


def _check_fitted(est: Any, name: str) -> None:
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted
    try:
        check_is_fitted(est)
    except SkNotFitted:
        raise NotFittedError(f"{name} is not fitted; call .fit(X, y) on it before he_ml.ml.from_sklearn.") from None


def _scaler_affine(step: Any, name: str, d: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(s, o) with transform(x) = x * s + o for the supported affine scalers."""
    _check_fitted(step, name)
    if name == "StandardScaler":
        mean = step.mean_ if step.with_mean and getattr(step, "mean_", None) is not None else 0.0
        scale = step.scale_ if step.with_std and getattr(step, "scale_", None) is not None else 1.0
        n = step.n_features_in_
        s = np.broadcast_to(1.0 / np.asarray(scale, dtype=float), (n,)).astype(float)
        o = -np.broadcast_to(np.asarray(mean, dtype=float), (n,)) * s
        return s, o
    if name == "MinMaxScaler":
        if getattr(step, "clip", False):
            raise _unsupported("MinMaxScaler(clip=True)", "clipping is not affine; refit with clip=False")
        return np.asarray(step.scale_, dtype=float), np.asarray(step.min_, dtype=float)
    if name == "MaxAbsScaler":
        return 1.0 / np.asarray(step.scale_, dtype=float), np.zeros(step.n_features_in_)
    if name == "RobustScaler":
        n = step.n_features_in_
        center = step.center_ if step.with_centering else np.zeros(n)
        scale = step.scale_ if step.with_scaling else np.ones(n)
        s = 1.0 / np.asarray(scale, dtype=float)
        return s, -np.asarray(center, dtype=float) * s
    raise AssertionError(name)


def _linear_layers(est: Any, name: str) -> tuple[list[Any], str, np.ndarray | None, str | None]:
    coef = np.asarray(est.coef_, dtype=float)
    intercept = np.asarray(getattr(est, "intercept_", 0.0), dtype=float)
    if name in _CLASSIFIERS:
        classes = np.asarray(est.classes_)
        W = coef.reshape(1, -1) if coef.ndim == 1 else coef
        b = np.broadcast_to(intercept.reshape(-1), (W.shape[0],)).astype(float)
        if len(classes) == 2:
            task = "binary"
            if W.shape[0] != 1:  # defensive: some estimators store both rows
                W, b = (W[1:] - W[:1]), (b[1:] - b[:1])
        else:
            task = "multiclass"
        proba = None
        if name == "LogisticRegression":
            proba = "sigmoid" if task == "binary" else ("ovr" if _is_ovr(est) else "softmax")
        elif name == "SGDClassifier" and est.loss in ("log_loss", "log"):
            proba = "sigmoid" if task == "binary" else "ovr"
        return [Dense(W, b)], task, classes, proba
    W = coef.reshape(1, -1) if coef.ndim == 1 else coef
    b = np.broadcast_to(intercept.reshape(-1), (W.shape[0],)).astype(float)
    return [Dense(W, b)], "regression", None, None


def _is_ovr(est: Any) -> bool:
    mc = getattr(est, "multi_class", "auto")
    if mc == "ovr":
        return True
    if mc in ("auto", "deprecated", None):
        return getattr(est, "solver", "lbfgs") == "liblinear"
    return False


def _mlp_layers(est: Any, name: str) -> tuple[list[Any], str, np.ndarray | None, str | None]:
    act = est.activation
    if act not in ("identity", "relu", "tanh", "logistic"):
        raise _unsupported(f"{name}(activation={act!r})")
    layers: list[Any] = []
    n = len(est.coefs_)
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        layers.append(Dense(np.asarray(W, dtype=float).T, np.asarray(b, dtype=float)))
        if i < n - 1:
            layers.append(Activation.identity() if act == "identity" else ("approximate", _MLP_ACTIVATION[act]))
    if name == "MLPRegressor":
        return layers, "regression", None, None
    out = est.out_activation_
    classes = np.asarray(est.classes_)
    if out == "logistic" and len(classes) == 2 and getattr(est, "_label_binarizer", None) is not None \
            and est._label_binarizer.y_type_ == "binary":
        return layers, "binary", classes, "sigmoid"
    if out == "softmax":
        return layers, "multiclass", classes, "softmax"
    raise _unsupported(f"{name} with output activation {out!r} (multi-label targets)")


def _ovr_layers(est: Any) -> tuple[list[Any], str, np.ndarray | None, str | None]:
    """OneVsRestClassifier over binary linear classifiers: one score row per class."""
    inner = [type(e).__name__ for e in est.estimators_]
    bad = sorted({n for n in inner if n not in _CLASSIFIERS})
    if bad:
        raise _unsupported(f"OneVsRestClassifier({bad[0]})", f"the one-vs-rest members must be one of {_CLASSIFIERS}")
    classes = np.asarray(est.classes_)
    rows, bias = [], []
    for e in est.estimators_:
        W = np.asarray(e.coef_, dtype=float).reshape(1, -1)
        rows.append(W[0])
        bias.append(float(np.ravel(e.intercept_)[0]))
    if len(classes) == 2:  # sklearn keeps one estimator for two classes
        return [Dense(np.array(rows[:1]), np.array(bias[:1]))], "binary", classes, \
            ("sigmoid" if inner[0] == "LogisticRegression" else None)
    proba = "ovr" if all(n == "LogisticRegression" for n in inner) else None
    return [Dense(np.array(rows), np.array(bias))], "multiclass", classes, proba


def from_sklearn(est: Any, X_calibration: Any = None, *, degree: int | dict | None = None) -> EncryptedModel:
    """Lower a fitted scikit-learn estimator or Pipeline to an :class:`EncryptedModel`.

    Parameters
    ----------
    est : estimator or Pipeline
        See the module table. Pipelines may start with any number of affine scalers; they are
        folded into the first layer (``W' = W diag(s)``, ``b' = W o + b``), so clients encrypt
        RAW features.
    X_calibration : array (n, n_features), optional
        Plaintext RAW samples like the training data: sets the polynomial intervals of MLP
        activations (required for relu/tanh/logistic) and the value ranges `EncryptedModel.context`
        plans for (required by ``context()``).
    degree : int or dict, optional
        Polynomial degree of approximated activations (default 7: depth 3), or per name,
        e.g. ``{"relu": 15}``.

    Returns
    -------
    EncryptedModel

    Raises
    ------
    UnsupportedOperationError
        An estimator, step or option that cannot run encrypted (the message lists what can).
    NotFittedError
        The estimator (or a pipeline step) is not fitted.
    ParameterError
        MLP with non-polynomial activations and no ``X_calibration``.
    """
    steps: list[tuple[str, Any]]
    if type(est).__name__ == "Pipeline":
        steps = [(type(s).__name__, s) for _, s in est.steps if s is not None and s != "passthrough"]
        if not steps:
            raise _unsupported("an empty Pipeline")
    else:
        steps = [(type(est).__name__, est)]
    *pre, (name, final) = steps
    for pname, _ in pre:
        if pname not in SUPPORTED_SCALERS:
            raise _unsupported(f"the Pipeline step {pname}",
                               "only affine scalers may precede the model (they fold into its first layer)")
    if name not in SUPPORTED_ESTIMATORS:
        raise _unsupported(name if name not in SUPPORTED_SCALERS else f"a Pipeline ending in {name}")
    _check_fitted(final, name)
    if name.startswith("MLP"):
        layers, task, classes, proba = _mlp_layers(final, name)
    elif name == "OneVsRestClassifier":
        layers, task, classes, proba = _ovr_layers(final)
    else:
        layers, task, classes, proba = _linear_layers(final, name)
    d = layers[0].in_features
    # fold the scalers, last first: x -> x*s + o, then W x' + b = (W * s) x + (W o + b)
    for pname, step in reversed(pre):
        s, o = _scaler_affine(step, pname, d)
        if s.shape[0] != d:
            raise _unsupported(f"a Pipeline whose {pname} has {s.shape[0]} features but the model {d}")
        first = layers[0]
        layers[0] = Dense(first.weight * s[None, :], first.weight @ o + first.bias)
    X = None
    if X_calibration is not None:
        X = np.asarray(X_calibration, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != d:
            raise ParameterError(f"X_calibration must have shape (n, {d}) (raw features); got {X.shape}.")
    layers = calibrate_layers(layers, (d,), X, degree)
    source = "sklearn " + (f"Pipeline({', '.join(n for n, _ in steps)})" if len(steps) > 1 else name)
    ir = ModelIR(layers=tuple(layers), input_shape=(d,), task=task, classes_=classes, source=source,
                 proba=proba)
    model = EncryptedModel(ir, X)
    names = getattr(est, "feature_names_in_", None)
    if names is not None:  # fitted on a DataFrame: refuse encrypted frames with other columns
        model.feature_names_in_ = np.asarray(names, dtype=object)
    return model
