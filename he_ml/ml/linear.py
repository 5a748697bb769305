"""Encrypted linear and logistic regression: inference on every scheme, training on CKKS.

The estimators follow the scikit-learn contract (``__init__`` stores parameters,
``fit`` returns ``self``, learned attributes end in ``_``) and operate on
`EncryptedFeatures` (see :mod:`he_ml.ml.layout`).

Logit range (why predict_proba needs calibration)
-------------------------------------------------
A polynomial sigmoid is only accurate on its interval. A plain ``C = 1``
scikit-learn model on the breast-cancer data has logits from -51 to +17; a
degree-3 sigmoid fitted on [-8, 8] then classifies 55 % of the samples
correctly instead of 98.8 %. We therefore *fold a scale into the weights*:
with ``R`` = the largest |logit| seen on calibration (training) data times a
margin, the server computes ``t = (X @ w + b) / R`` — free, the division is folded
into the plaintext weights — and evaluates a minimax polynomial for
``sigmoid(R * t)`` on ``t`` in [-1, 1]. `fit` sets ``R`` from the training data;
`from_sklearn` takes calibration data (or an explicit ``logit_range``).
Inputs outside the interval are not detectable on ciphertexts; `calibrate` warns
on plaintext calibration data that exceeds it.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import (
    NotFittedError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ..schemes.base import EncryptedVector, SchemeContext, check_values
from .layout import EncryptedFeatures, block_batch_size

__all__ = ["EncryptedLinearRegression", "EncryptedLogisticRegression", "ClientAidedRefresh",
           "DEFAULT_BFV_WEIGHT_BITS"]

#: Fractional bits of BFV's integer weights: w -> round(w * 2**8).
DEFAULT_BFV_WEIGHT_BITS = 8
#: Margin applied to the largest calibration logit when choosing the sigmoid interval.
LOGIT_MARGIN = 1.25
#: Logit interval half-width for encrypted training when none is given (standardized features).
DEFAULT_TRAINING_LOGIT_RANGE = 8.0


class ClientAidedRefresh:
    """The documented client-aided refresh: the key holder decrypts and re-encrypts weights.

    CKKS ciphertexts lose one level per multiplication; encrypted training needs
    ``depth_per_batch`` levels per mini-batch, so after a batch the weights must be
    brought back to full level. Bootstrapping is not available in SEAL, so the key
    holder does it: it receives the encrypted weights, decrypts, checks them and
    returns a fresh encryption. The key holder thereby sees the intermediate
    weights (it owns the model anyway) but never the training data.

    The refresh also guards against silent divergence: non-finite weights or weights
    whose norm exceeds ``max_weight_norm`` raise `ParameterError` with advice.

    Parameters
    ----------
    context : SchemeContext
        The key holder's CKKS context (with secret key).
    max_weight_norm : float, default 1e3
    """

    def __init__(self, context: SchemeContext, max_weight_norm: float = 1e3) -> None:
        self.context = context
        self.max_weight_norm = max_weight_norm
        self.calls = 0
        self.history: list[np.ndarray] = []

    def __call__(self, weights: EncryptedVector) -> EncryptedVector:
        plain = self.context.decrypt(weights)
        if not np.all(np.isfinite(plain)) or np.linalg.norm(plain) > self.max_weight_norm:
            raise ParameterError(
                f"encrypted training diverged at refresh {self.calls + 1}: weight norm "
                f"{np.linalg.norm(plain):.3g} (limit {self.max_weight_norm}). Lower learning_rate, "
                f"standardize the features, or use a context with a larger scale (he_ml.CKKS(preset='deep')).")
        self.calls += 1
        self.history.append(plain.copy())
        return self.context.encrypt(plain)

    def reveal(self, weights: EncryptedVector) -> np.ndarray:
        """Decrypt the final weights for the model owner (the key holder)."""
        plain = self.context.decrypt(weights)
        self.history.append(plain.copy())
        return plain


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class _EncryptedLinearModel:
    """Shared machinery: weights, encrypted scoring, block-layout gradient descent."""

    _estimator_name = "EncryptedLinearModel"

    def __init__(self, *, fit_intercept: bool = True, learning_rate: float = 0.1, epochs: int = 10,
                 batch_size: int | None = None, refresh: Callable | None = None,
                 weight_bits: int = DEFAULT_BFV_WEIGHT_BITS, verbose: bool = False) -> None:
        self.fit_intercept = fit_intercept
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.refresh = refresh
        self.weight_bits = weight_bits
        self.verbose = verbose

    # ------------------------------------------------------------------ validation helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError(
                f"This {self._estimator_name} instance is not fitted yet. Call fit(enc_X, enc_y) or "
                f"build it with {self._estimator_name}.from_sklearn(model) before scoring.")

    def _check_features(self, enc: Any, op: str) -> EncryptedFeatures:
        if not isinstance(enc, EncryptedFeatures):
            raise ParameterError(
                f"{op} expects encrypted features from he_ml.ml.encrypt_features(ctx, X); "
                f"got {type(enc).__name__}.")
        if enc.is_labels:
            raise ShapeMismatchError(f"{op} needs a feature matrix; got an encrypted label vector.")
        if enc.layout != "columns":
            raise ParameterError(
                f"{op} needs the 'columns' layout (encrypt_features(ctx, X)); got {enc.layout!r} "
                f"(that layout is for fit).")
        if enc.n_features != self.coef_.size:
            raise ShapeMismatchError(
                f"X has {enc.n_features} features, but {self._estimator_name} is expecting "
                f"{self.coef_.size} features as input.")
        return enc

    # ------------------------------------------------------------------ scoring
    def _score(self, enc: EncryptedFeatures, scale: float = 1.0) -> EncryptedVector:
        """Encrypted ``(X @ coef_ + intercept_) * scale``; depth 1 (CKKS)."""
        w = self.coef_ * scale
        b = float(self.intercept_) * scale
        ctx = enc.context
        if ctx.name == "bfv":
            wq = np.rint(w * (1 << self.weight_bits)).astype(np.int64)
            frac = enc.fixed_point_bits + self.weight_bits
            bq = int(round(b * (1 << frac)))
            acc = None
            for j, col in enumerate(enc.vectors):
                if wq[j] == 0:
                    continue
                term = col * int(wq[j])
                acc = term if acc is None else acc + term
            if acc is None:
                acc = enc.vectors[0] * 0
            acc = acc + bq
            acc.meta["fixed_point_bits"] = frac
            return acc
        acc = None
        for j, col in enumerate(enc.vectors):
            term = col * float(w[j])
            acc = term if acc is None else acc + term
        return acc + b

    def decision_function(self, enc: EncryptedFeatures) -> EncryptedVector:
        """Encrypted linear scores ``X @ coef_ + intercept_``, one per sample (every scheme).

        Decrypt on the client with ``ctx.decrypt(scores)``.
        """
        self._check_fitted()
        return self._score(self._check_features(enc, "decision_function"))

    # ------------------------------------------------------------------ training
    def _gradient_transform(self, z: EncryptedVector) -> EncryptedVector:
        """Link function applied to logits during training (identity for least squares)."""
        return z

    def _training_depth(self) -> int:
        # X*W (1) + link depth + E*X (1) + mask-and-scale (1)
        return 3 + self._link_depth()

    def _link_depth(self) -> int:
        return 0

    def fit(self, enc_X: EncryptedFeatures, enc_y: EncryptedFeatures, *, epochs: int | None = None,
            refresh: Callable | None = None, initial_weights: np.ndarray | None = None,
            callback: Callable | None = None) -> "_EncryptedLinearModel":
        """Mini-batch gradient descent on encrypted data (CKKS, "blocks" layout).

        Parameters
        ----------
        enc_X : EncryptedFeatures, layout "blocks"
        enc_y : EncryptedFeatures, layout "blocks", labels (same batch size)
        epochs : int, optional
            Overrides the constructor's ``epochs``.
        refresh : callable(EncryptedVector) -> EncryptedVector, optional
            Client-aided refresh run whenever the weights lack the levels for another batch;
            default: `ClientAidedRefresh` when the data's context holds the secret key.
        initial_weights : array of shape (n_features + 1,), optional
            Starting (coef, intercept); zeros by default.
        callback : callable(epoch, weights_plain) -> None, optional
            Called after each epoch with the weights seen at the last refresh (key-holder side).

        Returns
        -------
        self

        Raises
        ------
        UnsupportedOperationError
            Training on BFV or Paillier (no encrypted products of real numbers / no rotations).
        DepthExhaustedError
            If the context has fewer levels than one mini-batch needs.
        """
        self._validate_training_params(epochs)
        ctx = enc_X.context
        if ctx.name != "ckks":
            raise UnsupportedOperationError(
                f"encrypted training needs CKKS; {ctx.name} supports inference only (linear scoring). "
                f"Train in plaintext or on CKKS, then use from_sklearn(...) and decision_function on "
                f"{ctx.name}.")
        for name, e in (("enc_X", enc_X), ("enc_y", enc_y)):
            if not isinstance(e, EncryptedFeatures) or e.layout != "blocks":
                raise ParameterError(
                    f"fit needs {name} encrypted with encrypt_features(ctx, ..., layout='blocks'); got "
                    f"{getattr(e, 'layout', type(e).__name__)!r}.")
        if enc_X.is_labels or not enc_y.is_labels:
            raise ShapeMismatchError("fit(enc_X, enc_y): enc_X must be a 2-D feature matrix and enc_y 1-D labels.")
        if enc_X.n_samples != enc_y.n_samples or enc_X.batch_size != enc_y.batch_size:
            raise ShapeMismatchError(
                f"enc_X has {enc_X.n_samples} samples in batches of {enc_X.batch_size}, enc_y has "
                f"{enc_y.n_samples} in batches of {enc_y.batch_size}; encrypt both with the same "
                f"batch_size.")
        ctx._check_same_key(enc_y.context, "fit")
        d, B = enc_X.n_features, enc_X.batch_size
        D = enc_X.n_blocks
        block_batch_size(ctx.slot_count, enc_X.n_samples, d, B)  # re-validate capacity
        need = self._training_depth()
        if ctx.max_depth is not None and ctx.max_depth < need:
            from ..errors import DepthExhaustedError

            raise DepthExhaustedError(
                f"one encrypted mini-batch of {self._estimator_name} needs {need} multiplicative levels; "
                f"this CKKS context has {ctx.max_depth}. Use he_ml.CKKS(preset='deep') or "
                f"he_ml.plan(depth={need}).context().")
        if refresh is None:
            refresh = self.refresh
        if refresh is None:
            if not ctx.has_secret_key:
                raise SecretKeyMissingError(
                    "encrypted training needs a client-aided refresh of the weights after each batch; "
                    "pass refresh=callable that sends the weights to the key holder "
                    "(see he_ml.ml.ClientAidedRefresh).")
            refresh = ClientAidedRefresh(ctx)

        w0 = np.zeros(d + 1) if initial_weights is None else np.asarray(initial_weights, dtype=float)
        if w0.shape != (d + 1,):
            raise ShapeMismatchError(f"initial_weights must have shape ({d + 1},); got {w0.shape}.")
        self._prepare_training(enc_X)
        W = ctx.encrypt(self._weights_grid(w0, d, B, D))
        n_batches = len(enc_X.vectors)
        ones_masks = [self._ones_grid(enc_X.batch_rows(k), d, B, D) for k in range(n_batches)]
        last_plain = w0
        epochs = self.epochs if epochs is None else epochs
        self.n_refreshes_ = 0
        for epoch in range(epochs):
            for k in range(n_batches):
                if W.level is not None and W.level < need:
                    W = refresh(W)
                    self.n_refreshes_ += 1
                    if isinstance(refresh, ClientAidedRefresh) and refresh.history:
                        last_plain = self._grid_to_weights(refresh.history[-1], d, B)
                Xb = enc_X.vectors[k]
                if self.fit_intercept:
                    Xb = Xb + ones_masks[k]
                W = W + self._batch_update(Xb, enc_y.vectors[k], W, enc_X.batch_rows(k), d, B, D)
            if callback is not None:
                callback(epoch, last_plain)
        if ctx.has_secret_key:
            grid = ctx.decrypt(W)
        elif hasattr(refresh, "reveal"):
            grid = refresh.reveal(W)
        else:
            raise SecretKeyMissingError(
                "fit ran on a public context, so the final weights are encrypted; pass a refresh object "
                "with a reveal(encrypted_weights) method run by the key holder (ClientAidedRefresh has one).")
        weights = self._grid_to_weights(grid, d, B)
        self.coef_ = weights[:d]
        self.intercept_ = float(weights[d]) if self.fit_intercept else 0.0
        self.n_features_in_ = d
        return self

    def _validate_training_params(self, epochs) -> None:
        lr = self.learning_rate
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ParameterError(
                f"The 'learning_rate' parameter of {self._estimator_name} must be a float in (0, inf); got {lr!r}.")
        e = self.epochs if epochs is None else epochs
        if not isinstance(e, (int, np.integer)) or e < 1:
            raise ParameterError(
                f"The 'epochs' parameter of {self._estimator_name} must be an int >= 1; got {e!r}.")

    def _prepare_training(self, enc_X: EncryptedFeatures) -> None:
        pass

    @staticmethod
    def _weights_grid(w: np.ndarray, d: int, B: int, D: int) -> np.ndarray:
        grid = np.zeros((D, B))
        grid[: d + 1, :] = w[:, None]
        return grid.reshape(-1)

    @staticmethod
    def _grid_to_weights(grid: np.ndarray, d: int, B: int) -> np.ndarray:
        g = np.asarray(grid, dtype=float).reshape(-1, B)
        return g[: d + 1].mean(axis=1)

    @staticmethod
    def _ones_grid(rows: int, d: int, B: int, D: int) -> np.ndarray:
        grid = np.zeros((D, B))
        grid[d, :rows] = 1.0
        return grid.reshape(-1)

    def _batch_update(self, Xb: EncryptedVector, Yb: EncryptedVector, W: EncryptedVector, rows: int,
                      d: int, B: int, D: int) -> EncryptedVector:
        """Encrypted ``-lr/rows * X^T (link(X w) - y)`` laid out like the weights."""
        P = Xb * W                                    # level -1: x_ij * w_j in block j
        Z = P
        step = B
        while step < B * D:                           # sum over blocks: logits in every block
            Z = Z + Z.rotate(step)
            step *= 2
        S = self._gradient_transform(Z)               # link(z_i) in every block
        E = S - Yb                                    # residuals, replicated per block
        G = E * Xb                                    # level -1: e_i * x_ij (padding rows: x = 0)
        T = G
        step = 1
        while step < B:                               # sum inside blocks: slot j*B holds grad_j
            T = T + T.rotate(step)
            step *= 2
        mask = np.zeros((D, B))
        mask[: d + 1, 0] = -self.learning_rate / rows
        if not self.fit_intercept:
            mask[d, 0] = 0.0
        U = T * mask.reshape(-1)                      # level -1: keep slot j*B, scale by -lr/rows
        step = 1
        while step < B:                               # replicate over each block
            U = U + U.rotate(-step)
            step *= 2
        return U

    # ------------------------------------------------------------------ plaintext twin
    def _plain_fit(self, X: np.ndarray, y: np.ndarray, batch_size: int, epochs: int | None = None,
                   link: Callable | None = None) -> np.ndarray:
        """The same mini-batch algorithm in float64 numpy (reference for tests and benchmarks)."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n, d = X.shape
        w = np.zeros(d + 1)
        link = link or (lambda z: z)
        Xa = np.hstack([X, np.ones((n, 1)) if self.fit_intercept else np.zeros((n, 1))])
        for _ in range(self.epochs if epochs is None else epochs):
            for s in range(0, n, batch_size):
                xb, yb = Xa[s:s + batch_size], y[s:s + batch_size]
                e = link(xb @ w) - yb
                w = w - self.learning_rate / xb.shape[0] * (xb.T @ e)
        return w

    # ------------------------------------------------------------------ constructors
    @classmethod
    def _from_coef(cls, coef: np.ndarray, intercept: float, **params) -> "_EncryptedLinearModel":
        model = cls(**params)
        coef = np.asarray(coef, dtype=float).reshape(-1)
        if not np.all(np.isfinite(coef)) or not math.isfinite(float(intercept)):
            raise ParameterError("model weights must be finite; got NaN or inf in coef_/intercept_.")
        model.coef_ = coef
        model.intercept_ = float(intercept)
        model.n_features_in_ = coef.size
        return model


