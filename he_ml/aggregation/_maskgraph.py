"""SecAgg+ parameters: the neighbour count ``k`` and threshold ``t`` for stated ``(n, delta, gamma, sigma, eta)``.

Bell et al. (CCS 2020, sections 3 and 4) replace the complete graph of SecAgg by a sparse random
graph and show that a round stays private and correct as long as the sampled graph satisfies
three conditions, each of which fails only with a small probability over the graph; they then
pick the degree ``k = O(log n)`` and the threshold ``t`` that make these probabilities at most
``2**-sigma`` (security) and ``2**-eta`` (correctness). :func:`secagg_plus_parameters` does the
same computation, exactly, for the graph he_ml samples
(:func:`he_ml.aggregation.masking.neighbourhood`): a Harary graph ``H(n, k)`` -- a ring with
``k / 2`` neighbours on each side -- over a uniformly random order of the clients. Each client's
``k`` neighbours are then a uniform ``k``-subset of the other ``n - 1`` clients, so the number of
corrupt (or dropped) neighbours of a fixed client is hypergeometric; a union bound over the ``n``
clients (or ring positions) gives each failure probability below.

Model (as in Bell et al.): ``C = floor(gamma * n)`` clients are corrupt and collude with the
server, chosen before the graph is sampled; up to ``D = floor(delta * n)`` clients drop out,
independently of the graph; the graph's randomness is public but not chosen by the adversary
(here: SHA-256 of the round id -- the round id must not be under the server's control, e.g. a
counter fixed in advance or a public beacon value). Each client has ``k + 1`` share holders (its
neighbours and itself).

1. **Secrets of an honest client** (security, ``sigma``). An honest client reveals, per other
   client, *either* its self-mask share *or* its mask-key share. With ``c`` corrupt holders, a
   server that lies about who dropped gets both secrets of a client only if
   ``2 (t - c) <= (k + 1) - c`` (the ``t - c`` missing shares of each secret must come from
   different honest holders). So ``c < 2 t - (k + 1)`` for every honest client suffices:
   ``P_1 <= n * P[Hyp(n - 1, C, k) >= 2 t - k - 1]``. (With ``gamma = 0`` this is the
   ``t > (k + 1) / 2`` that :class:`RoundSetup` always requires.)
2. **Only the sum** (security, ``sigma``). The server learns the sum of every connected component
   of the graph of honest surviving clients, so that graph must be connected. Removing nodes from
   the ring disconnects it only if ``k / 2`` consecutive positions are all removed (otherwise each
   remaining node reaches the next one within ``k / 2`` steps):
   ``P_2 <= n * C(C + D, k/2) / C(n, k/2)``.
3. **The round finishes** (correctness, ``eta``). Every surviving client needs ``t`` surviving
   holders (its self-mask seed) and every dropped client ``t`` surviving neighbours (its mask key):
   ``P_3 <= (n - D) P[Hyp(n-1, D, k) >= k + 2 - t] + D P[Hyp(n-1, D-1, k) >= k + 1 - t]``.

:func:`secagg_plus_parameters` returns the smallest even ``k`` (and for it the smallest ``t``)
with ``P_1, P_2 <= 2**-sigma`` and ``P_3 <= 2**-eta``, or the complete graph when no ``k < n - 1``
works -- which is the case for small rounds with many dropouts: at ``n = 100``, ``delta = 0.3``,
``gamma = 0.05`` it gives ``k = 66, t = 37``; at ``delta = 0.1``, ``k = 28, t = 18``; the
``O(log n)`` saving of Bell et al. shows at thousands of clients.

References
----------
.. [1] J. Bell, K. Bonawitz, A. Gascon, T. Lepoint, M. Raykova, "Secure Single-Server
   Aggregation with (Poly)Logarithmic Overhead", ACM CCS 2020, sections 3 and 4.
.. [2] K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
   Learning", ACM CCS 2017, section 4 (the ``2 (t - c)`` argument).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..errors import ParameterError

__all__ = ["SecAggPlusParameters", "secagg_plus_parameters", "graph_failure_bits"]

_MAX_N = 1 << 12  # exact hypergeometric sums; larger rounds: call with the parameters of a sub-sample


@dataclass(frozen=True)
class SecAggPlusParameters:
    """A SecAgg+ configuration and the failure probabilities it was chosen for (as ``-log2``).

    Attributes
    ----------
    neighbors : int or None
        Even degree ``k`` for :class:`RoundSetup` (None: the complete graph).
    threshold : int
        Shamir threshold ``t``.
    holders : int
        ``k + 1`` (or ``n`` for the complete graph).
    sigma_secrets, sigma_connected, eta : float
        ``-log2`` of the bounds ``P_1``, ``P_2``, ``P_3`` (``inf``: the event is impossible).
    """

    n: int
    dropout: float
    corrupt: float
    neighbors: int | None
    threshold: int
    holders: int
    sigma_secrets: float
    sigma_connected: float
    eta: float


def _tail(population: int, marked: int, draws: int, at_least: int) -> Fraction:
    """``P[X >= at_least]`` for ``X ~ Hypergeometric(population, marked, draws)``, exactly."""
    lo = max(at_least, 0)
    hi = min(marked, draws)
    if lo > hi:
        return Fraction(0)
    total = sum(math.comb(marked, x) * math.comb(population - marked, draws - x) for x in range(lo, hi + 1))
    return Fraction(total, math.comb(population, draws))


def _bits(p: Fraction) -> float:
    if p <= 0:
        return math.inf
    if p >= 1:
        return 0.0
    return -(math.log2(p.numerator) - math.log2(p.denominator))


def graph_failure_bits(n: int, k: int, t: int, dropout: float, corrupt: float) -> tuple[float, float, float]:
    """``-log2`` of the bounds ``(P_1, P_2, P_3)`` of the module docstring for degree ``k`` and threshold ``t``.

    ``k = n - 1`` is the complete graph (every bound is then exact: 0 or 1).
    """
    c, d = int(corrupt * n), int(dropout * n)
    p1 = n * _tail(n - 1, c, k, 2 * t - k - 1)
    h = k // 2
    p2 = Fraction(n * math.comb(c + d, h), math.comb(n, h)) if k < n - 1 else Fraction(int(c + d >= n - 1))
    p3 = (n - d) * _tail(n - 1, d, k, k + 2 - t)
    if d:
        p3 += d * _tail(n - 1, d - 1, k, k + 1 - t)
    return _bits(min(p1, Fraction(1))), _bits(min(p2, Fraction(1))), _bits(min(p3, Fraction(1)))


def secagg_plus_parameters(n: int, *, dropout: float, corrupt: float = 0.05, sigma: float = 40.0,
                           eta: float = 20.0) -> SecAggPlusParameters:
    """The smallest SecAgg+ neighbour count and threshold for ``n`` clients (Bell et al. 2020).

    Parameters
    ----------
    n : int
        Clients invited to the round, ``3 <= n <= 4096``.
    dropout : float
        Fraction ``delta`` of clients that may drop out, in ``[0, 0.5)``.
    corrupt : float, default 0.05
        Fraction ``gamma`` of clients that may collude with the server, in ``[0, 0.5)``.
    sigma : float, default 40
        Security: each failure event of the graph has probability at most ``2**-sigma``.
    eta : float, default 20
        Correctness: the round aborts (too few shares) with probability at most ``2**-eta``.

    Returns
    -------
    SecAggPlusParameters
        ``neighbors`` and ``threshold`` to pass to :class:`RoundSetup` / :func:`simulate_round`.

    Raises
    ------
    ParameterError
        If an argument is out of range, or no graph -- not even the complete one -- meets the
        targets (too many dropouts or corrupt clients for ``n``).

    Notes
    -----
    The three conditions and their bounds are in the module docstring of
    :mod:`he_ml.aggregation._maskgraph`. The bounds assume dropouts independent of the graph; an
    adversary that picks *which* clients drop (up to ``D``) is covered by condition 1 for the
    secrets of each client, not by condition 2.

    Examples
    --------
    >>> from he_ml.aggregation.masking import secagg_plus_parameters
    >>> p = secagg_plus_parameters(100, dropout=0.1)
    >>> p.neighbors, p.threshold
    (28, 18)
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 3 <= n <= _MAX_N:
        raise ParameterError(f"n must be an int in [3, {_MAX_N}]; got {n!r}.")
    for name, v in (("dropout", dropout), ("corrupt", corrupt)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 0.5:
            raise ParameterError(f"{name} must be a fraction in [0, 0.5); got {v!r}.")
    for name, v in (("sigma", sigma), ("eta", eta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 256:
            raise ParameterError(f"{name} must be a number of bits in (0, 256]; got {v!r}.")
    for k in list(range(2, n - 1, 2)) + [n - 1]:
        for t in range((k + 1) // 2 + 1, k + 2):
            s1, s2, e = graph_failure_bits(n, k, t, dropout, corrupt)
            if s1 < sigma:
                continue  # a larger t protects the secrets better
            if e < eta or s2 < sigma:
                break  # a larger t only lowers correctness; s2 does not depend on t
            return SecAggPlusParameters(n, float(dropout), float(corrupt), None if k == n - 1 else k, t, k + 1,
                                        s1, s2, e)
    raise ParameterError(
        f"no SecAgg+ graph for n={n} clients meets sigma={sigma} / eta={eta} with dropout={dropout} and "
        f"corrupt={corrupt}, not even the complete graph; lower the dropout or corrupt fraction (or eta).")
