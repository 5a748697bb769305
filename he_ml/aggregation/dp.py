"""Differential privacy for encrypted gradient summation.

Three pieces, used by :class:`he_ml.aggregation.GradientAggregator` and usable
on their own:

* **Clipping** -- :func:`clip_l2` bounds the L2 norm of one client's update
  (an array of any shape or a dict of arrays, clipped by the *global* norm as
  in DP-SGD / DP-FedAvg), which bounds the sensitivity of the sum.
* **Noise** -- :func:`discrete_gaussian` draws exact samples of the discrete
  Gaussian from the operating system's CSPRNG (``secrets``); never
  ``numpy.random``, never floating-point transcendental functions.
  :class:`DPConfig` calibrates it to ``(clip_norm, noise_multiplier)`` and
  :func:`privatize_client_update` / :func:`add_central_noise` apply it, either
  *distributed* (every client adds a share, so nobody ever sees the un-noised
  sum) or *central* (the key holder adds it after decryption).
* **Accounting** -- :func:`epsilon` and :func:`noise_multiplier_for` call
  Google's ``dp-accounting`` (RDP or PLD accountant); nothing here is a
  hand-written accountant.

Why the noise lives on a grid
-----------------------------
Textbook samplers (Box--Muller, inverse CDF with ``log``) produce floating-point
numbers whose *set of reachable values* depends on the value they are added to:
Mironov (2012) recovered the exact input of a float Laplace mechanism from the
low bits of its output, and Jin et al. (2022) and Holohan & Braghin (2021) did
the same for Gaussian samplers of common libraries, and also exploited their
data-dependent running time. This module avoids the whole class of attacks by
never producing a noisy float from a float:

1. the clipped update is rounded to an integer multiple of ``resolution``
   (towards zero, so the norm cannot grow and the sensitivity stays exactly
   ``clip_norm``);
2. integer noise is drawn *exactly* from the discrete Gaussian
   :math:`\\mathcal{N}_\\mathbb{Z}(0, \\sigma^2)` with integer or rational
   arithmetic only (Canonne, Kamath & Steinke 2020, Algorithms 1--3);
3. the integer sum is multiplied by ``resolution`` at the very end, which is
   post-processing of a DP output and cannot leak anything else.

Integer multiples of a fixed step are also what BFV and packed Paillier encode
exactly (fixed point), so the grid costs nothing downstream.
"""
from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from importlib.metadata import PackageNotFoundError, version as _dist_version
from typing import Literal, Union

import numpy as np

from ..errors import ParameterError, ShapeMismatchError

__all__ = [
    "DEFAULT_RESOLUTION_BITS",
    "DPConfig",
    "PrivacyReport",
    "clip_l2",
    "discrete_laplace",
    "discrete_gaussian",
    "privatize_client_update",
    "add_central_noise",
    "epsilon",
    "noise_multiplier_for",
]

Update = Union[np.ndarray, Mapping[str, np.ndarray]]

# Default grid step: clip_norm / 2**16. The grid error per coordinate is
# < clip_norm * 2**-16, far below the noise std (noise_multiplier * clip_norm),
# and sigma in grid units stays well inside the sampler's exact int64 range.
DEFAULT_RESOLUTION_BITS = 16

# sigma^2 in grid units must stay below 2**52: the fast sampler keeps |Y|*t and
# the rational numerator/denominator of sigma^2 in int64 (see _gaussian_accept).
_MAX_SIGMA_SQUARED = 2**52

# clip_norm / resolution bound: grid coordinates of a clipped update stay below
# 2**30, so their squares (and the sum of squares, <= (clip/res)^2) fit int64.
_MAX_GRID_NORM = 2**30

# Samples drawn per vectorised pass; bounds the sampler's working memory
# (~ a few dozen bytes per value) independently of the request size.
_CHUNK = 1 << 17

# Relative safety margin of the floating-point *filter* in the exact Bernoulli
# test. The filter only decides cases that are unambiguous by more than this
# margin; everything closer is resolved with exact integers. 2**-43 is orders of
# magnitude above the accumulated rounding error (< 10 * 2**-53).
_FILTER_MARGIN = 2.0**-43

# Bits of the uniform variable used by the vectorised comparison; the exact
# fallback extends them lazily 64 bits at a time.
_U_BITS = 52


# ---------------------------------------------------------------------------
# CSPRNG primitives (os.urandom through ``secrets``)
# ---------------------------------------------------------------------------


def _random_words(n: int, nbytes: int) -> np.ndarray:
    """``n`` uniform unsigned integers of ``nbytes`` bytes from the OS CSPRNG."""
    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[nbytes]
    return np.frombuffer(secrets.token_bytes(n * nbytes), dtype=dtype).astype(np.int64 if nbytes < 8 else np.uint64)


def _uniform_below(bound: int, n: int) -> np.ndarray:
    """``n`` exact uniform integers in ``[0, bound)`` as int64 (rejection sampling).

    Masking to the bit length of ``bound - 1`` and rejecting values ``>= bound``
    is exact (no modulo bias); at least half of the draws are accepted.
    """
    if bound < 1 or bound > 2**62:
        raise ParameterError(f"uniform bound must be in [1, 2**62]; got {bound}")
    if bound == 1:
        return np.zeros(n, dtype=np.int64)
    bits = (bound - 1).bit_length()
    nbytes = 1 if bits <= 8 else 2 if bits <= 16 else 4 if bits <= 32 else 8
    mask = (1 << bits) - 1

    def draw(count: int) -> np.ndarray:
        words = _random_words(count, nbytes)
        if nbytes == 8:
            return (words & np.uint64(mask)).astype(np.int64)
        words &= mask
        return words

    out = draw(n)
    if bound == mask + 1:  # power of two: every masked word is in range
        return out
    redo = np.flatnonzero(out >= bound)
    while redo.size:
        fresh = draw(redo.size)
        out[redo] = fresh
        redo = redo[fresh >= bound]
    return out


def _uniform_fraction_bits(n: int) -> np.ndarray:
    """``n`` uniform integers in ``[0, 2**52)``: the top 52 bits of a uniform real."""
    return (_random_words(n, 8) >> np.uint64(64 - _U_BITS)).astype(np.int64)


