"""Smudged release of CKKS decryptions (the Li-Micciancio IND-CPA^D countermeasure).

A CKKS decryption returns ``m + e`` where the error ``e`` depends on the secret key; Li &
Micciancio (Eurocrypt 2021) recover the key from a few such outputs. Before a CKKS total leaves
the key holder, :func:`smudged_decrypt` *smudges* it: a fresh polynomial ``E`` with coefficients
uniform on ``[-2^b, 2^b)`` is added to the ciphertext's ``c0`` (in SEAL's RNS representation,
exact integer arithmetic, he_ml's native NTT), and only then is the ciphertext decrypted and
decoded. The released values are a public function (CKKS decoding) of the integer coefficients
``Delta m + e + E``, so everything below holds for the floating-point output too (data
processing); no floating-point noise is involved.

Statistical security (the smudging lemma)
-----------------------------------------
Asharov, Jain, Lopez-Alt, Tromer, Vaikuntanathan, Wichs (EUROCRYPT 2012), Lemma 2.1: if
``|e| <= B`` and ``E`` is uniform on ``[-2^b, 2^b)``, the statistical distance between
``e + E`` and ``E`` is at most ``B / 2^(b+1)``. Over the ``n`` coefficients (union bound) the
released total is within statistical distance ``n B / 2^(b+1)`` of a value that does not depend
on ``e`` -- i.e. of something the holder of the public key can simulate from ``m`` alone. With
``b = ceil(log2(n B)) + lambda - 1`` this is ``<= 2^-lambda`` per released total
(``lambda = 40`` by default): the ``2^-40`` statistical distance issue 9 asks for. The key
holder decrypts each round id once, so ``r`` releases are within ``r 2^-40``.

``B`` is the worst-case bound :func:`~he_ml.aggregation.committee_lattice.ciphertext_noise_bound`
on the error of a sum of ``count`` honest public-key encryptions (SEAL's error sampler is bounded
by 21, keys and encryption randomness are ternary): ``B = count (22 + 43 n)``. The count used is
the proven number of contributions (signed receipts), never a free metadata field.

Precision it costs
------------------
One released slot's error is at most ``2^b sqrt(n ln(n 2^(lambda+1))) + n B`` (scale units; a
Hoeffding bound over the ``n`` smudging coefficients, failure ``<= 2^-lambda`` over all slots),
about ``2^87`` at n = 8192 and 100 clients. The scale must sit far above it, which only works
when the scale spans all data primes of a sum-only context (``CKKS(..., wide_scale=True)``): the
contexts :func:`he_ml.aggregation.aggregation_context` plans for ``"ckks"`` do this (n = 8192 with
two or three 60-bit data primes). :func:`release_plan` gives the figures for any context and
count; a context that cannot hold the smudging raises `ParameterError` naming one that can.
``docs/secure-rounds.md`` tabulates the cost. BFV and Paillier decrypt exactly: nothing to smudge.

An earlier version added Gaussian noise to the *decoded* floats on a grid of step
``sigma 2^-16``; the released value then stayed on the grid ``m + e + step Z`` and revealed
``e mod step`` to anyone who knew ``m`` (a chosen-plaintext adversary does). Smudging in the
coefficient domain, before decoding, has no such residue.
"""
from __future__ import annotations

import math
import secrets
import struct
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError
from .committee_lattice import ciphertext_noise_bound, slot_error_bound, smudging_width

__all__ = ["DEFAULT_SECURITY_BITS", "ReleasePlan", "release_plan", "smudged_decrypt"]

#: Default statistical security (bits) of a released CKKS decryption: distance <= 2^-40.
DEFAULT_SECURITY_BITS = 40


@dataclass(frozen=True)
class ReleasePlan:
    """How a CKKS total of ``count`` contributions is smudged before release.

    ``smudging_bits`` is ``b`` (coefficients uniform on ``[-2^b, 2^b)``); ``error_bound`` bounds
    one released value's error (value units, failure ``<= 2^-security_bits``);
    ``precision_bits = -log2(error_bound)`` is the absolute precision kept.
    """

    poly_modulus_degree: int
    data_modulus_bits: float
    scale_bits: int
    count: int
    security_bits: int
    noise_bits: float
    smudging_bits: int
    error_bound: float
    precision_bits: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def slot_std(self) -> float:
        """Std of the smudging noise in one released slot (value units): the real part of the
        canonical embedding weights the ``n`` coefficients by ``cos`` terms whose squares average
        1/2, so the variance is ``n/2`` times the coefficient variance ``((2^(b+1))^2 - 1) / 12``."""
        var_coef = ((2.0 ** (self.smudging_bits + 1)) ** 2 - 1) / 12.0
        return math.sqrt(self.poly_modulus_degree / 2.0 * var_coef) / 2.0 ** self.scale_bits


def _check_security(security_bits: Any) -> int:
    if isinstance(security_bits, bool) or not isinstance(security_bits, (int, np.integer)) \
            or not 20 <= int(security_bits) <= 128:
        raise ParameterError(f"security_bits must be an int in [20, 128]; got {security_bits!r}.")
    return int(security_bits)


