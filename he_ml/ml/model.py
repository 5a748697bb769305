r"""Encrypted inference for any model lowered to the IR: the throughput interpreter and the planner.

:class:`EncryptedModel` wraps a :class:`~he_ml.ml.ir.ModelIR` (built by
:func:`he_ml.ml.from_sklearn` or :func:`he_ml.ml.from_torch`) and runs it on encrypted data in the
**throughput layout**: the client encrypts one vector per input feature (pixel), each holding that
feature for *all* samples of the batch (``encrypt_features(ctx, X)``, chunked over as many
ciphertexts as the batch needs). Then

* a linear layer (dense, convolution, average pooling and everything affine between two
  activations, fused into one sparse matrix) is, per output neuron, a multiply-accumulate of
  input vectors with plaintext scalars: ``sum_j W[o, j] x_j`` accumulated at scale
  ``Delta * q`` and rescaled **once** (:func:`he_ml.schemes.ckks_linear.linear_map`), one level;
* an activation is evaluated slot-wise on every neuron's vector: ``x * x`` (one level) or a
  polynomial through the minimal-depth plan of :mod:`he_ml.ml.polynomial`
  (``ceil(log2(degree + 1))`` levels);
* no rotation is ever needed, so the public context carries only relinearization keys (and
  none at all for a linear model).

Depth
-----
``depth = (number of linear stages) + sum(activation depths)``, where a linear stage is a maximal
run of affine layers between activations (fused: a convolution followed by average pooling and a
dense layer costs one level, not three). Every level costs one prime of the CKKS modulus chain
(``scale_bits`` bits); the ring must grow when the chain outgrows the 128-bit bound of the
current ring size (109 bits at n = 4096, 218 at 8192, 438 at 16384, 881 at 32768), which
doubles the cost of every operation *and* the number of samples per ciphertext.

Calibration and margins
-----------------------
``X_calibration`` (plaintext data like the training set) is run through the float twin
(:func:`he_ml.ml.ir.run_plain`) to measure

* every activation's input range: the polynomial's interval is ``[-R, R]`` with
  ``R = INTERVAL_MARGIN * max |pre-activation|`` (``INTERVAL_MARGIN = 1.2``); inputs beyond it
  make the polynomial diverge like ``|x/R|^degree`` (check new data with
  :meth:`EncryptedModel.check_inputs`);
* every magnitude the encrypted computation holds: inputs, each output neuron's worst partial sum
  (bounded by ``|W| |x| + |b|``), every polynomial intermediate. :meth:`EncryptedModel.context`
  plans CKKS with ``max_value = VALUE_MARGIN * largest magnitude`` (``VALUE_MARGIN = 2``; the
  planner adds one more bit for the sign, so values up to about 4x the calibration maximum
  decrypt correctly) and sizes the first prime ``q0 = scale + magnitude bits + 1``: raw features
  of any magnitude fit (the scale is chosen for ``precision_bits`` of precision, independent
  of magnitude).

Parallelism
-----------
TenSEAL's ``sealapi`` binding keeps Python's GIL during SEAL calls (measured: 400 plaintext
products take the same 0.07 s on one thread and on two), so threads cannot use a second core.
``decision_function(enc, n_jobs=2)`` instead splits every linear stage with many products per
output neuron (``PARALLEL_MIN_PRODUCTS_PER_OUTPUT``) by output neuron between this process and
forked workers, which read the input ciphertexts copy-on-write and send their outputs back as
bytes (results are bit-identical). Measured on a 400 -> 40 -> 10 network: the CPU time of the
process drops from 4.6 s to 2.4 s, the worker takes 2.3 s; on an idle 2-core machine that
halves the wall time of such stages (on our shared, fully loaded test machine the wall time did
not improve: no core was free).

What lives where (the throughput interpreter is split along its seams):

* :mod:`he_ml.ml.model` -- the public API: :class:`~he_ml.ml.model.EncryptedModel`
  (descriptors, calibration, the encrypted interpreter, scores to labels / probabilities, the
  error report) and :class:`~he_ml.ml.model.ErrorReport`; its module docstring explains the
  layout, depth, margins and parallelism;
* :mod:`he_ml.ml._model_lowering` -- calibration of the IR (:func:`build_activation`,
  :func:`calibrate_layers`) and its lowering to fused linear / activation stages, with the
  stages' float twin;
* :mod:`he_ml.ml._model_parallel` -- one linear stage split by output neuron over forked
  workers (``n_jobs``);
* :mod:`he_ml.ml._model_planning` -- the planner: ``EncryptedModel.context`` and the magnitude
  and depth requirements it sizes CKKS, BFV and Paillier from (the ``_ModelPlanning`` mixin);
* :mod:`he_ml.ml._model_bounds` -- CKKS's public magnitude bounds, tracked stage by stage.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import (
    DepthExhaustedError,
    NotFittedError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ..schemes.base import EncryptedVector, SchemeContext, stack_columns
from .ir import Activation, ModelIR, run_plain
from ._model_bounds import _within_interval
from .feature_names import check_feature_names
from .layout import EncryptedFeatures, encrypt_features
from ._model_lowering import (  # noqa: F401  (re-exported: the old import path keeps working)
    INTERVAL_MARGIN,
    DEFAULT_ACTIVATION_DEGREE,
    build_activation,
    calibrate_layers,
    _polynomial_activation,
    _apply_linear,
    _LinearStage,
    _ActivationStage,
    _lower,
    _run_stages_plain,
)
from ._model_parallel import (  # noqa: F401  (re-exported: the old import path keeps working)
    PARALLEL_MIN_PRODUCTS_PER_OUTPUT,
    _FORK_JOB,
    _linear_stage,
    _fork_linear_rows,
)
from ._model_planning import (  # noqa: F401  (re-exported: the old import path keeps working)
    VALUE_MARGIN,
    DEFAULT_PRECISION_BITS,
    _ModelPlanning,
)

__all__ = ["EncryptedModel", "INTERVAL_MARGIN", "VALUE_MARGIN", "DEFAULT_ACTIVATION_DEGREE",
           "DEFAULT_PRECISION_BITS", "ErrorReport", "build_activation", "calibrate_layers"]

#: Largest memory the encrypted interpreter may need for one stage's neurons (ciphertexts of the
#: widest stage); a model beyond it is refused before computing (use the latency layout).
MAX_STAGE_BYTES = 8 << 30
#: Degree of the sigmoid polynomial of a binary predict_proba.
PROBA_SIGMOID_DEGREE = 15


# ---------------------------------------------------------------------------- error report
@dataclass
class ErrorReport:
    """Per-layer approximation error and the measured total error of an encrypted run.

    Attributes
    ----------
    layers : list of dict
        One per activation: ``name``, ``interval``, ``degree``, ``max_error`` (polynomial vs
        function on the whole interval, measured on a dense grid), ``measured_error`` (on the
        calibration data's actual pre-activations), ``outside_interval`` (fraction of those
        inputs beyond the interval).
    twin_vs_source : float
        max |scores of the float twin (polynomials) - scores of the source model| on the data.
    encrypted_vs_twin : float or None
        max |decrypted encrypted scores - float twin scores| (CKKS noise), if run encrypted.
    encrypted_vs_source : float or None
        max |decrypted scores - source model scores|.
    agreement : float or None
        Fraction of samples whose encrypted prediction equals the source model's (classifiers),
        or None for regressors / when not run encrypted.
    twin_agreement : float or None
        The same for the float twin.
    seconds : float or None
        Wall time of the encrypted evaluation.
    """

    layers: list[dict]
    twin_vs_source: float
    encrypted_vs_twin: float | None = None
    encrypted_vs_source: float | None = None
    agreement: float | None = None
    twin_agreement: float | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        lines = ["layer-by-layer approximation error:"]
        for l in self.layers:
            lines.append(f"  {l['name']:<8} interval [{l['interval'][0]:.3g}, {l['interval'][1]:.3g}] degree "
                         f"{l['degree']}: max error {l['max_error']:.3g} (on data {l['measured_error']:.3g}, "
                         f"{l['outside_interval']:.1%} of inputs outside)")
        if not self.layers:
            lines.append("  none (exact model: identity/square/polynomial activations only)")
        lines.append(f"float twin vs source model: max |score error| {self.twin_vs_source:.3g}"
                     + (f", agreement {self.twin_agreement:.2%}" if self.twin_agreement is not None else ""))
        if self.encrypted_vs_twin is not None:
            lines.append(f"encrypted vs float twin: max |score error| {self.encrypted_vs_twin:.3g}; "
                         f"vs source {self.encrypted_vs_source:.3g}"
                         + (f", agreement {self.agreement:.2%}" if self.agreement is not None else "")
                         + (f" ({self.seconds:.2f} s)" if self.seconds is not None else ""))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the model
class EncryptedModel(_ModelPlanning):
    """A model lowered to the IR, evaluated on encrypted features (throughput layout).

    Build with :func:`he_ml.ml.from_sklearn` or :func:`he_ml.ml.from_torch` rather than directly.

    Parameters
    ----------
    ir : ModelIR
    X_calibration : array, optional
        Plaintext samples like the training data; needed by `context` (value ranges) and used by
        `error_report`. Converters pass theirs.

    Attributes
    ----------
    ir : ModelIR
    classes_ : ndarray or None
    depth : int
        Multiplicative levels `decision_function` / `predict` consume.
    calibration_ : dict
        Largest magnitudes measured on the calibration data (``input``, ``values``).

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> model = he_ml.ml.from_sklearn(LogisticRegression(max_iter=1000).fit(X, y), X_calibration=X)
    >>> ctx = model.context()                       # smallest 128-bit CKKS parameters for this model
    >>> scores = model.decision_function(he_ml.ml.encrypt_features(ctx, X))
    >>> ctx.decrypt(scores).shape
    (150, 3)
    >>> float(np.mean(model.predict_from_scores(ctx.decrypt(scores)) == y)) > 0.95
    True
    """

    def __init__(self, ir: ModelIR, X_calibration: Any = None) -> None:
        if not isinstance(ir, ModelIR):
            raise ParameterError(f"EncryptedModel needs a ModelIR; got {type(ir).__name__}.")
        self.ir = ir
        self.classes_ = None if ir.classes_ is None else np.asarray(ir.classes_)
        self._stages = _lower(ir)
        self._proba_stages: list[Any] | None = None
        self._X_cal: np.ndarray | None = None
        self.calibration_: dict[str, float] = {}
        self.bfv_weight_bits_: int | None = None
        #: Column names of the DataFrame the source estimator was fitted on (``from_sklearn``),
        #: checked against those of encrypted DataFrames (he_ml.ml.feature_names).
        self.feature_names_in_: np.ndarray | None = None
        if X_calibration is not None:
            self.calibrate(X_calibration)

    # ------------------------------------------------------------------ descriptors
    def __repr__(self) -> str:
        return (f"EncryptedModel({self.ir.source or 'model'}: {len(self.ir.layers)} layers, task={self.ir.task!r}, "
                f"depth={self.depth}, inputs={self.ir.input_shape})")

    @property
    def task(self) -> str:
        return self.ir.task

    @property
    def depth(self) -> int:
        """Multiplicative levels `decision_function` (classifiers) / `predict` (regressors) consume."""
        return sum(s.depth for s in self._stages)

    @property
    def is_linear(self) -> bool:
        """True if the model is a single affine map (runs on BFV and Paillier too)."""
        return all(isinstance(s, _LinearStage) for s in self._stages) and len(self._stages) <= 1

    @property
    def needs_relinearization(self) -> bool:
        return any(isinstance(s, _ActivationStage) and s.activation.kind != "identity" for s in self._stages)

    @property
    def predict_proba_depth(self) -> int:
        """Levels of the encrypted binary `predict_proba` (scores + polynomial sigmoid)."""
        return sum(s.depth for s in self._get_proba_stages())

    def describe(self) -> str:
        """Plain-language summary of the lowered program and its costs."""
        lines = [f"{self.ir.source or 'model'}: input {self.ir.input_shape}, task {self.ir.task}, depth {self.depth}"]
        for s in self._stages:
            if isinstance(s, _LinearStage):
                lines.append(f"  linear {s.matrix.shape[1]} -> {s.matrix.shape[0]}: {s.matrix.nnz} plaintext "
                             f"multiply-accumulates per ciphertext, {s.matrix.shape[0]} rescales, 1 level")
            else:
                a = s.activation
                what = {"square": "x*x", "identity": "identity"}.get(
                    a.kind, f"{a.name} polynomial degree {getattr(a.poly, 'degree', '?')}")
                lines.append(f"  activation {what}: {s.depth} level(s)")
        return "\n".join(lines)

    # ------------------------------------------------------------------ calibration
    def calibrate(self, X: Any) -> "EncryptedModel":
        """Measure the value ranges of the encrypted computation on plaintext data ``X``."""
        X = self._check_plain(X, "calibrate")
        peaks: dict[str, float] = {"input": float(np.max(np.abs(X)))}
        vmax = [peaks["input"]]

        def observe(i, kind, v):
            vmax.append(float(np.max(np.abs(v))))

        _run_stages_plain(self._stages, X, observe)
        for s in self._stages:
            if isinstance(s, _ActivationStage) and s.activation.poly is not None:
                mi = float(getattr(s.activation.poly, "max_intermediate", float("nan")))
                if math.isfinite(mi):
                    vmax.append(mi)
        peaks["values"] = max(vmax)
        self.calibration_ = peaks
        self._X_cal = X
        return self

    def check_inputs(self, X: Any) -> float:
        """Fraction of samples of plaintext ``X`` that push some activation outside its interval.

        Encrypted inputs cannot be checked; run this on representative plaintext data. Outside
        its interval a polynomial diverges like ``|x / R|^degree``.
        """
        X = self._check_plain(X, "check_inputs")
        bad = np.zeros(X.shape[0], dtype=bool)
        x = X.reshape(X.shape[0], -1)
        for s in self._stages:
            if isinstance(s, _LinearStage):
                x = (s.matrix @ x.T).T + s.bias
            else:
                a = s.activation
                if a.kind == "approximated":
                    bad |= np.any(np.abs(x) > 1.0, axis=1)  # normalized: interval is [-1, 1]
                    x = a.poly(x)
                else:
                    x = a.twin(x)
        return float(np.mean(bad))

    def _check_plain(self, X: Any, op: str) -> np.ndarray:
        from ..schemes.base import check_values
        arr = check_values(X, scheme="plaintext", what="X")
        if arr.ndim < 2 or arr[0].size != self.ir.n_inputs:
            raise ShapeMismatchError(
                f"{op}: X must have shape (n, {', '.join(map(str, self.ir.input_shape))}) (or (n, "
                f"{self.ir.n_inputs})); got {arr.shape}.")
        return arr.reshape((arr.shape[0],) + self.ir.input_shape).astype(np.float64)

    # ------------------------------------------------------------------ plaintext twin
    def plain_scores(self, X: Any, *, exact: bool = False) -> np.ndarray:
        """Scores computed in plaintext: the float twin (``exact=False``) or the source model.

        Returns (n,) for one output, (n, n_outputs) otherwise, like the decrypted scores.
        """
        X = self._check_plain(X, "plain_scores")
        out = run_plain(self.ir, X, exact=exact) if exact else _run_stages_plain(self._stages, X)
        return out[:, 0] if out.shape[1] == 1 else out

    # ------------------------------------------------------------------ encrypted evaluation
    def _check_features(self, enc: Any, op: str) -> EncryptedFeatures:
        if not isinstance(enc, EncryptedFeatures):
            raise ParameterError(
                f"{op} expects encrypted features from he_ml.ml.encrypt_features(ctx, X); got "
                f"{type(enc).__name__}. Encrypt the plaintext first.")
        if enc.layout != "columns" or enc.is_labels:
            raise ParameterError(
                f"{op} needs features in the throughput layout (encrypt_features(ctx, X) with X of shape "
                f"(n, d) or (n, c, h, w)); got layout {enc.layout!r} with {enc.n_features} features.")
        if enc.n_features != self.ir.n_inputs:
            raise ShapeMismatchError(
                f"{op}: the model expects {self.ir.n_inputs} input values per sample (shape "
                f"{self.ir.input_shape}); the encrypted features have {enc.n_features}.")
        check_feature_names(self, enc, op)
        return enc

    def _run(self, enc: EncryptedFeatures, stages: list[Any], op: str,
             refresh: Callable | None = None, n_jobs: int = 1) -> list[EncryptedVector]:
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or not 1 <= n_jobs <= 64:
            raise ParameterError(f"n_jobs must be an integer in [1, 64]; got {n_jobs!r}.")
        ctx = enc.context
        if ctx.name == "paillier" or ctx.name == "bfv":
            if not self.is_linear or stages is not self._stages:
                raise UnsupportedOperationError(
                    f"{op}: this model is not a single affine map (it has {self.depth} levels of "
                    f"multiplications / activations); only linear models run on {ctx.name}. Use "
                    f"model.context('ckks').")
            return self._run_linear_generic(enc, stages)
        need = sum(s.depth for s in stages)
        have = min(v.level for v in enc.vectors)
        if need > have and refresh is None:
            raise DepthExhaustedError(
                f"{op} needs {need} multiplicative levels; the encrypted features have {have}. Build the "
                f"key holder's context with model.context() (it plans exactly this depth), or pass "
                f"refresh=ClientAidedRefresh(ctx) to refresh between layers (interactive).")
        widest = max([enc.n_features] + [s.matrix.shape[0] for s in stages if isinstance(s, _LinearStage)])
        ct_bytes = 2 * ctx.poly_modulus_degree * 8 * (len(ctx.coeff_mod_bit_sizes) - 1)
        need_bytes = widest * len(enc.vectors[0].chunks) * ct_bytes
        if need_bytes > MAX_STAGE_BYTES:
            raise ParameterError(
                f"{op}: the widest stage has {widest} neurons x {len(enc.vectors[0].chunks)} ciphertext(s) of "
                f"{ct_bytes / 1e6:.1f} MB = {need_bytes / 2**30:.1f} GiB, above the {MAX_STAGE_BYTES / 2**30:.0f} GiB "
                f"limit of the throughput layout. Encrypt fewer samples per call (at most slot_count="
                f"{ctx.slot_count} per ciphertext) or use the latency layout (he_ml.ml.latency).")
        vectors = list(enc.vectors)
        i = 0
        while i < len(stages):
            s = stages[i]
            if refresh is not None and min(v.level for v in vectors) < s.depth:
                vectors = [refresh(v) for v in vectors]
            if isinstance(s, _LinearStage):
                nxt = stages[i + 1] if i + 1 < len(stages) else None
                fuse = isinstance(nxt, _ActivationStage) and nxt.activation.kind != "identity" and (
                    refresh is None or min(v.level for v in vectors) >= s.depth + nxt.depth)
                post = (lambda v, a=nxt.activation: self._activate(a, v)) if fuse else None
                vectors = _linear_stage(ctx, vectors, s, n_jobs, post)
                i += 2 if fuse else 1
                continue
            else:
                # in place: each neuron's input is released as soon as its output exists, so an
                # activation stage needs memory for one stage of ciphertexts, not two
                vectors = list(vectors)
                for k in range(len(vectors)):
                    vectors[k] = self._activate(s.activation, vectors[k])
                i += 1
        return vectors

    @staticmethod
    def _activate(a: Activation, v: EncryptedVector) -> EncryptedVector:
        if a.kind == "identity":
            return v
        if a.kind != "square":
            v = _within_interval(a, v)
        out = v * v if a.kind == "square" else a.poly.evaluate(v)
        if v.context.name == "ckks":  # products keep a 3-polynomial buffer: re-allocate at 2
            from ..schemes.ckks_linear import compact
            out = compact(v.context, out)
        return out

    def _run_linear_generic(self, enc: EncryptedFeatures, stages: list[Any]) -> list[EncryptedVector]:
        """BFV (integer weights, exact) and Paillier: ``sum_j w_j x_j + b`` with vector operations."""
        ctx = enc.context
        if not stages:
            return list(enc.vectors)
        s = stages[0]
        W = s.matrix.toarray()
        if ctx.name == "bfv":
            wb = self._bfv_weight_bits(enc)
            frac = enc.fixed_point_bits + wb
            self._check_bfv_range(enc, wb)
            Wq = np.rint(W * float(1 << wb)).astype(np.int64)
            bq = [int(round(float(b) * 2.0 ** frac)) for b in s.bias]
            outs = _multiply_accumulate(enc.vectors, Wq, bq, int)
            for acc in outs:
                acc.meta["fixed_point_bits"] = frac
            return outs
        return _multiply_accumulate(enc.vectors, W, [float(b) for b in s.bias], float)

    def _bfv_weight_bits(self, enc: EncryptedFeatures) -> int:
        if self.bfv_weight_bits_ is not None:
            return self.bfv_weight_bits_
        W = abs(self._stages[0].matrix).max() if self._stages else 1.0
        return int(np.clip(20 - math.ceil(math.log2(max(float(W), 1e-12))), 0, 30))

    def _check_bfv_range(self, enc: EncryptedFeatures, wb: int) -> None:
        """Refuse (before computing) a BFV evaluation whose integers could wrap modulo t."""
        if "linear_bound" not in self.calibration_:
            return
        t_bits = enc.context.parameters.get("plain_modulus_bits") or 0
        bound = self.calibration_["linear_bound"] * VALUE_MARGIN * 2.0 ** (enc.fixed_point_bits + wb)
        if t_bits and bound >= 2.0 ** (t_bits - 1):
            # the context carries the features' encoding: the largest that fits this t
            f_max = math.ceil(t_bits - 1 - math.log2(self.calibration_["linear_bound"] * VALUE_MARGIN) - wb) - 1
            fewer = (f" or a BFV context with at most {f_max} fixed_point_bits (he_ml.BFV(..., "
                     f"plain_modulus_bits={t_bits}, fixed_point_bits={f_max}))" if f_max >= 0 else "")
            raise ParameterError(
                f"bfv: scores up to {self.calibration_['linear_bound']:.3g} at {enc.fixed_point_bits} + {wb} "
                f"fractional bits need integers up to {bound:.3g}, beyond the plain modulus (t ~ 2^{t_bits}); "
                f"they would wrap. Use model.context('bfv') (it sizes t and the encoding){fewer}.")

    def _outputs(self, vectors: list[EncryptedVector]) -> EncryptedVector:
        if len(vectors) == 1:
            return vectors[0]
        return stack_columns(vectors)

    def decision_function(self, enc: EncryptedFeatures, *, refresh: Callable | None = None,
                          n_jobs: int = 1) -> EncryptedVector:
        """Encrypted decision scores of a classifier (logits for networks), batched over samples.

        Parameters
        ----------
        enc : EncryptedFeatures
            ``encrypt_features(ctx, X)`` with X of shape (n, d) or (n, c, h, w); a public context
            is enough to run this.
        refresh : callable, optional
            Client-aided refresh (e.g. :class:`~he_ml.ml.ClientAidedRefresh` at the key holder):
            called on a neuron's vector whenever the next stage needs more levels than are left.
            Explicit opt-in: the key holder then sees the intermediate activations.
        n_jobs : int, default 1
            Processes for the linear stages with many products per output neuron (CKKS): the
            output neurons are split between this process and ``n_jobs - 1`` forked workers,
            which share the inputs copy-on-write and return their outputs as bytes. SEAL keeps
            the GIL, so threads would not help (see the module notes).

        Returns
        -------
        EncryptedVector
            Decrypts to shape (n,) for a binary classifier (positive: ``classes_[1]``) and
            (n, n_classes) for a multiclass one. Probabilities are computed by the client from the
            decrypted scores (`proba_from_scores`: softmax/sigmoid is exact there).

        Raises
        ------
        DepthExhaustedError
            If the context has fewer than `depth` levels (use `context`).
        UnsupportedOperationError
            A network on BFV or Paillier.
        ShapeMismatchError
            Wrong number of input features.
        """
        if self.ir.task == "regression":
            raise UnsupportedOperationError(
                "decision_function is for classifiers; this model is a regressor: call predict(enc).")
        enc = self._check_features(enc, "decision_function")
        return self._outputs(self._run(enc, self._stages, "decision_function", refresh, n_jobs))

    def predict(self, enc: EncryptedFeatures, *, refresh: Callable | None = None, n_jobs: int = 1) -> Any:
        """Regressors: encrypted predictions ((n,) or (n, n_outputs)). Classifiers: class labels.

        For a classifier this decrypts (it needs the secret key) and returns ``classes_`` labels;
        on a server call `decision_function` and let the key holder call `predict_from_scores`.
        """
        enc = self._check_features(enc, "predict")
        if self.ir.task != "regression":
            if not enc.context.has_secret_key:
                raise SecretKeyMissingError(
                    "predict on a classifier decrypts the scores, which needs the secret key. On the server "
                    "call decision_function(enc); the key holder calls model.predict_from_scores(ctx.decrypt(s)).")
            return self.predict_from_scores(enc.context.decrypt(
                self.decision_function(enc, refresh=refresh, n_jobs=n_jobs)))
        return self._outputs(self._run(enc, self._stages, "predict", refresh, n_jobs))

    def predict_from_scores(self, scores: Any) -> np.ndarray:
        """Class labels from decrypted scores (client side): threshold 0 (binary) or argmax."""
        s = np.asarray(scores, dtype=np.float64)
        if self.ir.task == "regression":
            raise UnsupportedOperationError("predict_from_scores is for classifiers; a regressor's "
                                            "decrypted predict output is already the prediction.")
        if self.ir.task == "binary":
            return self.classes_[(s.reshape(-1) > 0).astype(int)]
        if s.ndim != 2 or s.shape[1] != len(self.classes_):
            raise ShapeMismatchError(f"scores must have shape (n, {len(self.classes_)}); got {s.shape}.")
        return self.classes_[np.argmax(s, axis=1)]

    def proba_from_scores(self, scores: Any) -> np.ndarray:
        """Class probabilities from decrypted scores, computed exactly on the client.

        Binary: ``[1 - sigmoid(s), sigmoid(s)]``; multiclass: softmax of the logits (multinomial
        models, networks) or normalized one-vs-rest sigmoids (OvR logistic regression), matching
        scikit-learn's ``predict_proba`` of the source estimator.
        """
        from scipy.special import expit, softmax
        s = np.asarray(scores, dtype=np.float64)
        if self.ir.proba is None:
            raise UnsupportedOperationError(
                f"the source model ({self.ir.source}) has no probabilities (scikit-learn has no "
                f"predict_proba for it); use decision scores.")
        if self.ir.task == "binary":
            p = expit(s.reshape(-1))
            return np.stack([1 - p, p], axis=1)
        if self.ir.proba == "ovr":
            p = expit(s)
            return p / p.sum(axis=1, keepdims=True)
        return softmax(s, axis=1)

    def _get_proba_stages(self) -> list[Any]:
        if self._proba_stages is None:
            if self.ir.task != "binary" or self.ir.proba is None:
                raise UnsupportedOperationError(
                    "encrypted predict_proba exists for binary classifiers with probabilities; for "
                    "multiclass models decrypt decision_function's logits and call "
                    "model.proba_from_scores(scores) on the client (softmax is exact there).")
            if "logit_range" not in self.calibration_:
                if self._X_cal is None:
                    raise NotFittedError("predict_proba needs the logit range: build the model with "
                                         "X_calibration=X or call calibrate(X).")
                s = self.plain_scores(self._X_cal)
                self.calibration_["logit_range"] = max(float(np.max(np.abs(s))) * INTERVAL_MARGIN, 1e-3)
            R = self.calibration_["logit_range"]
            from .polynomial import approximate
            from .activations import sigmoid

            def g(t, R=R):
                return sigmoid(R * np.asarray(t, dtype=np.float64))
            g.__name__ = "sigmoid(R*t)"
            act = Activation("approximated", "sigmoid", poly=approximate(g, PROBA_SIGMOID_DEGREE, (-1.0, 1.0)),
                             interval=(-R, R))
            self._proba_stages = _lower(self.ir, final_scale=1.0 / R) + [_ActivationStage(act)]
        return self._proba_stages

    def predict_proba(self, enc: EncryptedFeatures, *, refresh: Callable | None = None,
                      n_jobs: int = 1) -> EncryptedVector:
        """Encrypted class probabilities of a binary classifier: decrypts to (n, 2).

        Column 1 is P(``classes_[1]``), computed on the server by a degree-15 minimax polynomial (depth 4) of
        the sigmoid on the calibrated logit range (scores scaled into [-1, 1] for free), column 0
        is ``1 - column 1``. Costs `predict_proba_depth` levels (``model.context(proba=True)``).
        Multiclass: decrypt `decision_function` and call `proba_from_scores` (client-side softmax).
        """
        enc = self._check_features(enc, "predict_proba")
        if enc.context.name != "ckks":
            raise UnsupportedOperationError(
                f"predict_proba evaluates a polynomial sigmoid, which needs CKKS; on {enc.context.name} "
                f"decrypt decision_function's scores and call model.proba_from_scores(scores).")
        stages = self._get_proba_stages()
        p = self._run(enc, stages, "predict_proba", refresh, n_jobs)[0]
        return stack_columns([1.0 - p, p])

    # ------------------------------------------------------------------ error report
    def error_report(self, X: Any = None, *, context: SchemeContext | None = None,
                     encrypted: bool = True) -> ErrorReport:
        """Per-layer approximation error and the total plaintext-vs-encrypted error on ``X``.

        Parameters
        ----------
        X : array, optional
            Plaintext data (default: the calibration data).
        context : SchemeContext, optional
            Key holder's context for the encrypted run (default: ``self.context()``).
        encrypted : bool, default True
            Also encrypt ``X``, run `decision_function`/`predict` and decrypt.
        """
        X = self._X_cal if X is None else self._check_plain(X, "error_report")
        if X is None:
            raise NotFittedError("error_report needs data: pass X or build the model with X_calibration.")
        layers = []
        x = X.reshape(X.shape[0], -1)
        for s in self._stages:
            if isinstance(s, _LinearStage):
                x = (s.matrix @ x.T).T + s.bias
                continue
            a = s.activation
            if a.kind == "approximated":
                mid, half = a.normalization
                raw = mid + half * x
                err = float(np.max(np.abs(a.poly(x) - a.exact(raw)))) if x.size else 0.0
                layers.append({"name": a.name, "interval": a.interval, "degree": a.poly.degree,
                               "max_error": float(a.poly.max_error), "measured_error": err,
                               "outside_interval": float(np.mean(np.abs(x) > 1.0))})
                x = a.poly(x)
            else:
                x = a.twin(x)
        twin = self.plain_scores(X)
        src = self.plain_scores(X, exact=True)
        rep = ErrorReport(layers, float(np.max(np.abs(twin - src))))
        classifier = self.ir.task != "regression"
        if classifier:
            rep.twin_agreement = float(np.mean(self.predict_from_scores(twin) == self.predict_from_scores(src)))
        if encrypted:
            ctx = context if context is not None else self.context()
            enc = encrypt_features(ctx, X)
            t0 = time.perf_counter()
            out = self.decision_function(enc) if classifier else self.predict(enc)
            rep.seconds = time.perf_counter() - t0
            dec = ctx.decrypt(out)
            rep.encrypted_vs_twin = float(np.max(np.abs(dec - twin)))
            rep.encrypted_vs_source = float(np.max(np.abs(dec - src)))
            if classifier:
                rep.agreement = float(np.mean(self.predict_from_scores(dec) == self.predict_from_scores(src)))
        return rep


def _multiply_accumulate(vectors: list, W: np.ndarray, bias: list, cast: Callable) -> list:
    """``out[o] = sum_j W[o, j] * vectors[j] + bias[o]`` with plaintext scalars (zero weights skipped)."""
    outs = []
    for o in range(W.shape[0]):
        acc = None
        for j in np.flatnonzero(W[o]):
            term = vectors[j] * cast(W[o, j])
            acc = term if acc is None else acc + term
        if acc is None:
            acc = vectors[0] * cast(0)
        outs.append(acc + bias[o])
    return outs
