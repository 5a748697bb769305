"""Lowering of IR layers for :mod:`he_ml.ml.latency`: limits, Galois elements, dense matrices.

One piece of :mod:`he_ml.ml.latency`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.latency`; import it from there.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError, ShapeMismatchError, UnsupportedOperationError


#: Largest slot count a latency model may need (n = 32768, the largest supported ring).
MAX_SLOTS = 16384
#: Affine layers above this many weight entries (rows x columns) are refused before allocating
#: (2^24 float64 = 128 MiB).
MAX_DENSE_ENTRIES = 1 << 24
#: Plaintext diagonals of one layer above this many values are refused (2^26 float64 = 512 MiB).
MAX_DIAGONAL_VALUES = 1 << 26
_LINEAR = ("Dense", "Conv2d", "AvgPool2d", "Flatten")


def _next_pow2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


def galois_element(step: int, poly_modulus_degree: int) -> int:
    """SEAL's Galois element of a left rotation by ``step`` slots: ``3^step mod 2n`` (``step > 0``).

    This is ``GaloisTool::get_elt_from_step`` of Microsoft SEAL for CKKS; it lets a caller
    compare a context's ``rotation_steps_available`` (Galois elements) with step lists.
    """
    n = int(poly_modulus_degree)
    s = int(step) % (n // 2)
    if s == 0:
        raise ParameterError(f"rotation step must not be a multiple of the slot count {n // 2}; got {step}.")
    return pow(3, s, 2 * n)


# --------------------------------------------------------------------------------- lowering
def _kind(layer: Any) -> str:
    name = type(layer).__name__
    if name in _LINEAR or name == "Activation":
        return name
    raise UnsupportedOperationError(
        f"latency layout: layer {name} is not a model-IR record; supported: Dense, Conv2d, "
        f"AvgPool2d, Flatten, Activation (convert models with he_ml.ml.from_torch / from_sklearn)."
    )


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _window_geometry(layer: Any) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int],
                                           tuple[int, int], tuple[int, int]]:
    c, h, w = (int(s) for s in layer.input_shape)
    (kh, kw) = (int(layer.weight.shape[2]), int(layer.weight.shape[3])) if _kind(layer) == "Conv2d" \
        else _pair(layer.kernel)
    (sh, sw), (ph, pw) = _pair(layer.stride), _pair(layer.padding)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    oc = int(layer.weight.shape[0]) if _kind(layer) == "Conv2d" else c
    if oh < 1 or ow < 1:
        raise ShapeMismatchError(f"{_kind(layer)}: kernel {(kh, kw)} with padding {(ph, pw)} does not fit "
                                 f"input {(c, h, w)}.")
    return (c, h, w), (oc, oh, ow), (kh, kw), (sh, sw), (ph, pw)


def _layer_in_out(layer: Any, in_size: int) -> int:
    """Output size of a linear layer (checks its input size)."""
    kind = _kind(layer)
    if kind == "Dense":
        w = np.asarray(layer.weight)
        if w.ndim != 2 or w.shape[1] != in_size:
            raise ShapeMismatchError(f"Dense layer expects {w.shape[-1]} inputs; the previous layer gives "
                                     f"{in_size}.")
        return int(w.shape[0])
    if kind == "Flatten":
        size = int(np.prod(layer.input_shape))
        if size != in_size:
            raise ShapeMismatchError(f"Flatten expects {tuple(layer.input_shape)}; got {in_size} values.")
        return size
    ins, outs, *_ = _window_geometry(layer)
    if int(np.prod(ins)) != in_size:
        raise ShapeMismatchError(f"{kind} expects input {ins} ({int(np.prod(ins))} values); the previous "
                                 f"layer gives {in_size}.")
    return int(np.prod(outs))


def dense_matrix(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``(W, b)`` of a linear IR layer on C-order flattened samples.

    ``W @ x.ravel() + b`` equals the layer's output (flattened in C order) for one sample; for
    ``Conv2d`` and ``AvgPool2d`` this is PyTorch's ``conv2d`` / ``avg_pool2d`` (zero padding,
    ``count_include_pad`` honoured), the same matrix as ``he_ml.ml.ir.to_dense``.

    Parameters
    ----------
    layer : Dense, Conv2d, AvgPool2d or Flatten record

    Returns
    -------
    W : ndarray (out_size, in_size)
    b : ndarray (out_size,)

    Raises
    ------
    UnsupportedOperationError
        If ``layer`` is not a linear IR record.
    ShapeMismatchError
        If the matrix would exceed ``MAX_DENSE_ENTRIES`` entries (checked before allocating).
    """
    kind = _kind(layer)
    if kind == "Dense":
        return np.array(layer.weight, dtype=np.float64), np.array(layer.bias, dtype=np.float64)
    if kind == "Flatten":
        n = int(np.prod(layer.input_shape))
        if n * n > MAX_DENSE_ENTRIES:
            raise ShapeMismatchError(f"Flatten of {n} values is too large for the latency layout "
                                     f"(limit {MAX_DENSE_ENTRIES} matrix entries).")
        return np.eye(n), np.zeros(n)
    if kind == "Activation":
        raise UnsupportedOperationError("dense_matrix needs a linear layer; got an Activation.")
    (c, h, w), (oc, oh, ow), (kh, kw), (sh, sw), (ph, pw) = _window_geometry(layer)
    rows, cols = oc * oh * ow, c * h * w
    if rows * cols > MAX_DENSE_ENTRIES:
        raise ShapeMismatchError(
            f"{kind} on input {(c, h, w)} lowers to a {rows} x {cols} matrix, above the latency layout's "
            f"limit of {MAX_DENSE_ENTRIES} entries; use the throughput layout (encrypt_features) for it.")
    W = np.zeros((oc, oh, ow, c, h, w))
    i = np.arange(oh)[:, None]
    j = np.arange(ow)[None, :]
    if kind == "Conv2d":
        weight = np.asarray(layer.weight, dtype=np.float64)
        bias = np.repeat(np.asarray(layer.bias, dtype=np.float64), oh * ow)
        div = None
    else:
        weight = None
        bias = np.zeros(rows)
        div = _pool_divisors(layer, (c, h, w), (oh, ow), (kh, kw), (sh, sw), (ph, pw))
    for u in range(kh):
        r = np.broadcast_to(i * sh - ph + u, (oh, ow))
        for v in range(kw):
            s = np.broadcast_to(j * sw - pw + v, (oh, ow))
            ok = (r >= 0) & (r < h) & (s >= 0) & (s < w)
            ii, jj = np.nonzero(ok)
            rr, ss = r[ok], s[ok]
            if weight is not None:
                # W[:, i, j, :, r, s] = weight[:, :, u, v] for every in-bounds window position
                W[:, ii, jj, :, rr, ss] = weight[None, :, :, u, v].repeat(ii.size, axis=0)
            else:
                for ch in range(c):
                    W[ch, ii, jj, ch, rr, ss] = 1.0 / div[ii, jj]
    return W.reshape(rows, cols), bias


def _pool_divisors(layer, ins, outs, k, s, p) -> np.ndarray:
    (_, h, w), (oh, ow), (kh, kw), (sh, sw), (ph, pw) = ins, outs, k, s, p
    if bool(getattr(layer, "count_include_pad", True)):
        return np.full((oh, ow), float(kh * kw))
    rows = np.array([min(i * sh - ph + kh, h) - max(i * sh - ph, 0) for i in range(oh)], dtype=np.float64)
    cols = np.array([min(j * sw - pw + kw, w) - max(j * sw - pw, 0) for j in range(ow)], dtype=np.float64)
    return rows[:, None] * cols[None, :]
