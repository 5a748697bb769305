r"""Latency layout: one sample packed into one CKKS ciphertext.

The throughput layout (:func:`he_ml.ml.encrypt_features`) puts *one feature of many samples*
in each ciphertext: unbeatable per sample, but a single query still costs one ciphertext per
feature.  The latency layout is the converse: all features of **one sample** live in the
slots of **one** ciphertext, and every affine layer is a matrix-vector product computed with
slot rotations by the diagonal method of Halevi and Shoup, organised as baby-step giant-step.

Layouts
-------
A vector of ``m`` values is held at slot positions ``pos[0..m-1]`` (distinct, ``< period``)
and *replicated* with a power-of-two ``period`` over all slots: slot ``t`` holds the value at
``t mod period``.  Replication turns a rotation of the whole ciphertext into a cyclic rotation
of the period-``P`` vector, which is what the diagonal method needs.  The client encrypts the
flattened sample at positions ``0..d-1`` with period ``next_pow2(d)``.

Diagonal method (Halevi–Shoup 2014, section 4.1; BSGS as in Halevi–Shoup 2018, section 4.2)
-----------------------------------------------------------------------------------------
For input ``x`` (period ``P_in``) and weights ``W`` every layer computes
``z = sum_k d_k * rot(x, k)`` (``*`` slot-wise, ``rot(v, k)[t] = v[t + k]``) for a set of
*generalized diagonals* ``d_k`` (plaintext vectors).  Each non-zero ``W[o, f]`` is placed in
exactly one ``(k, t)``: ``d_k[t] = W[o, f]`` with ``t + k = pos_in[f] (mod P_in)``.  Two
placements are used:

* **contiguous output** ("hybrid", GAZELLE, Juvekar et al. 2018, section 5.2): outputs at
  positions ``0..n_out-1`` with period ``P_out = next_pow2(n_out)``.  If ``P_in > P_out``:
  ``k = (pos_in[f] - o) mod P_out`` and ``t = pos_in[f] - k``, so at most ``P_out`` diagonals,
  followed by ``log2(P_in / P_out)`` rotate-and-add steps that fold the partial sums
  ``z[o + j P_out]`` into ``y[o]``.  Otherwise ``t = o`` and ``k = (pos_in[f] - o) mod P_in``: at
  most ``P_in`` diagonals, no folding (the input's replication does the work);
* **scattered output** (convolutions and pooling, the LoLa idea of keeping the natural layout,
  Brutzkus et al. 2019, section 4): output ``(c, i, j)`` is placed at the input position of its
  window's top-left corner plus a per-channel offset, so ``k`` depends only on the kernel tap and
  the channel pair: ``C_out * C_in * kh * kw`` diagonals (125 for the CryptoNets convolution
  instead of ~1000), no rotate-and-add, and the next layer reads the scattered positions.

Baby-step giant-step: with ``k = g * j + i`` (``0 <= i < g``),
``z = sum_j rot( sum_i rot(d_{gj+i}, -g j) * rot(x, i), g j )``, so only the distinct baby
steps ``i`` and giant steps ``g j`` are rotations (``g`` chosen per layer to minimise rotations
plus new keys).  All products of a layer sit at the same level, so an affine layer costs one
multiplicative level; consecutive affine layers (e.g. ``Flatten`` + ``Dense``, ``Conv2d`` +
``AvgPool2d``) are fused first (one level for the group).

Rotation keys: exactly the union of the baby, giant and rotate-and-add steps of all layers
(:attr:`LatencyModel.rotation_steps`); :meth:`LatencyModel.context` generates those and no
others (SEAL's default power-of-two set is not generated).

Activations: ``square`` is one ciphertext product (``x * x``), polynomials use the
minimal-depth evaluator of :mod:`he_ml.ml.polynomial` (``poly.evaluate``); both act slot-wise,
so layouts pass through unchanged.  Slots outside a layout carry zeros (or ``p(0)`` after a
polynomial); no diagonal ever reads them, so they never reach a result.

Magnitude bounds: the CKKS tracker bounds every vector by one public number over all slots and
refuses an operation whose bound would exceed its level.  Its interval arithmetic over BSGS sums
is loose, so every affine stage states, after each addition, the per-slot bound it can prove
(``max_t sum_k |d_k[t]| B`` plus the CKKS error, see ``LatencyModel._apply_linear``); the planner
(``LatencyModel.context``) runs the same code on bounds alone and plans for exactly those.

Layer records
-------------
Layers are the records of the model IR (:mod:`he_ml.ml.ir`): ``Dense(weight, bias)``,
``Conv2d(weight, bias, stride, padding, input_shape)``, ``AvgPool2d(kernel, stride, padding,
input_shape, count_include_pad)``, ``Flatten(input_shape)`` and ``Activation(kind, name,
poly)``.  They are recognised by class name and fields (this module never imports a
framework), and convolutions are lowered to dense matrices by :func:`dense_matrix`, which
follows PyTorch's ``conv2d`` / ``avg_pool2d`` semantics exactly like ``ir.to_dense``.

Threat model
------------
The server holds the public context (public, relinearization and the listed rotation keys)
and the plaintext model; it learns nothing about the sample beyond its size (CKKS IND-CPA,
128-bit parameters).  The client learns the decrypted outputs; the other slots of the result
hold copies of the outputs (and zeros), nothing about the weights beyond what the outputs
reveal.  CKKS decryptions leak noise, which can matter against an adversary who receives
decryptions of chosen computations (Li–Micciancio 2021); here only the key holder decrypts.

References
----------
.. [HS14] S. Halevi, V. Shoup, "Algorithms in HElib", CRYPTO 2014, section 4.1 (diagonal
   matrix-vector product).
.. [HS18] S. Halevi, V. Shoup, "Faster Homomorphic Linear Transformations in HElib",
   CRYPTO 2018, section 4.2 (baby-step giant-step).
.. [GAZELLE] C. Juvekar, V. Vaikuntanathan, A. Chandrakasan, "GAZELLE: A Low Latency
   Framework for Secure Neural Network Inference", USENIX Security 2018, section 5.2 (hybrid
   method for rectangular matrices).
.. [LoLa] A. Brutzkus, O. Elisha, R. Gilad-Bachrach, "Low Latency Privacy Preserving Inference",
   ICML 2019, section 4 (layouts that follow the network).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import (
    DepthExhaustedError,
    EncodingOverflowError,
    HEError,
    ParameterError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ..schemes.base import EncryptedVector, check_values
from ..schemes.params import HE_STANDARD_MAX_BITS, MAX_PRIME_BITS

__all__ = ["LatencyModel", "dense_matrix", "encrypt_sample", "galois_element"]

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


# --------------------------------------------------------------------------------- stages
@dataclass
class _Layout:
    """Where a vector lives: value ``f`` at slots ``pos[f] + m * period`` for every m."""

    pos: np.ndarray
    period: int

    @classmethod
    def contiguous(cls, size: int) -> "_Layout":
        return cls(np.arange(size), _next_pow2(size))


@dataclass
class _LinearStage:
    """One fused affine map in generalized-diagonal form (see the module docstring)."""

    weight: np.ndarray                 # (n_out, n_in) dense matrix (float twin, calibration)
    bias: np.ndarray                   # (n_out,)
    source: str                        # which IR layers were fused
    mode: str                          # "contiguous" or "scattered"
    period: int                        # L: diagonals are tiled with this period
    diagonals: dict[int, np.ndarray]   # k -> d_k over one period L
    giant: int                         # g of k = g*j + i
    sum_steps: tuple[int, ...]         # rotate-and-add steps (contiguous mode)
    out: _Layout
    bias_vec: np.ndarray = field(default=None)  # bias over one output period

    @property
    def baby_steps(self) -> tuple[int, ...]:
        return tuple(sorted({k % self.giant for k in self.diagonals} - {0}))

    @property
    def giant_steps(self) -> tuple[int, ...]:
        return tuple(sorted({(k // self.giant) * self.giant for k in self.diagonals} - {0}))

    @property
    def steps(self) -> set[int]:
        return set(self.baby_steps) | set(self.giant_steps) | set(self.sum_steps)

    @property
    def rotations(self) -> int:
        return len(self.baby_steps) + len(self.giant_steps) + len(self.sum_steps)


@dataclass
class _Affine1:
    """Element-wise ``a * x + k`` (scalars): an activation's normalization or a quadratic's
    outer coefficients.  Fused into a neighbouring affine group, or applied in place."""

    a: float
    k: float


@dataclass
class _ActivationStage:
    """Slot-wise activation: ``square`` (``x * x``) or a polynomial whose input is already
    normalized (an "approximated" IR activation reads ``t = (x - mid) / half``; that map is an
    `_Affine1` placed before it)."""

    kind: str
    poly: Any = None

    @property
    def depth(self) -> int:
        return 1 if self.kind == "square" else int(self.poly.depth)

    def plain(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "square":
            return x * x
        return np.asarray(self.poly(x), dtype=np.float64)

    def evaluate(self, x: EncryptedVector) -> EncryptedVector:
        if self.kind == "square":
            return x * x
        return self.poly.evaluate(x)


@dataclass
class _ScalarStage:
    """``a * x + k`` on every slot, when no affine layer is adjacent to absorb it."""

    a: float
    k: float

    @property
    def kind(self) -> str:
        return "scalar affine"

    @property
    def depth(self) -> int:
        return 0 if float(self.a).is_integer() else 1  # he_ml multiplies by integers without a level

    def plain(self, x: np.ndarray) -> np.ndarray:
        return self.a * x + self.k

    def evaluate(self, x: EncryptedVector) -> EncryptedVector:
        if self.a != 1.0:
            x = x * self.a
        return x + self.k if self.k != 0.0 else x


def _lower_activation(layer: Any) -> list[Any]:
    """An IR activation as latency items: stages and element-wise affine maps.

    * identity: nothing; square: one product;
    * "approximated": ``(x - mid) / half`` (free once fused) then the polynomial;
    * "polynomial" of degree <= 1: affine (free once fused); of degree 2:
      ``c2 x^2 + c1 x + c0 = c2 (x + s)^2 + k`` with ``s = c1 / (2 c2)``, ``k = c0 - c1^2 / (4 c2)``
      (CryptoNets' square at one level, the shift and the outer coefficients fused into the
      neighbouring affine layers); higher degrees: the minimal-depth polynomial plan.
    """
    kind = str(layer.kind)
    if kind == "identity":
        return []
    if kind == "square":
        return [_ActivationStage("square")]
    if kind == "approximated":
        norm = getattr(layer, "normalization", (0.0, 1.0))
        mid, half = float(norm[0]), float(norm[1])
        return [_Affine1(1.0 / half, -mid / half), _ActivationStage("polynomial", layer.poly)]
    if kind == "polynomial":
        c = getattr(layer, "coefficients", None)
        c = None if c is None else np.trim_zeros(np.asarray(c, dtype=np.float64), "b")
        if c is not None and c.size <= 2:
            c = np.pad(c, (0, 2 - c.size))
            return [_Affine1(float(c[1]), float(c[0]))]
        if c is not None and c.size == 3:
            shift, const = c[1] / (2 * c[2]), c[0] - c[1] ** 2 / (4 * c[2])
            return [_Affine1(1.0, float(shift)), _ActivationStage("square"), _Affine1(float(c[2]), float(const))]
        return [_ActivationStage("polynomial", layer.poly)]
    raise UnsupportedOperationError(
        f"latency layout: activation kind {kind!r} is not supported; supported: identity, square, "
        f"polynomial, approximated.")


def _place(W: np.ndarray, pos_in: np.ndarray, p_in: int, mode: str, pos_out: np.ndarray | None,
           period: int, p_out: int) -> dict[int, np.ndarray]:
    """Generalized diagonals: ``d_k[t] = W[o, f]`` with ``t + k = pos_in[f] (mod p_in)``."""
    rows, cols = np.nonzero(W)
    vals = W[rows, cols]
    if mode == "scattered" or p_in <= p_out:
        # output o at slot pos_out[o] (contiguous: o itself, period p_out >= p_in)
        t = pos_out[rows] if mode == "scattered" else rows
        k = (pos_in[cols] - t) % p_in
    else:
        k = (pos_in[cols] - rows) % p_out
        t = (pos_in[cols] - k) % period
    # each (k, t) holds one weight: t fixes the output row, k then fixes the input column
    if np.unique(k * period + t).size != k.size:
        raise HEError("latency layout: two weights were placed in one diagonal slot; this is a bug in "
                      "he_ml.ml.latency, please report it with the model's layer shapes.")
    n_diags = np.unique(k).size
    if n_diags * period > MAX_DIAGONAL_VALUES:
        raise ShapeMismatchError(
            f"latency layout: a {W.shape[0]} x {W.shape[1]} layer needs {n_diags} diagonals of {period} "
            f"slots ({n_diags * period} values, limit {MAX_DIAGONAL_VALUES}); use the throughput layout "
            f"(encrypt_features) for layers this wide.")
    diags: dict[int, np.ndarray] = {}
    order = np.argsort(k, kind="stable")
    k, t, vals = k[order], t[order], vals[order]
    bounds = np.flatnonzero(np.diff(k)) + 1
    for ks, ts, vs in zip(np.split(k, bounds), np.split(t, bounds), np.split(vals, bounds)):
        if ks.size:
            d = np.zeros(period)
            d[ts] = vs
            diags[int(ks[0])] = d
    return diags


def _choose_giant(ks: Sequence[int], known: set[int]) -> int:
    """Giant-step size g minimising rotations plus new rotation keys (each new key ~ MBs)."""
    ks = np.asarray(sorted(ks), dtype=np.int64)
    if ks.size == 0:
        return 1
    top = int(ks.max()) + 1
    best, best_cost = 1, None
    # small g (classic sqrt split) and every power of two (channel offsets and rotate-and-add
    # steps are multiples of powers of two, so those g often align the giant steps)
    cands = set(range(1, min(top, 4 * math.isqrt(top) + 2) + 1)) | {1 << e for e in range(top.bit_length() + 1)}
    for g in sorted(cands):
        babies = set(np.unique(ks % g).tolist()) - {0}
        giants = set((np.unique(ks // g) * g).tolist()) - {0}
        new = len((babies | giants) - known)
        cost = len(babies) + len(giants) + new
        if best_cost is None or cost < best_cost:
            best, best_cost = g, cost
    return best


def _scattered_layout(layer: Any, layout_in: _Layout) -> _Layout | None:
    """Output layout of a convolution/pooling that keeps the input's spatial positions.

    Output ``(c, i, j)`` goes to ``anchor(i, j) + c * C`` where ``anchor`` is the (shifted) input
    position of the window's top-left corner; then ``t + k`` lands on input ``(ci, r, s)`` with a
    ``k`` that depends only on the tap and the channels.  Needs a contiguous C-order input.
    """
    (c, h, w), (oc, oh, ow), (kh, kw), (sh, sw), (ph, pw) = _window_geometry(layer)
    if not np.array_equal(layout_in.pos, np.arange(c * h * w)):
        return None
    i = np.arange(oh)[:, None]
    j = np.arange(ow)[None, :]
    anchor = ((i * sh) * w + j * sw).ravel()          # shifted by ph * w + pw (>= 0)
    span = int(anchor.max()) + 1
    if np.unique(anchor).size != anchor.size:
        return None
    period = max(_next_pow2(oc * span), layout_in.period)
    # Channel stride: a multiple of T = next_pow2(tap span) when it still fits the period, so the
    # channel offsets -c * stride (mod P_in) are multiples of T and k = tap + multiple of T: with
    # g = T the baby steps are the taps and the giant steps the channels (e.g. CryptoNets: 24 + 4).
    taps = _next_pow2((c - 1) * h * w + (kh - 1) * w + kw)
    stride = -(-span // taps) * taps
    if oc * stride > period:
        stride = span
    pos = (np.arange(oc)[:, None] * stride + anchor[None, :]).ravel()
    return _Layout(pos, period)


def _linear_stage(group: list[Any], layout_in: _Layout, known: set[int], last: bool,
                  n_in: int) -> tuple[_LinearStage, _Layout]:
    names = [type(layer).__name__.lstrip("_") for layer in group]
    W, b = None, None
    pre_a, pre_k = 1.0, 0.0  # element-wise maps met before the first matrix
    size = n_in
    for layer in group:
        if isinstance(layer, _Affine1):
            if W is None:
                pre_a, pre_k = layer.a * pre_a, layer.a * pre_k + layer.k
            else:
                W, b = layer.a * W, layer.a * b + layer.k
            continue
        size_out = _layer_in_out(layer, size)
        if type(layer).__name__ == "Flatten":
            continue  # C-order flattening: the identity on the flat representation
        if W is not None and W.shape[0] * size_out > MAX_DENSE_ENTRIES:
            raise ShapeMismatchError(f"fused layers {names} exceed {MAX_DENSE_ENTRIES} matrix entries.")
        Wl, bl = dense_matrix(layer)
        if Wl.size > MAX_DENSE_ENTRIES:
            raise ShapeMismatchError(
                f"latency layout: a {Wl.shape[0]} x {Wl.shape[1]} layer exceeds {MAX_DENSE_ENTRIES} weights; use "
                f"the throughput layout (encrypt_features) for layers this wide.")
        if W is None:  # Wl (a x + k) + bl
            W, b = pre_a * Wl, bl + pre_k * Wl.sum(axis=1)
        else:
            W, b = Wl @ W, Wl @ b + bl
        size = size_out
    n_out = W.shape[0]
    p_in = layout_in.period
    candidates = []
    # contiguous output, GAZELLE hybrid placement
    p_out = _next_pow2(n_out)
    period = max(p_in, p_out)
    diags = _place(W, layout_in.pos, p_in, "contiguous", None, period, p_out)
    sums = []
    s = p_out
    while s < period:
        sums.append(s)
        s *= 2
    candidates.append(("contiguous", period, diags, tuple(sums), _Layout(np.arange(n_out), p_out)))
    windows = [layer for layer in group if type(layer).__name__ in ("Conv2d", "AvgPool2d")]
    others = [layer for layer in group if type(layer).__name__ not in ("Conv2d", "AvgPool2d", "Flatten")
              and not isinstance(layer, _Affine1)]
    if not last and len(windows) == 1 and not others:
        out = _scattered_layout(windows[0], layout_in)
        if out is not None and out.period <= max(period, 4096):
            sd = _place(W, layout_in.pos, p_in, "scattered", out.pos, out.period, 0)
            candidates.append(("scattered", out.period, sd, (), out))

    def cost(c):
        _, _, d, sm, _ = c
        g = _choose_giant(list(d), known)
        rot = len({k % g for k in d} - {0}) + len({(k // g) * g for k in d} - {0}) + len(sm)
        return 2 * rot + len(d)  # a rotation costs about two plaintext products (measured, n = 8192)

    mode, period, diags, sums, out = min(candidates, key=cost)
    g = _choose_giant(list(diags), known)
    bias_vec = np.zeros(out.period)
    bias_vec[out.pos] = b
    stage = _LinearStage(W, b, "+".join(names), mode, period, diags, g, sums, out, bias_vec)
    return stage, out


def _noise_per_slot(n: int, scale_bits: int, data_primes: int, q_max_bits: int, special_bits: int) -> float:
    """Standard deviation of the noise a fresh encryption plus one rotation leave in a slot.

    Fresh encryption / rescale rounding: ``n / 6`` units of the scale (see ``he_ml.CKKS``).
    Key switching (one rotation): ``sqrt(n/2) * sqrt(L n) * 3.2 / sqrt(12) * q_max / P`` units
    (digit decomposition over L data primes of at most q_max, division by the special prime P;
    the model of tests/schemes/test_ckks.py ``keyswitch_std``).  Both are divided by the scale,
    so the planner trades scale bits against the special prime's size.
    """
    fresh = n / 6.0
    keyswitch = math.sqrt(n / 2) * math.sqrt(data_primes * n) * 3.2 / math.sqrt(12) \
        * 2.0 ** (q_max_bits - special_bits)
    return (fresh + keyswitch) / 2.0 ** scale_bits


#: Relative slack on every stated bound: covers float64 rounding in computing the bound itself.
_REL_SLACK = 2.0 ** -10
#: Std multiples per slot for one operation's noise: >= the 12 std of Gaussian fresh/rescale noise
#: and the 400 std of key switching's heavy tail (tests/schemes/test_ckks.py), with room to spare.
_NOISE_STDS = 1024.0


def _allowance(ctx: Any) -> tuple[float, float]:
    """``(delta, eps)``: the CKKS approximation error one operation may add to a slot.

    ``delta``: absolute error of one rescale, fresh encryption or rotation (key switching), in
    value units: ``_NOISE_STDS`` times the per-slot std of `_noise_per_slot` for ``ctx``'s chain.
    ``eps``: error of a plaintext encoded at scale ``~2^scale_bits``: rounding each of the ``n``
    coefficients by at most 1/2 moves a slot by at most ``n / 2 / 2^scale_bits`` (the canonical
    embedding sums the coefficients with unit-modulus weights); we use ``n / 2^scale_bits``.
    A product ``(d + e_d)(x + e_x)`` with ``|x| <= B``, ``|e_d| <= eps``, ``|e_x| <= delta`` errs
    from ``d x`` by at most ``eps B + |d| delta + eps delta`` (``eps < 1``).
    """
    n, s = int(ctx.poly_modulus_degree), int(ctx.scale_bits)
    bits = list(ctx.coeff_mod_bit_sizes)
    data = bits[:-1] or bits
    sigma = _noise_per_slot(n, s, len(data), max(data), bits[-1])
    return _NOISE_STDS * sigma, n / 2.0 ** s


class _PlanContext:
    """Stand-in for a CKKS context while planning: its noise allowance dominates every chain the
    planner may pick for ring ``n`` (scale >= ``scale_bits``, special prime >= every data prime)."""

    name = "ckks"
    capabilities = None

    def __init__(self, n: int, scale_bits: int, depth: int) -> None:
        self.poly_modulus_degree = n
        self.scale_bits = scale_bits
        # q_max = special: the key-switching factor 2^(q_max - special) is 1, the largest it gets
        self.coeff_mod_bit_sizes = [MAX_PRIME_BITS] + [scale_bits] * depth + [MAX_PRIME_BITS]


class _Tracked:
    """What the CKKS magnitude tracker computes, without ciphertexts (for planning).

    Mirrors ``CKKS._op_*``: sums add bounds, plaintext factors multiply by ``max |factor|``
    (a level unless an integer scalar), ciphertext products multiply bounds (a level), rotations
    keep the bound, ``with_bound`` takes the minimum.  Every result is appended to ``log`` as
    ``(bound, levels used)``: the tracker checks exactly these against the level's limit.
    """

    level = None  # no depth check in the polynomial evaluator (the planner sizes the depth)

    def __init__(self, ctx: _PlanContext, bound: float, used: int, size: int, log: list) -> None:
        self.context, self.bound, self.used, self.size, self.log = ctx, float(bound), used, size, log

    def _new(self, bound: float, used: int) -> "_Tracked":
        self.log.append((float(bound), used))
        return _Tracked(self.context, bound, used, self.size, self.log)

    def __add__(self, o: Any) -> "_Tracked":
        if isinstance(o, _Tracked):
            return self._new(self.bound + o.bound, max(self.used, o.used))
        return self._new(self.bound + float(np.max(np.abs(o))), self.used)

    __radd__ = __add__
    __sub__ = __add__

    def __neg__(self) -> "_Tracked":
        return _Tracked(self.context, self.bound, self.used, self.size, self.log)

    def __mul__(self, o: Any) -> "_Tracked":
        if isinstance(o, _Tracked):
            return self._new(self.bound * o.bound, max(self.used, o.used) + 1)
        if isinstance(o, np.ndarray):
            return self._new(self.bound * float(np.max(np.abs(o))), self.used + 1)
        c = float(o)
        return self._new(self.bound * abs(c), self.used + (0 if c.is_integer() else 1))

    __rmul__ = __mul__

    def rotate(self, step: int) -> "_Tracked":
        return _Tracked(self.context, self.bound, self.used, self.size, self.log)

    def with_bound(self, b: float) -> "_Tracked":
        return _Tracked(self.context, min(float(b), self.bound), self.used, self.size, self.log)


def encrypt_sample(context: Any, x: Any) -> EncryptedVector:
    """Encrypt one sample in the latency layout (model-independent; a public context suffices).

    The flattened sample (C order, ``d`` values) is zero-padded to ``P = next_pow2(d)`` and
    replicated ``slot_count / P`` times, so every rotation of the ciphertext is a cyclic rotation
    of the period-``P`` vector.  :meth:`LatencyModel.encrypt` checks the shape first and calls this.

    Parameters
    ----------
    context : CKKS
    x : array of any shape, ``d = x.size <= slot_count``

    Returns
    -------
    EncryptedVector
        One ciphertext, ``slot_count`` values.

    Raises
    ------
    UnsupportedOperationError
        Not a CKKS context.
    ShapeMismatchError
        Empty sample or more values than slots.
    """
    if getattr(context, "name", None) != "ckks":
        raise UnsupportedOperationError(
            f"latency layout: needs a CKKS context; got {getattr(context, 'name', type(context).__name__)!r}.")
    flat = check_values(x, scheme="ckks", what="x").astype(np.float64).reshape(-1)
    period = _next_pow2(flat.size)
    if flat.size == 0 or period > context.slot_count:
        raise ShapeMismatchError(
            f"latency layout: a sample of {flat.size} values needs {period} slots (next power of two); the "
            f"context has {context.slot_count}. Use a larger ring or the throughput layout.")
    block = np.zeros(period)
    block[: flat.size] = flat
    return context.encrypt(np.tile(block, context.slot_count // period))


# --------------------------------------------------------------------------------- the model
class LatencyModel:
    r"""A network evaluated on one sample packed in one CKKS ciphertext.

    Parameters
    ----------
    layers : sequence of model-IR layer records, or a ``ModelIR``
        ``Dense``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``Activation`` (see :mod:`he_ml.ml.ir`).
        Consecutive affine layers are fused (one level per group).
    input_shape : tuple of int, optional
        Shape of one sample, e.g. ``(64,)`` or ``(1, 28, 28)``; taken from a ``ModelIR``.

    Attributes
    ----------
    depth : int
        Multiplicative levels: one per affine group plus the activations' depths.
    rotation_steps : tuple of int
        Every rotation (left, in slots) the evaluation performs; the only keys needed.
    min_slots : int
        Smallest slot count that holds every layout (largest period).
    n_inputs, n_outputs : int

    Raises
    ------
    UnsupportedOperationError
        A layer that is not an IR record.
    ShapeMismatchError
        Layer sizes that do not chain, or a layout larger than the largest ring (16384 slots).

    Notes
    -----
    Cost per sample: for every affine group, one plaintext product per non-zero generalized
    diagonal and ``|baby| + |giant| (+ log2(L / P_out))`` rotations; activations cost their
    ciphertext products.  The CryptoNets network (conv 5x5/2 -> 5 maps, square, 720 -> 100,
    square, 100 -> 10) needs 125 + 128 + 16 products, 64 rotations and 46 rotation keys; its layouts fit
    n = 8192 (4096 slots), the planner picks the ring that holds its provable magnitude bounds.

    Example
    -------
    >>> import numpy as np
    >>> from he_ml.ml.ir import Dense, Activation
    >>> from he_ml.ml.latency import LatencyModel
    >>> rng = np.random.default_rng(0)
    >>> m = LatencyModel([Dense(rng.normal(size=(3, 8)), np.zeros(3)), Activation.square()], (8,))
    >>> ctx = m.context(input_abs_max=1.0)
    >>> x = rng.uniform(-1, 1, 8)
    >>> out = ctx.decrypt(m.decision_function(m.encrypt(ctx, x)))
    >>> bool(np.allclose(out, m.plain(x[None])[0], atol=1e-3))
    True
    """

    def __init__(self, layers: Any, input_shape: Sequence[int] | None = None) -> None:
        if hasattr(layers, "layers") and hasattr(layers, "input_shape"):
            input_shape = layers.input_shape if input_shape is None else input_shape
            layers = layers.layers
        if input_shape is None:
            raise ParameterError("LatencyModel needs input_shape (the shape of one sample), e.g. (64,) "
                                 "or (1, 28, 28); got None.")
        try:
            self.input_shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError) as e:
            raise ParameterError(f"input_shape must be a tuple of ints; got {input_shape!r}.") from e
        if not self.input_shape or min(self.input_shape) < 1:
            raise ShapeMismatchError(f"input_shape must be positive ints; got {input_shape!r}.")
        layers = list(layers)
        if not layers:
            raise ParameterError("LatencyModel needs at least one layer; got none.")
        self.layers = layers
        self.n_inputs = int(np.prod(self.input_shape))
        if self.n_inputs > MAX_SLOTS:
            raise ShapeMismatchError(
                f"a sample of {self.n_inputs} values does not fit one ciphertext (at most {MAX_SLOTS} "
                f"slots at n = 32768); use the throughput layout (encrypt_features).")
        self._stages: list[Any] = []
        layout = _Layout.contiguous(self.n_inputs)
        size = self.n_inputs
        known: set[int] = set()
        items: list[Any] = []
        for layer in layers:
            kind = _kind(layer)
            items.extend([layer] if kind in _LINEAR else _lower_activation(layer))
        groups: list[Any] = []   # lists of affine items (IR linear layers, _Affine1) or a stage
        for item in items:
            if isinstance(item, _ActivationStage):
                groups.append(item)
            else:
                if not groups or not isinstance(groups[-1], list):
                    groups.append([])
                groups[-1].append(item)
        has_matrix = [isinstance(g, list) and any(not isinstance(it, _Affine1) and type(it).__name__ != "Flatten"
                                                  for it in g) for g in groups]
        last_linear = max((i for i, h in enumerate(has_matrix) if h), default=-1)
        for gi, group in enumerate(groups):
            if isinstance(group, _ActivationStage):
                self._stages.append(group)
                continue
            if not has_matrix[gi]:  # Flatten and element-wise maps only: no rotation needed
                a, k = 1.0, 0.0
                for item in group:
                    if isinstance(item, _Affine1):
                        a, k = item.a * a, item.a * k + item.k
                    else:
                        size = _layer_in_out(item, size)
                if (a, k) != (1.0, 0.0):
                    self._stages.append(_ScalarStage(a, k))
                continue
            stage, layout = _linear_stage(group, layout, known, gi == last_linear, size)
            size = stage.weight.shape[0]
            known |= stage.steps
            self._stages.append(stage)
        self.n_outputs = size
        self._out_layout = layout
        periods = [_next_pow2(self.n_inputs)] + [
            max(s.period, s.out.period) for s in self._stages if isinstance(s, _LinearStage)]
        self.min_slots = int(max(periods))
        if self.min_slots > MAX_SLOTS:
            raise ShapeMismatchError(
                f"this model's layouts need {self.min_slots} slots, above the largest ring's {MAX_SLOTS}; "
                f"use the throughput layout (encrypt_features).")
        self.rotation_steps = tuple(sorted(known))
        self.depth = sum(1 if isinstance(s, _LinearStage) else s.depth for s in self._stages)

    # ------------------------------------------------------------------ description
    @classmethod
    def from_ir(cls, ir: Any) -> "LatencyModel":
        """Build from a ``he_ml.ml.ir.ModelIR`` (its layers and input shape)."""
        return cls(ir.layers, ir.input_shape)

    @property
    def stages(self) -> list[dict[str, Any]]:
        """One dict per evaluated stage: kind, mode, diagonals, rotations, steps (for reports)."""
        out = []
        for s in self._stages:
            if isinstance(s, _LinearStage):
                out.append({"kind": "affine", "layers": s.source, "shape": tuple(s.weight.shape),
                            "mode": s.mode, "period": s.period, "diagonals": len(s.diagonals),
                            "giant": s.giant, "rotations": s.rotations, "steps": sorted(s.steps)})
            else:
                out.append({"kind": s.kind, "depth": s.depth})
        return out

    def describe(self) -> str:
        """Human-readable plan: per stage diagonals and rotations, depth, rotation keys."""
        lines = [f"LatencyModel: input {self.input_shape} -> {self.n_outputs} outputs, depth {self.depth}, "
                 f"{len(self.rotation_steps)} rotation keys, >= {self.min_slots} slots"]
        for s in self.stages:
            if s["kind"] == "affine":
                lines.append(f"  affine {s['layers']} {s['shape'][1]}->{s['shape'][0]}: {s['mode']} output, "
                             f"{s['diagonals']} diagonals (g={s['giant']}), {s['rotations']} rotations")
            else:
                lines.append(f"  activation {s['kind']} (depth {s['depth']})")
        return "\n".join(lines)

    def galois_elements(self, poly_modulus_degree: int) -> frozenset[int]:
        """Galois elements of :attr:`rotation_steps` for ring size ``n`` (compare with
        ``ctx.rotation_steps_available``)."""
        return frozenset(galois_element(s, poly_modulus_degree) for s in self.rotation_steps)

    # ------------------------------------------------------------------ plaintext twin
    def _check_batch(self, X: Any) -> np.ndarray:
        arr = check_values(X, scheme="ckks", what="X").astype(np.float64)
        if arr.shape == self.input_shape or (arr.ndim == 1 and arr.size == self.n_inputs):
            arr = arr.reshape(1, -1)
        if arr.ndim < 2 or arr[0].size != self.n_inputs or arr.shape[0] < 1:
            raise ShapeMismatchError(
                f"X must hold samples of shape {self.input_shape} ({self.n_inputs} values each): "
                f"(n, {', '.join(map(str, self.input_shape))}) or (n, {self.n_inputs}); got shape {arr.shape}.")
        return arr.reshape(arr.shape[0], -1)

    def plain(self, X: Any) -> np.ndarray:
        """The same computation in float64 (the twin every encrypted result is compared with).

        Parameters
        ----------
        X : array (n, *input_shape) or (n, n_inputs)

        Returns
        -------
        ndarray (n, n_outputs)
        """
        x = self._check_batch(X)
        for s in self._stages:
            if isinstance(s, _LinearStage):
                x = x @ s.weight.T + s.bias
            else:
                x = s.plain(x)
        return x

    # ------------------------------------------------------------------ parameters
    def _input_bound(self, X_calibration: Any, input_abs_max: float | None) -> float:
        """The public bound ``encrypt`` gives the planned inputs: the power of two >= max |x|."""
        if X_calibration is not None:
            m = float(np.max(np.abs(self._check_batch(X_calibration))))
        elif input_abs_max is None:
            raise ParameterError(
                "context() needs X_calibration (representative samples) or input_abs_max (a bound on "
                "|x|) to size the modulus; got neither.")
        else:
            m = input_abs_max
            if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) \
                    or not float(m) > 0 or not math.isfinite(float(m)):
                raise ParameterError(f"input_abs_max must be a positive finite number; got {input_abs_max!r}.")
            m = float(m)
        # CKKS.encrypt declares the smallest power of two >= max |values| (2^-30 for all zeros)
        return 2.0 ** math.ceil(math.log2(m)) if m > 0 else 2.0 ** -30

    def _tracked_log(self, input_bound: float, n: int, scale_bits: int) -> list[tuple[float, int]]:
        """Every ``(bound, levels used)`` the CKKS tracker checks when evaluating an input of
        public bound ``input_bound``, with the bounds `_apply_linear` states, for any chain of
        ring ``n`` with scale >= ``scale_bits`` (its noise allowance is the largest of those;
        every stated bound grows with the allowance, so a planned chain states smaller ones)."""
        log: list[tuple[float, int]] = [(float(input_bound), 0)]
        x = _Tracked(_PlanContext(n, scale_bits, max(1, self.depth)), input_bound, 0, self.min_slots, log)
        for s in self._stages:
            x = self._apply_linear(s, x) if isinstance(s, _LinearStage) else s.evaluate(x)
        log.append((x.bound, x.used))
        return log

    def _plain_operands_max(self) -> float:
        """Largest |plaintext operand| (weights, biases, scalars): must encode (``< value_bound``)."""
        vals = [0.0]
        for s in self._stages:
            if isinstance(s, _LinearStage):
                vals += [float(np.max(np.abs(s.weight), initial=0.0)), float(np.max(np.abs(s.bias), initial=0.0))]
            elif isinstance(s, _ScalarStage):
                vals += [abs(s.a), abs(s.k)]
        return max(vals)

    def parameters(self, X_calibration: Any = None, *, input_abs_max: float | None = None,
                   margin: float = 1.0, min_scale_bits: int | None = None) -> dict[str, Any]:
        """CKKS parameters for :meth:`context` (see there), without generating keys."""
        if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and margin >= 1.0
                                            and math.isfinite(margin)):
            raise ParameterError(f"margin must be a finite number >= 1; got {margin!r}.")
        b_in = self._input_bound(X_calibration, input_abs_max)
        needs_poly = any(isinstance(s, _ActivationStage) and s.kind == "polynomial" for s in self._stages)
        smin = int(min_scale_bits) if min_scale_bits is not None else (32 if needs_poly else 28)
        depth = max(1, self.depth)
        operands = max(b_in, self._plain_operands_max())
        peak = None
        for n in sorted(HE_STANDARD_MAX_BITS):
            if n // 2 < self.min_slots or n < 2048:
                continue
            log = self._tracked_log(b_in, n, smin)
            peak = max(bb for bb, _ in log)
            budget = HE_STANDARD_MAX_BITS[n][128]
            low = int(math.log2(2 * n)) + 2
            best = None
            for s in range(40, max(smin, low) - 1, -1):
                q0 = self._first_prime_bits(log, operands, float(margin), s, depth)
                special = min(MAX_PRIME_BITS, budget - q0 - depth * s)
                if q0 > MAX_PRIME_BITS or special < max(q0, s):
                    continue
                noise = _noise_per_slot(n, s, depth + 1, max(q0, s), special)
                if best is None or noise < best[0]:
                    best = (noise, s, q0, special)
            if best is not None:
                noise, s, q0, special = best
                return {"poly_modulus_degree": n, "coeff_mod_bit_sizes": [q0] + [s] * depth + [special],
                        "scale_bits": s, "value_bound": peak, "input_bound": b_in, "noise_per_slot": noise}
        raise DepthExhaustedError(
            f"latency layout: depth {self.depth} with tracked magnitudes up to {peak or b_in:g} (inputs up to "
            f"{b_in:g}, scale >= 2^{smin}) does not fit any 128-bit CKKS ring up to n = 32768 "
            f"({HE_STANDARD_MAX_BITS[32768][128]} bits). Scale the inputs down, use the throughput layout, "
            f"lower-degree activations, or a client-aided refresh between layers.")

    @staticmethod
    def _first_prime_bits(log: list[tuple[float, int]], operands: float, margin: float, s: int,
                          depth: int) -> int:
        """Smallest first prime (bits) such that ``margin`` times every tracked bound fits its level.

        A value after ``used`` levels sits at chain index ``l = depth - used``, whose limit is
        ``15/16 * Q_l / 2^(s + 1)`` with ``Q_l = q0 q1 ... q_l`` (``CKKS._setup_bounds``); SEAL's
        primes of ``b`` bits lie within a factor ``1 - 2^-20`` of ``2^b``, counted as ``b - 0.01``
        bits.  Plaintext operands and inputs must also encode: ``< value_bound = 2^(q0 - s - 1)``.
        """
        need = math.log2(max(operands, 2.0 ** -60) * margin) + s + 1 + 0.01
        for bound, used in log:
            if bound > 0:
                l = min(max(depth - used, 0), depth)
                need = max(need, math.log2(bound * margin) + math.log2(16.0 / 15.0) + s + 1 - l * (s - 0.01)
                           + 0.01)
        return max(s + 1, math.floor(need) + 1)

    def context(self, X_calibration: Any = None, *, input_abs_max: float | None = None,
                margin: float = 1.0, min_scale_bits: int | None = None, rotation_keys: str = "exact"):
        """A 128-bit CKKS key-holder context for this model, with only the keys it needs.

        Parameters
        ----------
        X_calibration : array (n, *input_shape), optional
            Representative samples: inputs are planned at the public bound ``encrypt`` declares
            for them, the power of two ``B >= max |X_calibration|``.  Any sample with
            ``max |x| <= B`` is then guaranteed to run; a larger one is refused before computing
            (``EncodingOverflowError`` naming the ``input_abs_max`` to plan for).
        input_abs_max : float, optional
            Without calibration data: a bound on ``|x|`` (planned as the power of two above it).
        margin : float, default 1.0
            Extra headroom factor on every planned bound.  The planned bounds are provable
            worst cases for inputs up to ``B`` (no data-dependent estimate), so 1 suffices.
        min_scale_bits : int, optional
            Smallest scale considered; default 28 (32 with polynomial activations, whose terms are
            added across levels and need scale primes close to 2^scale).
        rotation_keys : {"exact", "pow2"}, default "exact"
            "exact": one key per step in :attr:`rotation_steps` (fastest). "pow2": only the
            +-power-of-two keys (``2 log2(slots)``, e.g. 24 at n = 8192); every other rotation is
            composed from them (its non-adjacent form: a few key switches each), trading time for a
            smaller public context when the model needs many steps.

        Returns
        -------
        CKKS
            Relinearization keys only if an activation multiplies ciphertexts; rotation keys
            exactly for :attr:`rotation_steps`. ``ctx.public_context_bytes`` is the upload size of
            the evaluation keys.

        Raises
        ------
        ParameterError
            Neither ``X_calibration`` nor ``input_abs_max``; bad margin.
        DepthExhaustedError
            Nothing fits the largest ring (the message says what to do).

        Notes
        -----
        Planned magnitudes are exactly the public bounds the CKKS tracker will check
        (``_tracked_log`` runs the evaluation on bounds alone): each affine stage's per-slot bound
        ``max_t sum_k |d_k[t]| B`` of every partial BSGS sum, rotate-and-add step and the output
        (``max_o sum_f |W_of| B + |b_o|``), plus the CKKS approximation error (see
        ``_apply_linear``); ``B^2`` after a square; the polynomial evaluator's own bounds.  The
        chain is ``[q0, s x depth, special]`` with the scale ``s <= 40`` giving the least noise in
        the smallest ring holding every layout: ``q0`` is the smallest first prime such that every
        bound ``b`` reached after ``u`` levels fits the limit ``15/16 Q_l / 2^(s+1)`` of its level
        ``l = depth - u`` (``CKKS._setup_bounds``), the special prime at least as large as every
        data prime, total within the HomomorphicEncryption.org 128-bit bound.
        """
        from ..schemes import CKKS

        if rotation_keys not in ("exact", "pow2"):
            raise ParameterError(f"rotation_keys must be 'exact' or 'pow2'; got {rotation_keys!r}.")
        p = self.parameters(X_calibration, input_abs_max=input_abs_max, margin=margin,
                            min_scale_bits=min_scale_bits)
        relin = any(isinstance(s, _ActivationStage) for s in self._stages)
        return CKKS(None, poly_modulus_degree=p["poly_modulus_degree"],
                    coeff_mod_bit_sizes=p["coeff_mod_bit_sizes"], scale_bits=p["scale_bits"],
                    rotations=("all" if rotation_keys == "pow2" and self.rotation_steps
                               else list(self.rotation_steps) or None), relin_keys=relin)

    # ------------------------------------------------------------------ encryption
    def _check_context(self, ctx: Any, op: str) -> None:
        if getattr(ctx, "name", None) != "ckks":
            raise UnsupportedOperationError(
                f"latency layout: {op} needs a CKKS context (slot rotations on real numbers); got "
                f"{getattr(ctx, 'name', type(ctx).__name__)!r}. Use model.context().")
        if ctx.slot_count < self.min_slots:
            raise ShapeMismatchError(
                f"latency layout: this model needs {self.min_slots} slots; the context has {ctx.slot_count} "
                f"(n = {ctx.poly_modulus_degree}). Use model.context() or n >= {2 * self.min_slots}.")

    def encrypt(self, ctx: Any, x: Any) -> EncryptedVector:
        """Encrypt one sample in the latency layout (client side; a public context suffices).

        Parameters
        ----------
        ctx : CKKS
        x : array of shape ``input_shape`` (or flat ``(n_inputs,)``, or ``(1, *input_shape)``)

        Returns
        -------
        EncryptedVector
            One ciphertext (``slot_count`` values): the flattened sample replicated with period
            ``next_pow2(n_inputs)``.

        Raises
        ------
        ShapeMismatchError
            Wrong sample shape (several samples: encrypt each, or use the throughput layout).
        EncodingOverflowError
            Values too large for the context (see ``ctx.value_bound``).
        """
        self._check_context(ctx, "encrypt")
        arr = check_values(x, scheme="ckks", what="x").astype(np.float64)
        if arr.shape[:1] == (1,) and arr.shape[1:] == self.input_shape:
            arr = arr[0]
        if arr.shape != self.input_shape and arr.shape != (self.n_inputs,):
            raise ShapeMismatchError(
                f"latency layout: x must be one sample of shape {self.input_shape} (or ({self.n_inputs},)); "
                f"got shape {arr.shape}. Encrypt samples one at a time, or use encrypt_features for batches.")
        return encrypt_sample(ctx, arr)

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, enc: EncryptedVector) -> EncryptedVector:
        """Evaluate the network on one encrypted sample (server side; public context suffices).

        Parameters
        ----------
        enc : EncryptedVector
            From :meth:`encrypt` (one ciphertext).

        Returns
        -------
        EncryptedVector
            Shape ``(n_outputs,)``: ``ctx.decrypt`` gives the outputs (logits/scores).

        Raises
        ------
        ParameterError
            ``enc`` is not an EncryptedVector.
        ShapeMismatchError
            ``enc`` is not one full ciphertext, or the context has too few slots.
        DepthExhaustedError
            ``enc`` has fewer than ``depth`` levels left.
        UnsupportedOperationError
            The context lacks rotation keys in :attr:`rotation_steps` (or relinearization keys).
        EncodingOverflowError
            A provable magnitude bound (see `_apply_linear`) would exceed its level's limit: the
            input's public bound is above what the context was planned for. Raised before the
            operation runs; the message names the ``model.context(input_abs_max=...)`` that fits.

        Notes
        -----
        The result carries a public bound (``out.bound``) on every slot, stated per affine stage
        from the weights and the input's bound (``max_o sum_f |W_of| B + |b_o|`` plus the CKKS
        approximation error), never from the data.
        """
        if not isinstance(enc, EncryptedVector):
            raise ParameterError(f"decision_function expects the EncryptedVector from model.encrypt(); got "
                                 f"{type(enc).__name__}.")
        ctx = enc.context
        self._check_context(ctx, "decision_function")
        if enc.size != ctx.slot_count or enc.num_ciphertexts != 1:
            raise ShapeMismatchError(
                f"latency layout: the input must be one full ciphertext from model.encrypt(); got {enc.size} "
                f"values in {enc.num_ciphertexts} ciphertext(s).")
        if enc.level is not None and enc.level < self.depth:
            raise DepthExhaustedError(
                f"latency layout: the model needs {self.depth} multiplicative levels; the ciphertext has "
                f"{enc.level}. Use model.context() (it plans the depth) and encrypt fresh samples.")
        have = set(ctx.rotation_steps_available)
        n = ctx.poly_modulus_degree
        missing = [s for s in self.rotation_steps if galois_element(s, n) not in have]
        pow2 = {galois_element(sign * (1 << e), n) for e in range(int(math.log2(n // 2))) for sign in (1, -1)}
        if missing and not pow2 <= have:  # SEAL composes a missing step from the +-2^e keys
            raise UnsupportedOperationError(
                f"latency layout: the context lacks rotation keys for steps {missing[:8]}"
                f"{'...' if len(missing) > 8 else ''} ({len(missing)} of {len(self.rotation_steps)}). "
                f"Create it with model.context(), or call ctx.enable_rotations(model.rotation_steps) (or "
                f"'all' for the power-of-two set) on the key holder before public_context().")
        x = enc
        try:
            for s in self._stages:
                x = self._apply_linear(s, x) if isinstance(s, _LinearStage) else s.evaluate(x)
        except EncodingOverflowError as e:
            b = float(enc.bound)
            raise EncodingOverflowError(
                f"latency layout: with inputs of public bound {b:g} (|x| <= {b:g}, as declared by encrypt) "
                f"this context cannot hold the network's provable magnitudes; nothing overflowed, the "
                f"operation was refused before it ran. Plan the context for these inputs: "
                f"model.context(input_abs_max={b:g}) (or X_calibration containing such samples), or scale "
                f"the inputs down. Details: {e}") from e
        # the stated bound covers every slot, so it also bounds the outputs (first n_outputs slots)
        return EncryptedVector(ctx, x.chunks, (self.n_outputs,), dict(x.meta))

    @staticmethod
    def _apply_linear(s: _LinearStage, x: Any) -> Any:
        """One affine stage by BSGS, stating after every addition the bound it can prove.

        The tracker's interval arithmetic adds ``B max|d_k|`` per diagonal and doubles at every
        rotate-and-add step, far above the true magnitude.  Per slot the exact computation is
        tighter: ``z[t] = sum_k d_k[t] x[t + k]`` with every slot of ``x`` bounded by its public
        bound ``B`` (replicas and the slots outside the layout too: the tracked bound is over all
        slots), so ``|z[t]| <= B sum_{k in S} |d_k[t]|`` for any partial set ``S`` of diagonals;
        a giant rotation moves slots but keeps the per-slot sums (we track them in the frame of
        the final result, where ``d_k`` sits unrotated, and the max over slots is rotation
        invariant); a rotate-and-add step ``a + rot(a, s)`` gives ``u[t] + u[t + s]``; the bias
        adds ``|b[t]|``.  Slots outside the output layout get no weight (``d_k[t] = 0`` there,
        see `_place`), so they hold zeros up to the noise below -- also bounded.

        CKKS approximation error (`_allowance`): each product errs by at most
        ``eps B + |d_k[t]| delta + eps delta <= eps B + |d_k[t]| delta + delta`` (plaintext
        encoding, the baby rotation's noise on ``x``), its rescale adds ``delta``, every giant
        rotation and rotate-and-add step adds ``delta``, the bias's encoding ``eps``.  So per
        slot ``u[t] = sum_k (|d_k[t]| (B + delta) + eps B + 2 delta) + (rotations) delta``,
        and the stated bound is ``(1 + 2^-10) max_t u[t]``.  ``with_bound`` keeps the smaller of
        this and the tracker's own bound.  The planner runs this same code on `_Tracked`
        (`LatencyModel._tracked_log`), so it plans for exactly the bounds checked here.
        """
        slots = x.size
        reps_l = slots // s.period
        g = s.giant
        B = float(x.bound)
        delta, eps = _allowance(x.context)
        L = s.period
        absd = {k: np.abs(d) for k, d in s.diagonals.items()}

        def state(v: Any, u: np.ndarray) -> Any:
            return v.with_bound((1.0 + _REL_SLACK) * float(np.max(u)))

        babies = {0: x}
        for i in s.baby_steps:
            babies[i] = x.rotate(i)
        by_giant: dict[int, list[int]] = {}
        for k in sorted(s.diagonals):
            by_giant.setdefault(k // g, []).append(k)
        acc, u_acc = None, None
        for j, ks in sorted(by_giant.items()):
            inner, u_in = None, None
            for k in ks:
                # rot(d_k, -g j): the giant rotation applied afterwards undoes it
                d = np.tile(np.roll(s.diagonals[k], g * j), reps_l)
                term = babies[k - g * j] * d
                u_term = absd[k] * (B + delta) + (eps * B + 2.0 * delta)  # final frame
                if inner is None:
                    inner, u_in = term, u_term
                else:
                    u_in = u_in + u_term
                    inner = state(inner + term, u_in)
            if g * j:
                inner = inner.rotate(g * j)
                u_in = u_in + delta
            if acc is None:
                acc, u_acc = inner, u_in
            else:
                u_acc = u_acc + u_in
                acc = state(acc + inner, u_acc)
        for step in s.sum_steps:
            u_acc = u_acc + np.roll(u_acc, -step) + delta  # slot t gets t and t + step
            acc = state(acc + acc.rotate(step), u_acc)
        if np.any(s.bias_vec):
            bias = np.tile(s.bias_vec, slots // s.out.period)
            u_acc = u_acc + np.abs(np.tile(s.bias_vec, L // s.out.period)) + eps
            acc = state(acc + bias, u_acc)
        return state(acc, u_acc)
