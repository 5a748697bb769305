"""Parameter choice for :mod:`he_ml.aggregation.aggregator`: the smallest context per workload.

One piece of :mod:`he_ml.aggregation.aggregator`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.aggregator`; import it from there.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..schemes.base import SchemeContext


# ---------------------------------------------------------------------------- parameter choice
#: Sum-only CKKS chains for released totals (128-bit: 180 and 218 bits <= 218 at n = 8192):
#: two, then three 60-bit data primes; the last prime is SEAL's special prime (no keys use it).
_CKKS_RELEASE_CHAINS = ((8192, (60, 60, 60)), (8192, (60, 60, 60, 38)))


def aggregation_context(scheme: str = "paillier", *, max_clients: int = 1024, max_value: float = 1.0,
                        precision_bits: int = 24, key_bits: int = 3072) -> SchemeContext:
    """A key-holder context with the fewest bytes per value for summing ``max_clients`` updates.

    All parameter sets give 128-bit classical security (HE standard table for CKKS/BFV,
    NIST SP 800-57 for Paillier); nothing is weakened to save bytes.

    Parameters
    ----------
    scheme : {"paillier", "bfv", "ckks"}, default "paillier"
    max_clients : int, default 1024
        Updates one total may absorb.
    max_value : float, default 1.0
        Bound on |value| of one client's update (pass the same ``max_value`` to the
        aggregators; with DP use ``clip_norm``).
    precision_bits : int, default 24
        Fractional bits kept per value and client: Paillier and BFV quantize with step
        ``2**-precision_bits``; CKKS gets a scale with at least this many bits above its noise.
    key_bits : int, default 3072
        Paillier modulus size (3072: 128-bit security).

    Returns
    -------
    SchemeContext
        With the secret key; hand ``ctx.public_context()`` to clients and the server.

    Raises
    ------
    ParameterError
        If no 128-bit parameter set of the scheme fits the request (the message suggests one).

    Notes
    -----
    Bytes per value (ciphertext payload, large vectors; measured, see
    ``benchmarks/bench_aggregation.py``):

    * **paillier**: ``Paillier(key_bits, preset="sum")`` with ``max_additions=max_clients``;
      slot bits ``1 + ceil(log2(max_value * 2**precision_bits * max_clients))``, one 768-byte
      ciphertext per ``3070 // slot_bits`` values -- 11.6 B/value at (1024, 1024, 24 bits),
      about 8.4 B/value at (100 clients, |x| <= 1, 24 bits).
    * **bfv**: n = 4096, coefficient modulus [60, 49] (109 bits, the 128-bit maximum; a
      ciphertext carries only the 60-bit data prime), plain modulus of
      ``2 + ceil(log2(max_clients * max_value * 2**precision_bits))`` bits (<= 39); 4096 values
      per 65.7 kB ciphertext = 16 B/value. Larger requests use n = 8192, [60, 60, 60] (32 B/value).
    * **ckks**: released totals are smudged for 2^-40 statistical distance
      (:mod:`he_ml.aggregation.flooding`), which needs a scale of ~90 bits above the precision:
      n = 8192 with two 60-bit data primes ([60, 60, 60], 64 B/value) when they keep
      ``precision_bits`` after smudging (about 22 bits at 100 clients), else three
      ([60, 60, 60, 38], 96 B/value); ``wide_scale=True`` (the scale spans the data primes).
      BFV is exact and 4-6x smaller: prefer it for released sums.

    The schemes' own ``"sum"`` presets (CKKS n=8192 [60,40,60]: 57 B/value; BFV n=8192, 4 data
    primes: 53 B/value) keep room for other operations; for pure summation these sets are
    2-3.5x smaller.
    """
    from .. import schemes

    name, kwargs = _aggregation_parameters(scheme, max_clients=max_clients, max_value=max_value,
                                           precision_bits=precision_bits, key_bits=key_bits)
    return getattr(schemes, name)(**kwargs)


def _aggregation_parameters(scheme: str, *, max_clients: int, max_value: float, precision_bits: int,
                            key_bits: int) -> tuple[str, dict[str, Any]]:
    """The parameter choice of `aggregation_context` without key generation (also used by hints)."""
    if isinstance(max_clients, bool) or not isinstance(max_clients, (int, np.integer)) or max_clients < 1:
        raise ParameterError(f"max_clients must be a positive int; got {max_clients!r}.")
    if not (isinstance(max_value, (int, float, np.integer, np.floating)) and math.isfinite(max_value) and max_value > 0):
        raise ParameterError(f"max_value must be a positive finite float; got {max_value!r}.")
    if isinstance(precision_bits, bool) or not isinstance(precision_bits, (int, np.integer)) \
            or not 1 <= precision_bits <= 52:
        raise ParameterError(f"precision_bits must be an int in [1, 52]; got {precision_bits!r}.")
    scheme = str(scheme).lower()
    # magnitude bits of the largest possible sum, as a sum of logs: the product of a huge max_value
    # (a hostile blob's declared bound, 1e308) and the client count overflows to inf
    growth = math.log2(max_clients) + math.log2(float(max_value))
    if scheme == "paillier":
        if math.log2(float(max_value)) + precision_bits >= 1024:  # the packed encoding's fixed point
            raise ParameterError(f"paillier: max_value={float(max_value):g} at {precision_bits} fractional bits "
                                 f"exceeds a double; lower max_value or precision_bits.")
        return "Paillier", dict(key_bits=key_bits, preset="sum", precision_bits=int(precision_bits),
                                max_value=float(max_value), max_additions=int(max_clients))
    if scheme == "bfv":
        t_bits = 2 + math.ceil(growth + precision_bits)
        t_bits = max(t_bits, 14)  # a batching prime = 1 mod 2n needs more bits than 2n
        # Fresh noise at n=4096, q=60 bits takes ~7 bits and summing k ciphertexts adds log2(k).
        if t_bits <= 39 and t_bits + 8 + math.log2(max_clients) <= 58:
            return "BFV", dict(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[60, 49],
                               plain_modulus_bits=t_bits, fixed_point_bits=int(precision_bits), relin_keys=False)
        if t_bits <= 60 and t_bits + 8 + math.log2(max_clients) <= 118:
            return "BFV", dict(preset=None, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 60, 60],
                               plain_modulus_bits=min(t_bits + 0, 60), fixed_point_bits=int(precision_bits),
                               relin_keys=False)
        raise ParameterError(
            f"bfv: {max_clients} clients x |x| <= {max_value:g} at {precision_bits} fractional bits need a "
            f"{t_bits}-bit plain modulus, more than BFV's 60; lower precision_bits or use 'paillier'."
        )
    if scheme == "ckks":
        # A CKKS total leaves the key holder smudged (he_ml.aggregation.flooding): 2^-40 statistical
        # distance needs coefficient noise ~2^(lambda + log2(n B_ct)), so the scale spans all data
        # primes of a sum-only chain (wide_scale) and sits precision_bits above the smudged error.
        from .committee_lattice import ciphertext_noise_bound, slot_error_bound, smudging_width
        from .flooding import DEFAULT_SECURITY_BITS as lam

        value_bits = max(0, math.ceil(growth))
        best = 0.0
        for n, bits in _CKKS_RELEASE_CHAINS:
            data = bits[:-1]
            q_bits = sum(data) - len(data)  # every prime > 2^(bits-1): log2 Q > this
            b_ct = ciphertext_noise_bound(n, int(max_clients))
            b = smudging_width(n, b_ct, lam)
            tail_bits = math.log2(slot_error_bound(n, b, b_ct, lam))  # smudged slot error x 2**scale
            top = q_bits - 2 - value_bits  # largest scale with |sum| * 2**scale < Q / 4
            # the smallest scale that keeps precision_bits (+1 spare) leaves the most headroom for values
            scale = min(top, math.ceil(precision_bits + tail_bits) + 1)
            prec = scale - tail_bits
            best = max(best, top - tail_bits)
            if prec >= precision_bits and b + 3 <= q_bits:
                return "CKKS", dict(preset=None, poly_modulus_degree=n, coeff_mod_bit_sizes=list(bits),
                                    scale_bits=int(scale), relin_keys=False, wide_scale=True)
        raise ParameterError(
            f"ckks: {max_clients} clients x |x| <= {max_value:g} keep at most {best:.1f} bits of precision "
            f"after the release smudging (2^-{lam} statistical distance) with 128-bit parameters, < "
            f"{precision_bits}; ask for fewer precision_bits or use 'bfv' or 'paillier' (exact)."
        )
    raise ParameterError(f"scheme must be 'paillier', 'bfv' or 'ckks'; got {scheme!r}.")


def aggregation_hint(scheme: str, *, max_clients: int, max_value: float, precision_bits: int = 24) -> str:
    """An ``aggregation_context(...)`` call that fits, trying `scheme` first (no keys are made).

    Error messages use it so that following their advice works: the call is only suggested if
    `_aggregation_parameters` accepts it; otherwise the other schemes are tried in the order
    bfv, paillier (exact), and as a last resort fewer clients per total.
    """
    precision_bits = int(min(max(precision_bits, 1), 52))
    for s in dict.fromkeys([scheme, "bfv", "paillier"]):
        try:
            _aggregation_parameters(s, max_clients=int(max_clients), max_value=float(max_value),
                                    precision_bits=precision_bits, key_bits=3072)
        except ParameterError:
            continue
        return (f"aggregation_context({s!r}, max_clients={int(max_clients)}, max_value={float(max_value):g}, "
                f"precision_bits={precision_bits})")
    return "fewer clients per total (sum the rest into another total and add the totals at the key holder)"
