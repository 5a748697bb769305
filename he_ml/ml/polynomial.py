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

What lives where (the polynomial package is split along its seams):

* :mod:`he_ml.ml.polynomial` -- the public API: :func:`~he_ml.ml.polynomial.approximate`,
  :class:`~he_ml.ml.polynomial.PolynomialApproximation`, the constants;
* :mod:`he_ml.ml._poly_plan` -- the evaluation plan and its noise propagation;
* :mod:`he_ml.ml._poly_fit` (this module) -- validation of ``degree`` / ``interval`` /
  ``method`` / ``input_scaling`` / the function, parity detection, and the three fits on the
  mapped variable ``t`` in ``[-1, 1]``: weighted least squares, Chebyshev interpolation and the
  Remez exchange (minimax) with local refinement of every extremum (see the "Fitting" section
  of :mod:`he_ml.ml.polynomial` and its references [Remez34]_, [ATAP]_).

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
from he_ml.ml._poly_plan import (  # noqa: F401  (re-exported: the old import path keeps working)
    MAX_FOLDED_POWER_LOG2,
    MIN_FOLDED_POWER_LOG2,
    _Step,
    _PlanBuilder,
    EvaluationPlan,
    _finalise,
    _build_plan,
    _fold_is_representable,
    _NoiseBound,
    _noise_gain,
)
from he_ml.ml._poly_fit import (  # noqa: F401  (re-exported: the old import path keeps working)
    METHODS,
    MAX_DEGREE,
    REMEZ_TOLERANCE,
    REMEZ_MAX_ITERATIONS,
    _checked_values,
    _validate_degree,
    _validate_interval,
    _validate_method,
    _validate_input_scaling,
    _resolve_function,
    _detect_parity,
    _fit_least_squares,
    _fit_chebyshev,
    _alternating_extrema,
    _trim_reference,
    _fit_minimax,
    _minimax_cheb,
    _refine_extrema,
)

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

#: Points of the uniform grid on which ``max_error`` is measured (odd: contains the midpoint).
ERROR_GRID_POINTS = 100_001

#: Default number of points of the fitting grid (least squares and Remez).
DEFAULT_GRID_SIZE = 8193

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