# ---------------------------------------------------------------------------
# Reference tier: CKS 2020 Algorithms 1-3 written for clarity, one sample at a
# time, with Fraction arithmetic. Used for rare fallbacks and to test the
# vectorised tier.
# ---------------------------------------------------------------------------


def _bernoulli_exp_neg_reference(gamma: Fraction) -> bool:
    """Exact Bernoulli(exp(-gamma)) for rational ``gamma >= 0`` (CKS 2020, Alg. 1)."""
    while gamma > 1:
        # exp(-gamma) = exp(-1) * exp(-(gamma - 1)): one Bernoulli(exp(-1)) each.
        if not _bernoulli_exp_neg_reference(Fraction(1)):
            return False
        gamma -= 1
    k = 1
    # Count successes of Bernoulli(gamma / k); P(first failure at odd k) = exp(-gamma).
    while secrets.randbelow(gamma.denominator * k) < gamma.numerator:
        k += 1
    return k % 2 == 1


def _discrete_laplace_reference(scale: int) -> int:
    """One exact sample with P(y) proportional to exp(-|y| / scale) (CKS 2020, Alg. 2)."""
    while True:
        u = secrets.randbelow(scale)
        if not _bernoulli_exp_neg_reference(Fraction(u, scale)):
            continue
        v = 0
        while _bernoulli_exp_neg_reference(Fraction(1)):
            v += 1
        x = u + scale * v
        negative = secrets.randbits(1) == 1
        if negative and x == 0:
            continue
        return -x if negative else x


def _discrete_gaussian_reference(sigma_squared: Fraction) -> int:
    """One exact sample of N_Z(0, sigma_squared) (CKS 2020, Alg. 3)."""
    t = _laplace_scale_for(sigma_squared)
    while True:
        y = _discrete_laplace_reference(t)
        gamma = (abs(y) - sigma_squared / t) ** 2 / (2 * sigma_squared)
        if _bernoulli_exp_neg_reference(gamma):
            return y


def _laplace_scale_for(sigma_squared: Fraction) -> int:
    """t = floor(sigma) + 1 for rational sigma^2 = p / q, computed exactly."""
    p, q = sigma_squared.numerator, sigma_squared.denominator
    # floor(sqrt(p/q)) = floor(isqrt(p*q) / q) because floor(floor(x)/q) = floor(x/q).
    return math.isqrt(p * q) // q + 1


# ---------------------------------------------------------------------------
# Vectorised exact tier
# ---------------------------------------------------------------------------


def _bernoulli_exp_neg_ratio(num: np.ndarray, den: int) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) per element for integers ``0 <= num <= den``.

    CKS Algorithm 1 run in lock-step: in round ``k`` every still-running element
    draws Bernoulli(num / (den * k)) as ``uniform_below(den * k) < num``; an
    element stops at its first failure and outputs 1 iff it stopped at odd k.
    All elements share k, so each round is one scalar-bound uniform draw.
    """
    n = num.size
    result = np.empty(n, dtype=bool)
    position = np.arange(n)  # where each still-running element writes its result
    current = num
    k = 1
    while current.size:
        if den * k > 2**62:  # unreachable in practice: needs ~k consecutive successes of prob <= 1/k
            for i, value in zip(position, current):
                result[i] = _bernoulli_exp_neg_reference(Fraction(int(value), den))
            break
        success = _uniform_below(den * k, current.size) < current
        result[position[~success]] = k % 2 == 1
        position = position[success]
        current = current[success]
        k += 1
    return result


def _geometric_exp_neg_one(n: int) -> np.ndarray:
    """Number of successes before the first failure of Bernoulli(exp(-1)) trials."""
    counts = np.zeros(n, dtype=np.int64)
    running = np.arange(n)
    ones = np.ones(n, dtype=np.int64)
    while running.size:
        success = _bernoulli_exp_neg_ratio(ones[: running.size], 1)
        running = running[success]
        counts[running] += 1
    return counts


def _discrete_laplace_chunk(scale: int, n: int) -> np.ndarray:
    """Exactly ``n`` samples of the discrete Laplace with integer ``scale`` (CKS Alg. 2)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        need = n - out.size
        # Acceptance per attempt is >= ~0.63 (scale > 1: E[exp(-U/t)]; scale 1: the +-0 rejection).
        draws = int(need * 1.7) + 16
        u = _uniform_below(scale, draws)
        u = u[_bernoulli_exp_neg_ratio(u, scale)]
        x = u + scale * _geometric_exp_neg_one(u.size)
        negative = _uniform_below(2, x.size).astype(bool)
        keep = ~(negative & (x == 0))  # +0 and -0 would otherwise double P(0)
        y = np.where(negative, -x, x)[keep]
        out = np.concatenate([out, y[:need]])
    return out


