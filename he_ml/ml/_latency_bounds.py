"""Noise allowance and bound-only replay for planning :class:`he_ml.ml.latency.LatencyModel` contexts.

One piece of :mod:`he_ml.ml.latency`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.latency`; import it from there.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..schemes.params import MAX_PRIME_BITS


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