def release_plan(context: Any, count: int, *, security_bits: int = DEFAULT_SECURITY_BITS,
                 level: int | None = None) -> ReleasePlan:
    """The smudging a released CKKS total of ``count`` contributions gets under ``context``.

    Parameters
    ----------
    context : CKKS context
    count : int
        Proven number of client contributions summed into the total (>= 1).
    security_bits : int, default 40
        ``lambda``: statistical distance ``<= 2^-lambda`` per release.
    level : int, optional
        Number of data primes the ciphertext still has (default: all, a fresh sum).

    Raises
    ------
    ParameterError
        If the context is not CKKS, or its modulus and scale cannot hold the smudging noise with
        at least one bit of precision left; the message names an ``aggregation_context`` that can.
    """
    from ..schemes.seal_rns import rns_moduli

    lam = _check_security(security_bits)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ParameterError(f"count must be a positive int (the proven number of contributions); got {count!r}.")
    if getattr(context, "name", None) != "ckks":
        raise ParameterError(f"smudged release is for CKKS totals; got a {getattr(context, 'name', context)!r} "
                             f"context (BFV and Paillier decrypt exactly and need none).")
    info = rns_moduli(context)
    n = int(info["n"])
    primes = info["data_primes"] if level is None else info["data_primes"][:int(level)]
    q_bits = sum(math.log2(q) for q in primes)
    scale_bits = int(context.scale_bits)
    b_ct = ciphertext_noise_bound(n, int(count))
    b = smudging_width(n, b_ct, lam)
    tail = slot_error_bound(n, b, b_ct, lam)
    precision = scale_bits - math.log2(tail)
    # Decoding centres each coefficient mod Q: |Delta m| + B + 2^b must stay below Q / 2. The
    # context keeps |Delta m| below Q / 2 already (its value bound); ask 2 bits more for the noise.
    if b + 3 > q_bits or precision < 1.0:
        from .aggregator import aggregation_hint

        hint = aggregation_hint("ckks", max_clients=int(count), max_value=1.0, precision_bits=16)
        raise ParameterError(
            f"ckks: this context (n={n}, {len(primes)} data prime(s), {q_bits:.0f} bits, scale 2^{scale_bits}) "
            f"cannot release a total of {count} contributions with 2^-{lam} statistical security: the "
            f"smudging noise 2^{b} per coefficient leaves {precision:.1f} bits of precision. Plan the key "
            f"holder's context for release, e.g. {hint}, or release a BFV/Paillier total (exact).")
    return ReleasePlan(poly_modulus_degree=n, data_modulus_bits=q_bits, scale_bits=scale_bits, count=int(count),
                       security_bits=lam, noise_bits=math.log2(b_ct), smudging_bits=b,
                       error_bound=tail / 2.0 ** scale_bits, precision_bits=precision)


def smudged_decrypt(context: Any, vector: Any, *, count: int,
                    security_bits: int = DEFAULT_SECURITY_BITS) -> tuple[np.ndarray, ReleasePlan]:
    """Decrypt a CKKS vector for release: smudge every ciphertext's ``c0`` first (module docstring).

    Parameters
    ----------
    context : CKKS context with the secret key
    vector : EncryptedVector
        The total to release (a sum of ``count`` fresh encryptions).
    count : int
        Proven number of contributions.
    security_bits : int, default 40

    Returns
    -------
    values : ndarray
        The decrypted values, shape ``vector.shape``.
    plan : ReleasePlan
        ``b``, the error bound and the precision kept.

    Raises
    ------
    ParameterError
        As :func:`release_plan`.
    SecretKeyMissingError, ContextMismatchError
        As ``context.decrypt``.
    """
    from .. import native
    from ..schemes.base import EncryptedVector
    from ..schemes.seal_rns import ciphertext_from_rns, ciphertext_to_rns, rns_moduli
    from .committee_lattice import addmod, smudging_rns, smudging_words

    if not isinstance(vector, EncryptedVector):
        raise ParameterError(f"smudged_decrypt expects an EncryptedVector; got {type(vector).__name__}.")
    context._check_same_key(vector.context, "decrypt")
    info = rns_moduli(context)
    n = int(info["n"])
    levels = {int(ct.coeff_modulus_size()) for ct in vector.chunks}
    plan = release_plan(context, count, security_bits=security_bits, level=min(levels))
    key = secrets.token_bytes(32)  # fresh per release: OS CSPRNG keys the ChaCha20 stream
    chunks = []
    for j, ct in enumerate(vector.chunks):
        c = ciphertext_to_rns(ct)
        L = c.shape[1]
        primes = info["data_primes"][:L]
        hi, lo = smudging_words(key, b"he_ml/release" + struct.pack("<Q", j), plan.smudging_bits, n)
        e = smudging_rns(hi, lo, plan.smudging_bits, primes)
        c = c.copy()
        if ct.is_ntt_form():
            c[0] = addmod(c[0], native.ntt_rns(e, primes), primes)
        else:  # pragma: no cover - SEAL keeps CKKS ciphertexts in NTT form
            c[0] = addmod(c[0], e, primes)
        chunks.append(ciphertext_from_rns(context, c, parms_id=tuple(int(v) for v in ct.parms_id()),
                                          ntt_form=bool(ct.is_ntt_form()), scale=float(ct.scale)))
    values = context.decrypt(EncryptedVector(context, chunks, vector.shape, vector.meta))
    return values, plan