def _gaussian_accept(y: np.ndarray, p: int, q: int, t: int) -> np.ndarray:
    """Exact Bernoulli(exp(-gamma_i)), gamma_i = (|y_i| - sigma^2/t)^2 / (2 sigma^2), sigma^2 = p/q.

    With ``w = |y| q t - p`` the exponent is ``gamma = w^2 / D``, ``D = 2 p q t^2``.
    Pick an integer ``m_i >= gamma_i`` and run ``m_i`` independent
    Bernoulli(exp(-gamma_i / m_i)) trials (exp(-gamma) = exp(-gamma/m)^m); each has
    exponent in [0, 1] as CKS Algorithm 1 needs. Inside Algorithm 1 the test
    ``k * U < gamma/m`` with U uniform in [0, 1) is done on the top 52 bits of U by
    a floating-point *filter*: it only answers when the answer holds for every U
    in the 2**-52 cell by a relative margin of 2**-43 (rounding error < 10 * 2**-53),
    and sends the rest (probability ~2**-43 per test) to an exact integer
    comparison that extends U bit by bit. Every answer is therefore exact; floats
    only decide *which* exact path to take.
    """
    n = y.size
    abs_y = np.abs(y)
    accept = np.ones(n, dtype=bool)
    qt = q * t
    den = 2 * p * q * t * t  # Python int, may exceed 64 bits
    den_f = float(den)
    # |y| q t must stay in int64, and gamma below 2**40 keeps m in int64. Beyond
    # either bound (Laplace tail of probability < exp(-2**20)) the reference path
    # answers exactly, one element at a time.
    in_range = np.flatnonzero(abs_y < (2**62) // qt)
    w = abs_y[in_range] * qt - p
    wf = w.astype(np.float64)
    gamma_f = (wf * wf) / den_f
    small = gamma_f < 2.0**40
    for i in np.setdiff1d(np.arange(n), in_range[small], assume_unique=True):
        wi = int(abs_y[i]) * qt - p
        accept[i] = _bernoulli_exp_neg_reference(Fraction(wi * wi, den))
    idx, w, gamma_f = in_range[small], w[small], gamma_f[small]
    # m >= gamma: gamma_f underestimates gamma by < 10 * 2**-53 relative.
    m = np.maximum(1.0, np.ceil(gamma_f * (1.0 + 2.0**-40))).astype(np.int64)
    frac_f = gamma_f / m.astype(np.float64)  # ~ gamma / m, in [0, 1]

    alive = np.ones(idx.size, dtype=bool)
    trial = 0
    while True:
        active = np.flatnonzero(alive & (m > trial))
        if active.size == 0:
            break
        alive[active] = _bernoulli_exp_neg_filtered(active, frac_f, w, m, den)
        trial += 1
    accept[idx] = alive
    return accept


def _bernoulli_exp_neg_filtered(
    active: np.ndarray, frac_f: np.ndarray, w: np.ndarray, m: np.ndarray, den: int
) -> np.ndarray:
    """One CKS Algorithm-1 trial Bernoulli(exp(-w^2/(den*m))) for the ``active`` elements."""
    result = np.empty(active.size, dtype=bool)
    running = np.arange(active.size)
    g = frac_f[active]
    lower_cut = g * (1.0 - _FILTER_MARGIN)
    upper_cut = g * (1.0 + _FILTER_MARGIN)
    k = 1
    while running.size:
        u = _uniform_fraction_bits(running.size)
        if k < 2**10:  # k * (u + 1) < 2**62 keeps the int64 products exact
            hi = (k * (u + 1)).astype(np.float64) * 2.0**-_U_BITS
            lo = (k * u).astype(np.float64) * 2.0**-_U_BITS
            sure_true = hi < lower_cut[running]
            sure_false = lo > upper_cut[running]
        else:
            sure_true = sure_false = np.zeros(running.size, dtype=bool)
        success = sure_true
        for j in np.flatnonzero(~(sure_true | sure_false)):
            e = active[running[j]]
            wi = int(w[e])
            success[j] = _uniform_less_than_exact(int(u[j]), k, wi * wi, den * int(m[e]))
        stopped = running[~success]
        result[stopped] = k % 2 == 1
        running = running[success]
        k += 1
    return result


def _uniform_less_than_exact(u_bits: int, k: int, num: int, den: int) -> bool:
    """Decide ``k * U < num / den`` exactly, U uniform in ``[u_bits, u_bits + 1) / 2**52``.

    Further bits of U are drawn lazily until the whole cell lies on one side.
    """
    cell, scale = u_bits, _U_BITS
    while True:
        target = num << scale
        if k * (cell + 1) * den <= target:
            return True
        if k * cell * den >= target:
            return False
        cell = (cell << 64) | secrets.randbits(64)
        scale += 64


def _as_sigma_squared(sigma_squared) -> Fraction:
    if isinstance(sigma_squared, bool) or not isinstance(sigma_squared, (int, Fraction, float, np.integer)):
        raise ParameterError(
            f"sigma_squared must be a positive int or fractions.Fraction (noise variance in grid units); "
            f"got {type(sigma_squared).__name__} {sigma_squared!r}"
        )
    if isinstance(sigma_squared, float) and not math.isfinite(sigma_squared):
        raise ParameterError(f"sigma_squared must be finite and positive; got {sigma_squared!r}")
    value = Fraction(int(sigma_squared)) if isinstance(sigma_squared, np.integer) else Fraction(sigma_squared)
    if value <= 0:
        raise ParameterError(f"sigma_squared must be positive; got {sigma_squared!r}")
    if value.numerator >= _MAX_SIGMA_SQUARED or value.denominator >= _MAX_SIGMA_SQUARED:
        raise ParameterError(
            f"sigma_squared must be a rational p/q with p, q < 2**52 for the exact sampler; got "
            f"{value.numerator}/{value.denominator}. Use a coarser resolution, or "
            f"Fraction(x).limit_denominator(2**20) for a float variance."
        )
    return value


def _as_size(size) -> tuple[int, ...]:
    shape = (size,) if isinstance(size, (int, np.integer)) else size
    if not isinstance(shape, tuple) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ParameterError(f"size must be a non-negative int or a tuple of them; got {size!r}")
    return tuple(int(s) for s in shape)


def discrete_laplace(scale: int, size) -> np.ndarray:
    """Exact samples of the discrete Laplace distribution on the integers.

    ``P(Y = y) = (1 - e^{-1/scale}) / (1 + e^{-1/scale}) * e^{-|y| / scale}``.

    Parameters
    ----------
    scale : int
        Positive integer scale ``t``.
    size : int or tuple of int
        Output shape.

    Returns
    -------
    numpy.ndarray of int64, shape ``size``

    Raises
    ------
    ParameterError
        If ``scale`` is not a positive integer below 2**52 or ``size`` is invalid.

    Notes
    -----
    Canonne, Kamath & Steinke (2020), Algorithm 2 with integer scale, vectorised;
    randomness from ``secrets`` only and all arithmetic on integers, so the
    output distribution is exact.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or not 1 <= scale < _MAX_SIGMA_SQUARED:
        raise ParameterError(f"scale must be an integer in [1, 2**52); got {scale!r}")
    shape = _as_size(size)
    total = math.prod(shape)
    parts = [_discrete_laplace_chunk(int(scale), min(_CHUNK, total - s)) for s in range(0, total, _CHUNK)]
    return (np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)).reshape(shape)


def discrete_gaussian(sigma_squared, size) -> np.ndarray:
    """Exact samples of the discrete Gaussian :math:`\\mathcal{N}_\\mathbb{Z}(0, \\sigma^2)`.

    ``P(Y = y)`` is proportional to ``exp(-y^2 / (2 sigma^2))`` for every integer ``y``.

    Parameters
    ----------
    sigma_squared : int or fractions.Fraction
        The parameter :math:`\\sigma^2 > 0` in grid units (numerator and
        denominator below 2**52). Floats are accepted only when exactly equal to
        such a fraction.
    size : int or tuple of int
        Output shape.

    Returns
    -------
    numpy.ndarray of int64, shape ``size``

    Raises
    ------
    ParameterError
        If ``sigma_squared`` is not a positive rational in range or ``size`` is invalid.

    Notes
    -----
    Security argument. The sampler is Algorithm 3 of Canonne, Kamath & Steinke
    (2020): discrete Laplace proposals with scale ``t = floor(sigma) + 1`` (their
    Algorithm 2), accepted with probability
    ``exp(-(|y| - sigma^2/t)^2 / (2 sigma^2))`` drawn by their Algorithm 1, which
    needs only uniform integers and comparisons of rationals. Uniform integers
    come from :mod:`secrets` (the OS CSPRNG) by exact rejection sampling. The
    one place where floats appear is a conservative *filter* in front of an
    exact rational comparison (see ``_gaussian_accept``): it never decides a
    comparison that rounding could flip, so the output law is exactly the
    discrete Gaussian -- there is no set of reachable floating-point values to
    exploit as in Mironov (2012) or Jin et al. (2022). Outputs are integers;
    callers scale them by a grid step only after adding them to grid-rounded
    data.

    Timing. Rejection sampling has data-dependent running time (Jin et al.
    2022). Samples are produced in vectorised batches, so the time of a call
    depends on the number of rejections over the whole batch, not on any
    individual value; an observer of a client's wall-clock time learns a weak
    aggregate of thousands of draws. Constant-time sampling is out of scope.

    Speed: about 1-2 million samples/s on one core (numpy, CSPRNG-bound).

    References
    ----------
    C. Canonne, G. Kamath, T. Steinke. "The Discrete Gaussian for Differential
    Privacy." NeurIPS 2020 (arXiv:2004.00010), Algorithms 1-3.
    I. Mironov. "On significance of the least significant bits for differential
    privacy." CCS 2012.
    J. Jin, E. McMurtry, B. Rubinstein, O. Ohrimenko. "Are we there yet? Timing
    and floating-point attacks on differential privacy systems." IEEE S&P 2022.
    N. Holohan, S. Braghin. "Secure random sampling in differential privacy."
    ESORICS 2021.

    Examples
    --------
    >>> z = discrete_gaussian(100, 5)
    >>> z.dtype, z.shape
    (dtype('int64'), (5,))
    """
    s2 = _as_sigma_squared(sigma_squared)
    shape = _as_size(size)
    total = math.prod(shape)
    p, q = s2.numerator, s2.denominator
    t = _laplace_scale_for(s2)
    out = np.empty(total, dtype=np.int64)
    filled = 0
    while filled < total:
        need = min(_CHUNK, total - filled)
        # CKS: acceptance of the Gaussian step is >= ~0.6 for t = floor(sigma)+1.
        y = _discrete_laplace_chunk(t, int(need * 1.5) + 16)
        y = y[_gaussian_accept(y, p, q, t)][:need]
        out[filled : filled + y.size] = y
        filled += y.size
    return out.reshape(shape)


# ---------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------


def _named_arrays(update: Update, what: str = "update") -> tuple[bool, list[tuple[str, np.ndarray]]]:
    """Validate ``update`` and return (is_mapping, [(label, float64 array), ...])."""
    if isinstance(update, Mapping):
        if len(update) == 0:
            raise ParameterError(f"{what} is an empty dict; give at least one array")
        items = list(update.items())
        is_mapping = True
    else:
        items = [("<array>", update)]
        is_mapping = False
    out = []
    for key, value in items:
        label = f"{what}[{key!r}]" if is_mapping else what
        arr = np.asarray(value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ParameterError(
                f"{label} must be a real numeric array; got dtype {arr.dtype}. Convert it with "
                f"np.asarray(x, dtype=np.float64) (torch tensors: he_ml.integrations.torch)."
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ParameterError(
                f"{label} contains {bad} NaN/inf value(s) out of {arr.size}; a non-finite gradient "
                f"cannot be clipped. Fix the training step (lower the learning rate, check the loss) "
                f"or drop this update."
            )
        out.append((key, arr))
    return is_mapping, out


def _global_norm(arrays: list[np.ndarray]) -> float:
    """L2 norm of the concatenation, scaled so huge values cannot overflow."""
    peak = max((float(np.max(np.abs(a))) if a.size else 0.0) for a in arrays)
    if peak == 0.0:
        return 0.0
    return peak * math.sqrt(math.fsum(float(np.sum(np.square(a / peak))) for a in arrays))


def _validate_positive_float(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be finite and {bound}; got {value!r}")
    return value


def clip_l2(update: Update, clip_norm: float) -> tuple[Update, float]:
    """Scale an update so its global L2 norm is at most ``clip_norm``.

    Parameters
    ----------
    update : numpy.ndarray of any shape, or dict of str to numpy.ndarray
        One client's gradient or model delta. A dict is clipped by the norm of
        all its arrays concatenated (flat clipping, as in DP-SGD and DP-FedAvg),
        so the direction of the whole update is preserved.
    clip_norm : float
        Positive bound ``C`` on the L2 norm.

    Returns
    -------
    clipped : numpy.ndarray or dict
        Same structure and shapes as ``update``, dtype float64, multiplied by
        ``min(1, C / norm)``; guaranteed ``norm(clipped) <= C``.
    norm : float
        The L2 norm of ``update`` before clipping.

    Raises
    ------
    ParameterError
        If ``clip_norm`` is not finite and positive, an array is not real
        numeric, contains NaN or inf (the message names the key), or the dict is empty.

    Examples
    --------
    >>> clipped, norm = clip_l2(np.array([3.0, 4.0]), 1.0)
    >>> clipped, norm
    (array([0.6, 0.8]), 5.0)
    """
    clip_norm = _validate_positive_float("clip_norm", clip_norm)
    is_mapping, named = _named_arrays(update)
    arrays = [a for _, a in named]
    norm = _global_norm(arrays)
    if norm > clip_norm:
        factor = clip_norm / norm
        # Rounding can leave the scaled norm an ulp above C; shrink until it is not.
        while True:
            scaled = [a * factor for a in arrays]
            if _global_norm(scaled) <= clip_norm:
                break
            factor *= 1.0 - 2.0**-50
        arrays = scaled
    if is_mapping:
        return {key: a for (key, _), a in zip(named, arrays)}, norm
    return arrays[0], norm


# ---------------------------------------------------------------------------
# Configuration and mechanisms
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DPConfig:
    """Clipping and Gaussian-noise parameters of one DP aggregation.

    Parameters
    ----------
    clip_norm : float
        L2 bound ``C`` on every client's update (the sensitivity of the sum).
    noise_multiplier : float
        ``z > 0``; the sum carries Gaussian noise of standard deviation
        ``sigma = z * C`` per coordinate (at least; see Notes).
    mode : {"distributed", "central"}, default "distributed"
        ``"distributed"``: each client adds noise of variance ``sigma^2 / num_clients``
        in :func:`privatize_client_update`, so the server and key holder only ever
        see sums that are already noised. ``"central"``: clients only clip; the
        key holder adds ``sigma^2`` with :func:`add_central_noise` after decryption.
    num_clients : int, optional
        Number of clients whose noise shares make up one sum. Required in
        distributed mode, ignored (must be None) in central mode.
    resolution : float, optional
        Grid step of the noise and of the rounded updates, in the units of the
        gradients. Default ``clip_norm * 2**-16``.

    Raises
    ------
    ParameterError
        If a value is out of range, ``num_clients`` is missing in distributed
        mode, or ``resolution`` gives a per-client noise below one grid step or a
        variance beyond the sampler's exact range (the message gives a range that works).

    Notes
    -----
    Grid units: with ``L = (C / resolution)^2``, each client's rounded update has
    squared norm ``<= L`` (integers). Noise variances are integers chosen by
    rounding *up*, so the noise-to-sensitivity ratio is never below ``z``:

    * distributed: each client adds ``N_Z(0, S_c)`` with ``S_c = ceil(z^2 L / n)``;
    * central: the key holder rounds the decrypted total to the grid and adds
      ``N_Z(0, ceil(z^2 (sqrt(L) + sqrt(d))^2))`` for ``d`` coordinates: the extra
      ``sqrt(d)`` grid steps cover the rounding of a total that was not on the
      grid (for the default grid and ``d = 10^6`` this is 1.5 % more noise).

    A sum of ``n`` discrete Gaussians is *not* exactly a discrete Gaussian.
    Kairouz, Liu & Steinke (2021), Theorem 11 / Proposition 14, bound its
    Renyi divergence by that of a Gaussian with sensitivity-to-noise ratio
    ``1 / z + tau * sqrt(d)`` where
    ``tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 S_c k / (k + 1))``.
    :meth:`accounting_noise_multiplier` returns the matching effective ``z``;
    ``tau`` vanishes (< 1e-30) once each share has ``S_c >= 4``, i.e. two grid
    steps, which the default grid gives for up to ~10^9 clients at ``z = 1``.

    Distributed noise assumes the ``num_clients`` shares are all added: if fewer
    clients report, or some collude with the key holder and subtract their own
    share, the noise left is ``sigma^2 * honest / num_clients``; set
    ``num_clients`` to the minimum number of honest clients you expect.
    """

    clip_norm: float
    noise_multiplier: float
    mode: Literal["distributed", "central"] = "distributed"
    num_clients: int | None = None
    resolution: float | None = None
    _grid_norm_squared: Fraction = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        clip = _validate_positive_float("DPConfig clip_norm", self.clip_norm)
        z = _validate_positive_float("DPConfig noise_multiplier", self.noise_multiplier)
        if self.mode not in ("distributed", "central"):
            raise ParameterError(f"DPConfig mode must be 'distributed' or 'central'; got {self.mode!r}")
        if self.mode == "distributed":
            n = self.num_clients
            if n is None:
                raise ParameterError(
                    "DPConfig mode='distributed' needs num_clients (how many clients' noise shares make up "
                    "one sum); give num_clients=..., or use mode='central'"
                )
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ParameterError(f"DPConfig num_clients must be an integer >= 1; got {n!r}")
            object.__setattr__(self, "num_clients", int(n))
        elif self.num_clients is not None:
            raise ParameterError(
                f"DPConfig num_clients is only used in mode='distributed'; got num_clients={self.num_clients!r} "
                f"with mode='central'. Drop num_clients or switch mode."
            )
        res = clip * 2.0**-DEFAULT_RESOLUTION_BITS if self.resolution is None else self.resolution
        res = _validate_positive_float("DPConfig resolution", res)
        object.__setattr__(self, "clip_norm", clip)
        object.__setattr__(self, "noise_multiplier", z)
        object.__setattr__(self, "resolution", res)
        if clip / res > _MAX_GRID_NORM:
            raise ParameterError(
                f"DPConfig resolution {res!r} is too fine for clip_norm {clip!r}: a clipped update would span "
                f"{clip / res:.3g} grid steps, more than 2**30 (int64 squares must not overflow). "
                f"Use resolution >= {clip * 2.0**-30!r}."
            )
        object.__setattr__(self, "_grid_norm_squared", (Fraction(clip) / Fraction(res)) ** 2)
        total = self._total_variance_target()
        if self.mode == "distributed" and total / self.num_clients < 1:
            finest = clip * z / math.sqrt(self.num_clients)
            raise ParameterError(
                f"DPConfig resolution {res!r} is too coarse: each of the {self.num_clients} clients would add "
                f"noise of std {finest!r}, below one grid step, where the distributed discrete Gaussian "
                f"bound does not hold. Use resolution <= {finest / 2!r}."
            )
        if math.ceil(total) >= _MAX_SIGMA_SQUARED:
            coarsest = clip * z * 2.0**-25
            raise ParameterError(
                f"DPConfig resolution {res!r} is too fine: the noise would span more than 2**26 grid steps "
                f"per standard deviation, beyond the exact sampler's range. Use resolution >= {coarsest!r}."
            )

    # -- grid quantities (integers, exact) ---------------------------------
    def _total_variance_target(self) -> Fraction:
        return Fraction(self.noise_multiplier) ** 2 * self._grid_norm_squared

    @property
    def grid_norm_squared(self) -> Fraction:
        """``(clip_norm / resolution)^2``: bound on a rounded update's squared norm in grid units."""
        return self._grid_norm_squared

    @property
    def client_variance_grid(self) -> int:
        """Integer variance ``S_c`` of each client's share (distributed mode; 0 in central mode)."""
        if self.mode != "distributed":
            return 0
        return math.ceil(self._total_variance_target() / self.num_clients)

    def central_variance_grid(self, dimension: int) -> int:
        """Integer variance added by :func:`add_central_noise` to a ``dimension``-coordinate total."""
        dimension = _validate_dimension(dimension)
        # sqrt(L) + sqrt(d), both rounded up with exact integer square roots.
        root_l = _ceil_sqrt_fraction(self._grid_norm_squared) + _ceil_sqrt_fraction(Fraction(dimension))
        return math.ceil(Fraction(self.noise_multiplier) ** 2 * root_l**2)

    # -- in the units of the gradients ---------------------------------------
    @property
    def sigma(self) -> float:
        """Target noise std of the sum, ``noise_multiplier * clip_norm``."""
        return self.noise_multiplier * self.clip_norm

    @property
    def client_noise_std(self) -> float:
        """Std of each client's share (distributed mode), 0.0 in central mode."""
        return math.sqrt(self.client_variance_grid) * self.resolution

    def noise_std(self, dimension: int) -> float:
        """Actual per-coordinate noise std of the released sum of ``dimension`` coordinates."""
        if self.mode == "distributed":
            return math.sqrt(self.client_variance_grid * self.num_clients) * self.resolution
        return math.sqrt(self.central_variance_grid(dimension)) * self.resolution

    @property
    def kls_tau(self) -> float:
        """KLS21 ``tau`` for the sum of ``num_clients`` shares (0.0 in central mode)."""
        if self.mode != "distributed" or self.num_clients == 1:
            return 0.0
        k = np.arange(1, self.num_clients, dtype=np.float64)
        return 10.0 * math.fsum(np.exp(-2.0 * math.pi**2 * self.client_variance_grid * k / (k + 1.0)))

    def accounting_noise_multiplier(self, dimension: int) -> float:
        """Noise multiplier to give :func:`epsilon` for a ``dimension``-coordinate update.

        Central mode: ``noise_multiplier`` (the integer variances only round up).
        Distributed mode: ``1 / (sqrt(L) / sqrt(n S_c) + tau * sqrt(d))`` from
        Kairouz, Liu & Steinke (2021) Prop. 14, which is ``noise_multiplier`` up
        to the rounding of ``S_c`` whenever ``tau`` is negligible.
        """
        dimension = _validate_dimension(dimension)
        if self.mode == "central":
            return self.noise_multiplier
        ratio = math.sqrt(self._grid_norm_squared / (self.num_clients * self.client_variance_grid))
        return 1.0 / (ratio + self.kls_tau * math.sqrt(dimension))