class EncryptedLinearRegression(_EncryptedLinearModel):
    """Linear regression on encrypted features (inference: every scheme; training: CKKS).

    Parameters
    ----------
    fit_intercept : bool, default True
    learning_rate : float, default 0.1
    epochs : int, default 10
    batch_size : int, optional
        Mini-batch size used when `fit` is given plaintext-free encrypted data (taken from
        the "blocks" layout of the encrypted features).
    refresh : callable, optional
        Client-aided weight refresh for training (see `ClientAidedRefresh`).
    weight_bits : int, default 8
        BFV only: fractional bits of the integer weights.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); y = X @ [1., 2., 3.] + 0.5
    >>> model = he_ml.ml.EncryptedLinearRegression.from_sklearn(LinearRegression().fit(X, y))
    >>> ctx = he_ml.CKKS()
    >>> pred = ctx.decrypt(model.predict(he_ml.ml.encrypt_features(ctx, X)))  # doctest: +SKIP
    """

    _estimator_name = "EncryptedLinearRegression"

    def __init__(self, *, fit_intercept: bool = True, learning_rate: float = 0.1, epochs: int = 10,
                 batch_size: int | None = None, refresh: Callable | None = None,
                 weight_bits: int = DEFAULT_BFV_WEIGHT_BITS, verbose: bool = False) -> None:
        super().__init__(fit_intercept=fit_intercept, learning_rate=learning_rate, epochs=epochs,
                         batch_size=batch_size, refresh=refresh, weight_bits=weight_bits,
                         verbose=verbose)

    def predict(self, enc: EncryptedFeatures) -> EncryptedVector:
        """Encrypted predictions ``X @ coef_ + intercept_`` (same as `decision_function`)."""
        return self.decision_function(enc)

    @classmethod
    def from_sklearn(cls, model: Any, **params) -> "EncryptedLinearRegression":
        """Wrap a fitted scikit-learn linear regressor (``coef_``, ``intercept_``)."""
        if not hasattr(model, "coef_"):
            raise NotFittedError(
                f"{type(model).__name__} is not fitted; call model.fit(X, y) before from_sklearn.")
        coef = np.asarray(model.coef_, dtype=float)
        if coef.ndim > 1 and coef.shape[0] != 1:
            raise ShapeMismatchError(f"only single-output regressors are supported; got coef_ shape {coef.shape}.")
        return cls._from_coef(coef.reshape(-1), float(np.ravel(model.intercept_)[0]
                                                       if np.ndim(model.intercept_) else model.intercept_),
                              **params)


