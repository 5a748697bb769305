"""The DP configuration of :mod:`he_ml.aggregation.dp`: grid and noise calibration.

One piece of :mod:`he_ml.aggregation.dp`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.dp`; import it from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

from ..errors import ParameterError
from ._dp_clip import _validate_positive_float


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


# ---------------------------------------------------------------------------
# Configuration
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
