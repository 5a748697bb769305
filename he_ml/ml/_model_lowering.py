"""Calibration and lowering of a :class:`~he_ml.ml.ir.ModelIR` for :mod:`he_ml.ml.model`.

One piece of :mod:`he_ml.ml.model`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.model`; import it from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ParameterError
from .ir import Activation, Flatten, ModelIR, to_sparse, LINEAR_LAYERS

#: An approximated activation's interval half-width is this times the largest |input| on calibration.
INTERVAL_MARGIN = 1.2
#: Default polynomial degree per approximated activation (depth ceil(log2(degree + 1)) = 3).
DEFAULT_ACTIVATION_DEGREE = {"relu": 7, "tanh": 7, "sigmoid": 7, "gelu": 7}


# ---------------------------------------------------------------------------- calibration
def build_activation(name: str, pre_values: np.ndarray, degree: int | None = None, *,
                     margin: float = INTERVAL_MARGIN) -> Activation:
    """An "approximated" activation calibrated on the pre-activation values seen.

    The interval is symmetric, ``[-R, R]`` with ``R = margin * max |pre_values|`` (symmetry lets
    the minimax fit zero the wrong-parity coefficients of relu/tanh/sigmoid/gelu), and the
    polynomial is fitted on the normalized variable ``t = x / R`` (see :class:`~he_ml.ml.ir.Activation`).
    """
    from .activations import get_activation
    from .polynomial import approximate
    f = get_activation(name)
    deg = int(degree if degree is not None else DEFAULT_ACTIVATION_DEGREE[name])
    peak = float(np.max(np.abs(pre_values))) if np.size(pre_values) else 0.0
    if not math.isfinite(peak):
        raise ParameterError(f"calibration values before the {name} activation are not finite.")
    R = max(margin * peak, 1e-3)

    def g(t, R=R, f=f):
        return f(R * np.asarray(t, dtype=np.float64))
    g.__name__ = f"{name}(R*t)"
    poly = approximate(g, deg, (-1.0, 1.0))
    return Activation("approximated", name, poly=poly, interval=(-R, R))


def calibrate_layers(layers: Sequence[Any], input_shape: tuple[int, ...], X: np.ndarray | None,
                     degree: int | dict | None = None) -> list[Any]:
    """Replace every ``("approximate", name)`` placeholder by a calibrated :class:`Activation`.

    Walks the layers in order on the float twin of ``X``, so each interval is measured on what the
    encrypted model will actually feed the polynomial (earlier activations already approximated).
    """
    needs = [l for l in layers if isinstance(l, tuple) and l[0] == "approximate"]
    if needs and X is None:
        names = sorted({l[1] for l in needs})
        raise ParameterError(
            f"the model has non-polynomial activations ({', '.join(names)}) which run encrypted as "
            f"polynomials on an interval measured on data: pass X_calibration=X (plaintext samples "
            f"like the training set, shape (n, {', '.join(map(str, input_shape))})).")
    out: list[Any] = []
    x = None if X is None else np.asarray(X, dtype=np.float64).reshape((len(X),) + tuple(input_shape))
    for layer in layers:
        if isinstance(layer, tuple) and layer[0] == "polynomial":
            layer = _polynomial_activation(np.asarray(layer[1], dtype=np.float64), x)
        elif isinstance(layer, tuple):
            name = layer[1]
            d = degree.get(name) if isinstance(degree, dict) else degree
            layer = build_activation(name, x, d)
        out.append(layer)
        if x is not None:
            x = (layer.twin(x) if isinstance(layer, Activation)
                 else _apply_linear(layer, x))
    return out


def _polynomial_activation(c: np.ndarray, x: np.ndarray | None) -> Activation:
    """An exact trained polynomial (e.g. PolyActivation) with its interval measured on ``x``."""
    from .polynomial import PolynomialApproximation
    if c.size < 2 or not np.any(c[1:]):
        raise ParameterError(f"a polynomial activation needs a non-constant polynomial; got coefficients {c}.")
    R = max(INTERVAL_MARGIN * float(np.max(np.abs(x))), 1e-3) if x is not None and x.size else 1.0

    def f(v, c=c):
        return np.polynomial.polynomial.polyval(np.asarray(v, dtype=np.float64), c)
    f.__name__ = "polynomial"
    poly = PolynomialApproximation.from_coefficients(c, (-R, R), f)
    return Activation("polynomial", "polynomial", poly=poly, interval=(-R, R), coefficients=c)


def _apply_linear(layer, x):
    from .ir import apply_linear_plain
    return apply_linear_plain(layer, x)


# ---------------------------------------------------------------------------- lowered stages
@dataclass
class _LinearStage:
    matrix: Any  # scipy.sparse.csr_matrix (out, in)
    bias: np.ndarray

    @property
    def depth(self) -> int:
        return 1


@dataclass
class _ActivationStage:
    activation: Activation

    @property
    def depth(self) -> int:
        return self.activation.depth


def _lower(ir: ModelIR, final_scale: float = 1.0) -> list[Any]:
    """Lower the IR to the program the encrypted interpreter runs.

    * maximal runs of affine layers become one sparse matrix (one level);
    * an approximated activation's normalization ``(x - mid) / half`` is folded into the run
      before it;
    * a quadratic polynomial activation ``a x^2 + b x + c`` becomes ``a (x + s)^2 + k`` with
      ``s = b / 2a``, ``k = c - b^2 / 4a``: ``+ s`` folds into the run before, ``a`` and ``k`` into
      the run after, so it costs one level like ``x * x``; a degree-1 polynomial is affine.
    """
    from scipy import sparse
    from .ir import layer_shapes
    stages: list[Any] = []
    pending: tuple[Any, np.ndarray] | None = None
    identity_pending = True
    widths = [int(np.prod(o)) for _, o in layer_shapes(ir)]
    width = ir.n_inputs

    def ensure_pending():
        nonlocal pending
        if pending is None:
            pending = (sparse.identity(width, format="csr"), np.zeros(width))

    def flush():
        nonlocal pending, identity_pending
        if pending is not None and not identity_pending:
            stages.append(_LinearStage(sparse.csr_matrix(pending[0]), np.asarray(pending[1], dtype=np.float64)))
        pending, identity_pending = None, True

    for li, layer in enumerate(ir.layers):
        if isinstance(layer, LINEAR_LAYERS):
            M, b = to_sparse(layer)
            pending = (M, b) if pending is None else (M @ pending[0], M @ pending[1] + b)
            identity_pending = identity_pending and isinstance(layer, Flatten)
        elif layer.kind == "identity":
            pass
        elif layer.kind == "polynomial" and np.flatnonzero(layer.coefficients).max(initial=0) <= 2:
            c = np.pad(layer.coefficients, (0, 3))[:3]
            ensure_pending()
            identity_pending = False
            if c[2] == 0.0:  # affine
                pending = (pending[0] * c[1], pending[1] * c[1] + c[0])
            else:
                shift, const = c[1] / (2 * c[2]), c[0] - c[1] ** 2 / (4 * c[2])
                pending = (pending[0], pending[1] + shift)
                flush()
                stages.append(_ActivationStage(Activation.square()))
                n = widths[li]
                pending = (sparse.identity(n, format="csr") * c[2], np.full(n, const))
                identity_pending = False
        else:
            if layer.kind == "approximated":
                mid, half = layer.normalization
                ensure_pending()
                pending = (pending[0] / half, (pending[1] - mid) / half)
                identity_pending = False
            flush()
            stages.append(_ActivationStage(layer))
        width = widths[li]
    if final_scale != 1.0:
        ensure_pending()
        pending = (pending[0] * final_scale, pending[1] * final_scale)
        identity_pending = False
    flush()
    for s in stages:
        if isinstance(s, _LinearStage):
            s.matrix.eliminate_zeros()
            s.matrix.sort_indices()
    return stages


def _run_stages_plain(stages: list[Any], x: np.ndarray, observe: Callable | None = None) -> np.ndarray:
    """Float twin of the *lowered* program (what the encrypted interpreter executes)."""
    x = x.reshape(x.shape[0], -1)
    for i, s in enumerate(stages):
        if isinstance(s, _LinearStage):
            if observe is not None:
                observe(i, "partial", (abs(s.matrix) @ np.abs(x).T).T + np.abs(s.bias))
            x = (s.matrix @ x.T).T + s.bias
        else:
            a = s.activation
            x = a.poly(x) if a.kind == "approximated" else a.twin(x)
        if observe is not None:
            observe(i, "out", x)
    return x
