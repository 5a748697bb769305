"""Encrypted linear and logistic regression: inference on every scheme, training on CKKS.

The estimators follow the scikit-learn contract (they are ``BaseEstimator`` subclasses:
``__init__`` only stores parameters, ``get_params``/``set_params``/``clone`` work, ``fit``
returns ``self``, learned attributes end in ``_``) and operate on `EncryptedFeatures` (see
:mod:`he_ml.ml.layout`).

Logit range (why predict_proba needs calibration)
-------------------------------------------------
A polynomial sigmoid is only accurate on its interval. A plain ``C = 1`` scikit-learn
model on the breast-cancer data has logits from -51 to +17; a degree-3 sigmoid fitted
on [-8, 8] then classifies 55 % of the samples correctly instead of 98.8 %. We
therefore *fold a scale into the weights*: with ``R`` = the largest |logit| seen on
plaintext calibration data times a margin (1.25), the server computes
``t = (X @ w + b) / R`` -- free, the division is folded into the plaintext weights --
and evaluates a minimax polynomial for ``sigmoid(R * t)`` on ``t`` in [-1, 1] (an
interval of width 2 needs no extra level and amplifies no noise).

* `from_sklearn(model, X_calibration=X_train)` and `calibrate(X)` size ``R`` from data;
  an explicit ``logit_range=R`` is honoured and checked against calibration data (warning).
* `fit` on encrypted data trains with the same trick (the encrypted state is ``w / R``,
  so the logits it computes are already in [-1, 1] while ``|logit| <= R``); ``R`` is
  ``logit_range`` or 8 for standardized features. With ``eval_set=(X, y)`` (plaintext
  data of the key holder) fit checks every epoch how many logits leave [-R, R], records
  loss and accuracy in ``history_``, and calibrates ``predict_proba``'s interval from ``X``
  at the end.

Inputs outside the interval cannot be detected on ciphertexts: there the polynomial
diverges like ``|t|^degree``. `check_logits` warns on plaintext data that exceeds it.

Training and the client-aided refresh
-------------------------------------
One mini-batch of gradient descent costs ``training_depth`` CKKS levels (logits: 1,
sigmoid: ``ceil(log2(degree + 1))``, gradient: 1, selection mask: 1). SEAL has no
bootstrapping, so when the weights run out of levels the key holder refreshes them
(`ClientAidedRefresh`: decrypt, check, re-encrypt). It sees the intermediate *weights*
(it owns the model) but never the training data in the clear beyond what it encrypted.
`training_context` builds a CKKS context with exactly the depth and the rotation keys
(declared up front, generated once) that `fit` needs.

What lives where (the linear models are split per family):

* :mod:`he_ml.ml.linear` -- the public API and the regression family:
  :class:`~he_ml.ml.linear.EncryptedLinearRegression`; re-exports everything below; its module
  docstring explains the logit range and the client-aided refresh;
* :mod:`he_ml.ml._linear_logistic` -- the classification family:
  :class:`EncryptedLogisticRegression` (sigmoid interval calibration, ``predict_proba``,
  training with the polynomial sigmoid);
* :mod:`he_ml.ml._linear_base` -- what both families share: the constants,
  :class:`ClientAidedRefresh`, and ``_EncryptedLinearModel`` (parameter checks, encrypted
  scoring on every scheme, the training context, block-layout mini-batch gradient descent on
  CKKS and its plaintext twin).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ShapeMismatchError
from ..schemes.base import EncryptedVector
from .layout import EncryptedFeatures
from ._linear_base import (  # noqa: F401  (re-exported: the old import path keeps working)
    DEFAULT_BFV_WEIGHT_BITS,
    LOGIT_MARGIN,
    DEFAULT_TRAINING_LOGIT_RANGE,
    _check_linear_estimator,
    _copy_feature_names,
    ClientAidedRefresh,
    _sigmoid,
    _is_int,
    _is_real,
    _EncryptedLinearModel,
)
from ._linear_logistic import (  # noqa: F401  (re-exported: the old import path keeps working)
    EncryptedLogisticRegression,
)

__all__ = ["EncryptedLinearRegression", "EncryptedLogisticRegression", "ClientAidedRefresh",
           "DEFAULT_BFV_WEIGHT_BITS", "LOGIT_MARGIN", "DEFAULT_TRAINING_LOGIT_RANGE"]


class EncryptedLinearRegression(_EncryptedLinearModel):
    """Linear regression on encrypted features (inference: every scheme; training: CKKS).

    Parameters
    ----------
    fit_intercept : bool, default True
    learning_rate : float, default 0.1
        Step of the mini-batch gradient descent (mean squared error / 2).
    epochs : int, default 10
    batch_size : int, optional
        Documentation of intent only; the batch size of `fit` is the one the encrypted
        "blocks" data was made with (``encrypt_features(..., batch_size=...)``).
    refresh : callable, optional
        Client-aided weight refresh for training (default `ClientAidedRefresh` on a key
        holder's context).
    weight_bits : int, optional
        BFV only: fractional bits of the integer weights; default (and the only accepted value):
        the context's ``fixed_point_bits``, so scores decode with the context's encoding.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_features_in_ : int
    history_ : list of dict
        Per-epoch records of `fit` (when a callback or eval_set asked for them).
    n_refreshes_ : int
        Client-aided refreshes performed by the last `fit`.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); y = X @ [1., 2., 3.] + 0.5
    >>> model = he_ml.ml.EncryptedLinearRegression.from_sklearn(LinearRegression().fit(X, y))
    >>> ctx = he_ml.CKKS("light")
    >>> pred = ctx.decrypt(model.predict(he_ml.ml.encrypt_features(ctx, X)))
    >>> bool(np.allclose(pred, X @ [1., 2., 3.] + 0.5, atol=1e-4))
    True
    """

    def __init__(self, *, fit_intercept: bool = True, learning_rate: float = 0.1, epochs: int = 10,
                 batch_size: int | None = None, refresh: Callable | None = None,
                 weight_bits: int | None = None) -> None:
        self.fit_intercept = fit_intercept
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.refresh = refresh
        self.weight_bits = weight_bits

    def predict(self, enc: EncryptedFeatures) -> EncryptedVector:
        """Encrypted predictions ``X @ coef_ + intercept_`` (same as `decision_function`)."""
        self._check_fitted("predict")
        return self.decision_function(enc)

    @classmethod
    def from_sklearn(cls, model: Any, **params) -> "EncryptedLinearRegression":
        """Wrap a fitted scikit-learn linear regressor (anything with ``coef_`` and ``intercept_``).

        Raises
        ------
        NotFittedError
            If ``model`` has no ``coef_`` (call ``model.fit(X, y)`` first).
        ShapeMismatchError
            For multi-output regressors.
        """
        _check_linear_estimator(model, "EncryptedLinearRegression")
        coef = np.asarray(model.coef_, dtype=float)
        if coef.ndim > 1 and coef.shape[0] != 1:
            raise ShapeMismatchError(
                f"only single-output regressors are supported here; got coef_ shape {coef.shape}. "
                f"he_ml.ml.from_sklearn(model, X_calibration=X) converts multi-output regressors.")
        intercept = float(np.ravel(getattr(model, "intercept_", 0.0))[0])
        return _copy_feature_names(model, cls._from_coef(coef.reshape(-1), intercept, **params))

