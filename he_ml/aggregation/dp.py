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

What lives where (the DP module is split along its seams):

* :mod:`he_ml.aggregation.dp` -- the public API (every name below is importable from it) and
  the noise: the CSPRNG primitives, the exact discrete Laplace / Gaussian samplers (reference
  and vectorised, Canonne, Kamath & Steinke 2020) and the mechanisms that apply them
  (:func:`~he_ml.aggregation.dp.privatize_client_update`,
  :func:`~he_ml.aggregation.dp.add_central_noise`); its module docstring explains the grid;
* :mod:`he_ml.aggregation._dp_clip` -- validation of updates and L2 clipping by the global
  norm (:func:`clip_l2`);
* :mod:`he_ml.aggregation._dp_config` -- :class:`DPConfig`: the grid, the calibration of the
  noise to ``(clip_norm, noise_multiplier)`` per client (distributed) or at the key holder
  (central), and the grid limits;
* :mod:`he_ml.aggregation._dp_accounting` -- :class:`PrivacyReport`, :func:`epsilon` and
  :func:`noise_multiplier_for` on top of Google's ``dp-accounting``.
"""
from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from fractions import Fraction

import numpy as np

from ..errors import ParameterError, ShapeMismatchError
from ._dp_clip import (  # noqa: F401  (re-exported: the old import path keeps working)
    Update,
    _named_arrays,
    _global_norm,
    _validate_positive_float,
    clip_l2,
)
from ._dp_config import (  # noqa: F401  (re-exported: the old import path keeps working)
    DEFAULT_RESOLUTION_BITS,
    _MAX_SIGMA_SQUARED,
    _MAX_GRID_NORM,
    DPConfig,
    _validate_dimension,
    _ceil_sqrt_fraction,
)
from ._dp_accounting import (  # noqa: F401  (re-exported: the old import path keeps working)
    PrivacyReport,
    _PLD_MIN_NOISE_MULTIPLIER,
    _dp_accounting,
    _accounting_version,
    _validate_accounting,
    _round_event,
    _fresh_accountant,
    epsilon,
    noise_multiplier_for,
)

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
# Mechanisms
# ---------------------------------------------------------------------------


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

