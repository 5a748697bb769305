"""Shared machinery of the encrypted linear models in :mod:`he_ml.ml.linear`.

One piece of :mod:`he_ml.ml.linear`; the map of what lives where is in its module docstring.

Import from :mod:`he_ml.ml.linear` (or :mod:`he_ml.ml`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import (
    DepthExhaustedError,
    EncodingOverflowError,
    NotFittedError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ..schemes.base import EncryptedVector, SchemeContext, check_values
from .feature_names import check_feature_names
from .layout import EncryptedFeatures, block_batch_size, blocks_needed, context_fixed_point_bits


#: Fractional bits of BFV's integer weights: w -> round(w * 2**8).
DEFAULT_BFV_WEIGHT_BITS = 8
#: Margin applied to the largest calibration logit when choosing the sigmoid interval.
LOGIT_MARGIN = 1.25
#: Logit interval half-width for encrypted training when none is given (standardized features).
DEFAULT_TRAINING_LOGIT_RANGE = 8.0


def _check_linear_estimator(model: Any, cls_name: str) -> None:
    """Refuse non-linear estimators with advice, and unfitted ones with NotFittedError (only then)."""
    if not hasattr(model, "coef_"):
        from sklearn.exceptions import NotFittedError as SkNotFitted
        from sklearn.utils.validation import check_is_fitted
        name = type(model).__name__
        if name == "Pipeline" or not hasattr(model, "fit") or name.startswith("MLP"):
            raise UnsupportedOperationError(
                f"{cls_name}.from_sklearn takes a fitted linear estimator with coef_; got {name}. Use "
                f"he_ml.ml.from_sklearn(model, X_calibration=X): it converts Pipelines of scalers, "
                f"MLPs and multiclass models.")
        try:
            check_is_fitted(model)
        except (SkNotFitted, TypeError):
            raise NotFittedError(f"{name} is not fitted; call model.fit(X, y) before from_sklearn.") from None
        raise UnsupportedOperationError(
            f"{cls_name}.from_sklearn takes a linear estimator with coef_; {name} has none. See "
            f"he_ml.ml.from_sklearn for the supported estimators.")


def _copy_feature_names(source: Any, est: Any) -> Any:
    """Keep the scikit-learn estimator's ``feature_names_in_`` (fitted on a DataFrame) on `est`."""
    names = getattr(source, "feature_names_in_", None)
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    return est


class ClientAidedRefresh:
    """The documented client-aided refresh: the key holder decrypts and re-encrypts the weights.

    CKKS ciphertexts lose one level per multiplication; a mini-batch of encrypted training
    needs ``training_depth`` levels, so the weights must regularly be brought back to full
    level. SEAL has no bootstrapping, so the key holder does it: it receives the encrypted
    weights, decrypts, checks them and returns a fresh encryption. The key holder thereby
    sees the intermediate weights (it owns the model anyway) but never the server's state
    beyond that.

    The refresh is also the divergence guard: non-finite weights or weights larger than
    ``max_abs_weight`` (or than what the CKKS parameters can hold) raise `ParameterError`
    with advice instead of letting training continue on garbage.

    Parameters
    ----------
    context : SchemeContext
        The key holder's CKKS context (with the secret key).
    max_abs_weight : float, default 1e3
        Largest |value| accepted in the weight ciphertext.

    Attributes
    ----------
    calls : int
        Refreshes performed.
    last : ndarray or None
        The decrypted weight ciphertext of the last refresh or `reveal`.
    """

    def __init__(self, context: SchemeContext, max_abs_weight: float = 1e3) -> None:
        if not getattr(context, "has_secret_key", False):
            raise SecretKeyMissingError(
                "ClientAidedRefresh runs at the key holder and needs its context with the secret key; "
                "got a public context. On the server, pass a callable that sends the weights to the "
                "key holder instead.")
        if not (isinstance(max_abs_weight, (int, float)) and max_abs_weight > 0):
            raise ParameterError(f"max_abs_weight must be a positive number; got {max_abs_weight!r}.")
        self.context = context
        self.max_abs_weight = float(max_abs_weight)
        self.calls = 0
        self.last: np.ndarray | None = None

    def _check(self, plain: np.ndarray, what: str) -> None:
        limit = min(self.max_abs_weight, float(getattr(self.context, "value_bound", math.inf)) / 4)
        peak = float(np.max(np.abs(plain))) if np.all(np.isfinite(plain)) else math.inf
        if peak > limit:
            raise ParameterError(
                f"encrypted training diverged ({what} {self.calls + 1}): the weights reached "
                f"|w| = {peak:.3g} > {limit:.3g}. Lower learning_rate, standardize the features, widen "
                f"logit_range, or use more precise parameters (training_context(precision_bits=...)).")

    def __call__(self, weights: EncryptedVector) -> EncryptedVector:
        plain = self.context.decrypt(weights)
        self._check(plain, "refresh")
        self.calls += 1
        self.last = plain
        return self.context.encrypt(plain)

    def reveal(self, weights: EncryptedVector) -> np.ndarray:
        """Decrypt the weights for the model owner (the key holder), with the same checks."""
        plain = self.context.decrypt(weights)
        self._check(plain, "reveal")
        self.last = plain
        return plain


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(float(v))


