"""Stages of :mod:`he_ml.ml.latency`: slot layouts, diagonal placement and baby-step giant-step.

One piece of :mod:`he_ml.ml.latency`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.latency`; import it from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import HEError, ShapeMismatchError, UnsupportedOperationError
from ..schemes.base import EncryptedVector
from ._latency_lowering import (
    MAX_DENSE_ENTRIES,
    MAX_DIAGONAL_VALUES,
    _layer_in_out,
    _next_pow2,
    _window_geometry,
    dense_matrix,
)


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
