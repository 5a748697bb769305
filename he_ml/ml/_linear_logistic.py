"""Encrypted binary logistic regression (the classification family of :mod:`he_ml.ml.linear`).

One piece of :mod:`he_ml.ml.linear`; the map of what lives where is in its module docstring.

Import from :mod:`he_ml.ml.linear` (or :mod:`he_ml.ml`).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import (
    DepthExhaustedError,
    NotFittedError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ..schemes.base import EncryptedVector, check_values, stack_columns
from .layout import EncryptedFeatures
from ._linear_base import (
    DEFAULT_TRAINING_LOGIT_RANGE,
    LOGIT_MARGIN,
    _EncryptedLinearModel,
    _check_linear_estimator,
    _copy_feature_names,
    _is_int,
    _is_real,
    _sigmoid,
)


class EncryptedLogisticRegression(_EncryptedLinearModel):
    """Binary logistic regression on encrypted features.

    ``decision_function`` works on every scheme; ``predict_proba`` evaluates a minimax
    polynomial sigmoid on the server (CKKS); ``fit`` trains on CKKS with mini-batch
    gradient descent and client-aided refresh (see the module notes on the logit range).

    Parameters
    ----------
    sigmoid_degree : int, default 3
        Degree of the polynomial sigmoid (training and ``predict_proba``); it costs
        ``ceil(log2(degree + 1))`` levels.
    logit_range : float, optional
        Half-width R of the logit interval [-R, R]. None: sized from calibration data
        (`from_sklearn(..., X_calibration=)`, `calibrate`, ``fit(eval_set=)``), and 8 for
        the training sigmoid.
    fit_intercept, learning_rate, epochs, batch_size, refresh, weight_bits
        As in `EncryptedLinearRegression`.

    Attributes
    ----------
    coef_, intercept_, n_features_in_, classes_, history_, n_refreshes_
    logit_range_ : float
        Interval half-width used by `predict_proba`.
    sigmoid_ : PolynomialApproximation
        The polynomial for ``sigmoid(logit_range_ * t)`` on t in [-1, 1].

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(200, 4)); y = (X[:, 0] > 0).astype(int)
    >>> clf = LogisticRegression().fit(X, y)
    >>> model = he_ml.ml.EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X)
    >>> ctx = he_ml.CKKS("light")                      # depth 2 >= predict_proba_depth - 1
    >>> scores = ctx.decrypt(model.decision_function(he_ml.ml.encrypt_features(ctx, X)))
    >>> bool(np.all(model.predict_from_scores(scores) == clf.predict(X)))
    True
    """

    def __init__(self, *, sigmoid_degree: int = 3, logit_range: float | None = None,
                 fit_intercept: bool = True, learning_rate: float = 0.1, epochs: int = 10,
                 batch_size: int | None = None, refresh: Callable | None = None,
                 weight_bits: int | None = None) -> None:
        self.sigmoid_degree = sigmoid_degree
        self.logit_range = logit_range
        self.fit_intercept = fit_intercept
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.refresh = refresh
        self.weight_bits = weight_bits

    def _check_params(self) -> None:
        super()._check_params()
        if not (_is_int(self.sigmoid_degree) and 1 <= self.sigmoid_degree <= 15):
            raise self._param_error("sigmoid_degree", "an int in the range [1, 15]")
        if self.logit_range is not None and not (_is_real(self.logit_range) and self.logit_range > 0):
            raise self._param_error("logit_range", "None or a float in the range (0, inf)")

    # ------------------------------------------------------------------ sigmoid handling
    def _sigmoid_poly(self, R: float):
        """Minimax polynomial for ``sigmoid(R t)`` on t in [-1, 1] (cached per (R, degree))."""
        from .polynomial import approximate

        key = (float(R), int(self.sigmoid_degree))
        cache = self.__dict__.setdefault("_poly_cache", {})
        if key not in cache:
            Rf = float(R)
            cache[key] = approximate(lambda t: _sigmoid(Rf * t), degree=self.sigmoid_degree,
                                     interval=(-1.0, 1.0), method="minimax")
        return cache[key]

    def _set_range(self, R: float) -> None:
        if not (math.isfinite(R) and R > 0):
            raise ParameterError(f"logit_range must be a positive finite float; got {R!r}.")
        self.logit_range_ = float(R)
        self.sigmoid_ = self._sigmoid_poly(R)

    def calibrate(self, X: Any, *, margin: float = LOGIT_MARGIN) -> "EncryptedLogisticRegression":
        """Pick the sigmoid interval of `predict_proba` from plaintext calibration data.

        Sets ``logit_range_ = margin * max |X @ coef_ + intercept_|`` (at least 1). With an
        explicit ``logit_range`` that value is kept and a ``RuntimeWarning`` says how many
        calibration logits fall outside it.

        Returns
        -------
        self
        """
        self._check_fitted("calibrate")
        self._check_params()
        X = check_values(X, scheme="plaintext", what="calibration X").astype(float)
        if X.ndim != 2 or X.shape[1] != self.coef_.size:
            raise ShapeMismatchError(
                f"calibration X must have shape (n, {self.coef_.size}); got {X.shape}.")
        if not (_is_real(margin) and margin >= 1):
            raise ParameterError(f"margin must be a float >= 1; got {margin!r}.")
        z = X @ self.coef_ + self.intercept_
        zmax = float(np.max(np.abs(z)))
        if self.logit_range is not None:
            if zmax > self.logit_range:
                warnings.warn(
                    f"{np.mean(np.abs(z) > self.logit_range):.1%} of calibration logits fall outside "
                    f"[-{self.logit_range:g}, {self.logit_range:g}] (max |logit| = {zmax:.3g}); the "
                    f"polynomial sigmoid is wrong there. Leave logit_range=None to size it from the data.",
                    RuntimeWarning, stacklevel=2)
            self._set_range(float(self.logit_range))
        else:
            self._set_range(max(zmax * float(margin), 1.0))
        return self

    def check_logits(self, X: Any) -> float:
        """Fraction of plaintext samples whose logit falls outside ±``logit_range_`` (warns if > 0)."""
        self._check_fitted("check_logits")
        self._check_calibrated("check_logits")
        X = check_values(X, scheme="plaintext", what="X").astype(float)
        if X.ndim != 2 or X.shape[1] != self.coef_.size:
            raise ShapeMismatchError(f"X must have shape (n, {self.coef_.size}); got {X.shape}.")
        z = X @ self.coef_ + self.intercept_
        frac = float(np.mean(np.abs(z) > self.logit_range_))
        if frac > 0:
            warnings.warn(f"{frac:.1%} of logits exceed the sigmoid interval ±{self.logit_range_:.3g} "
                          f"(max |logit| {np.max(np.abs(z)):.3g}); predict_proba is wrong for them. "
                          f"Call calibrate(X) on representative data.", RuntimeWarning, stacklevel=2)
        return frac

    def _check_calibrated(self, op: str) -> None:
        if not hasattr(self, "logit_range_"):
            if self.logit_range is not None:
                self._check_params()
                self._set_range(float(self.logit_range))
                return
            raise NotFittedError(
                f"{op} needs the logit interval of the polynomial sigmoid: call "
                f"calibrate(X_calibration) with plaintext data like the training set, pass "
                f"logit_range=..., build the model with from_sklearn(model, X_calibration=X), or "
                f"fit(..., eval_set=(X, y)).")

    @property
    def predict_proba_depth(self) -> int:
        """CKKS levels `predict_proba` consumes: 1 (scores) + the polynomial's depth."""
        self._check_calibrated("predict_proba_depth")
        return 1 + self.sigmoid_.depth

    def predict_proba(self, enc: EncryptedFeatures) -> EncryptedVector:
        """Encrypted P(y = 1 | x) per sample via the polynomial sigmoid (CKKS only).

        Computes ``t = (X @ coef_ + intercept_) / logit_range_`` (the division folded into
        the weights) and ``sigmoid_(t)``; accurate to ``sigmoid_.max_error`` plus CKKS noise
        while |logit| <= ``logit_range_``.

        Returns
        -------
        EncryptedVector of shape (n_samples, 2)
            Like scikit-learn: column 1 is P(``classes_[1]``), column 0 is ``1 - column 1``
            (one subtraction from a plaintext constant, no level).

        Raises
        ------
        NotFittedError
            Before fit/from_sklearn, or without a logit interval (see `calibrate`).
        UnsupportedOperationError
            On BFV/Paillier: use decision_function and apply the sigmoid after decrypting.
        DepthExhaustedError
            If the context lacks the `predict_proba_depth` levels.
        """
        self._check_fitted("predict_proba")
        enc = self._check_features(enc, "predict_proba")
        if enc.context.name != "ckks":
            raise UnsupportedOperationError(
                f"predict_proba evaluates a polynomial sigmoid on ciphertexts, which needs CKKS; on "
                f"{enc.context.name} call decision_function(enc), decrypt, and apply "
                f"scipy.special.expit on the client.")
        self._check_calibrated("predict_proba")
        levels = enc.vectors[0].level
        if levels is not None and levels < self.predict_proba_depth:
            raise DepthExhaustedError(
                f"predict_proba needs {self.predict_proba_depth} multiplicative levels (scores 1 + "
                f"degree-{self.sigmoid_degree} sigmoid {self.sigmoid_.depth}); the encrypted features "
                f"have {levels}. Encrypt with he_ml.plan(depth={self.predict_proba_depth}).context() "
                f"(or preset 'inference'), or lower sigmoid_degree.")
        t = self._score(enc, scale=1.0 / self.logit_range_)
        p = self.sigmoid_.evaluate(t)
        return stack_columns([1.0 - p, p])

    def predict(self, enc: EncryptedFeatures) -> np.ndarray:
        """Class labels; decrypts, so it runs where the secret key is (the client).

        Raises
        ------
        SecretKeyMissingError
            On a public context: call decision_function on the server and threshold the
            decrypted scores on the client with `predict_from_scores`.
        """
        self._check_fitted("predict")
        enc = self._check_features(enc, "predict")
        if not enc.context.has_secret_key:
            raise SecretKeyMissingError(
                "predict decrypts the scores, which needs the secret key. On the server call "
                "decision_function(enc) and send the result to the key holder, who calls "
                "model.predict_from_scores(ctx.decrypt(scores)).")
        scores = self.decision_function(enc)
        return self.predict_from_scores(enc.context.decrypt(scores))

    def predict_from_scores(self, scores: Any) -> np.ndarray:
        """Class labels from decrypted decision scores (threshold 0, like scikit-learn)."""
        classes = getattr(self, "classes_", np.array([0, 1]))
        return classes[(np.asarray(scores) > 0).astype(int)]

    # ------------------------------------------------------------------ training
    def _link_depth(self) -> int:
        return self._sigmoid_poly(self._train_range()).depth

    def _train_range(self) -> float:
        """Logit half-width of the training sigmoid: ``logit_range`` or 8 (standardized features)."""
        return float(self.logit_range) if self.logit_range is not None else DEFAULT_TRAINING_LOGIT_RANGE

    def _link(self, R: float) -> Callable[[Any], Any]:
        poly = self._sigmoid_poly(R)

        def link(t: Any) -> Any:
            if not isinstance(t, EncryptedVector):
                return poly(t)
            if t.bound is not None and t.context.name == "ckks":
                # Training assumes the logits stay within +-R (t in [-1, 1]): the polynomial is only
                # a sigmoid there (module notes), and calibrate()/check_logits and the refresh's
                # divergence check guard it. The tracked bound of t (a sum over blocks of x * w)
                # cannot see that, so the assumption is stated here; the sigmoid's bound on
                # [-1, 1] then follows rigorously (PolynomialApproximation._declare_output_bound).
                t = t.with_bound(1.0)
            return poly.evaluate(t)

        return link

    def _exact_link(self) -> Callable:
        return _sigmoid

    def _evaluate(self, weights: np.ndarray, X: np.ndarray, y: np.ndarray, R: float) -> dict[str, float]:
        z = X @ weights[:-1] + weights[-1]
        p = np.clip(_sigmoid(z), 1e-12, 1 - 1e-12)
        outside = float(np.mean(np.abs(z) > R))
        if outside > 0.05:
            warnings.warn(
                f"{outside:.0%} of the eval_set logits left the training sigmoid interval ±{R:g} "
                f"(max |logit| {np.max(np.abs(z)):.3g}); the polynomial gradient is wrong there and "
                f"training may diverge. Pass a larger logit_range or standardize the features.",
                RuntimeWarning, stacklevel=3)
        return {"loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
                "accuracy": float(np.mean((z > 0) == (y > 0.5))), "outside_interval": outside}

    def fit(self, enc_X: EncryptedFeatures, enc_y: EncryptedFeatures, **kwargs) -> "EncryptedLogisticRegression":
        """Train on encrypted data (labels 0/1); parameters as in `EncryptedLinearRegression.fit`.

        The gradient uses the degree-``sigmoid_degree`` minimax polynomial of ``sigmoid(R t)``
        on t in [-1, 1] with ``R = logit_range`` (default 8: standardize the features). After
        training, `predict_proba`'s interval comes from ``eval_set``'s X when given (as in
        `calibrate`), else it is ``R``.
        """
        super().fit(enc_X, enc_y, **kwargs)
        self.classes_ = np.array([0, 1])
        return self

    def _after_fit(self, X_eval: np.ndarray | None) -> None:
        if X_eval is not None and self.logit_range is None:
            self.calibrate(X_eval)
        else:
            self._set_range(self._train_range())

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_sklearn(cls, model: Any, X_calibration: Any = None, **params) -> "EncryptedLogisticRegression":
        """Wrap a fitted scikit-learn binary classifier with ``coef_`` and ``intercept_``.

        Parameters
        ----------
        model : sklearn.linear_model.LogisticRegression (or any fitted binary linear classifier)
        X_calibration : array (n, n_features), optional
            Plaintext data (e.g. the training set) to size the sigmoid interval of
            `predict_proba` (see `calibrate`); not needed for `decision_function`.
        **params
            Constructor parameters (``sigmoid_degree``, ``logit_range``, ``weight_bits``, ...).

        Raises
        ------
        NotFittedError
            If ``model`` is not fitted.
        ShapeMismatchError
            For multi-class models.
        """
        _check_linear_estimator(model, "EncryptedLogisticRegression")
        coef = np.asarray(model.coef_, dtype=float)
        if coef.ndim == 2 and coef.shape[0] != 1:
            raise ShapeMismatchError(
                f"EncryptedLogisticRegression is binary; got coef_ shape {coef.shape} "
                f"({coef.shape[0]} classes). Use he_ml.ml.from_sklearn(model, X_calibration=X) for "
                f"multiclass models (it decrypts to (n, n_classes) scores).")
        intercept = float(np.ravel(getattr(model, "intercept_", 0.0))[0])
        est = _copy_feature_names(model, cls._from_coef(coef.reshape(-1), intercept, **params))
        if hasattr(model, "classes_"):
            est.classes_ = np.asarray(model.classes_)
        if X_calibration is not None:
            est.calibrate(X_calibration)
        elif est.logit_range is not None:
            est._set_range(float(est.logit_range))
        return est