def _validate_dimension(dimension) -> int:
    if isinstance(dimension, bool) or not isinstance(dimension, (int, np.integer)) or dimension < 1:
        raise ParameterError(f"dimension must be a positive integer (number of coordinates); got {dimension!r}")
    return int(dimension)


def _ceil_sqrt_fraction(x: Fraction) -> Fraction:
    """A rational upper bound of sqrt(x), tight to 2**-32 relative."""
    scale = 2**32
    root = math.isqrt(math.ceil(x * scale * scale))
    while Fraction(root, scale) ** 2 < x:
        root += 1
    return Fraction(root, scale)


def _check_config(config) -> DPConfig:
    if not isinstance(config, DPConfig):
        raise ParameterError(f"config must be a he_ml.aggregation.dp.DPConfig; got {type(config).__name__}")
    return config


def _to_grid_toward_zero(arrays: list[np.ndarray], config: DPConfig) -> list[np.ndarray]:
    """Integers ``m`` with ``|m_i * res| <= |x_i|``; checks ``sum m^2 <= L`` exactly."""
    res = config.resolution
    grid = [np.trunc(a / res).astype(np.int64) for a in arrays]
    limit = config.grid_norm_squared
    # x/res can round up across an integer by an ulp; repair the (rare) excess
    # exactly by moving the largest entries one step towards zero.
    while sum(int(np.sum(g * g)) for g in grid) > limit:
        which = max(range(len(grid)), key=lambda i: int(np.max(np.abs(grid[i]))) if grid[i].size else -1)
        g = grid[which].reshape(-1)
        j = int(np.argmax(np.abs(g)))
        g[j] -= np.sign(g[j])
    return grid


