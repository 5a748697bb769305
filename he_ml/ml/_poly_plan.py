"""Evaluation plans for :mod:`he_ml.ml.polynomial`: the depth-optimal straight-line program.

One piece of :mod:`he_ml.ml.polynomial`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.polynomial`; import it from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: Folding alpha = 2/(b-a) into the coefficients keeps |u^m| <= ((b-a)/2)^m; CKKS needs
#: |value| * scale below the remaining modulus (about 2^59 for q0 = 60 bits, scale 2^40, one
#: level left, 2^39 for the 2^21-scale tutorial chains), so fold only while |u^m| <= 2^36.
MAX_FOLDED_POWER_LOG2 = 36.0
#: ...and only while rescaling noise on u^m is amplified by at most alpha^m <= 2^8.
MIN_FOLDED_POWER_LOG2 = -8.0


# ---------------------------------------------------------------------------------------------
# Evaluation plan: a straight-line program over one input register, executed unchanged on numpy
# arrays (``p(x)``), on encrypted vectors (``p.evaluate``) and on level-counting test doubles.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Step:
    kind: str  # "add_const" | "mul_const" | "mul" | "add" | "sub" | "neg"
    out: int
    a: int
    b: int | None = None
    const: float | None = None
    release: tuple[int, ...] = ()


class _PlanBuilder:
    """Emits steps and tracks, per register, the CKKS levels consumed so far."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.depth: list[int] = [0]  # register 0 is the input

    def _emit(self, kind: str, a: int, b: int | None = None, const: float | None = None) -> int:
        out = len(self.depth)
        if kind == "mul":
            d = max(self.depth[a], self.depth[b]) + 1
        elif kind == "mul_const":
            d = self.depth[a] + 1
        elif kind in ("add", "sub"):
            d = max(self.depth[a], self.depth[b])
        else:  # add_const, neg: no level
            d = self.depth[a]
        self.depth.append(d)
        self.steps.append(_Step(kind, out, a, b, None if const is None else float(const)))
        return out

    def add_const(self, a: int, c: float) -> int:
        return a if c == 0.0 else self._emit("add_const", a, const=c)

    def scale(self, a: int, c: float) -> int:
        """Multiply by a plaintext scalar; +-1 are free (identity / negation)."""
        if c == 1.0:
            return a
        if c == -1.0:
            return self._emit("neg", a)
        return self._emit("mul_const", a, const=c)

    def mul(self, a: int, b: int) -> int:
        return self._emit("mul", a, b)

    def add(self, a: int, b: int) -> int:
        return self._emit("add", a, b)

    def sub(self, a: int, b: int) -> int:
        return self._emit("sub", a, b)


@dataclass(frozen=True)
class EvaluationPlan:
    """Straight-line program that evaluates a polynomial with minimal multiplicative depth.

    Built by :class:`PolynomialApproximation`; ``run`` executes it on anything that
    supports ``+``, ``-``, unary ``-`` and ``*`` (numpy arrays, encrypted vectors).

    Attributes
    ----------
    depth : int
        Levels consumed on CKKS, counting every multiplication that involves a
        ciphertext (ciphertext or plaintext operand) as one level.
    ciphertext_multiplications : int
        Ciphertext x ciphertext products (relinearised; the expensive operation).
    plaintext_multiplications : int
        Ciphertext x plaintext-scalar products.
    additions : int
        Additions/subtractions of ciphertexts or plaintext constants.
    folded_input_scale : bool
        True if ``alpha = 2/(b-a)`` was folded into the coefficients (no level spent on
        the input map); False if one level is spent on ``t = alpha * (x - mid)``.
    integer_constants : bool
        True if every constant of the plan is an integer (needed for BFV).
    """

    steps: tuple[_Step, ...]
    output: int
    n_registers: int
    depth: int
    ciphertext_multiplications: int
    plaintext_multiplications: int
    additions: int
    folded_input_scale: bool
    integer_constants: bool

    def run(self, x: Any, observe: Callable[[Any], None] | None = None) -> Any:
        """Execute the plan on ``x`` and return the result (same type as ``x``'s operators give).

        ``observe``, if given, is called with every intermediate value (used to measure the
        largest intermediate magnitude on plaintext grids).
        """
        regs: list[Any] = [None] * self.n_registers
        regs[0] = x
        for s in self.steps:
            a = regs[s.a]
            if s.kind == "mul":
                v = a * regs[s.b]
            elif s.kind == "mul_const":
                v = a * s.const
            elif s.kind == "add_const":
                v = a + s.const
            elif s.kind == "add":
                v = a + regs[s.b]
            elif s.kind == "sub":
                v = a - regs[s.b]
            else:  # neg
                v = -a
            regs[s.out] = v
            if observe is not None:
                observe(v)
            for r in s.release:  # drop intermediates early: ciphertexts are large
                regs[r] = None
        return regs[self.output]

    def describe(self) -> str:
        """One-line plain-language summary."""
        how = ("input scale folded into the coefficients" if self.folded_input_scale
               else "one level spent on the input map t = alpha*(x - mid)")
        return (f"depth {self.depth}: {self.ciphertext_multiplications} ciphertext x ciphertext and "
                f"{self.plaintext_multiplications} ciphertext x scalar multiplications, "
                f"{self.additions} additions ({how})")


