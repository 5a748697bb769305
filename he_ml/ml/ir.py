r"""One small model IR shared by every converter and every interpreter.

Converters (:func:`he_ml.ml.from_sklearn`, :func:`he_ml.ml.from_torch`) lower a fitted model
*once* into a :class:`ModelIR`: a tuple of frozen layer records with numpy ``float64``
parameters.  Everything else reads the IR, never the original model:

* :func:`run_plain` — the plaintext numpy interpreter.  With ``exact=False`` it is the
  *float twin* of the encrypted computation (activations evaluated by the very polynomial
  plans the encrypted interpreter runs); with ``exact=True`` it evaluates the original
  activations (ReLU, tanh, ...) and so reproduces the source model.  Every encrypted test
  compares against it.
* the encrypted interpreters (throughput layout in :mod:`he_ml.ml.model`, latency layout in
  :mod:`he_ml.ml.latency`);
* depth, context planning and error reports.

Shapes
------
A sample is an array of ``input_shape``: ``(d,)`` for tabular data, ``(c, h, w)`` for images.
Inside the IR every value is also addressed by its **flat index in C order** of its shape,
which is how the throughput layout stores it (one encrypted vector per flat index) and how
:func:`to_dense` numbers rows and columns.  :class:`Dense` always reads the flattened input
(an explicit :class:`Flatten` is optional; it is a no-op on the flat representation).

Layer records
-------------
:class:`Dense`, :class:`Conv2d`, :class:`AvgPool2d`, :class:`Flatten` are linear (affine);
:class:`Activation` is element-wise.  Affine pre-processing (scikit-learn scalers, batch norm)
is folded into the weights by the converters, so the IR never holds it.

This module imports only numpy (no torch, no scheme); it is safe to import anywhere.

Example
-------
>>> import numpy as np
>>> from he_ml.ml.ir import Dense, Activation, ModelIR, run_plain
>>> ir = ModelIR(layers=(Dense(np.eye(2), np.zeros(2)), Activation.square()),
...              input_shape=(2,), task="regression")
>>> run_plain(ir, np.array([[1.0, -3.0]])).tolist()
[[1.0, 9.0]]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import numpy as np

from ..errors import ParameterError, ShapeMismatchError

__all__ = [
    "Dense", "Conv2d", "AvgPool2d", "Flatten", "Activation", "Layer", "ModelIR",
    "LINEAR_LAYERS", "TASKS", "run_plain", "to_dense", "output_shape", "layer_shapes",
    "ACTIVATION_KINDS", "apply_linear_plain", "conv2d_plain", "avgpool2d_plain", "fuse_linear",
    "to_sparse", "MAX_LAYER_NONZEROS",
]

#: Model tasks: what the outputs mean and how the client maps them to predictions.
TASKS = ("binary", "multiclass", "regression")

#: Activation kinds. "identity", "square" and "polynomial" are exact (the encrypted model computes
#: the same function as the source model up to CKKS noise); "approximated" replaces a non-polynomial
#: function (relu, tanh, sigmoid, gelu) by a polynomial on a calibrated interval.
ACTIVATION_KINDS = ("identity", "square", "polynomial", "approximated")


def _f64(a: Any, ndim: int, what: str) -> np.ndarray:
    arr = np.array(a, dtype=np.float64)  # copy: the record owns its parameters
    if arr.ndim != ndim:
        raise ShapeMismatchError(f"{what} must be {ndim}-D; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{what} must be finite; it holds NaN or inf.")
    arr.setflags(write=False)
    return arr


def _pair(v: Any, what: str, minimum: int) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be an int or a pair of ints; got {v!r}.") from None
    if a < minimum or b < minimum:
        raise ParameterError(f"{what} must be >= {minimum}; got {(a, b)}.")
    return a, b


def _shape3(s: Any, what: str) -> tuple[int, int, int]:
    t = tuple(int(x) for x in s)
    if len(t) != 3 or min(t) < 1:
        raise ShapeMismatchError(f"{what} must be a (channels, height, width) of positive ints; got {s!r}.")
    return t  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Dense:
    """Affine layer ``y = W x + b`` on the flattened input.

    Attributes
    ----------
    weight : ndarray (out_features, in_features)
    bias : ndarray (out_features,)
    """

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        w = _f64(self.weight, 2, "Dense weight")
        b = _f64(self.bias, 1, "Dense bias")
        if b.shape[0] != w.shape[0]:
            raise ShapeMismatchError(f"Dense bias must have {w.shape[0]} entries (one per output); got {b.shape[0]}.")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True, eq=False)
class Conv2d:
    """2-D cross-correlation (PyTorch ``nn.Conv2d`` semantics, ``groups=1``, zero padding).

    Attributes
    ----------
    weight : ndarray (out_channels, in_channels, kh, kw)
    bias : ndarray (out_channels,)
    stride, padding : (int, int)
    input_shape : (c, h, w)
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    input_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        w = _f64(self.weight, 4, "Conv2d weight")
        b = _f64(self.bias, 1, "Conv2d bias")
        if b.shape[0] != w.shape[0]:
            raise ShapeMismatchError(f"Conv2d bias must have {w.shape[0]} entries; got {b.shape[0]}.")
        ins = _shape3(self.input_shape, "Conv2d input_shape")
        if ins[0] != w.shape[1]:
            raise ShapeMismatchError(
                f"Conv2d weight expects {w.shape[1]} input channels; input_shape {ins} has {ins[0]}.")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "Conv2d padding", 0))
        object.__setattr__(self, "input_shape", ins)
        oh, ow = self.output_shape[1:]
        if oh < 1 or ow < 1:
            raise ShapeMismatchError(
                f"Conv2d kernel {w.shape[2:]} with padding {self.padding} does not fit input {ins}.")

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def output_shape(self) -> tuple[int, int, int]:
        _, h, w = self.input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return int(self.weight.shape[0]), (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """Average pooling (PyTorch ``nn.AvgPool2d`` semantics with ``ceil_mode=False``).

    Attributes
    ----------
    kernel, stride, padding : (int, int)
    input_shape : (c, h, w)
    count_include_pad : bool
        True (PyTorch's default): every window divides by ``kh * kw``; False: by the number of
        non-padding inputs in the window.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    input_shape: tuple[int, int, int]
    count_include_pad: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "AvgPool2d kernel", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "AvgPool2d stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "AvgPool2d padding", 0))
        object.__setattr__(self, "input_shape", _shape3(self.input_shape, "AvgPool2d input_shape"))
        if self.padding[0] * 2 > self.kernel[0] or self.padding[1] * 2 > self.kernel[1]:
            raise ParameterError(f"AvgPool2d padding must be at most half the kernel; got padding "
                                 f"{self.padding} for kernel {self.kernel}.")
        if min(self.output_shape) < 1:
            raise ShapeMismatchError(f"AvgPool2d kernel {self.kernel} does not fit input {self.input_shape}.")

    @property
    def output_shape(self) -> tuple[int, int, int]:
        c, h, w = self.input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


@dataclass(frozen=True, eq=False)
class Flatten:
    """Reshape ``input_shape`` to ``(prod(input_shape),)`` in C order (free: no computation)."""

    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        t = tuple(int(x) for x in self.input_shape)
        if not t or min(t) < 1:
            raise ShapeMismatchError(f"Flatten input_shape must be positive ints; got {self.input_shape!r}.")
        object.__setattr__(self, "input_shape", t)

    @property
    def output_shape(self) -> tuple[int]:
        return (int(np.prod(self.input_shape)),)


@dataclass(frozen=True, eq=False)
class Activation:
    """Element-wise activation.

    Attributes
    ----------
    kind : {"identity", "square", "polynomial", "approximated"}
        See :data:`ACTIVATION_KINDS`.
    name : str
        The source function: "identity", "square", "polynomial" (trained coefficients, e.g.
        ``he_ml.ml.torch.PolyActivation``) or a registry name of :mod:`he_ml.ml.activations`
        ("relu", "tanh", "sigmoid", "gelu") for "approximated".
    poly : PolynomialApproximation or None
        What the encrypted interpreter evaluates; None for "identity" and "square" (``x * x``,
        one level). "polynomial": ``poly`` is a polynomial in ``x`` on ``interval``.
        "approximated": ``poly`` is fitted on the **normalized** variable
        ``t = (x - mid) / half`` in [-1, 1] (``mid``, ``half`` = `normalization`), i.e. it
        approximates ``t -> f(mid + half * t)``; an interpreter folds ``(x - mid) / half`` into
        the previous linear layer (free) so the polynomial runs at minimal depth with no noise
        amplification.
    interval : (float, float) or None
        Calibrated input interval ``[a, b]`` (with margin) the polynomial is valid on.
    coefficients : ndarray or None
        "polynomial": the exact power-basis coefficients, lowest degree first.
    """

    kind: str
    name: str
    poly: Any = None
    interval: tuple[float, float] | None = None
    coefficients: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATION_KINDS:
            raise ParameterError(f"Activation kind must be one of {ACTIVATION_KINDS}; got {self.kind!r}.")
        if self.kind in ("polynomial", "approximated") and self.poly is None:
            raise ParameterError(f"an {self.kind!r} Activation needs its polynomial (poly=...).")
        if self.kind == "polynomial":
            if self.coefficients is None:
                raise ParameterError("a 'polynomial' Activation needs its exact coefficients.")
            object.__setattr__(self, "coefficients", _f64(self.coefficients, 1, "polynomial coefficients"))
        if self.interval is not None:
            lo, hi = (float(v) for v in self.interval)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ParameterError(f"Activation interval must be finite with a < b; got {self.interval!r}.")
            object.__setattr__(self, "interval", (lo, hi))
        elif self.kind == "approximated":
            raise ParameterError("an 'approximated' Activation needs its calibrated interval.")

    @property
    def normalization(self) -> tuple[float, float]:
        """``(mid, half)`` of `interval`: an "approximated" poly reads ``t = (x - mid) / half``."""
        if self.interval is None:
            return 0.0, 1.0
        lo, hi = self.interval
        return 0.5 * (lo + hi), 0.5 * (hi - lo)

    @classmethod
    def identity(cls) -> "Activation":
        return cls("identity", "identity")

    @classmethod
    def square(cls) -> "Activation":
        return cls("square", "square")

    @property
    def depth(self) -> int:
        """Multiplicative levels the encrypted evaluation of this activation consumes."""
        if self.kind == "identity":
            return 0
        if self.kind == "square":
            return 1
        return int(self.poly.depth)

    @property
    def max_error(self) -> float:
        """Measured polynomial error on ``interval`` (0 for the exact kinds)."""
        return float(self.poly.max_error) if self.kind == "approximated" else 0.0

    def exact(self, x: np.ndarray) -> np.ndarray:
        """The source model's activation (what the polynomial approximates)."""
        if self.kind == "identity":
            return x
        if self.kind == "square":
            return x * x
        if self.kind == "polynomial":
            return np.polynomial.polynomial.polyval(x, self.coefficients)
        from .activations import get_activation
        return get_activation(self.name)(x)

    def twin(self, x: np.ndarray) -> np.ndarray:
        """What the encrypted interpreter computes (the polynomial, by its evaluation plan)."""
        if self.kind == "identity":
            return x
        if self.kind == "square":
            return x * x
        if self.kind == "approximated":
            mid, half = self.normalization
            x = (x - mid) / half
        return np.asarray(self.poly(x), dtype=np.float64)


Layer = Union[Dense, Conv2d, AvgPool2d, Flatten, Activation]
LINEAR_LAYERS = (Dense, Conv2d, AvgPool2d, Flatten)


@dataclass(frozen=True, eq=False)
class ModelIR:
    """A lowered model: layer records plus what its outputs mean.

    Attributes
    ----------
    layers : tuple of Layer
    input_shape : tuple of int
        One sample: ``(d,)`` or ``(c, h, w)``.
    task : {"binary", "multiclass", "regression"}
        "binary": one output, the decision score (positive -> ``classes_[1]``);
        "multiclass": one logit/score per class (argmax -> class);
        "regression": the outputs are the prediction.
    classes_ : ndarray or None
        Class labels (classifiers), in output order.
    source : str
        Human-readable origin, e.g. "sklearn Pipeline(StandardScaler, LogisticRegression)".
    proba : {"sigmoid", "softmax", "ovr"} or None
        How the client turns decrypted scores into probabilities (scikit-learn's rule for the
        source estimator); None if the source model has no probabilities.
    calibration : dict
        Converter-recorded facts about the calibration data, e.g. ``"input_abs_max"`` and per-layer
        ``"abs_max"`` (largest magnitude after every layer, from the float twin).
    """

    layers: tuple
    input_shape: tuple
    task: str
    classes_: np.ndarray | None = None
    source: str = ""
    proba: str | None = None
    calibration: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if self.task not in TASKS:
            raise ParameterError(f"task must be one of {TASKS}; got {self.task!r}.")
        if not self.layers:
            raise ParameterError("a ModelIR needs at least one layer.")
        layer_shapes(self)  # validates the chain of shapes
        out = int(np.prod(self.output_shape))
        if self.task == "binary" and out != 1:
            raise ShapeMismatchError(f"a binary model must have 1 output; this one has {out}.")
        if self.task == "multiclass" and (self.classes_ is None or len(self.classes_) != out):
            raise ShapeMismatchError(f"a multiclass model needs one output per class; "
                                     f"{out} outputs, classes_={self.classes_!r}.")

    @property
    def output_shape(self) -> tuple[int, ...]:
        return layer_shapes(self)[-1][1]

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def is_linear(self) -> bool:
        """True if every layer is affine or an identity activation (the model is one affine map)."""
        return all(isinstance(l, LINEAR_LAYERS) or (isinstance(l, Activation) and l.kind == "identity")
                   for l in self.layers)


def output_shape(layer: Layer, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one sample after ``layer`` given its input shape (validates the match)."""
    size = int(np.prod(input_shape))
    if isinstance(layer, Dense):
        if size != layer.in_features:
            raise ShapeMismatchError(
                f"Dense layer expects {layer.in_features} inputs; the previous layer gives {size} "
                f"(shape {tuple(input_shape)}).")
        return (layer.out_features,)
    if isinstance(layer, (Conv2d, AvgPool2d)):
        if tuple(input_shape) != layer.input_shape and not (
                len(input_shape) == 1 and size == int(np.prod(layer.input_shape))):
            raise ShapeMismatchError(f"{type(layer).__name__} expects input {layer.input_shape}; "
                                     f"got {tuple(input_shape)}.")
        return layer.output_shape
    if isinstance(layer, Flatten):
        if size != int(np.prod(layer.input_shape)):
            raise ShapeMismatchError(f"Flatten expects {layer.input_shape}; got {tuple(input_shape)}.")
        return (size,)
    if isinstance(layer, Activation):
        return tuple(input_shape)
    raise ParameterError(f"not an IR layer: {type(layer).__name__}.")


def layer_shapes(ir: ModelIR) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``[(input_shape, output_shape)]`` of every layer of ``ir``, in order."""
    shapes, s = [], tuple(ir.input_shape)
    for layer in ir.layers:
        o = output_shape(layer, s)
        shapes.append((s, o))
        s = o
    return shapes


# ---------------------------------------------------------------------------------- numpy kernels
def conv2d_plain(x: np.ndarray, layer: Conv2d) -> np.ndarray:
    """``x`` (n, c, h, w) -> (n, oc, oh, ow), the same cross-correlation as ``torch.nn.functional.conv2d``."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    _, oh, ow = layer.output_shape
    win = win[:, :, :oh, :ow]
    return np.einsum("nchwij,ocij->nohw", win, layer.weight, optimize=True) + layer.bias[None, :, None, None]


def avgpool2d_plain(x: np.ndarray, layer: AvgPool2d) -> np.ndarray:
    """``x`` (n, c, h, w) -> (n, c, oh, ow), ``torch.nn.functional.avg_pool2d`` semantics."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    _, oh, ow = layer.output_shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    s = win.sum(axis=(-1, -2))
    return s / _pool_divisors(layer)[None, None]


def _pool_divisors(layer: AvgPool2d) -> np.ndarray:
    """(oh, ow) divisor of every pooling window."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    _, h, w = layer.input_shape
    _, oh, ow = layer.output_shape
    if layer.count_include_pad:
        return np.full((oh, ow), float(kh * kw))
    rows = np.array([min(i * sh - ph + kh, h) - max(i * sh - ph, 0) for i in range(oh)], dtype=np.float64)
    cols = np.array([min(j * sw - pw + kw, w) - max(j * sw - pw, 0) for j in range(ow)], dtype=np.float64)
    return rows[:, None] * cols[None, :]


def apply_linear_plain(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Apply a linear layer to a batch ``x`` of shape (n, *input_shape) (or flat (n, size))."""
    n = x.shape[0]
    if isinstance(layer, Dense):
        return x.reshape(n, -1) @ layer.weight.T + layer.bias
    if isinstance(layer, Conv2d):
        return conv2d_plain(x.reshape((n,) + layer.input_shape), layer)
    if isinstance(layer, AvgPool2d):
        return avgpool2d_plain(x.reshape((n,) + layer.input_shape), layer)
    if isinstance(layer, Flatten):
        return x.reshape(n, -1)
    raise ParameterError(f"not a linear IR layer: {type(layer).__name__}.")


def run_plain(ir: ModelIR, X: Any, *, exact: bool = False,
              observe: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Plaintext numpy interpreter of ``ir``.

    Parameters
    ----------
    ir : ModelIR
    X : array (n, *ir.input_shape) or (n, prod(input_shape))
    exact : bool, default False
        False: activations by their polynomials (the float twin of the encrypted model);
        True: the source activations (reproduces the source model).
    observe : callable(layer_index, values), optional
        Called with the batch after every layer (used by converters to calibrate intervals).

    Returns
    -------
    ndarray (n, n_outputs); for "binary" (n, 1).
    """
    x = np.asarray(X, dtype=np.float64)
    if x.ndim < 2 or x[0].size != ir.n_inputs:
        raise ShapeMismatchError(f"X must have shape (n, {', '.join(map(str, ir.input_shape))}) "
                                 f"or (n, {ir.n_inputs}); got {x.shape}.")
    x = x.reshape((x.shape[0],) + ir.input_shape)
    for i, layer in enumerate(ir.layers):
        if isinstance(layer, Activation):
            x = layer.exact(x) if exact else layer.twin(x)
        else:
            x = apply_linear_plain(layer, x)
        if observe is not None:
            observe(i, x)
    return x.reshape(x.shape[0], -1)


#: Largest number of non-zero weights `to_sparse` builds for one layer (about 1.6 GB of COO data).
MAX_LAYER_NONZEROS = 100_000_000


def _window_entries(out_shape: tuple[int, int, int], in_shape: tuple[int, int, int],
                    kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
    """Index arrays (i, j, u, v, r, s) of every kernel tap that lands inside the input."""
    _, oh, ow = out_shape
    _, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    i, j, u, v = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw), indexing="ij")
    r, s = i * sh - ph + u, j * sw - pw + v
    ok = (r >= 0) & (r < h) & (s >= 0) & (s < w)
    return i[ok], j[ok], u[ok], v[ok], r[ok], s[ok]


def to_sparse(layer: Layer):
    """Like `to_dense`, as a ``scipy.sparse.csr_matrix`` (only the non-zero taps are stored).

    Raises
    ------
    ParameterError
        For an Activation, or a layer with more than `MAX_LAYER_NONZEROS` weights.
    """
    from scipy import sparse
    if isinstance(layer, Dense):
        return sparse.csr_matrix(layer.weight), np.array(layer.bias)
    if isinstance(layer, Flatten):
        n = int(np.prod(layer.input_shape))
        return sparse.identity(n, format="csr"), np.zeros(n)
    if isinstance(layer, (Conv2d, AvgPool2d)):
        c, h, w = layer.input_shape
        oc, oh, ow = layer.output_shape
        i, j, u, v, r, s = _window_entries(layer.output_shape, layer.input_shape, layer.kernel,
                                           layer.stride, layer.padding)
        taps = i.size
        if isinstance(layer, Conv2d):
            nnz = taps * oc * c
            if nnz > MAX_LAYER_NONZEROS:
                raise ParameterError(f"Conv2d with {nnz} weight taps exceeds the limit {MAX_LAYER_NONZEROS}.")
            o_idx, ch = np.meshgrid(np.arange(oc), np.arange(c), indexing="ij")
            o_idx, ch = o_idx.reshape(-1, 1), ch.reshape(-1, 1)
            rows = (o_idx * oh + i) * ow + j
            cols = (ch * h + r) * w + s
            vals = layer.weight[o_idx, ch, u, v]
            b = np.repeat(layer.bias, oh * ow)
        else:
            nnz = taps * c
            if nnz > MAX_LAYER_NONZEROS:
                raise ParameterError(f"AvgPool2d with {nnz} taps exceeds the limit {MAX_LAYER_NONZEROS}.")
            ch = np.arange(c).reshape(-1, 1)
            rows = (ch * oh + i) * ow + j
            cols = (ch * h + r) * w + s
            vals = np.broadcast_to(1.0 / _pool_divisors(layer)[i, j], rows.shape)
            b = np.zeros(c * oh * ow)
        m = sparse.csr_matrix((np.ravel(vals), (np.ravel(rows), np.ravel(cols))),
                              shape=(oc * oh * ow, c * h * w))
        return m, b
    raise ParameterError(f"to_sparse needs a linear layer (Dense, Conv2d, AvgPool2d, Flatten); "
                         f"got {type(layer).__name__}.")


def to_dense(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent dense matrix of a linear layer on C-order flattened inputs.

    Returns
    -------
    W : ndarray (out_size, in_size)
    b : ndarray (out_size,)
        So that ``layer(x).ravel() == W @ x.ravel() + b`` for one sample.

    Raises
    ------
    ParameterError
        If ``layer`` is an Activation (not linear).
    """
    if isinstance(layer, Activation):
        raise ParameterError("to_dense needs a linear layer (Dense, Conv2d, AvgPool2d, Flatten); "
                             "got Activation.")
    if isinstance(layer, (Conv2d, AvgPool2d)):
        rows, cols = int(np.prod(layer.output_shape)), int(np.prod(layer.input_shape))
        if rows * cols > MAX_LAYER_NONZEROS:
            raise ParameterError(f"the dense form of this {type(layer).__name__} has {rows} x {cols} "
                                 f"entries (> {MAX_LAYER_NONZEROS}); use to_sparse.")
    m, b = to_sparse(layer)
    return m.toarray(), b
    raise ParameterError(f"to_dense needs a linear layer (Dense, Conv2d, AvgPool2d, Flatten); "
                         f"got {type(layer).__name__}.")


def fuse_linear(layers: Sequence[Layer]) -> Dense:
    """Compose consecutive linear layers into one :class:`Dense` (``W = W_k ... W_1``)."""
    W, b = None, None
    for layer in layers:
        Wl, bl = to_dense(layer)
        if W is None:
            W, b = Wl, bl
        else:
            W, b = Wl @ W, Wl @ b + bl
    if W is None:
        raise ParameterError("fuse_linear needs at least one layer.")
    return Dense(W, b)