def privatize_client_update(update: Update, config: DPConfig) -> Update:
    """Client side: clip, round to the grid and (distributed mode) add a noise share.

    Parameters
    ----------
    update : numpy.ndarray of any shape, or dict of str to numpy.ndarray
        The client's gradient or model delta.
    config : DPConfig

    Returns
    -------
    numpy.ndarray or dict
        Same structure and shapes, float64, every value an integer multiple of
        ``config.resolution``. Distributed mode: clipped update plus discrete
        Gaussian noise of variance ``config.client_noise_std**2`` per coordinate.
        Central mode: the clipped, grid-rounded update (noise is added later by
        :func:`add_central_noise`).

    Raises
    ------
    ParameterError
        If ``config`` is not a DPConfig or ``update`` holds non-numeric, NaN or
        inf values (the message names the key).

    Notes
    -----
    Rounding is towards zero, so the rounded update's norm stays ``<= clip_norm``
    and the sum's sensitivity is exactly ``clip_norm`` (checked in exact integer
    arithmetic). Clipping and rounding bias each coordinate towards zero by less
    than one grid step.

    Examples
    --------
    >>> cfg = DPConfig(clip_norm=1.0, noise_multiplier=1.1, num_clients=100)
    >>> noisy = privatize_client_update({"w": np.ones((2, 3)), "b": np.zeros(3)}, cfg)
    >>> sorted(noisy), noisy["w"].shape
    (['b', 'w'], (2, 3))
    """
    config = _check_config(config)
    clipped, _ = clip_l2(update, config.clip_norm)
    is_mapping = isinstance(clipped, Mapping)
    keys = list(clipped) if is_mapping else [None]
    arrays = [clipped[k] for k in keys] if is_mapping else [clipped]
    grid = _to_grid_toward_zero(arrays, config)
    if config.mode == "distributed":
        s_c = config.client_variance_grid
        grid = [g + discrete_gaussian(s_c, g.shape) for g in grid]
    out = [g.astype(np.float64) * config.resolution for g in grid]
    return dict(zip(keys, out)) if is_mapping else out[0]


