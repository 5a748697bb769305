r"""Polynomial approximations of activations, evaluated on encrypted vectors with minimal depth.

Homomorphic schemes add and multiply; they cannot compute ``exp`` or compare.
A non-polynomial activation ``f`` is therefore replaced by a polynomial ``p``
that is close to ``f`` on an interval ``[a, b]`` the inputs are known to lie in.
:func:`approximate` fits ``p`` and returns a :class:`PolynomialApproximation`
that knows its measured error, the multiplicative depth its encrypted
evaluation consumes, and how to evaluate itself on numpy arrays (``p(x)``) and
on encrypted vectors (``p.evaluate(enc)``).

Fitting
-------
All fits work on the mapped variable ``t = (2x - (a + b)) / (b - a)`` in
``[-1, 1]`` and in the Chebyshev basis, which is well conditioned; only at the
end are the coefficients converted to the power basis in ``t``
(``coefficients_t``) and in ``x`` (``coefficients``).

``"least_squares"``
    (Weighted) least squares on a uniform grid of ``grid_size`` points.
``"chebyshev"``
    Interpolation at the ``degree + 1`` Chebyshev points of the first kind
    (near-minimax for smooth functions, no iteration).
``"minimax"``
    The best uniform approximation, by the Remez exchange algorithm [Remez34]_
    on a fine grid with local refinement of every extremum; it stops when the
    error equioscillates to a relative tolerance of ``1e-6``.  For a non-smooth
    function (ReLU) the levelling can stall; then the best iterate is kept,
    ``converged`` is False and ``notes`` says so.

For a function that is odd or even about the interval midpoint up to a linear
term (sigmoid, tanh, ReLU and GELU on a symmetric interval) the coefficients of
the wrong parity are set to exactly zero: the best approximation has them zero
by symmetry, and zero coefficients cost no encrypted operation.

``max_error`` is always *measured*: ``max |p(x) - f(x)|`` over 100 001 equally
spaced points of ``[a, b]`` plus the Remez extrema and the Chebyshev extrema,
with ``p`` evaluated by the very evaluation plan used on ciphertexts.

Encrypted evaluation and depth
------------------------------
On CKKS every multiplication that involves a ciphertext consumes one level:
ciphertext x ciphertext *and* ciphertext x plaintext scalar (TenSEAL rescales
after both, even for the integer 2), while additions are free.  The evaluation
plan is built so that scalar multiplications only happen where a level is
consumed anyway:

* the input map ``x -> t`` is split: the shift ``u = x - (a + b)/2`` is an
  addition (free) and the scale ``alpha = 2 / (b - a)`` is folded into the
  coefficients, ``sum c_k t^k = sum (c_k alpha^k) u^k``;
* ``p(u) = q(u) * u^m + r(u)`` with ``m = 2^(k-1)`` and ``k = ceil(log2(deg + 1))``
  (a recursive baby-step giant-step / Paterson-Stockmeyer split with baby step
  ``{1, u}`` and giant steps ``u^2, u^4, ..., u^m`` obtained by squaring).  The
  scalar coefficients only ever multiply the fresh input ``u`` (the leaves
  ``a_1 u + a_0``), so they sit at the lowest depth; a leaf then meets a giant
  step of the same depth.

By induction ``depth(deg) = ceil(log2(deg + 1))`` levels, *including* every
scalar multiplication and the input map: degree 1 -> 1, 2..3 -> 2, 4..7 -> 3,
8..15 -> 4.  This is the information-theoretic minimum for a ciphertext that
starts at degree 1.  The number of ciphertext x ciphertext products is about
``deg / 2 + log2(deg)``.

Folding ``alpha`` has a price when the interval is not of width 2: the giant
steps ``u^m`` grow like ``((b - a) / 2)^m`` while the leaves shrink like
``alpha^j``, so the absolute CKKS noise added when a leaf is rescaled is
multiplied by up to ``((b - a)/2)^(deg - 1)``.  The alternative plan spends one
level on ``t = alpha * u`` and keeps every intermediate in ``[-1, 1]``.  Both
plans are built; a first-order noise propagation through each
(``noise_gain``, in units of the per-rescale noise) decides: with
``input_scaling="auto"`` the folded plan is used when its noise at scale
``2^40`` (about ``2^-27`` per rescale) stays below ``max_error / 16``, or when
it is no worse than four times the other's; ``"fold"`` and ``"level"`` force
the choice.  Folding is also refused when ``|u^m|`` would exceed ``2^36`` (a
CKKS value times the scale must stay below the remaining modulus) or fall below
``2^-8``.  ``p.plan.folded_input_scale`` says which plan was taken, and
``depth`` is always read from the plan that ``evaluate`` executes.  Scaling the
inputs to ``[-1, 1]`` beforehand (e.g. folding ``alpha`` into the weights of a
linear model) gives minimal depth with no amplification.

Inputs outside the interval
---------------------------
A polynomial diverges like ``|x|^degree`` outside ``[a, b]``, and an encrypted
value cannot be range-checked without decrypting it.  The error bound
``max_error`` holds only inside the interval.  Check representative plaintext
data (a calibration set, the training data) with
:meth:`PolynomialApproximation.check_inputs`; choose the interval from the data
or scale the inputs into it.

The classic trap, measured in the test-suite: the sigmoid approximation
``0.5 + 0.197 x - 0.004 x^3`` that circulates in encrypted logistic-regression
tutorials has a maximum error of 0.97 on ``[-8, 8]`` (at ``x = 8`` it gives
0.028 instead of 0.9997) and drops below 0.5 for ``x > sqrt(0.197 / 0.004) =
7.02``, i.e. it flips the predicted class of confidently positive samples.  The
degree-3 minimax sigmoid on ``[-8, 8]`` from :func:`approximate` has a maximum
error below 0.09 and keeps the class: ``p(x) > 1/2`` exactly for ``x > 0``::

    >>> from he_ml.ml.polynomial import PolynomialApproximation, approximate
    >>> trap = PolynomialApproximation.from_coefficients(
    ...     [0.5, 0.197, 0.0, -0.004], interval=(-8, 8), function="sigmoid")
    >>> round(trap.max_error, 2)
    0.97
    >>> approximate("sigmoid", 3, (-8, 8)).max_error < 0.09
    True

References
----------
.. [Remez34] E. Remez, "Sur la determination des polynomes d'approximation de
   degre donnee", Comm. Soc. Math. Kharkov 10, 1934.  Exchange rule as in
   R. Pachon and L. N. Trefethen, "Barycentric-Remez algorithms for best
   polynomial approximation in the chebfun system", BIT 49, 2009.
.. [PS73] M. S. Paterson and L. J. Stockmeyer, "On the number of nonscalar
   multiplications necessary to evaluate polynomials", SIAM J. Comput. 2(1), 1973.
.. [BMTH21] J.-P. Bossuat, C. Mouchet, J. Troncoso-Pastoriza, J.-P. Hubaux,
   "Efficient bootstrapping for approximate homomorphic encryption with
   non-sparse keys", EUROCRYPT 2021, Algorithm 2 (depth-optimal BSGS with
   power-of-two giant steps; here with baby step 2 so that scalar
   multiplications, which consume a level in TenSEAL, never add depth).
.. [ATAP] L. N. Trefethen, *Approximation Theory and Approximation Practice*,
   SIAM 2013 (Chebyshev interpolation, chapters 8 and 10).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numpy.polynomial import chebyshev as _cheb

from he_ml.errors import DepthExhaustedError, HEError, ParameterError, UnsupportedOperationError
from he_ml.ml.activations import ACTIVATIONS, get_activation
from he_ml.schemes.limits import limit

__all__ = [
    "approximate",
    "PolynomialApproximation",
    "EvaluationPlan",
    "IntervalCheck",
    "OutOfIntervalWarning",
    "METHODS",
    "MAX_DEGREE",
    "suggest_ckks_parameters",
]

METHODS = ("minimax", "least_squares", "chebyshev")

#: Above degree 31 the power-basis coefficients that encrypted evaluation needs grow like
#: (1 + sqrt 2)^degree (Chebyshev -> monomial conversion) and lose more precision than CKKS keeps.
MAX_DEGREE = limit("polynomial_degree_max")  # 31, see he_ml.schemes.limits

#: Points of the uniform grid on which ``max_error`` is measured (odd: contains the midpoint).
ERROR_GRID_POINTS = 100_001

#: Default number of points of the fitting grid (least squares and Remez).
DEFAULT_GRID_SIZE = 8193

#: Relative equioscillation tolerance at which Remez stops: (max|e| - min|e|) / max|e|.
REMEZ_TOLERANCE = 1e-6
REMEZ_MAX_ITERATIONS = 60

#: Folding alpha = 2/(b-a) into the coefficients keeps |u^m| <= ((b-a)/2)^m; CKKS needs
#: |value| * scale below the remaining modulus (about 2^59 for q0 = 60 bits, scale 2^40, one
#: level left, 2^39 for the 2^21-scale tutorial chains), so fold only while |u^m| <= 2^36.
MAX_FOLDED_POWER_LOG2 = 36.0
#: ...and only while rescaling noise on u^m is amplified by at most alpha^m <= 2^8.
MIN_FOLDED_POWER_LOG2 = -8.0

#: Reference CKKS noise per rescale for the automatic fold decision: about 2^-27 absolute was
#: measured for scale 2^40 (fresh encryption 1.6e-8 at n = 16384, 7e-9 at n = 8192).
REFERENCE_NOISE = 2.0 ** -27
#: Folding may amplify that noise; it is accepted while the amplified noise stays below
#: max_error / 16 (or while it is no worse than 4x the normalised plan's).
FOLD_NOISE_FRACTION = 1.0 / 16

#: Max total coefficient-modulus bits at 128-bit security (HE standard, classical, ternary secret).
_HE_STANDARD_MAX_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


class OutOfIntervalWarning(UserWarning):
    """Plaintext data given to `PolynomialApproximation.check_inputs` leaves the interval."""


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


def suggest_ckks_parameters(depth: int, *, max_value: float = 1.0, precision_bits: int = 20) -> str:
    """Plain-language CKKS parameters with ``depth`` levels at 128-bit security.

    Asks the parameter planner (``he_ml.plan``) when it is available; otherwise describes
    the textbook chain of ``depth + 2`` primes ``[60] + [40] * depth + [60]`` and the
    smallest ring dimension whose HE-standard bit budget holds it.

    Parameters
    ----------
    depth : int
        Multiplicative levels needed.
    max_value : float, default 1.0
        Largest magnitude of any input, intermediate or result (for the planner).
    precision_bits : int, default 20
        Bits of absolute precision per operation the evaluation needs (for the planner).
    """
    max_value = max(float(max_value), 1.0)
    call = f"he_ml.plan(depth={depth}, precision_bits={precision_bits}, max_value={max_value:.4g})"
    try:
        from he_ml.schemes.params import plan as _plan
    except ImportError:
        _plan = None
    if _plan is not None:
        try:
            p = _plan(depth=depth, precision_bits=precision_bits, max_value=max_value)
        except HEError as e:
            return f"{call} finds no fitting parameters ({e}); lower the degree or narrow the interval"
        return (f"{call}, which gives n = {p.poly_modulus_degree}, coeff_mod_bit_sizes "
                f"{list(p.coeff_mod_bit_sizes)}, scale 2^{p.scale_bits} "
                f"(build it with he_ml.CKKS(**{call}.parameters()))")
    bits = [60] + [40] * depth + [60]
    total = sum(bits)
    for n, limit in sorted(_HE_STANDARD_MAX_BITS.items()):
        if total <= limit:
            extra = ""
            if n > 8192 and total > 218:
                extra = f" (n = 8192 allows at most 218 bits at 128-bit security; these need {total})"
            return (f"{call}, e.g. a CKKS coefficient modulus of {depth + 2} primes {bits} "
                    f"({total} bits) at poly_modulus_degree n = {n}{extra}, scale 2^40")
    return (f"{call}: {total} bits of coefficient modulus exceed the 881-bit budget of "
            f"n = 32768; lower the degree or narrow the interval")


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------

def _checked_values(func: Callable, x: np.ndarray, name: str) -> np.ndarray:
    """Call the user's vectorised function and insist on finite float values of x's shape."""
    try:
        with np.errstate(all="ignore"):
            y = func(x)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"function {name!r} must be a vectorised callable f(numpy_array) -> numpy_array of the "
            f"same shape; calling it on a float64 array of shape {x.shape} raised "
            f"{type(e).__name__}: {e}. Wrap a scalar function with numpy.vectorize."
        ) from e
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"function {name!r} must return real numbers; got {type(y).__name__} that numpy cannot "
            f"convert to float64 ({e})."
        ) from e
    if y.shape != x.shape:
        raise ParameterError(
            f"function {name!r} must return an array of the input's shape {x.shape}; got shape "
            f"{y.shape}. Make it elementwise (e.g. numpy.vectorize)."
        )
    bad = ~np.isfinite(y)
    if bad.any():
        x_bad = float(x[bad][0])
        raise ParameterError(
            f"function {name!r} is not finite at x = {x_bad:.6g} (got {float(y[bad][0])}); "
            f"choose an interval on which it is finite and bounded."
        )
    return y


def _validate_degree(degree: Any) -> int:
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral):
        raise ParameterError(
            f"degree must be an integer in [1, {MAX_DEGREE}]; got {degree!r} "
            f"({type(degree).__name__})."
        )
    degree = int(degree)
    if degree < 1:
        raise ParameterError(
            f"degree must be an integer in [1, {MAX_DEGREE}]; got {degree}. A constant is not an "
            f"approximation; use degree >= 1."
        )
    if degree > MAX_DEGREE:
        raise ParameterError(
            f"degree must be an integer in [1, {MAX_DEGREE}]; got {degree}. Above {MAX_DEGREE} the "
            f"power-basis coefficients needed for encrypted evaluation lose more precision than CKKS "
            f"keeps, and the depth ({degree.bit_length()} levels) needs very large parameters; "
            f"narrow the interval or lower the degree."
        )
    return degree


def _validate_interval(interval: Any) -> tuple[float, float]:
    try:
        a, b = interval
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        raise ParameterError(
            f"interval must be a pair of finite numbers (a, b) with a < b; got {interval!r}."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ParameterError(
            f"interval must be a pair of finite numbers (a, b) with a < b; got ({a}, {b}). "
            f"Polynomials cannot approximate on an unbounded interval: pick the range of your data."
        )
    if not a < b:
        raise ParameterError(
            f"interval must satisfy a < b; got ({a:g}, {b:g}). Give the lower bound first."
        )
    if (b - a) <= 1e-12 * max(abs(a), abs(b)):
        raise ParameterError(
            f"interval ({a:g}, {b:g}) is too narrow to resolve in float64; widen it."
        )
    return a, b


def _validate_method(method: Any) -> str:
    key = str(method).strip().lower().replace("-", "_").replace(" ", "_") if isinstance(method, str) else None
    aliases = {"lstsq": "least_squares", "ls": "least_squares", "remez": "minimax",
               "chebyshev_interpolation": "chebyshev"}
    key = aliases.get(key, key)
    if key not in METHODS:
        raise ParameterError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}."
        )
    return key


def _validate_input_scaling(value: Any) -> str:
    if value not in ("auto", "fold", "level"):
        raise ParameterError(f"input_scaling must be 'auto', 'fold' or 'level'; got {value!r}.")
    return value


def _resolve_function(func: Any) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    if isinstance(func, str):
        f = get_activation(func)
        return func.strip().lower(), f
    if callable(func):
        name = getattr(func, "__name__", None) or type(func).__name__
        return name, func
    raise ParameterError(
        f"func must be an activation name ({', '.join(sorted(ACTIVATIONS))}) or a vectorised "
        f"callable; got {type(func).__name__}."
    )


def _detect_parity(g: Callable[[np.ndarray], np.ndarray]) -> str | None:
    """'odd' if g(t) - g(0) is odd, 'even' if g(t) - g'(0) t is even (about t = 0), else None."""
    s = np.linspace(1.0 / 257, 1.0, 257)
    both = g(np.concatenate([s, -s, [0.0]]))
    gp, gm, g0 = both[:257], both[257:514], both[-1]
    scale = float(np.max(np.abs(both))) + 1e-300
    tol = 1e-11 * scale
    if np.max(np.abs(gp + gm - 2.0 * g0)) <= tol:
        return "odd"
    h = 0.5 * (gp - gm)
    slope = float(np.dot(h, s) / np.dot(s, s))
    if np.max(np.abs(h - slope * s)) <= tol:
        return "even"
    return None


