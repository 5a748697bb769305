"""Privacy accounting for :mod:`he_ml.aggregation.dp` (Google's dp-accounting, RDP or PLD).

One piece of :mod:`he_ml.aggregation.dp`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.dp`; import it from there.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as _dist_version
from typing import Literal

import numpy as np

from ..errors import ParameterError
from ._dp_clip import _validate_positive_float


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
