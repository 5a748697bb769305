"""Planning for CKKS's public magnitude bounds in :class:`~he_ml.ml.model.EncryptedModel`.

Every CKKS vector carries a public bound on ``|value|`` that each operation propagates and checks
against its level's limit before it runs (``he_ml.schemes.ckks``). The encrypted interpreter
states one assumption on it (`_within_interval`: a polynomial activation's input lies in its
calibrated interval); the planner replays the bound rules on the lowered program
(`_tracked_bounds`) and sizes the first prime until every bound fits (`_shortfall`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..schemes.base import EncryptedVector
from .ir import Activation

__all__: list[str] = []


def _interval_half_width(a: Activation) -> float:
    """Largest |input| of the polynomial of activation `a` (``[-1, 1]`` once normalized)."""
    lo, hi = a.poly.interval
    return max(abs(float(lo)), abs(float(hi)))


def _within_interval(a: Activation, v: EncryptedVector) -> EncryptedVector:
    """State the model's input assumption on the tracked bound before a polynomial activation.

    The tracked bound of a pre-activation is the worst case over the *box* of the inputs'
    bounds (``|b| + sum |w| B_j``), typically several times the calibrated interval, where the
    polynomial is not the activation anyway (it diverges like ``|t|^degree``). The model's
    contract (module notes, `EncryptedModel.check_inputs`) is that pre-activations stay in the
    calibrated interval; this states it on the public bound -- as the encrypted logistic
    regression's training link does -- so the polynomial's output bound follows rigorously
    (``PolynomialApproximation._declare_output_bound``). ``with_bound`` only ever lowers a
    bound; every later operation is still checked against its level's limit, and the planner
    (`EncryptedModel.context`) sizes the modulus for exactly these bounds.
    """
    if v.context.name != "ckks" or v.bound is None:
        return v
    return v.with_bound(_interval_half_width(a))


class _TrackedBound:
    """Stand-in for an encrypted vector that carries only CKKS's tracked bound and level.

    Mirrors the bound rules of :class:`~he_ml.schemes.ckks.CKKS` (sum of bounds for additions,
    product for ciphertext products, ``|c|`` times / plus for plaintext scalars) so the planner
    can run an activation's evaluation plan and see every bound the tracker will compute.
    """

    __array_ufunc__ = None

    def __init__(self, bound: float, used: int, log: list) -> None:
        self.bound, self.used, self.log = float(bound), int(used), log
        log.append((self.bound, self.used))

    def _new(self, bound: float, used: int) -> "_TrackedBound":
        return _TrackedBound(bound, used, self.log)

    def __add__(self, o):
        if isinstance(o, _TrackedBound):
            return self._new(self.bound + o.bound, max(self.used, o.used))
        return self._new(self.bound + abs(float(o)), self.used)

    __radd__ = __add__

    def __sub__(self, o):
        return self.__add__(o)

    def __rsub__(self, o):
        return self.__add__(o)

    def __neg__(self):
        return self._new(self.bound, self.used)

    def __mul__(self, o):
        if isinstance(o, _TrackedBound):
            return self._new(self.bound * o.bound, max(self.used, o.used) + 1)
        c = float(o)
        return self._new(self.bound * abs(c), self.used + (0 if c.is_integer() else 1))

    __rmul__ = __mul__


def _tracked_bounds(stages: list[Any], input_bounds: np.ndarray) -> list[tuple[float, int]]:
    """Every (bound, levels used) the CKKS tracker computes running `stages` on inputs of these bounds.

    Linear stages: ``|b_o| + sum_j |W[o, j]| B_j`` (`he_ml.schemes.ckks_linear.linear_map`); square:
    ``B^2``; polynomial activations: the input is first held to the interval (`_within_interval`),
    then the plan runs on the bound alone and its output gets the declared bound
    (``PolynomialApproximation._declare_output_bound``).
    """
    log: list[tuple[float, int]] = []
    B = np.asarray(input_bounds, dtype=np.float64)
    used = 0
    for b in B:
        log.append((float(b), 0))
    for s in stages:
        if hasattr(s, "matrix"):  # a linear stage (matrix, bias); else an activation stage
            B = abs(s.matrix) @ B + np.abs(s.bias)
            used += 1
            log.extend((float(b), used) for b in B)
            continue
        a = s.activation
        if a.kind == "identity":
            continue
        if a.kind == "square":
            B = B * B
            used += 1
            log.extend((float(b), used) for b in B)
            continue
        half = _interval_half_width(a)
        outs = []
        for b in np.unique(np.minimum(B, half)):
            sub: list[tuple[float, int]] = []
            out = a.poly.plan.run(_TrackedBound(float(b), 0, sub))
            log.extend((bb, used + u) for bb, u in sub)
            declared = a.poly._declare_output_bound(_Declarable(float(b)), _Declarable(out.bound))
            outs.append((b, declared.bound))
        table = dict(outs)
        B = np.array([table[b] for b in np.minimum(B, half)])
        used += a.depth
        log.extend((float(b), used) for b in B)
    return log


def _shortfall(p: Any, depth: int, tracked: list[tuple[float, int]]) -> float:
    """Factor by which plan `p`'s first prime is too small for the tracked bounds (<= 1: fits).

    A value after ``used`` levels sits at chain index ``depth - used`` whose limit is
    ``15/16 * Q_l / 2^(scale_bits + 1)`` (CKKS._setup_bounds); SEAL's primes of ``b`` bits lie
    within a factor ``1 - 2^-20`` of ``2^b`` at these ring sizes, counted as ``b - 0.01`` bits.
    """
    bits = list(p.coeff_mod_bit_sizes)[:-1]
    worst = -math.inf
    for bound, used in tracked:
        l = min(max(depth - used, 0), len(bits) - 1)
        log2_limit = math.log2(15.0 / 16.0) + sum(b - 0.01 for b in bits[:l + 1]) - p.scale_bits - 1
        if bound > 0:
            worst = max(worst, math.log2(bound) - log2_limit)
    return 2.0 ** (worst + 0.05) if worst > -0.05 else 1.0


class _Declarable:
    """A bound the polynomial may restate (duck-types the CKKS vector's ``bound``/``with_bound``)."""

    class _Ctx:
        name = "ckks"

    context = _Ctx()

    def __init__(self, bound: float) -> None:
        self.bound = float(bound)

    def with_bound(self, b: float) -> "_Declarable":
        return _Declarable(min(float(b), self.bound))
