"""Noise flooding for released CKKS decryptions (the Li-Micciancio IND-CPA^D countermeasure).

A CKKS decryption returns ``m + e`` where ``e`` depends on the secret key; Li & Micciancio
(Eurocrypt 2021) recover the key from a few such outputs. Before a decryption leaves the key
holder it is *flooded*: Gaussian noise of standard deviation ``sigma_flood`` (per slot, in the
units of the values) is added, sized so that the released value hides ``e``.

Bound (derived from the parameters, no measurement)
---------------------------------------------------
* Per-slot decryption noise of one fresh SEAL CKKS encryption (canonical embedding, ternary
  secret and ``u``, error std ``sigma_e = 3.2``): the noise polynomial ``u e_0 + e_1 + e_2 s``
  has coefficient variance ``(4 n / 3 + 1) sigma_e**2``, so one slot (a sum of ``n``
  coefficients times roots of unity) has variance ``n (4 n / 3 + 1) sigma_e**2``, plus
  ``n / 12`` from rounding the encoded coefficients. A sum of ``k`` encryptions has ``k``
  times that. ``E = 10 * std / scale`` bounds ``|e|`` per slot except with probability
  ``< 2**-70`` (Gaussian tail), in value units.
* Flooding (Li, Micciancio, Schultz, Sorrell, CRYPTO 2022, the noise-flooding bound that
  OpenFHE's NOISE_FLOODING_DECRYPT mode also follows): for ``s`` bits of IND-CPA^D security
  over ``q`` released decryptions of ``d`` slots each,
  ``sigma_flood = 2**(s/2) * sqrt(64 * q * d) * E`` (each released slot counted as one query).
  The policy allows one decryption per round id, so ``q = 1`` per round.
* Default ``s = 40``. This is the Renyi-divergence (bits-of-security) notion of LMSS22; a
  bound in statistical distance ``<= 2**-40`` would need ``2**(s/2)`` = 2**20 times more noise
  (``sigma >= 2**39 sqrt(q d) E`` by Pinsker), which leaves no useful precision at sum-only
  parameters -- release BFV or Paillier totals (exact decryption, nothing to flood) when that
  is required.

Precision cost: the released value's error is ``sigma_flood`` instead of ``E / 10``; for
``n = 4096``, scale ``2**50``, ``k = 10`` clients and ``d = 10**4`` values this is about
``2**-1.5`` absolute (vs ``2**-34``), i.e. ~33 bits of precision. :func:`flooding_sigma`
gives the figure for any total; the docs page tabulates it.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError

__all__ = ["DEFAULT_SECURITY_BITS", "ckks_noise_bound", "flooding_sigma", "flood"]

#: Default bits of IND-CPA^D security of a released CKKS decryption.
DEFAULT_SECURITY_BITS = 40
_SIGMA_E = 3.2
_TAIL = 10.0  # Gaussian tail: P(|N(0,1)| > 10) < 2**-70


def ckks_noise_bound(poly_modulus_degree: int, scale: float, count: int) -> float:
    """Per-slot bound ``E`` on the decryption noise of a sum of ``count`` fresh CKKS encryptions (value units)."""
    n = int(poly_modulus_degree)
    if n < 1 or count < 1 or not scale > 0:
        raise ParameterError(f"need n >= 1, count >= 1 and scale > 0; got {n}, {count}, {scale}.")
    var_slot = n * (4 * n / 3 + 1) * _SIGMA_E**2 + n / 12.0
    return _TAIL * math.sqrt(count * var_slot) / float(scale)


def flooding_sigma(noise_bound: float, values: int, *, security_bits: int = DEFAULT_SECURITY_BITS,
                   decryptions: int = 1) -> float:
    """``2**(s/2) * sqrt(64 * decryptions * values) * noise_bound``: the flooding standard deviation.

    Raises
    ------
    ParameterError
        If ``security_bits`` is below 20 or another argument is not positive.
    """
    if isinstance(security_bits, bool) or not isinstance(security_bits, int) or not 20 <= security_bits <= 128:
        raise ParameterError(f"security_bits must be an int in [20, 128]; got {security_bits!r}.")
    if values < 1 or decryptions < 1 or not noise_bound > 0:
        raise ParameterError(f"values and decryptions must be >= 1 and noise_bound > 0; got {values}, "
                             f"{decryptions}, {noise_bound}.")
    return 2.0 ** (security_bits / 2) * math.sqrt(64.0 * decryptions * values) * float(noise_bound)


def flood(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` plus Gaussian noise of std ``sigma``, from a cryptographic sampler.

    The noise is an exact discrete Gaussian (:func:`he_ml.aggregation.dp.discrete_gaussian`,
    OS randomness) of variance ``2**32`` on a grid of step ``sigma * 2**-16``: at 2**16 grid
    steps per standard deviation it is statistically indistinguishable from the continuous
    Gaussian the bound assumes (smoothing parameter of Z is ~1 step).
    """
    from .dp import discrete_gaussian

    values = np.asarray(values, dtype=np.float64)
    if not sigma > 0 or not math.isfinite(sigma):
        raise ParameterError(f"sigma must be positive and finite; got {sigma!r}.")
    step = sigma * 2.0**-16
    noise = discrete_gaussian(2**32, values.shape).astype(np.float64) * step
    return values + noise