class EncryptedLogisticRegression(_EncryptedLinearModel):
    """Binary logistic regression on encrypted features.

    ``decision_function`` works on every scheme; ``predict_proba`` evaluates a
    minimax polynomial sigmoid on the server (CKKS); ``fit`` trains on CKKS with
    mini-batch gradient descent and client-aided refresh.

    Parameters
    ----------
    sigmoid_degree : int, default 3
        Degree of the polynomial sigmoid (training and ``predict_proba``); depth
        ``ceil(log2(degree + 1))`` levels plus the affine map.
    logit_range : float, optional
        Half-width R of the logit interval [-R, R]; set by `fit`/`calibrate` from data.
    fit_intercept, learning_rate, epochs, batch_size, refresh, weight_bits
        As in `EncryptedLinearRegression`.

    Attributes
    ----------
    coef_, intercept_, n_features_in_, classes_
    logit_range_ : float
        Interval half-width used by the polynomial sigmoid.
    sigmoid_ : PolynomialApproximation
        The polynomial for ``sigmoid(logit_range_ * t)`` on t in [-1, 1].
    """

    _estimator_name = "EncryptedLogisticRegression"

    def __init__(self, *, sigmoid_degree: int = 3, logit_range: float | None = None,
                 fit_intercept: bool = True, learning_rate: float = 0.1, epochs: int = 10,
                 batch_size: int | None = None, refresh: Callable | None = None,
                 weight_bits: int = DEFAULT_BFV_WEIGHT_BITS, verbose: bool = False) -> None:
        super().__init__(fit_intercept=fit_intercept, learning_rate=learning_rate, epochs=epochs,
                         batch_size=batch_size, refresh=refresh, weight_bits=weight_bits,
                         verbose=verbose)
        self.sigmoid_degree = sigmoid_degree
        self.logit_range = logit_range

    # ------------------------------------------------------------------ sigmoid handling
    def _sigmoid_poly(self, R: float):
        from .polynomial import approximate

        R = float(R)
        return approximate(lambda t: _sigmoid(R * t), degree=self.sigmoid_degree, interval=(-1.0, 1.0),
                           method="minimax")

    def _set_range(self, R: float) -> None:
        if not (math.isfinite(R) and R > 0):
            raise ParameterError(f"logit_range must be a positive finite float; got {R!r}.")
        self.logit_range_ = float(R)
        self.sigmoid_ = self._sigmoid_poly(R)

    def calibrate(self, X: Any, *, margin: float = LOGIT_MARGIN) -> "EncryptedLogisticRegression":
        """Pick the sigmoid interval from plaintext calibration data (e.g. the training set).

        Sets ``logit_range_ = margin * max |X @ coef_ + intercept_|``. Warns if an explicit
        ``logit_range`` leaves calibration logits outside the interval.
        """
        self._check_fitted()
        X = check_values(X, scheme="plaintext", what="calibration X").astype(float)
        if X.ndim != 2 or X.shape[1] != self.coef_.size:
            raise ShapeMismatchError(
                f"calibration X must have shape (n, {self.coef_.size}); got {X.shape}.")
        z = X @ self.coef_ + self.intercept_
        zmax = float(np.max(np.abs(z))) if z.size else 1.0
        if self.logit_range is not None:
            if zmax > self.logit_range:
                warnings.warn(
                    f"{np.mean(np.abs(z) > self.logit_range):.1%} of calibration logits fall outside "
                    f"[-{self.logit_range}, {self.logit_range}] (max |logit| = {zmax:.3g}); the polynomial "
                    f"sigmoid is wrong there. Leave logit_range=None to size it from the data.",
                    RuntimeWarning, stacklevel=2)
            self._set_range(self.logit_range)
        else:
            self._set_range(max(zmax * margin, 1.0))
        return self

    def check_logits(self, X: Any) -> float:
        """Fraction of plaintext samples whose logit falls outside the sigmoid interval (warns if > 0)."""
        self._check_fitted()
        self._check_calibrated()
        X = np.asarray(X, dtype=float)
        z = X @ self.coef_ + self.intercept_
        frac = float(np.mean(np.abs(z) > self.logit_range_))
        if frac > 0:
            warnings.warn(f"{frac:.1%} of logits exceed the sigmoid interval ±{self.logit_range_:.3g}; "
                          f"call calibrate(X) on representative data.", RuntimeWarning, stacklevel=2)
        return frac

    def _check_calibrated(self) -> None:
        if not hasattr(self, "logit_range_"):
            if self.logit_range is not None:
                self._set_range(self.logit_range)
                return
            raise NotFittedError(
                "predict_proba needs the logit interval: call calibrate(X_calibration) (plaintext data "
                "like the training set), pass logit_range=..., or build the model with "
                "from_sklearn(model, X_calibration=X).")

    @property
    def predict_proba_depth(self) -> int:
        """Levels `predict_proba` consumes on CKKS: 1 (scores) + the polynomial's depth."""
        self._check_calibrated()
        return 1 + self.sigmoid_.depth

    def predict_proba(self, enc: EncryptedFeatures) -> EncryptedVector:
        """Encrypted P(y = 1 | x) per sample, via the polynomial sigmoid (CKKS only).

        Raises
        ------
        UnsupportedOperationError
            On BFV/Paillier: use decision_function and apply the sigmoid after decrypting.
        DepthExhaustedError
            If the context lacks the `predict_proba_depth` levels.
        """
        self._check_fitted()
        enc = self._check_features(enc, "predict_proba")
        if enc.context.name != "ckks":
            raise UnsupportedOperationError(
                f"predict_proba evaluates a polynomial sigmoid on ciphertexts, which needs CKKS; on "
                f"{enc.context.name} call decision_function(enc), decrypt, and apply "
                f"scipy.special.expit on the client.")
        self._check_calibrated()
        t = self._score(enc, scale=1.0 / self.logit_range_)
        return self.sigmoid_.evaluate(t)

    def predict(self, enc: EncryptedFeatures) -> np.ndarray:
        """Class labels; decrypts, so it runs where the secret key is (the client).

        Raises
        ------
        SecretKeyMissingError
            On a public context: call decision_function on the server and threshold the
            decrypted scores at 0 on the client (`predict_from_scores`).
        """
        scores = self.decision_function(enc)
        if not enc.context.has_secret_key:
            raise SecretKeyMissingError(
                "predict decrypts the scores, which needs the secret key. On the server call "
                "decision_function(enc) and send the result to the key holder, who calls "
                "model.predict_from_scores(ctx.decrypt(scores)).")
        return self.predict_from_scores(enc.context.decrypt(scores))

    def predict_from_scores(self, scores: Any) -> np.ndarray:
        """Labels from decrypted decision scores (threshold 0)."""
        classes = getattr(self, "classes_", np.array([0, 1]))
        return classes[(np.asarray(scores) > 0).astype(int)]

    # ------------------------------------------------------------------ training
    def _train_range(self) -> float:
        """Logit interval for training: ``logit_range`` or 8 (standardized features)."""
        return float(self.logit_range) if self.logit_range is not None else DEFAULT_TRAINING_LOGIT_RANGE

    def _training_sigmoid(self):
        from .polynomial import approximate

        R = self._train_range()
        return approximate("sigmoid", degree=self.sigmoid_degree, interval=(-R, R), method="minimax")

    def _prepare_training(self, enc_X: EncryptedFeatures) -> None:
        self._train_poly = self._training_sigmoid()

    def _link_depth(self) -> int:
        return self._training_sigmoid().depth

    def _gradient_transform(self, z: EncryptedVector) -> EncryptedVector:
        return self._train_poly.evaluate(z)

    def fit(self, enc_X: EncryptedFeatures, enc_y: EncryptedFeatures, **kwargs) -> "EncryptedLogisticRegression":
        """Train on encrypted data; see `EncryptedLinearRegression.fit` for the parameters.

        The gradient uses the degree-``sigmoid_degree`` minimax sigmoid on
        [-logit_range, logit_range] (default ±8: standardize the features). Afterwards the
        interval for `predict_proba` is ``logit_range`` (or 8) as well; call `calibrate` on
        plaintext data to size it from the data instead.
        """
        super().fit(enc_X, enc_y, **kwargs)
        self.classes_ = np.array([0, 1])
        self._set_range(self._train_range())
        return self

    def plain_fit(self, X: Any, y: Any, batch_size: int, epochs: int | None = None,
                  polynomial: bool = True) -> np.ndarray:
        """Train the same algorithm on plaintext; returns (coef, intercept) stacked.

        ``polynomial=True`` uses the same polynomial sigmoid as encrypted training (a bit-for-bit
        twin up to CKKS noise); ``False`` uses the exact sigmoid (the accuracy reference).
        """
        if polynomial:
            return self._plain_fit(X, y, batch_size, epochs, link=self._training_sigmoid())
        return self._plain_fit(X, y, batch_size, epochs, link=_sigmoid)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_sklearn(cls, model: Any, X_calibration: Any = None, **params) -> "EncryptedLogisticRegression":
        """Wrap a fitted scikit-learn binary classifier with ``coef_`` and ``intercept_``.

        Parameters
        ----------
        model : sklearn.linear_model.LogisticRegression (or any fitted binary linear classifier)
        X_calibration : array (n, n_features), optional
            Plaintext data (e.g. the training set) to size the sigmoid interval; needed for
            `predict_proba` unless ``logit_range`` is given.
        **params
            Constructor parameters (``sigmoid_degree``, ``logit_range``, ...).
        """
        if not hasattr(model, "coef_"):
            raise NotFittedError(
                f"{type(model).__name__} is not fitted; call model.fit(X, y) before from_sklearn.")
        coef = np.asarray(model.coef_, dtype=float)
        if coef.ndim == 2 and coef.shape[0] != 1:
            raise ShapeMismatchError(
                f"only binary classifiers are supported; got coef_ shape {coef.shape} "
                f"({coef.shape[0]} classes).")
        intercept = float(np.ravel(getattr(model, "intercept_", 0.0))[0])
        est = cls._from_coef(coef.reshape(-1), intercept, **params)
        if hasattr(model, "classes_"):
            est.classes_ = np.asarray(model.classes_)
        if X_calibration is not None:
            est.calibrate(X_calibration)
        elif est.logit_range is not None:
            est._set_range(est.logit_range)
        return est