def _finalise(builder: _PlanBuilder, output: int, folded: bool) -> EvaluationPlan:
    # Last use of each register -> release it right after that step (never the output).
    last_use: dict[int, int] = {}
    for i, s in enumerate(builder.steps):
        last_use[s.a] = i
        if s.b is not None:
            last_use[s.b] = i
    releases: dict[int, list[int]] = {}
    for reg, i in last_use.items():
        if reg != output:
            releases.setdefault(i, []).append(reg)
    steps = tuple(
        _Step(s.kind, s.out, s.a, s.b, s.const, tuple(sorted(set(releases.get(i, ())))))
        for i, s in enumerate(builder.steps)
    )
    consts = [s.const for s in steps if s.const is not None]
    return EvaluationPlan(
        steps=steps,
        output=output,
        n_registers=len(builder.depth),
        depth=builder.depth[output],
        ciphertext_multiplications=sum(s.kind == "mul" for s in steps),
        plaintext_multiplications=sum(s.kind == "mul_const" for s in steps),
        additions=sum(s.kind in ("add", "sub", "add_const") for s in steps),
        folded_input_scale=folded,
        integer_constants=all(float(c).is_integer() for c in consts),
    )


def _build_plan(coeffs: np.ndarray, shift: float, scale: float, fold: bool) -> EvaluationPlan:
    """Plan for ``sum_k coeffs[k] * t^k`` with ``t = scale * (x + shift)``.

    With ``fold`` the scale goes into the coefficients (``coeffs[k] * scale^k`` on
    powers of ``u = x + shift``); otherwise ``t`` is formed with one scalar product.
    """
    b = _PlanBuilder()
    u = b.add_const(0, shift)
    if fold:
        base = u
        a = [float(c) * scale ** k for k, c in enumerate(coeffs)]
    else:
        base = b.scale(u, scale)
        a = [float(c) for c in coeffs]
    powers: dict[int, int] = {1: base}

    def power(m: int) -> int:
        # m is a power of two: repeated squaring keeps depth(u^m) = log2(m).
        if m not in powers:
            half = power(m // 2)
            powers[m] = b.mul(half, half)
        return powers[m]

    def poly(c: list[float]) -> tuple[str, Any]:
        """Returns ("const", value) or ("reg", register)."""
        while c and c[-1] == 0.0:
            c = c[:-1]
        if not c:
            return ("const", 0.0)
        deg = len(c) - 1
        if deg == 0:
            return ("const", c[0])
        if deg == 1:
            reg = b.add_const(b.scale(base, c[1]), c[0])
            return ("reg", reg)
        m = 1 << (deg.bit_length() - 1)  # 2^(k-1), k = ceil(log2(deg + 1)) = deg.bit_length()
        hi_kind, hi = poly(c[m:])
        lo_kind, lo = poly(c[:m])
        giant = power(m)
        # hi has degree deg - m <= m - 1, so depth(hi) <= k - 1 = depth(giant): the product is at k.
        term = b.scale(giant, hi) if hi_kind == "const" else b.mul(hi, giant)
        if lo_kind == "const":
            return ("reg", b.add_const(term, lo))
        return ("reg", b.add(term, lo))

    kind, val = poly(a)
    if kind == "const":
        # A constant polynomial still has to return a ciphertext: (x - x) + c costs no level.
        out = b.add_const(b.sub(0, 0), val)
    else:
        out = val
    return _finalise(b, out, fold)


def _fold_is_representable(effective_degree: int, half_width: float) -> bool:
    """Whether the giant steps u^m of a folded plan stay in CKKS's representable range."""
    if effective_degree <= 1:
        return True  # no power of u is ever formed
    m = 1 << (effective_degree.bit_length() - 1)
    lg = m * math.log2(half_width)
    return MIN_FOLDED_POWER_LOG2 <= lg <= MAX_FOLDED_POWER_LOG2


class _NoiseBound:
    """Value plus a first-order bound on CKKS noise, in units of the per-rescale noise eta.

    The input carries 1 eta (fresh encryption); every multiplication (which rescales)
    adds 1 eta; a product propagates ``|a| nb + |b| na``; a scalar product ``|c| na``.
    """

    __array_ufunc__ = None

    def __init__(self, v, nb):
        self.v, self.nb = v, nb

    def __add__(self, o):
        if isinstance(o, _NoiseBound):
            return _NoiseBound(self.v + o.v, self.nb + o.nb)
        return _NoiseBound(self.v + o, self.nb)

    def __sub__(self, o):
        if isinstance(o, _NoiseBound):
            return _NoiseBound(self.v - o.v, self.nb + o.nb)
        return _NoiseBound(self.v - o, self.nb)

    def __neg__(self):
        return _NoiseBound(-self.v, self.nb)

    def __mul__(self, o):
        if isinstance(o, _NoiseBound):
            return _NoiseBound(self.v * o.v, np.abs(self.v) * o.nb + np.abs(o.v) * self.nb + 1.0)
        return _NoiseBound(self.v * o, abs(o) * self.nb + 1.0)


def _noise_gain(plan: "EvaluationPlan", xs: np.ndarray) -> float:
    out = plan.run(_NoiseBound(xs, np.ones_like(xs)))
    return float(np.max(out.nb))