class _EncryptedLinearModel(BaseEstimator):
    """Shared machinery: weights, encrypted scoring, block-layout gradient descent."""

    # ------------------------------------------------------------------ parameter validation
    def _param_error(self, name: str, expected: str) -> ParameterError:
        return ParameterError(
            f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
            f"Got {getattr(self, name)!r} instead.")

    def _check_params(self) -> None:
        """Validate the constructor parameters (scikit-learn style: checked in fit, not __init__)."""
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise self._param_error("fit_intercept", "a bool")
        if not (_is_real(self.learning_rate) and self.learning_rate > 0):
            raise self._param_error("learning_rate", "a float in the range (0, inf)")
        if not (_is_int(self.epochs) and self.epochs >= 1):
            raise self._param_error("epochs", "an int in the range [1, inf)")
        b = self.batch_size
        if b is not None and not (_is_int(b) and b >= 1 and b & (b - 1) == 0):
            raise self._param_error("batch_size", "None or a power of two >= 1")
        if not (self.weight_bits is None or (_is_int(self.weight_bits) and 0 <= self.weight_bits <= 30)):
            raise self._param_error("weight_bits", "None or an int in the range [0, 30]")
        if self.refresh is not None and not callable(self.refresh):
            raise self._param_error("refresh", "None or a callable(EncryptedVector) -> EncryptedVector")

    # ------------------------------------------------------------------ lifecycle checks
    def _check_fitted(self, op: str) -> None:
        if not hasattr(self, "coef_"):
            name = type(self).__name__
            raise NotFittedError(
                f"This {name} instance is not fitted yet, so {op} has no weights. Call "
                f"fit(enc_X, enc_y) on encrypted data or build it with {name}.from_sklearn(model) "
                f"before {op}.")

    def _check_features(self, enc: Any, op: str) -> EncryptedFeatures:
        if not isinstance(enc, EncryptedFeatures):
            raise ParameterError(
                f"{op} expects encrypted features from he_ml.ml.encrypt_features(ctx, X); got "
                f"{type(enc).__name__}. Encrypt the plaintext first.")
        if enc.is_labels:
            raise ShapeMismatchError(
                f"{op} needs an encrypted feature matrix; got an encrypted label vector "
                f"({enc.n_samples} values). Encrypt X (2-D), not y.")
        if enc.layout != "columns":
            raise ParameterError(
                f"{op} needs the 'columns' layout (encrypt_features(ctx, X)); got {enc.layout!r}, "
                f"which is the training layout for fit.")
        if enc.n_features != self.coef_.size:
            raise ShapeMismatchError(
                f"X has {enc.n_features} features, but {type(self).__name__} is expecting "
                f"{self.coef_.size} features as input.")
        check_feature_names(self, enc, op)
        return enc

    # ------------------------------------------------------------------ scoring
    def _score(self, enc: EncryptedFeatures, scale: float = 1.0) -> EncryptedVector:
        """Encrypted ``(X @ coef_ + intercept_) * scale`` per sample; depth 1 on CKKS.

        BFV: weights are quantized to ``weight_bits`` fractional bits and the result carries
        ``fixed_point_bits = feature bits + weight bits``, so it decrypts to real scores.
        """
        w = self.coef_ * scale
        b = float(self.intercept_) * scale
        ctx = enc.context
        if ctx.name == "bfv":
            wb = self._bfv_weight_bits(ctx)
            wq = np.rint(w * (1 << wb)).astype(np.int64)
            frac = enc.fixed_point_bits + wb
            acc = None
            for j, col in enumerate(enc.vectors):
                if wq[j] == 0:
                    continue
                term = col * int(wq[j])
                acc = term if acc is None else acc + term
            if acc is None:
                acc = enc.vectors[0] * 0
            acc = acc + int(round(b * (1 << frac)))
            acc.meta["fixed_point_bits"] = frac
            return acc
        acc = None
        for j, col in enumerate(enc.vectors):
            term = col * float(w[j])
            acc = term if acc is None else acc + term
        return acc + b

    def _bfv_weight_bits(self, ctx: SchemeContext) -> int:
        """Fractional bits of the quantized weights: the context's fixed-point encoding."""
        f = context_fixed_point_bits(ctx)
        if self.weight_bits is not None and self.weight_bits != f:
            raise ParameterError(
                f"weight_bits={self.weight_bits} differs from the BFV context's fixed_point_bits={f}; "
                f"the context carries the encoding (scores must decode with it). Create the context "
                f"with he_ml.BFV(..., fixed_point_bits={self.weight_bits}) or leave weight_bits=None.")
        return f

    def decision_function(self, enc: EncryptedFeatures) -> EncryptedVector:
        """Encrypted linear scores ``X @ coef_ + intercept_``, one per sample (every scheme).

        Parameters
        ----------
        enc : EncryptedFeatures, layout "columns"

        Returns
        -------
        EncryptedVector of shape (n_samples,)
            Decrypt on the client with ``ctx.decrypt(scores)`` (float64 on every scheme).

        Raises
        ------
        NotFittedError
            Before `fit` / `from_sklearn`.
        ShapeMismatchError
            If the number of features differs from ``n_features_in_``.
        """
        self._check_fitted("decision_function")
        return self._score(self._check_features(enc, "decision_function"))

    # ------------------------------------------------------------------ training: depth and keys
    def _link_depth(self) -> int:
        return 0

    @property
    def training_depth(self) -> int:
        """CKKS levels one encrypted mini-batch consumes: logits (1) + link + gradient (1) + mask (1)."""
        return 3 + self._link_depth()

    @staticmethod
    def rotation_steps(batch_size: int, n_blocks: int) -> list[int]:
        """Rotation steps `fit` uses on the "blocks" layout with ``batch_size`` B and ``n_blocks`` D.

        Logits: +B, +2B, ... (sum over blocks); gradients: +1, +2, ..., +B/2 (sum inside a
        block, the total lands in the block's first slot); replication: -1, -2, ..., -B/2.
        """
        steps = [batch_size << k for k in range(int(math.log2(n_blocks)))]
        steps += [1 << k for k in range(int(math.log2(batch_size)))]
        steps += [-(1 << k) for k in range(int(math.log2(batch_size)))]
        return sorted(set(steps))

    @classmethod
    def training_context(cls, n_features: int, n_samples: int, *, batch_size: int | None = None,
                         precision_bits: int = 20, max_value: float = 16.0, sigmoid_degree: int = 3,
                         **plan_kwargs: Any):
        """A CKKS context (key holder) sized for encrypted `fit`, keys generated once up front.

        Asks ``he_ml.plan`` for ``training_depth`` levels at ``precision_bits`` and a ring with
        room for the "blocks" layout, then generates relinearization keys and exactly the
        rotation keys of `rotation_steps` (not the generic power-of-two set).

        Parameters
        ----------
        n_features, n_samples : int
            Shape of the training data.
        batch_size : int, optional
            Mini-batch size (power of two); default as in `encrypt_features`.
        precision_bits : int, default 20
            Absolute precision (bits) per operation for values of magnitude <= 1.
        max_value : float, default 16
            Largest |value| of any feature, label, weight or intermediate.
        sigmoid_degree : int, default 3
            Logistic regression only: degree of the training sigmoid (sets the depth).
        **plan_kwargs
            Passed to ``he_ml.plan`` (e.g. ``security=192``).

        Returns
        -------
        he_ml.CKKS
            With ``training_batch_size`` recorded on the plan-free attribute of the same name.
        """
        from ..schemes import CKKS
        from ..schemes.params import plan
        from ._linear_logistic import EncryptedLogisticRegression  # the subclass (imports this module)

        for name, v in (("n_features", n_features), ("n_samples", n_samples)):
            if not (_is_int(v) and v >= 1):
                raise ParameterError(f"training_context: {name} must be an int >= 1; got {v!r}.")
        probe = cls(sigmoid_degree=sigmoid_degree) if issubclass(cls, EncryptedLogisticRegression) else cls()
        depth = probe.training_depth
        need_slots = blocks_needed(n_features) * (batch_size or 1)
        p = plan(depth=depth, precision_bits=precision_bits, values=max(need_slots, 1),
                 max_value=max_value, **plan_kwargs)
        B = block_batch_size(p.slot_count, n_samples, n_features, batch_size)
        D = p.slot_count // B
        params = p.parameters()
        params.pop("rotations", None)
        params["relin_keys"] = True
        ctx = CKKS(preset=None, rotations=cls.rotation_steps(B, D), **params)
        return ctx

    # ------------------------------------------------------------------ training
    def _train_range(self) -> float:
        return 1.0

    def _link(self, R: float) -> Callable[[Any], Any]:
        """Link on the scaled logits t = z / R (identity for least squares)."""
        return lambda t: t

    def fit(self, enc_X: EncryptedFeatures, enc_y: EncryptedFeatures, *, epochs: int | None = None,
            refresh: Callable | None = None, initial_weights: Any = None,
            callback: Callable[[dict], Any] | None = None, eval_set: tuple[Any, Any] | None = None
            ) -> "_EncryptedLinearModel":
        """Mini-batch gradient descent on encrypted data (CKKS, "blocks" layout).

        Parameters
        ----------
        enc_X : EncryptedFeatures
            ``encrypt_features(ctx, X, layout="blocks")``.
        enc_y : EncryptedFeatures
            ``encrypt_features(ctx, y, layout="blocks", batch_size=enc_X.batch_size)``.
        epochs : int, optional
            Overrides the constructor's ``epochs``.
        refresh : callable(EncryptedVector) -> EncryptedVector, optional
            Client-aided refresh run whenever the weights lack the levels for another batch;
            default: the constructor's ``refresh``, else a `ClientAidedRefresh` on the data's
            context when it holds the secret key. A refresh with a ``reveal`` method also
            reveals the final weights on a public context.
        initial_weights : array of shape (n_features + 1,), optional
            Starting ``(coef, intercept)``; zeros by default.
        callback : callable(dict) -> Any, optional
            Called after every epoch with ``{"epoch", "coef", "intercept", "refreshes",
            "seconds"}`` plus ``"loss"``/``"accuracy"`` when ``eval_set`` is given. Return
            ``False`` to stop early. Needs the weights in the clear each epoch (key holder).
        eval_set : (X, y) plaintext arrays, optional
            Key-holder data to monitor: per-epoch loss (log loss for logistic, mean squared
            error for linear) and accuracy in ``history_``, a check that the logits stay in
            the sigmoid interval, and the final ``predict_proba`` calibration.

        Returns
        -------
        self

        Raises
        ------
        UnsupportedOperationError
            Training on BFV or Paillier (inference only), or a public context without the
            rotation keys `rotation_steps` lists.
        DepthExhaustedError
            If the context has fewer levels than one mini-batch needs (`training_depth`).
        ParameterError
            Invalid parameters; divergence detected at a refresh.
        SecretKeyMissingError
            On a public context without a refresh callable.
        """
        self._check_params()
        if epochs is not None and not (_is_int(epochs) and epochs >= 1):
            raise ParameterError(f"fit: epochs must be an int >= 1 or None; got {epochs!r}.")
        for name, e in (("enc_X", enc_X), ("enc_y", enc_y)):
            if not isinstance(e, EncryptedFeatures):
                raise ParameterError(
                    f"fit expects {name} from he_ml.ml.encrypt_features(ctx, ..., layout='blocks'); got "
                    f"{type(e).__name__}.")
        ctx = enc_X.context
        if ctx.name != "ckks":
            raise UnsupportedOperationError(
                f"encrypted training needs CKKS (encrypted products of real numbers and rotations); "
                f"{ctx.name} supports inference only (linear scoring). Train on CKKS "
                f"({type(self).__name__}.training_context(...)) or in plaintext, then use "
                f"from_sklearn(model) and decision_function on {ctx.name}.")
        for name, e in (("enc_X", enc_X), ("enc_y", enc_y)):
            if e.layout != "blocks":
                raise ParameterError(
                    f"fit needs {name} encrypted with encrypt_features(ctx, ..., layout='blocks'); got "
                    f"layout {e.layout!r} (that one is for inference).")
        if enc_X.is_labels or not enc_y.is_labels:
            raise ShapeMismatchError(
                "fit(enc_X, enc_y): enc_X must be an encrypted 2-D feature matrix and enc_y the 1-D "
                f"labels; got {enc_X.n_features} and {enc_y.n_features} features.")
        if enc_X.n_samples != enc_y.n_samples or enc_X.batch_size != enc_y.batch_size:
            raise ShapeMismatchError(
                f"enc_X has {enc_X.n_samples} samples in batches of {enc_X.batch_size}, enc_y has "
                f"{enc_y.n_samples} in batches of {enc_y.batch_size}; encrypt both with the same "
                f"batch_size.")
        ctx._check_same_key(enc_y.context, "fit")
        d, B, D = enc_X.n_features, enc_X.batch_size, enc_X.n_blocks
        block_batch_size(ctx.slot_count, enc_X.n_samples, d, B)  # re-validate capacity
        need = self.training_depth
        if ctx.max_depth is not None and ctx.max_depth < need:
            raise DepthExhaustedError(
                f"one encrypted mini-batch of {type(self).__name__} needs {need} multiplicative levels "
                f"(logits 1 + sigmoid {self._link_depth()} + gradient 1 + mask 1); this CKKS context has "
                f"{ctx.max_depth}. Build it with {type(self).__name__}.training_context(n_features={d}, "
                f"n_samples={enc_X.n_samples}) or he_ml.plan(depth={need}).context().")
        self._ensure_rotation_keys(ctx, B, D)
        refresh = refresh if refresh is not None else self.refresh
        if refresh is None:
            if not ctx.has_secret_key:
                raise SecretKeyMissingError(
                    "encrypted training on a public context needs a client-aided refresh of the "
                    "weights: pass refresh=callable that sends them to the key holder (see "
                    "he_ml.ml.ClientAidedRefresh, which runs there).")
            refresh = ClientAidedRefresh(ctx)
        elif not callable(refresh):
            raise ParameterError(f"fit: refresh must be callable; got {type(refresh).__name__}.")
        reveal = ctx.decrypt if ctx.has_secret_key else getattr(refresh, "reveal", None)
        if reveal is None:
            raise SecretKeyMissingError(
                "fit ran on a public context, so the final weights stay encrypted; pass a refresh "
                "object with a reveal(encrypted_weights) method run by the key holder "
                "(ClientAidedRefresh has one).")
        X_eval = y_eval = None
        if eval_set is not None:
            X_eval, y_eval = self._check_eval_set(eval_set, d)

        R = self._train_range()
        link = self._link(R)
        w0 = np.zeros(d + 1) if initial_weights is None else check_values(
            initial_weights, scheme="plaintext", what="initial_weights").astype(float)
        if w0.shape != (d + 1,):
            raise ShapeMismatchError(f"initial_weights must have shape ({d + 1},) (coef then intercept); "
                                     f"got {w0.shape}.")
        if not self.fit_intercept:
            w0 = w0.copy()
            w0[d] = 0.0
        # Encrypted state: w / R, so that the logits computed from it are z / R in [-1, 1].
        W = ctx.encrypt(self._weights_grid(w0 / R, d, B, D))
        n_batches = len(enc_X.vectors)
        intercept_cols = [self._ones_grid(enc_X.batch_rows(k), d, B, D) if self.fit_intercept else None
                          for k in range(n_batches)]
        masks = [self._mask_grid(enc_X.batch_rows(k), d, B, D, R) for k in range(n_batches)]
        n_epochs = self.epochs if epochs is None else epochs
        self.n_refreshes_ = 0
        self.history_: list[dict[str, Any]] = []
        t_start = time.perf_counter()
        for epoch in range(n_epochs):
            for k in range(n_batches):
                if W.level is not None and W.level < need:
                    W = refresh(W)
                    self.n_refreshes_ += 1
                Xb = enc_X.vectors[k]
                if intercept_cols[k] is not None:
                    Xb = Xb + intercept_cols[k]
                try:
                    W = W + self._batch_update(Xb, enc_y.vectors[k], W, masks[k], link, B, D)
                except EncodingOverflowError as e:
                    raise EncodingOverflowError(
                        f"encrypted training step (epoch {epoch + 1}, batch {k + 1}) could overflow the "
                        f"CKKS modulus: the weights' public bound is {W.bound:.4g}; training diverged (lower "
                        f"learning_rate, standardize the features) or the parameters are too tight "
                        f"(training_context(max_value=...)). {e}") from e
            if callback is not None or eval_set is not None:
                weights = self._grid_to_weights(reveal(W), d, B) * R
                record = {"epoch": epoch + 1, "coef": weights[:d].copy(), "intercept": float(weights[d]),
                          "refreshes": self.n_refreshes_, "seconds": time.perf_counter() - t_start}
                if X_eval is not None:
                    record.update(self._evaluate(weights, X_eval, y_eval, R))
                self.history_.append(record)
                if callback is not None and callback(dict(record)) is False:
                    break
        weights = self._grid_to_weights(reveal(W), d, B) * R
        if not np.all(np.isfinite(weights)):
            raise ParameterError("encrypted training produced non-finite weights; lower learning_rate.")
        self.coef_ = weights[:d]
        self.intercept_ = float(weights[d]) if self.fit_intercept else 0.0
        self.n_features_in_ = d
        self._after_fit(X_eval)
        return self

    def _after_fit(self, X_eval: np.ndarray | None) -> None:
        pass

    def _ensure_rotation_keys(self, ctx: SchemeContext, B: int, D: int) -> None:
        """Generate exactly the rotation keys of `rotation_steps` once (key holder) or check them."""
        steps = self.rotation_steps(B, D)
        try:
            ctx.enable_rotations(steps)  # keys already present are kept; only missing ones are made
        except UnsupportedOperationError as e:
            raise UnsupportedOperationError(
                f"fit on the blocks layout (batch_size={B}, {D} blocks) rotates by {steps}, but this "
                f"public context lacks some of those rotation keys. On the key holder, build the "
                f"context with {type(self).__name__}.training_context(...) or call "
                f"ctx.enable_rotations({steps}) before public_context().") from e

    def _check_eval_set(self, eval_set: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            X, y = eval_set
        except (TypeError, ValueError) as e:
            raise ParameterError(f"eval_set must be a pair (X, y) of plaintext arrays; got "
                                 f"{type(eval_set).__name__}.") from e
        X = check_values(X, scheme="plaintext", what="eval_set X").astype(float)
        y = check_values(y, scheme="plaintext", what="eval_set y").astype(float).reshape(-1)
        if X.ndim != 2 or X.shape[1] != d or X.shape[0] != y.size:
            raise ShapeMismatchError(
                f"eval_set must be X of shape (m, {d}) and y of shape (m,); got {X.shape} and {y.shape}.")
        return X, y

    def _evaluate(self, weights: np.ndarray, X: np.ndarray, y: np.ndarray, R: float) -> dict[str, float]:
        pred = X @ weights[:-1] + weights[-1]
        return {"loss": float(np.mean((pred - y) ** 2))}

    @staticmethod
    def _weights_grid(w: np.ndarray, d: int, B: int, D: int) -> np.ndarray:
        grid = np.zeros((D, B))
        grid[: d + 1, :] = w[:, None]
        return grid.reshape(-1)

    @staticmethod
    def _grid_to_weights(grid: np.ndarray, d: int, B: int) -> np.ndarray:
        # every slot of block j holds w_j (up to CKKS noise): average them
        g = np.asarray(grid, dtype=float).reshape(-1, B)
        return g[: d + 1].mean(axis=1)

    @staticmethod
    def _ones_grid(rows: int, d: int, B: int, D: int) -> np.ndarray:
        grid = np.zeros((D, B))
        grid[d, :rows] = 1.0
        return grid.reshape(-1)

    def _mask_grid(self, rows: int, d: int, B: int, D: int, R: float) -> np.ndarray:
        # keeps the block sums (last slot of each block after the rightward rotate-and-sum)
        # and applies the step -lr / rows, divided by R because the state is w / R
        mask = np.zeros((D, B))
        mask[: d + 1, B - 1] = -self.learning_rate / (rows * R)
        if not self.fit_intercept:
            mask[d, B - 1] = 0.0
        return mask.reshape(-1)

    @staticmethod
    def _batch_update(Xb: EncryptedVector, Yb: EncryptedVector, W: EncryptedVector, mask: np.ndarray,
                      link: Callable, B: int, D: int) -> EncryptedVector:
        """Encrypted ``-lr / (rows R) * X^T (link(X w / R) - y)``, laid out like the weights.

        Slot ``j*B + i`` holds ``x_ij``. Levels: ``X * W`` 1, link, ``E * X`` 1, mask 1.
        """
        Z = Xb * W                                    # x_ij * w_j / R in block j
        # Bounds (he_ml tracks one public bound per vector and doubles it per rotate-and-add):
        # after the k-th step below each slot sums 2^k blocks of x * w, and X is zero outside its
        # first `used` blocks (the d features and the intercept column: the mask's blocks), so
        # |slot| <= min(2^k, used) * bound(X) * bound(W). Stated after every step.
        used = max(1, int(np.count_nonzero(mask.reshape(D, B).any(axis=1))))  # blocks holding data
        z_bound = None if Z.bound is None else used * Z.bound
        step = B
        while step < B * D:                           # sum over blocks: t_i in every block
            Z = Z + Z.rotate(step)
            if z_bound is not None:
                Z = Z.with_bound(z_bound)
            step *= 2
        E = link(Z) - Yb                              # residuals, replicated per block
        T = E * Xb                                    # e_i * x_ij (padding rows: x = 0)
        step = 1
        while step < B:                               # slot j*B + B-1 gathers sum_i e_i x_ij
            T = T + T.rotate(-step)
            step *= 2
        U = T * mask                                  # keep that slot, scale by -lr / (rows R)
        # After each step every slot sums a window of 2^k <= B consecutive slots of the masked U,
        # and the mask keeps one slot per block of B (slot B-1), so a window holds at most one
        # non-zero term: |slot| <= bound(masked U). Stated after every step.
        masked_bound = U.bound
        step = 1
        while step < B:                               # replicate leftwards over block j
            U = U + U.rotate(step)
            if masked_bound is not None:
                U = U.with_bound(masked_bound)
            step *= 2
        return U

    # ------------------------------------------------------------------ plaintext twin
    def plain_fit(self, X: Any, y: Any, batch_size: int, epochs: int | None = None, *,
                  exact_link: bool = False) -> np.ndarray:
        """The same mini-batch algorithm in float64 numpy; returns ``(coef, intercept)`` stacked.

        With ``exact_link=False`` it uses the very polynomial link of encrypted training (the
        twin that encrypted `fit` matches up to CKKS noise); with ``True`` the exact sigmoid
        (the accuracy reference). Identical for linear regression.
        """
        self._check_params()
        X = check_values(X, scheme="plaintext", what="X").astype(float)
        y = check_values(y, scheme="plaintext", what="y").astype(float).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.size:
            raise ShapeMismatchError(f"plain_fit needs X (n, d) and y (n,); got {X.shape} and {y.shape}.")
        n, d = X.shape
        R = self._train_range()
        link = self._exact_link() if exact_link else self._link(R)
        w = np.zeros(d + 1)
        Xa = np.hstack([X, np.ones((n, 1)) if self.fit_intercept else np.zeros((n, 1))])
        for _ in range(self.epochs if epochs is None else epochs):
            for s in range(0, n, batch_size):
                xb, yb = Xa[s:s + batch_size], y[s:s + batch_size]
                e = (link(xb @ w / R) if not exact_link else link(xb @ w)) - yb
                w = w - self.learning_rate / xb.shape[0] * (xb.T @ e)
        return w

    def _exact_link(self) -> Callable:
        return lambda z: z

    # ------------------------------------------------------------------ constructors
    @classmethod
    def _from_coef(cls, coef: np.ndarray, intercept: float, **params) -> "_EncryptedLinearModel":
        model = cls(**params)
        model._check_params()
        coef = np.asarray(coef, dtype=float).reshape(-1)
        if not np.all(np.isfinite(coef)) or not math.isfinite(float(intercept)):
            raise ParameterError("model weights must be finite; got NaN or inf in coef_/intercept_.")
        model.coef_ = coef
        model.intercept_ = float(intercept)
        model.n_features_in_ = coef.size
        return model