def add_central_noise(total: Update, config: DPConfig) -> Update:
    """Key-holder side (central mode): round the decrypted total to the grid and add noise.

    Parameters
    ----------
    total : numpy.ndarray of any shape, or dict of str to numpy.ndarray
        The decrypted *sum* of clipped client updates (not the average: divide
        after adding noise).
    config : DPConfig
        A config with ``mode="central"``.

    Returns
    -------
    numpy.ndarray or dict
        Same structure and shapes, float64: ``resolution * (round(total / resolution) + Z)``
        with ``Z ~ N_Z(0, config.central_variance_grid(d))`` per coordinate,
        ``d`` the total number of coordinates.

    Raises
    ------
    ParameterError
        If ``config`` is not a DPConfig in central mode (distributed-mode sums
        already carry their noise), or ``total`` holds non-numeric, NaN or inf values.

    Notes
    -----
    Rounding the total to the grid *before* adding noise is what keeps the
    output's low-order bits from revealing the exact sum (Mironov 2012). The
    noise variance covers the rounding's extra sensitivity (see :class:`DPConfig`).
    The key holder sees the un-noised sum in this mode; use distributed mode if
    it must not.
    """
    config = _check_config(config)
    if config.mode != "central":
        raise ParameterError(
            "add_central_noise needs a DPConfig with mode='central'; this config is mode='distributed', whose "
            "client updates already carry the noise. Decrypt the sum and use it as is."
        )
    is_mapping, named = _named_arrays(total, "total")
    dimension = sum(a.size for _, a in named)
    if dimension == 0:
        raise ShapeMismatchError("total has no coordinates; nothing to add noise to")
    s = config.central_variance_grid(dimension)
    if s >= _MAX_SIGMA_SQUARED:
        raise ParameterError(
            f"central noise variance for {dimension} coordinates exceeds the sampler range at resolution "
            f"{config.resolution!r}; use a coarser resolution"
        )
    res = config.resolution
    out = []
    for _, a in named:
        scaled = np.rint(a / res)
        if np.any(np.abs(scaled) >= 2.0**62):
            raise ParameterError(
                f"total has values up to {float(np.max(np.abs(a)))!r}, more than 2**62 grid steps of "
                f"{res!r}; use a coarser resolution"
            )
        out.append((scaled.astype(np.int64) + discrete_gaussian(s, a.shape)).astype(np.float64) * res)
    if is_mapping:
        return {key: arr for (key, _), arr in zip(named, out)}
    return out[0]