def _fit_least_squares(g, w, n, grid_size):
    t = np.linspace(-1.0, 1.0, grid_size)
    y = g(t)
    sw = np.sqrt(w(t)) if w is not None else np.ones_like(t)
    V = _cheb.chebvander(t, n) * sw[:, None]
    coef, *_ = np.linalg.lstsq(V, y * sw, rcond=None)
    return coef


def _fit_chebyshev(g, n):
    # Interpolation at the n + 1 Chebyshev points of the first kind (numpy's chebinterpolate).
    return _cheb.chebinterpolate(g, n)


def _alternating_extrema(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Index of the largest |e| in every maximal run of constant sign (alternating by construction)."""
    nz = np.flatnonzero(e != 0.0)
    if nz.size == 0:
        return nz
    s = np.sign(e[nz])
    breaks = np.flatnonzero(np.diff(s) != 0) + 1
    idx = []
    for run in np.split(nz, breaks):
        idx.append(run[np.argmax(np.abs(e[run]))])
    return np.asarray(idx)


def _trim_reference(idx: np.ndarray, e: np.ndarray, npts: int) -> np.ndarray:
    """Reduce alternating extrema to ``npts`` keeping alternation and the largest errors."""
    idx = list(idx)
    while len(idx) > npts:
        mags = np.abs(e[idx])
        if len(idx) == npts + 1:
            idx.pop(0 if mags[0] < mags[-1] else -1)
            continue
        i = int(np.argmin(mags))
        if i == 0 or i == len(idx) - 1:
            idx.pop(i)
        else:
            # Removing an interior point makes its neighbours same-signed: drop the smaller one too.
            j = i - 1 if mags[i - 1] < mags[i + 1] else i + 1
            for k in sorted((i, j), reverse=True):
                idx.pop(k)
    return np.asarray(idx)


def _fit_minimax(g, w, basis, lo, hi, grid_size, start):
    """Remez exchange for ``g`` on ``[lo, hi]`` in the span of ``basis(t)`` (columns).

    ``basis(t)`` returns the matrix of basis functions at ``t`` (shape ``(len(t), dim)``);
    the reference has ``dim + 1`` points.  Returns (coefficients in the basis, final
    reference, converged, notes).
    """
    grid = np.linspace(lo, hi, grid_size)
    # Cosine-spaced points as well: the error oscillates fastest near the end points.
    grid = np.union1d(grid, lo + (hi - lo) * 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, grid_size))))
    g_grid = g(grid)
    w_grid = w(grid) if w is not None else np.ones_like(grid)
    B_grid = basis(grid)
    dim = B_grid.shape[1]
    npts = dim + 1
    scale = float(np.max(np.abs(g_grid))) + 1e-300
    signs = (-1.0) ** np.arange(npts)
    coef = np.zeros(dim)

    def err(t, gt=None, wt=None, Bt=None):
        gt = g(t) if gt is None else gt
        wt = (w(t) if w is not None else 1.0) if wt is None else wt
        Bt = basis(t) if Bt is None else Bt
        return (gt - Bt @ coef) * wt

    best = None  # (max weighted error, coef, reference)
    notes: list[str] = []
    converged = False
    ref = np.asarray(start, dtype=np.float64)
    for _ in range(REMEZ_MAX_ITERATIONS):
        wr = w(ref) if w is not None else np.ones_like(ref)
        A = np.empty((npts, npts))
        A[:, :dim] = basis(ref)
        A[:, dim] = signs / wr
        try:
            sol = np.linalg.solve(A, g(ref))
        except np.linalg.LinAlgError:
            notes.append("Remez: singular reference system")
            break
        coef = sol[:-1]
        # Error on the grid and at the reference (where it alternates in sign by construction).
        tt = np.concatenate([grid, ref])
        e_all = np.concatenate([err(grid, g_grid, w_grid, B_grid), err(ref)])
        order = np.argsort(tt, kind="stable")
        tt, e_all = tt[order], e_all[order]
        maxerr = float(np.max(np.abs(e_all)))
        if maxerr <= 1e-14 * scale:  # g itself lies in the span (e.g. f is a polynomial)
            best = (maxerr, coef.copy(), ref.copy())
            converged = True
            break
        idx = _alternating_extrema(tt, e_all)
        if idx.size < npts:
            notes.append(f"Remez: only {idx.size} sign alternations for the {npts} needed")
            if best is None or maxerr < best[0]:
                best = (maxerr, coef.copy(), ref.copy())
            break
        idx = _trim_reference(idx, e_all, npts)
        new_ref, new_e = _refine_extrema(tt, idx, e_all, err)
        maxerr = max(maxerr, float(np.max(np.abs(new_e))))
        if best is None or maxerr < best[0]:
            best = (maxerr, coef.copy(), new_ref.copy())
        mags = np.abs(new_e)
        levelling = float((mags.max() - mags.min()) / mags.max())
        # Equioscillation to the tolerance, or to the float64 resolution of the error itself.
        if levelling <= max(REMEZ_TOLERANCE, 1e-14 * scale / mags.max()):
            converged = True
            break
        if np.array_equal(new_ref, ref):
            notes.append(f"Remez: reference stopped moving at levelling {levelling:.1e}")
            break
        ref = new_ref
    else:
        notes.append(f"Remez: no equioscillation to {REMEZ_TOLERANCE:g} within "
                     f"{REMEZ_MAX_ITERATIONS} iterations (typical for non-smooth functions)")
    return best, converged, notes


def _minimax_cheb(g, w, n, parity, grid_size):
    """Minimax Chebyshev coefficients of degree ``n`` for ``g`` on [-1, 1].

    With a parity (see `_detect_parity`) the problem is solved on [0, 1] in the reduced
    basis -- a symmetric reference of odd size would otherwise force the levelled error
    to zero for odd ``g`` (a classic Remez degeneracy).  Returns
    (Chebyshev coefficients, reference points in t, converged, notes).
    """
    cheb = np.zeros(n + 1)
    if parity == "odd":
        ks = np.arange(1, n + 1, 2)  # T_1, T_3, ...
        c0 = float(g(np.zeros(1))[0])
        gr = lambda t: g(t) - c0  # noqa: E731 - odd about 0, approximated on (0, 1]
        N = int(ks[-1]) + 2  # extrema of T_N in (0, 1]: len(ks) + 1 points, none at 0
        start = np.sort(np.cos(np.pi * np.arange(0, (N - 1) // 2 + 1) / N))
        lo, hi = 1e-9, 1.0
    elif parity == "even":
        ks = np.arange(0, n + 1, 2)  # T_0, T_2, ...
        s = np.linspace(1.0 / 257, 1.0, 257)
        gp, gm = g(s), g(-s)
        slope = float(np.dot(0.5 * (gp - gm), s) / np.dot(s, s))
        gr = lambda t: g(t) - slope * np.asarray(t)  # noqa: E731 - even about 0
        N = int(ks[-1]) + 2  # extrema of T_N in [0, 1] (N even: includes 0)
        start = np.sort(np.cos(np.pi * np.arange(0, N // 2 + 1) / N))
        lo, hi = 0.0, 1.0
        if n >= 1:
            cheb[1] = slope
    else:
        ks = np.arange(0, n + 1)
        gr = g
        start = np.cos(np.pi * np.arange(n + 1, -1, -1) / (n + 1))  # extrema of T_{n+1}
        lo, hi = -1.0, 1.0

    def basis(t):
        return _cheb.chebvander(np.asarray(t, dtype=np.float64), n)[:, ks]

    best, converged, notes = _fit_minimax(gr, w, basis, lo, hi, grid_size, start)
    if not converged and parity is None:
        # Second start, deliberately asymmetric, before settling for the best iterate.
        warped = start + 0.05 * (1.0 - start ** 2)
        best2, converged2, notes2 = _fit_minimax(gr, w, basis, lo, hi, grid_size, warped)
        if best2 is not None and (best is None or best2[0] < best[0]):
            best, converged, notes = best2, converged2, notes + ["restarted from an asymmetric reference"] + notes2
    if best is None:
        raise ParameterError(
            "minimax (Remez) could not start for this function; use method='least_squares' or "
            "method='chebyshev'."
        )
    if not converged:
        notes = notes + ["kept the best iterate (max error measured, not estimated)"]
    coef, ref = best[1], best[2]
    cheb[ks] += coef
    if parity is not None:
        ref = np.concatenate([-ref[::-1], ref])
        if parity == "odd":
            cheb[0] = c0
    return cheb, ref, converged, tuple(notes)


def _refine_extrema(tt, idx, e_all, err, zooms: int = 3, k: int = 33):
    """Locate each extremum between its grid neighbours by repeated local sampling (vectorised)."""
    lo = tt[np.maximum(idx - 1, 0)]
    hi = tt[np.minimum(idx + 1, tt.size - 1)]
    cur_t = tt[idx].copy()
    cur_e = e_all[idx].copy()
    sgn = np.sign(cur_e)
    frac = np.linspace(0.0, 1.0, k)
    for _ in range(zooms):
        pts = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        vals = err(pts.ravel()).reshape(pts.shape) * sgn[:, None]
        j = np.argmax(vals, axis=1)
        rows = np.arange(idx.size)
        better = vals[rows, j] > cur_e * sgn
        cur_t = np.where(better, pts[rows, j], cur_t)
        cur_e = np.where(better, vals[rows, j] * sgn, cur_e)
        step = (hi - lo) / (k - 1)
        lo = np.maximum(cur_t - step, lo)
        hi = np.minimum(cur_t + step, hi)
    # Keep the points strictly increasing (refinement never crosses a neighbour's bracket,
    # but two brackets can touch).
    order = np.argsort(cur_t)
    return cur_t[order], cur_e[order]


# ---------------------------------------------------------------------------------------------
# Result object
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IntervalCheck:
    """Result of `PolynomialApproximation.check_inputs` on plaintext data.

    Attributes
    ----------
    interval : (float, float)
    n_values, n_outside : int
    fraction_outside : float
    min_value, max_value : float
        Range of the data.
    max_error_on_inputs : float
        ``max |p(x) - f(x)|`` over the data (inside and outside the interval).
    """

    interval: tuple[float, float]
    n_values: int
    n_outside: int
    fraction_outside: float
    min_value: float
    max_value: float
    max_error_on_inputs: float

    @property
    def ok(self) -> bool:
        """True when every value lies in the interval."""
        return self.n_outside == 0


@dataclass(frozen=True, eq=False, repr=False)
class PolynomialApproximation:
    """A polynomial approximation with measured error and a minimal-depth encrypted evaluator.

    Create with :func:`approximate` (or :meth:`from_coefficients` to measure a given
    polynomial).

    Attributes
    ----------
    function : str
        Name of the approximated function (registry name or the callable's ``__name__``).
    degree : int
        Requested degree. ``effective_degree`` can be lower when leading coefficients
        are exactly zero by symmetry.
    interval : (float, float)
        ``[a, b]``; the error bound and the evaluation are meant for inputs in here.
    method : str
        ``"minimax"``, ``"least_squares"``, ``"chebyshev"`` or ``"given"``.
    coefficients : numpy.ndarray of float64, shape (degree + 1,)
        Power basis in ``x``, lowest degree first: ``p(x) = sum_k coefficients[k] x^k``.
        Informative; on wide intervals this basis is ill-conditioned and the evaluation
        uses ``coefficients_t`` instead.
    coefficients_t : numpy.ndarray of float64, shape (degree + 1,)
        Power basis in the mapped variable ``t = (2x - (a + b)) / (b - a)`` in [-1, 1].
    max_error : float
        Measured ``max |p(x) - f(x)|`` on 100 001 uniform points of the interval plus
        the Remez and Chebyshev extrema, with ``p`` evaluated by ``plan``.
    max_error_at : float
        The ``x`` where that maximum was found.
    depth : int
        Multiplicative levels ``evaluate`` consumes on CKKS (``plan.depth``).
    plan : EvaluationPlan
        The program executed by ``__call__`` and ``evaluate``.
    converged : bool
        False if Remez stopped before equioscillation (then ``notes`` says why).
    notes : tuple of str
    max_intermediate : float
        Largest magnitude of the input, any intermediate value or the result of the plan
        over the measurement grid: what a CKKS modulus chain must hold (``max_value`` of
        ``he_ml.plan``).
    noise_gain : float
        First-order bound of the CKKS error of ``evaluate`` in units of the per-operation
        noise ``eta`` (about ``2^-27`` at scale ``2^40``): fresh noise and every rescale
        propagated through the plan. ``noise_gain * eta`` is the expected worst-case
        deviation of ``decrypt(p.evaluate(enc))`` from ``p(x)``.
    """

    function: str
    degree: int
    interval: tuple[float, float]
    method: str
    coefficients: np.ndarray
    coefficients_t: np.ndarray
    max_error: float
    max_error_at: float
    plan: EvaluationPlan
    converged: bool = True
    notes: tuple[str, ...] = ()
    max_intermediate: float = float("nan")
    noise_gain: float = float("nan")
    _func: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)
    _integer_plan: EvaluationPlan | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def _build(cls, *, name, func, degree, interval, method, coef_t, extra_x=(), converged=True,
               notes=(), input_scaling="auto") -> "PolynomialApproximation":
        a, b = interval
        alpha = 2.0 / (b - a)
        mid = 0.5 * (a + b)
        coef_t = np.asarray(coef_t, dtype=np.float64)
        nz = np.flatnonzero(coef_t)
        eff = int(nz[-1]) if nz.size else 0
        # Two candidate plans: alpha folded into the coefficients (minimal depth) or one level
        # spent on t = alpha*u (every intermediate in [-1, 1]: no noise amplification).
        probe = np.linspace(a, b, 2049)
        normalised = _build_plan(coef_t, -mid, alpha, False)
        plan = normalised
        if input_scaling != "level" and _fold_is_representable(eff, 1.0 / alpha):
            folded = _build_plan(coef_t, -mid, alpha, True)
            if input_scaling == "fold" or folded.depth == normalised.depth:
                plan = folded
            else:
                approx_err = float(np.max(np.abs(np.asarray(folded.run(probe)) - _checked_values(func, probe, name))))
                g_f, g_n = _noise_gain(folded, probe), _noise_gain(normalised, probe)
                if g_f * REFERENCE_NOISE <= FOLD_NOISE_FRACTION * approx_err or g_f <= 4.0 * g_n:
                    plan = folded
        elif input_scaling == "fold":
            raise ParameterError(
                f"input_scaling='fold' is impossible on [{a:g}, {b:g}] at degree {eff}: the folded "
                f"powers ((b - a)/2)^m would leave CKKS's representable range (2^{MIN_FOLDED_POWER_LOG2:g} "
                f"to 2^{MAX_FOLDED_POWER_LOG2:g}); use input_scaling='auto' or 'level'."
            )
        noise_gain = _noise_gain(plan, probe)
        # p(x) in the power basis of x: compose p(t) with t = alpha*x - alpha*mid.
        coef_x = np.polynomial.Polynomial(coef_t)(np.polynomial.Polynomial([-alpha * mid, alpha])).coef
        coef_x = np.pad(coef_x, (0, max(0, coef_t.size - coef_x.size)))[: coef_t.size]
        int_plan = None
        if np.all(np.isfinite(coef_x)) and np.all(coef_x == np.round(coef_x)):
            int_plan = _build_plan(coef_x, 0.0, 1.0, True)  # exact integer polynomial in x (BFV)
        # Measure the error honestly, with the plan itself evaluating p.
        xs = np.linspace(a, b, ERROR_GRID_POINTS)
        cheb_ext = mid + np.cos(np.linspace(0.0, np.pi, 4 * (degree + 2) + 1)) / alpha
        xs = np.concatenate([xs, np.clip(np.asarray(extra_x, dtype=np.float64), a, b), cheb_ext])
        fx = _checked_values(func, xs, name)
        peak = [float(np.max(np.abs(xs)))]
        px = np.asarray(plan.run(xs, observe=lambda v: peak.append(float(np.max(np.abs(v))))),
                        dtype=np.float64)
        errs = np.abs(px - fx)
        i = int(np.argmax(errs))
        coef_x.setflags(write=False)
        coef_t = coef_t.copy()
        coef_t.setflags(write=False)
        return cls(function=name, degree=int(degree), interval=(float(a), float(b)), method=method,
                   coefficients=coef_x, coefficients_t=coef_t, max_error=float(errs[i]),
                   max_error_at=float(xs[i]), plan=plan, converged=bool(converged),
                   notes=tuple(notes), max_intermediate=max(peak), noise_gain=noise_gain, _func=func,
                   _integer_plan=int_plan)

    @classmethod
    def from_coefficients(cls, coefficients: Sequence[float], interval: tuple[float, float],
                          function: str | Callable, *,
                          input_scaling: str = "auto") -> "PolynomialApproximation":
        """Wrap a given polynomial (power basis in ``x``) and measure its error against ``function``.

        Parameters
        ----------
        coefficients : sequence of float, length degree + 1
            ``p(x) = sum_k coefficients[k] x^k``, lowest degree first.
        interval : (float, float)
            Where ``p`` is meant to approximate ``function``.
        function : str or callable
            Registry name or vectorised callable to measure ``max_error`` against.
        input_scaling : {"auto", "fold", "level"}, default "auto"
            As in :func:`approximate`.

        Raises
        ------
        ParameterError
            On empty or non-finite coefficients, a bad interval or function.
        """
        c = np.asarray(coefficients, dtype=np.float64).ravel()
        if c.size < 1 or not np.all(np.isfinite(c)):
            raise ParameterError(
                f"coefficients must be a non-empty sequence of finite numbers; got {coefficients!r}."
            )
        a, b = _validate_interval(interval)
        name, func = _resolve_function(function)
        degree = max(1, int(np.flatnonzero(c)[-1]) if np.any(c) else 1)
        if degree > MAX_DEGREE:
            _validate_degree(degree)
        c = np.pad(c, (0, max(0, degree + 1 - c.size)))[: degree + 1]
        # x = (t + alpha*mid) / alpha = mid + t * half  ->  p(t) by composition.
        half, mid = 0.5 * (b - a), 0.5 * (a + b)
        coef_t = np.polynomial.Polynomial(c)(np.polynomial.Polynomial([mid, half])).coef
        coef_t = np.pad(coef_t, (0, max(0, c.size - coef_t.size)))[: c.size]
        return cls._build(name=name, func=func, degree=degree, interval=(a, b), method="given",
                          coef_t=coef_t, input_scaling=_validate_input_scaling(input_scaling))

    # ------------------------------------------------------------------ properties
    @property
    def depth(self) -> int:
        """Multiplicative levels consumed by `evaluate` on CKKS (read from `plan`)."""
        return self.plan.depth

    @property
    def required_precision_bits(self) -> int:
        """CKKS precision (bits per operation) that keeps ``noise_gain * 2^-bits <= max_error / 16``.

        At least 20 (the planner's default); passed to ``he_ml.plan`` in error messages.
        """
        if not (self.noise_gain > 0 and self.max_error > 0):
            return 20
        bits = math.ceil(math.log2(self.noise_gain * 16.0 / self.max_error))
        return int(min(max(bits, 20), 50))

    @property
    def effective_degree(self) -> int:
        """Highest power with a non-zero coefficient."""
        nz = np.flatnonzero(self.coefficients_t)
        return int(nz[-1]) if nz.size else 0

    def __repr__(self) -> str:
        a, b = self.interval
        conv = "" if self.converged else ", converged=False"
        return (f"PolynomialApproximation(function={self.function!r}, degree={self.degree}, "
                f"interval=({a:g}, {b:g}), method={self.method!r}, max_error={self.max_error:.3e}, "
                f"depth={self.depth}{conv})")

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable summary (coefficients as lists)."""
        return {
            "function": self.function, "degree": self.degree, "interval": list(self.interval),
            "method": self.method, "coefficients": self.coefficients.tolist(),
            "coefficients_t": self.coefficients_t.tolist(), "max_error": self.max_error,
            "max_error_at": self.max_error_at, "depth": self.depth,
            "ciphertext_multiplications": self.plan.ciphertext_multiplications,
            "plaintext_multiplications": self.plan.plaintext_multiplications,
            "converged": self.converged, "notes": list(self.notes),
            "max_intermediate": self.max_intermediate, "noise_gain": self.noise_gain,
            "folded_input_scale": self.plan.folded_input_scale,
        }

    # ------------------------------------------------------------------ evaluation
    def __call__(self, x: Any) -> np.ndarray:
        """Evaluate on plaintext numbers with the same plan (and rounding order) as `evaluate`.

        Parameters
        ----------
        x : array_like of float, any shape

        Returns
        -------
        numpy.ndarray of float64, same shape as ``x`` (a 0-d input gives a 0-d array).
        Inputs outside ``interval`` are evaluated too; there the polynomial diverges.
        """
        arr = np.asarray(x, dtype=np.float64)
        return np.asarray(self.plan.run(arr), dtype=np.float64)

    def evaluate(self, x: Any) -> Any:
        """Evaluate on an encrypted vector with `depth` multiplicative levels.

        Works on any encrypted vector that supports ``+``, ``-``, unary ``-``, ``*`` with
        a ciphertext and with a float, and exposes ``level`` (levels left or None) and
        ``context.name``.

        Parameters
        ----------
        x : EncryptedVector
            Values expected in ``interval`` (see the module notes on inputs outside it).

        Returns
        -------
        EncryptedVector
            Encrypts ``p(x)``; on CKKS its level is ``x.level - depth``.

        Raises
        ------
        ParameterError
            If ``x`` is a plaintext (call ``p(x)`` instead).
        UnsupportedOperationError
            On BFV or Paillier when a coefficient is not an integer, and on a scheme without
            ciphertext x ciphertext multiplication (Paillier) when the degree is >= 2.
        DepthExhaustedError
            If ``x.level < depth``; the message gives the parameters that would fit.
        """
        if isinstance(x, (np.ndarray, numbers.Number, list, tuple)):
            raise ParameterError(
                f"evaluate() takes an encrypted vector; got {type(x).__name__}. For plaintext "
                f"inputs call the approximation directly: p(x)."
            )
        ctx = getattr(x, "context", None)
        scheme = str(getattr(ctx, "name", "") or "").lower()
        caps = getattr(ctx, "capabilities", None)
        plan = self.plan
        if scheme in ("bfv", "paillier"):
            if self._integer_plan is None:
                raise UnsupportedOperationError(
                    f"{scheme}: the {self._label()} has non-integer coefficients, but {scheme} "
                    f"computes on integers only. Evaluate it on CKKS (he_ml.CKKS()), or on BFV "
                    f"scale the polynomial to integer coefficients yourself and divide after "
                    f"decryption."
                )
            plan = self._integer_plan
        needs_ct_mul = plan.ciphertext_multiplications > 0
        no_ct_mul = (caps is not None and "mul" not in caps) or (caps is None and scheme == "paillier")
        if needs_ct_mul and no_ct_mul:
            raise UnsupportedOperationError(
                f"{scheme or type(x).__name__}: the {self._label()} needs ciphertext x ciphertext "
                f"multiplication, which this scheme does not support (Paillier is additive only). "
                f"Use CKKS for polynomial activations, or decrypt and apply p(x) on the client."
            )
        level = getattr(x, "level", None)
        if level is not None and level < plan.depth:
            fits = (1 << level) - 1
            lower = (f"; or lower the degree to {fits} (with the inputs scaled to [-1, 1] or "
                     f"input_scaling='fold', degree {fits} needs {level} level{'s' if level != 1 else ''})"
                     if fits >= 1 else "")
            raise DepthExhaustedError(
                f"evaluating the {self._label()} needs {plan.depth} multiplicative levels but the "
                f"ciphertext has {level} left. Encrypt with parameters that have at least "
                f"{plan.depth} levels: "
                f"{suggest_ckks_parameters(plan.depth, max_value=self.max_intermediate, precision_bits=self.required_precision_bits)}"
                f"{lower}."
            )
        return self._declare_output_bound(x, plan.run(x))

    def _declare_output_bound(self, x: Any, out: Any) -> Any:
        """State the output's magnitude bound when the input's public bound lies in the interval.

        Interval arithmetic through the plan's monomials overestimates |p| (e.g. 17 for a sigmoid
        approximation whose values stay in [0, 1]). If the input's tracked bound ``|x| <= B``
        places every input inside ``[a, b]``, then with ``t = alpha (x - mid)`` in [-1, 1] and
        ``p = sum_k c_k T_k(t)`` (Chebyshev basis, ``|T_k| <= 1`` there),
        ``|p(x)| <= sum_k |c_k|`` -- a rigorous bound, also ``<= sum |power coefficients in t|``.
        """
        if str(getattr(getattr(out, "context", None), "name", "")) != "ckks":
            return out  # BFV's integer plans are exact; its bounds stay as tracked
        bound = getattr(x, "bound", None)
        with_bound = getattr(out, "with_bound", None)
        if bound is None or with_bound is None or getattr(out, "bound", None) is None:
            return out
        a, b = self.interval
        if not (a <= -float(bound) and float(bound) <= b):
            return out
        coef_t = np.asarray(self.coefficients_t, dtype=np.float64)
        cheb = np.polynomial.chebyshev.poly2cheb(coef_t)
        limit = float(min(np.sum(np.abs(cheb)), np.sum(np.abs(coef_t))))
        return with_bound(limit * (1 + 1e-12)) if math.isfinite(limit) else out

    def _label(self) -> str:
        a, b = self.interval
        return f"degree-{self.degree} {self.function} approximation on [{a:g}, {b:g}]"

    def check_inputs(self, x_plain: Any, *, action: str = "warn") -> IntervalCheck:
        """Check plaintext data (e.g. calibration samples) against the approximation interval.

        An encrypted value cannot be range-checked; run this on representative plaintext
        data (training or calibration set) before trusting encrypted results.

        Parameters
        ----------
        x_plain : array_like of float, any shape
            Inputs the polynomial will see.
        action : {"warn", "raise", "ignore"}, default "warn"
            What to do when values lie outside ``interval``: emit an
            :class:`OutOfIntervalWarning`, raise :class:`~he_ml.errors.ParameterError`, or
            only return the report.

        Returns
        -------
        IntervalCheck

        Raises
        ------
        ParameterError
            With ``action="raise"`` when any value is outside the interval; always for
            NaN/inf data, an empty array or an unknown ``action``.
        """
        if action not in ("warn", "raise", "ignore"):
            raise ParameterError(f"action must be 'warn', 'raise' or 'ignore'; got {action!r}.")
        try:
            arr = np.asarray(x_plain, dtype=np.float64).ravel()
        except (TypeError, ValueError) as e:
            raise ParameterError(f"x_plain must be numeric array-like; got {type(x_plain).__name__}.") from e
        if arr.size == 0:
            raise ParameterError("x_plain is empty; pass the calibration values to check.")
        if not np.all(np.isfinite(arr)):
            raise ParameterError(
                f"x_plain contains {int(np.sum(~np.isfinite(arr)))} NaN/inf values; clean the data first."
            )
        a, b = self.interval
        outside = (arr < a) | (arr > b)
        n_out = int(outside.sum())
        with np.errstate(all="ignore"):
            fx = np.asarray(self._func(arr), dtype=np.float64) if self._func is not None else None
            px = self(arr)
            err = float(np.max(np.abs(px - fx))) if fx is not None else float("nan")
        report = IntervalCheck(interval=(a, b), n_values=int(arr.size), n_outside=n_out,
                               fraction_outside=n_out / arr.size, min_value=float(arr.min()),
                               max_value=float(arr.max()), max_error_on_inputs=err)
        if n_out and action != "ignore":
            lo, hi = min(a, report.min_value), max(b, report.max_value)
            msg = (f"{n_out} of {arr.size} values ({100 * report.fraction_outside:.1f} %) lie outside "
                   f"the interval [{a:g}, {b:g}] of the {self._label()} (data range "
                   f"[{report.min_value:.4g}, {report.max_value:.4g}]); there the polynomial diverges: "
                   f"error on these data up to {err:.3g} vs max_error {self.max_error:.3g} inside. "
                   f"Refit with approximate(..., interval=({math.floor(lo):g}, {math.ceil(hi):g})) "
                   f"or scale the inputs into the interval.")
            if action == "raise":
                raise ParameterError(msg)
            warnings.warn(msg, OutOfIntervalWarning, stacklevel=2)
        return report


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------

def approximate(func: str | Callable[[np.ndarray], np.ndarray], degree: int,
                interval: tuple[float, float], method: str = "minimax", *,
                weight: Callable[[np.ndarray], np.ndarray] | None = None,
                grid_size: int = DEFAULT_GRID_SIZE,
                input_scaling: str = "auto") -> PolynomialApproximation:
    """Fit a polynomial of ``degree`` to ``func`` on ``interval``.

    Parameters
    ----------
    func : str or callable
        ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"gelu"``, ``"exp"`` (see
        :data:`he_ml.ml.activations.ACTIVATIONS`) or a vectorised callable
        ``f(numpy_array) -> numpy_array`` of the same shape, finite on the interval.
    degree : int
        1 .. 31. The encrypted evaluation consumes ``ceil(log2(degree + 1))`` levels
        (one more on extreme intervals, see the module notes); read ``.depth``.
    interval : (float, float)
        ``(a, b)`` with ``a < b``, both finite: the range the inputs will lie in.
    method : {"minimax", "least_squares", "chebyshev"}, default "minimax"
        See the module docstring.
    weight : callable, optional
        Non-negative weight ``w(x)`` (vectorised) for ``"least_squares"`` (weights of the
        squared error) and ``"minimax"`` (minimises ``max w(x) |f(x) - p(x)|``; must be
        positive). Not accepted for ``"chebyshev"``. ``max_error`` stays unweighted.
    grid_size : int, default 8193
        Points of the fitting grid (least squares, Remez); at least ``10 * (degree + 1)``.
    input_scaling : {"auto", "fold", "level"}, default "auto"
        How the encrypted evaluation maps ``x`` to ``t``: ``"fold"`` folds ``2/(b-a)`` into
        the coefficients (minimal depth; CKKS noise amplified by up to ``((b-a)/2)^(deg-1)``),
        ``"level"`` spends one level on it (noise not amplified), ``"auto"`` folds when the
        amplified noise stays below ``max_error / 16`` at scale ``2^40``. Irrelevant (always
        folded, no cost) when ``b - a == 2``.

    Returns
    -------
    PolynomialApproximation

    Raises
    ------
    ParameterError
        Degree not an integer in [1, 31]; interval not finite or ``a >= b``; unknown
        activation name (the message lists valid names) or method; a callable that is
        not vectorised or not finite on the interval; a bad weight or grid size.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> p = approximate("sigmoid", degree=7, interval=(-8, 8))
    >>> p.depth, p.plan.folded_input_scale   # folding 1/8 would amplify noise 2^18-fold
    (4, False)
    >>> approximate("sigmoid", 7, (-8, 8), input_scaling="fold").depth
    3
    >>> approximate(lambda z: 1 / (1 + np.exp(-8 * z)), 7, (-1, 1)).depth  # inputs pre-scaled
    3
    >>> bool(p.max_error < 0.02)
    True
    >>> x = np.linspace(-8, 8, 5)
    >>> bool(np.all(np.abs(p(x) - 1 / (1 + np.exp(-x))) <= p.max_error))
    True
    """
    degree = _validate_degree(degree)
    a, b = _validate_interval(interval)
    method = _validate_method(method)
    input_scaling = _validate_input_scaling(input_scaling)
    name, f = _resolve_function(func)
    if isinstance(grid_size, bool) or not isinstance(grid_size, numbers.Integral):
        raise ParameterError(f"grid_size must be an integer; got {grid_size!r}.")
    min_grid = 10 * (degree + 1)
    if not (min_grid <= int(grid_size) <= 10_000_000):
        raise ParameterError(
            f"grid_size must be between {min_grid} (10 * (degree + 1)) and 10000000; got {grid_size}."
        )
    grid_size = int(grid_size)
    if weight is not None and not callable(weight):
        raise ParameterError(f"weight must be a vectorised callable w(x) or None; got {type(weight).__name__}.")
    if weight is not None and method == "chebyshev":
        raise ParameterError(
            "weight is not used by method='chebyshev' (interpolation has no weight); use "
            "method='least_squares' or 'minimax' for a weighted fit, or drop weight."
        )

    mid, half = 0.5 * (a + b), 0.5 * (b - a)

    def g(t):  # f on the mapped variable
        return _checked_values(f, mid + half * np.asarray(t, dtype=np.float64), name)

    w_t = None
    if weight is not None:
        probe = np.linspace(a, b, 1025)
        wv = _checked_values(weight, probe, getattr(weight, "__name__", "weight"))
        if np.any(wv < 0) or not np.any(wv > 0):
            raise ParameterError("weight must be non-negative and not identically zero on the interval.")
        if method == "minimax" and np.any(wv <= 0):
            raise ParameterError("weight must be strictly positive on the interval for method='minimax'.")

        def w_t(t):
            return _checked_values(weight, mid + half * np.asarray(t, dtype=np.float64), "weight")

    g(np.linspace(-1.0, 1.0, 257))  # validate early: vectorised, finite, right shape

    # Symmetry about the midpoint is exploited only when the weight is symmetric too.
    parity = _detect_parity(g)
    if parity is not None and w_t is not None:
        s = np.linspace(0.0, 1.0, 257)
        if not np.allclose(w_t(s), w_t(-s), rtol=1e-12, atol=0.0):
            parity = None
    notes: tuple[str, ...] = ()
    converged = True
    extra_t = np.empty(0)
    if method == "least_squares":
        cheb = _fit_least_squares(g, w_t, degree, grid_size)
    elif method == "chebyshev":
        cheb = _fit_chebyshev(g, degree)
    else:
        cheb, extra_t, converged, notes = _minimax_cheb(g, w_t, degree, parity, grid_size)

    cheb = np.array(cheb, dtype=np.float64)
    if parity == "odd":
        cheb[2::2] = 0.0  # T_k has the parity of k
    elif parity == "even":
        cheb[3::2] = 0.0
    coef_t = _cheb.cheb2poly(cheb)
    coef_t = np.pad(coef_t, (0, degree + 1 - coef_t.size))
    if parity == "odd":
        coef_t[2::2] = 0.0  # exact zeros (cheb2poly can leave rounding residue)
    elif parity == "even":
        coef_t[3::2] = 0.0
    return PolynomialApproximation._build(
        name=name, func=f, degree=degree, interval=(a, b), method=method, coef_t=coef_t,
        extra_x=mid + half * np.asarray(extra_t), converged=converged, notes=notes,
        input_scaling=input_scaling,
    )