# ---------------------------------------------------------------------------
# Accounting (dp-accounting)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyReport:
    """An (epsilon, delta) guarantee and how it was computed.

    Attributes
    ----------
    epsilon, delta : float
    accountant : str
        ``"rdp"`` or ``"pld"``.
    accountant_library : str
        ``"dp-accounting <version>"`` that computed it.
    noise_multiplier, sampling_rate : float
    rounds : int
    """

    epsilon: float
    delta: float
    accountant: str
    accountant_library: str
    noise_multiplier: float
    sampling_rate: float
    rounds: int

    def __str__(self) -> str:
        return (
            f"(epsilon={self.epsilon:.4g}, delta={self.delta:.3g})-DP after {self.rounds} rounds, "
            f"sampling rate {self.sampling_rate:g}, noise multiplier {self.noise_multiplier:g} "
            f"[{self.accountant.upper()} accountant, {self.accountant_library}]"
        )


# Below this noise multiplier the PLD accountant's discretised loss range grows
# like 1/z^2 (minutes per call at 0.3, an out-of-memory crash at 1e-4).
_PLD_MIN_NOISE_MULTIPLIER = 0.3


def _dp_accounting():
    try:
        import dp_accounting
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise ImportError("privacy accounting needs Google's dp-accounting: pip install dp-accounting") from e
    return dp_accounting


def _accounting_version() -> str:
    try:
        return f"dp-accounting {_dist_version('dp-accounting')}"
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree
        return "dp-accounting (unknown version)"


def _validate_accounting(sampling_rate, rounds, delta, accountant) -> tuple[float, int, float, str]:
    q = _validate_positive_float("sampling_rate", sampling_rate)
    if q > 1:
        raise ParameterError(f"sampling_rate must be in (0, 1] (expected fraction of clients per round); got {q!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ParameterError(f"rounds must be a positive integer; got {rounds!r}")
    d = _validate_positive_float("delta", delta)
    if d >= 1:
        raise ParameterError(f"delta must be in (0, 1), typically below 1/population; got {d!r}")
    if accountant not in ("rdp", "pld"):
        raise ParameterError(f"accountant must be 'rdp' or 'pld'; got {accountant!r}")
    return q, int(rounds), d, accountant


def _round_event(dpa, noise_multiplier: float, sampling_rate: float, rounds: int):
    gaussian = dpa.GaussianDpEvent(noise_multiplier)
    step = gaussian if sampling_rate == 1.0 else dpa.PoissonSampledDpEvent(sampling_rate, gaussian)
    return dpa.SelfComposedDpEvent(step, rounds)


def _fresh_accountant(dpa, accountant: str):
    return dpa.rdp.RdpAccountant() if accountant == "rdp" else dpa.pld.PLDAccountant()


def epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    accountant: Literal["rdp", "pld"] = "rdp",
) -> PrivacyReport:
    """Epsilon of ``rounds`` Poisson-subsampled Gaussian aggregations, from dp-accounting.

    Parameters
    ----------
    noise_multiplier : float
        ``sigma / clip_norm > 0``; for a :class:`DPConfig` pass
        ``config.accounting_noise_multiplier(d)``.
    sampling_rate : float
        Probability that a given client takes part in a round, in (0, 1].
    rounds : int
        Number of aggregation rounds (>= 1).
    delta : float
        Target delta in (0, 1).
    accountant : {"rdp", "pld"}, default "rdp"
        ``dp_accounting.rdp.RdpAccountant`` or ``dp_accounting.pld.PLDAccountant``
        (tighter, slower: about 1 s for 1000 rounds at z = 1.1, much slower for
        small z, refused below z = 0.3).

    Returns
    -------
    PrivacyReport

    Raises
    ------
    ParameterError
        If an argument is out of range (the message gives the range), or
        ``accountant="pld"`` with ``noise_multiplier < 0.3``.

    Notes
    -----
    The event is ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), rounds)``
    under add-or-remove-one-client adjacency (plain ``GaussianDpEvent`` when q = 1).
    The RDP bound is rigorous for the discrete Gaussian (CKS 2020 show its Renyi
    divergence is at most the continuous one's). The PLD figure is that of the
    continuous Gaussian; for the multi-dimensional discrete Gaussian it is an
    approximation (CKS 2020, Section 4): quote the RDP value when in doubt.

    Examples
    --------
    >>> r = epsilon(1.1, 0.01, 1000, 1e-5)
    >>> round(r.epsilon, 2), r.accountant
    (1.71, 'rdp')
    """
    z = _validate_positive_float("noise_multiplier", noise_multiplier)
    q, rounds, delta, accountant = _validate_accounting(sampling_rate, rounds, delta, accountant)
    if accountant == "pld" and z < _PLD_MIN_NOISE_MULTIPLIER:
        raise ParameterError(
            f"noise_multiplier {z!r} is below {_PLD_MIN_NOISE_MULTIPLIER} where dp-accounting's PLD accountant "
            f"needs minutes to hours and gigabytes or more; use accountant='rdp' for such small multipliers"
        )
    dpa = _dp_accounting()
    acc = _fresh_accountant(dpa, accountant)
    acc.compose(_round_event(dpa, z, q, rounds))
    return PrivacyReport(
        epsilon=float(acc.get_epsilon(delta)),
        delta=delta,
        accountant=accountant,
        accountant_library=_accounting_version(),
        noise_multiplier=z,
        sampling_rate=q,
        rounds=rounds,
    )


def noise_multiplier_for(
    target_epsilon: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    accountant: Literal["rdp", "pld"] = "rdp",
    *,
    tol: float = 1e-4,
) -> float:
    """Smallest noise multiplier (within ``tol``) meeting ``(target_epsilon, delta)``.

    Uses ``dp_accounting.calibrate_dp_mechanism`` (bracketing + Brent's method)
    with the same events and accountants as :func:`epsilon`, then checks the
    answer with :func:`epsilon` and nudges it up by ``tol`` if rounding left it
    on the wrong side, so ``epsilon(result, ...).epsilon <= target_epsilon``.

    Parameters
    ----------
    target_epsilon : float
        Positive privacy budget.
    sampling_rate, rounds, delta, accountant
        As in :func:`epsilon`.
    tol : float, default 1e-4
        Absolute tolerance on the noise multiplier.

    Returns
    -------
    float

    Raises
    ------
    ParameterError
        If an argument is out of range, or no multiplier below 2**30 reaches the target.

    Examples
    --------
    >>> z = noise_multiplier_for(2.0, 0.01, 1000, 1e-5)
    >>> 0.9 < z < 1.1
    True
    """
    eps = _validate_positive_float("target_epsilon", target_epsilon)
    tol = _validate_positive_float("tol", tol)
    q, rounds, delta, accountant = _validate_accounting(sampling_rate, rounds, delta, accountant)
    dpa = _dp_accounting()
    if accountant == "rdp":
        bracket = dpa.LowerEndpointAndGuess(tol, 1.0)
    else:
        # PLD cost explodes for small multipliers (a 1e-4 multiplier asks for
        # terabytes), so bracket it with the cheap RDP answer: RDP's epsilon is
        # an upper bound, hence z_pld <= z_rdp; walk down until epsilon exceeds the target.
        upper = noise_multiplier_for(eps, q, rounds, delta, "rdp", tol=tol)
        lower = upper
        while True:
            lower *= 0.8
            if lower < _PLD_MIN_NOISE_MULTIPLIER:
                raise ParameterError(
                    f"the PLD answer lies below noise multiplier {_PLD_MIN_NOISE_MULTIPLIER}, where the PLD "
                    f"accountant is impractically slow; use accountant='rdp' (which gives {upper:.4g})"
                )
            if epsilon(lower, q, rounds, delta, "pld").epsilon > eps:
                break
        bracket = dpa.ExplicitBracketInterval(lower, upper)
    try:
        z = dpa.calibrate_dp_mechanism(
            lambda: _fresh_accountant(dpa, accountant),
            lambda value: _round_event(dpa, value, q, rounds),
            eps,
            delta,
            bracket_interval=bracket,
            tol=tol,
        )
    except dpa.mechanism_calibration.NoBracketIntervalFoundError as e:
        raise ParameterError(
            f"no noise multiplier below 2**30 gives epsilon {eps!r} at delta {delta!r} over {rounds} rounds "
            f"with sampling rate {q!r}; raise the budget or reduce rounds"
        ) from e
    z = float(z)
    for _ in range(8):
        if epsilon(z, q, rounds, delta, accountant).epsilon <= eps:
            return z
        z += tol
    raise ParameterError(  # pragma: no cover - calibrate_dp_mechanism guarantees |z - z*| <= tol
        f"dp-accounting's calibration did not converge for epsilon {eps!r}, delta {delta!r}"
    )
