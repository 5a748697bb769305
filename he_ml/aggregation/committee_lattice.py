"""Multiparty RLWE keys for BFV and CKKS committees: collective public key, replicated
t-of-n secret-key shares, smudged partial decryption -- all polynomial arithmetic on SEAL's
RNS data done by he_ml's native NTT core (:mod:`he_ml.native`).

Protocol (Mouchet, Troncoso-Pastoriza, Bossuat, Hubaux, PETS 2021, Sect. 4)
---------------------------------------------------------------------------
* **Common random polynomial.** ``a`` in ``R_Q`` is expanded from a public 32-byte seed
  with ChaCha20 (``cryptography``), uniformly per prime by rejection sampling, directly in
  NTT form (the NTT is a bijection, so uniform stays uniform).
* **Collective key generation (CKG).** Member ``i`` samples a ternary ``s_i`` and an error
  ``e_i`` (centred binomial, eta = 21: variance 10.5, the RLWE standard deviation 3.24 of
  SEAL's 3.2) from :mod:`secrets`, publishes ``p0_i = -(a s_i + e_i)``; the public key is
  ``(p0, p1) = (sum_i p0_i, a)``, an RLWE public key for ``s = sum_i s_i`` with error
  ``e = sum_i e_i``. Clients encrypt with SEAL's ordinary public-key encryption.
* **Threshold (t-of-n) by replicated secret sharing.** Mouchet et al.'s Sect. 5 / Lattigo's
  ``Thresholdizer`` re-share each ``s_i`` with Shamir's scheme, which needs the set of
  participants *before* partial decryption (the Lagrange coefficient multiplies the key
  share). The contract here is ``partial_decrypt(share, total)`` with no participant list,
  so we use the other t-of-n sharing that works with additive RLWE shares: replicated
  secret sharing, a {0,1}-linear secret sharing as in Boneh et al. (CRYPTO 2018, Sect. 4).
  For every set ``A`` of ``t - 1`` members (a maximal unqualified set) there is one
  additive sub-key ``r_A`` with ``s = sum_A r_A``; every member outside ``A`` holds
  ``r_A``. Any ``t`` members together hold every sub-key; any ``t - 1`` miss ``r_A`` for
  ``A`` = themselves, and the others are uniformly random. Each member holds
  ``C(n - 1, t - 1)`` sub-keys and the committee ``C(n, t - 1)`` (5 of 3: 6 and 10); we cap
  ``C(n, t - 1)`` at :data:`MAX_SUBKEYS`. The key-generation steps (CKG share, re-sharing
  messages ``r_{i,A}`` with ``s_i = sum_A r_{i,A}``, finalize) are in
  :mod:`he_ml.aggregation.committee_keygen`.
* **Partial decryption (CKS to a zero key, Sect. 4).** For ``c = (c0, c1)`` each sub-key
  gives ``h_A = c1 r_A + e_A``; ``c0 + sum_A h_A = Delta m + e_ct + sum_A e_A``. The
  smudging noise ``e_A`` is drawn from ChaCha20 keyed by a 32-byte key ``k_A`` shared by
  the holders of ``r_A`` and bound to the committee, the total's SHA-256 and the
  ciphertext index, so every holder returns the *same* ``h_A`` for the same total: asking
  twice (or asking two holders) gives no second noise sample to average.

Smudging bound (see :func:`plan_lattice`)
-----------------------------------------
``e_A`` is uniform on ``[-2^b, 2^b)`` (``b + 1`` random bits, exact). For honest
ciphertexts the noise ``e_ct`` of a sum of ``K`` fresh public-key encryptions obeys
``||e_ct||_inf <= B_ct = K (E + 1 + (2E + 1) n M)`` with ``E = 21`` the error bound,
``n`` the ring degree, ``M`` members (``|v e_pk|, |e1 s| <= n M E`` since ``v``, ``s_i``
are ternary; ``n M`` more for SEAL's mod-switch rounding). The statistical distance between
``h_A`` and ``h_A`` shifted by ``e_ct`` is at most ``n B_ct / 2^(b+1)`` (uniform vs shifted
uniform, union over the ``n`` coefficients), so ``b = ceil(log2(n B_ct)) + lambda - 1``
gives distance ``<= 2^-lambda`` per partial decryption (``lambda = 40`` by default). The
combined noise is at most ``B_ct + C(n, t-1) 2^b``: BFV needs it below ``Q / (2 t)``; CKKS
loses ``log2`` of its slot magnitude (Hoeffding bound, failure ``<= 2^-lambda`` over all
slots) from the scale.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import secrets
import struct
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from .. import native
from ..errors import ParameterError

__all__ = ["MAX_SUBKEYS", "SMUDGING_SECURITY", "LatticePlan", "plan_lattice", "unqualified_sets",
           "ciphertext_noise_bound", "smudging_width", "slot_error_bound"]

#: Largest number of replicated sub-keys ``C(members, threshold - 1)`` a committee may have.
MAX_SUBKEYS = 256
#: Default statistical security (bits) of a smudged partial decryption.
SMUDGING_SECURITY = 40
#: Bound on every RLWE error coefficient: SEAL's default error sampler is a centred binomial
#: (21 + 21 bits, |e| <= 21; with SEAL_USE_GAUSSIAN_NOISE a Gaussian clipped at 6 sigma = 19.2),
#: and our CKG errors use the same centred binomial (eta = 21).
ERROR_BOUND = 21
_CBD_ETA = 21
_CHAINS = ((8192, (60, 60, 60)), (16384, (60, 60, 60, 60, 60, 60, 60)))


@dataclass(frozen=True)
class LatticePlan:
    """Parameters and noise budget of a BFV/CKKS committee (all figures in bits unless noted)."""

    scheme: str
    members: int
    threshold: int
    subkeys: int                 # C(members, threshold - 1)
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    max_clients: int
    max_value: float
    smudging_security: int       # lambda: statistical distance <= 2^-lambda per partial
    ciphertext_noise_bits: float  # log2(B_ct)
    smudging_bits: int           # b: e_A uniform on [-2^b, 2^b)
    total_noise_bits: float      # log2(B_ct + subkeys * 2^b)
    margin_bits: float           # room left below the decryption bound
    scale_bits: int | None = None          # CKKS
    precision_bits: float | None = None    # CKKS: absolute bits kept on the sum after smudging
    plain_modulus_bits: int | None = None  # BFV
    fixed_point_bits: int | None = None    # BFV: fractional bits of the gradients

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["coeff_mod_bit_sizes"] = list(self.coeff_mod_bit_sizes)
        return d

    @property
    def smudging_std(self) -> float:
        """Standard deviation of one sub-key's smudging coefficient: ``2^b / sqrt(3)``
        (uniform on ``[-2^b, 2^b)``: variance ``((2^(b+1))^2 - 1) / 12``)."""
        return math.sqrt(((2.0 ** (self.smudging_bits + 1)) ** 2 - 1) / 12.0)


def ciphertext_noise_bound(n: int, count: int, members: int = 1) -> int:
    """``B_ct = K (E + 1 + (2E + 1) n M)``: bound on ``||e_ct||_inf`` of a sum of ``K = count``
    honest public-key encryptions under a key with ``M = members`` ternary shares (module docstring)."""
    E = ERROR_BOUND
    return int(count) * (E + 1 + (2 * E + 1) * int(n) * int(members))


def smudging_width(n: int, noise_bound: float, security_bits: int) -> int:
    """``b = ceil(log2(n B_ct)) + lambda - 1``: uniform smudging on ``[-2^b, 2^b)`` per coefficient
    keeps the statistical distance to a ``B_ct``-shifted copy at ``<= n B_ct / 2^(b+1) <= 2^-lambda``."""
    return math.ceil(math.log2(int(n) * float(noise_bound))) + int(security_bits) - 1


def slot_error_bound(n: int, bits: int, noise_bound: float, security_bits: int, terms: int = 1) -> float:
    """Bound (in units of the scale) on one CKKS slot's error after smudging, except with
    probability ``<= 2^-lambda`` over all slots: Hoeffding on ``terms * n`` uniform terms of range
    ``2^(b+1)`` (real part of the canonical embedding, weights ``|cos| <= 1``), union over ``n/2``
    slots, plus the worst case ``||e_ct||_1 <= n B_ct``."""
    lam = int(security_bits)
    return (2.0 ** bits * math.sqrt(terms * n * math.log(n * 2.0 ** (lam + 1)))
            + n * float(noise_bound))


def unqualified_sets(members: int, threshold: int) -> list[tuple[int, ...]]:
    """The maximal unqualified sets: every ``threshold - 1`` subset of ``1..members``."""
    return list(itertools.combinations(range(1, members + 1), threshold - 1))


def plan_lattice(scheme: str, members: int, threshold: int, *, max_clients: int = 100,
                 max_value: float = 1.0, precision_bits: int | None = None,
                 smudging_security: int = SMUDGING_SECURITY) -> LatticePlan:
    """Smallest 128-bit chain whose noise budget holds the committee's smudging.

    Parameters
    ----------
    scheme : {"bfv", "ckks"}
    members, threshold : int
    max_clients : int, default 100
        Client updates one total may hold.
    max_value : float, default 1.0
        Bound on one client's |value|.
    precision_bits : int, optional
        BFV: fractional bits of the gradient fixed point (default 20). CKKS: minimum absolute
        precision bits required of the sum after smudging (default 10).
    smudging_security : int, default 40
        lambda of the smudging bound (statistical distance ``2^-lambda``).

    Raises
    ------
    ParameterError
        If no chain fits (the message gives the shortfall).
    """
    if isinstance(max_clients, bool) or not isinstance(max_clients, numbers.Integral) or max_clients < 1:
        raise ParameterError(f"max_clients must be a positive int; got {max_clients!r}.")
    if isinstance(max_value, bool) or not isinstance(max_value, numbers.Real) or not 0 < max_value < math.inf:
        raise ParameterError(f"max_value must be a positive finite number (one client's largest |value|); "
                             f"got {max_value!r}.")
    subkeys = math.comb(members, threshold - 1)
    lam = int(smudging_security)
    if not 20 <= lam <= 128:
        raise ParameterError(f"smudging_security must be in [20, 128]; got {smudging_security!r}.")
    shortfall = ""
    for n, bits in _CHAINS:
        q_bits = sum(bits[:-1]) - len(bits[:-1])  # every prime > 2^(bits-1): log2 Q > this
        b_ct = ciphertext_noise_bound(n, max_clients, members)
        b = smudging_width(n, b_ct, lam)
        total = b_ct + subkeys * 2.0 ** b
        total_bits = math.log2(total)
        common = dict(scheme=scheme, members=members, threshold=threshold, subkeys=subkeys,
                      poly_modulus_degree=n, coeff_mod_bit_sizes=tuple(bits), max_clients=max_clients,
                      max_value=float(max_value), smudging_security=lam,
                      ciphertext_noise_bits=math.log2(b_ct), smudging_bits=b, total_noise_bits=total_bits)
        if scheme == "ckks":
            want = 10 if precision_bits is None else int(precision_bits)
            value_bits = max(0, math.ceil(math.log2(max_clients) + math.log2(float(max_value))))
            scale_bits = q_bits - 2 - value_bits  # |sum| * 2^scale < Q / 4
            tail = slot_error_bound(n, b, b_ct, lam, terms=subkeys)
            prec = scale_bits - math.log2(tail)
            if prec >= want:
                return LatticePlan(**common, margin_bits=prec - want, scale_bits=scale_bits,
                                   precision_bits=prec)
            shortfall = f"n={n}: {prec:.1f} bits of precision after smudging < {want}"
        elif scheme == "bfv":
            frac = 20 if precision_bits is None else int(precision_bits)
            t_bits = max(18, 2 + math.ceil(math.log2(max_clients) + math.log2(float(max_value)) + frac))
            margin = (q_bits - t_bits - 1) - (total_bits + 1)  # need total < Q / (2t), 1 bit spare
            if t_bits <= 60 and margin >= 0:
                return LatticePlan(**common, margin_bits=margin, plain_modulus_bits=t_bits,
                                   fixed_point_bits=frac)
            shortfall = f"n={n}: noise 2^{total_bits:.1f} vs decryption bound 2^{q_bits - t_bits - 1}"
        else:
            raise ParameterError(f"scheme must be 'bfv' or 'ckks' here; got {scheme!r}.")
    raise ParameterError(
        f"{scheme}: no 128-bit parameter set holds the committee's smudging noise for {members} members, "
        f"threshold {threshold}, {max_clients} clients x |x| <= {max_value:g} ({shortfall}). Use fewer "
        f"clients per total, a lower precision, threshold=members, or the 'paillier' committee.")


# ---------------------------------------------------------------------------------------- PRG
def chacha_bytes(key: bytes, nonce: bytes, nbytes: int) -> bytes:
    """ChaCha20 keystream (``cryptography``): ``key`` 32 bytes, ``nonce`` 16 bytes (counter||nonce)."""
    enc = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
    return enc.update(bytes(nbytes))


def uniform_rns(seed: bytes, primes: list[int], n: int, label: bytes = b"crp") -> np.ndarray:
    """A uniform element of ``R_Q`` as ``(len(primes), n)`` uint64, from a public seed.

    Per prime ``q`` (< 2^62): ChaCha20 words masked to ``bit_length(q)`` bits, values ``>= q``
    rejected (acceptance > 1/2), so each row is exactly uniform in ``[0, q)``.
    """
    out = np.empty((len(primes), n), dtype=np.uint64)
    for j, q in enumerate(primes):
        key = hashlib.sha256(b"he_ml/committee/" + label + seed + struct.pack("<I", j)).digest()
        mask = np.uint64((1 << q.bit_length()) - 1)
        got = np.empty(0, dtype=np.uint64)
        counter = 0
        while got.size < n:
            nonce = struct.pack("<QQ", counter, 0)
            w = np.frombuffer(chacha_bytes(key, nonce, 8 * 2 * n), dtype="<u8").astype(np.uint64) & mask
            got = np.concatenate([got, w[w < np.uint64(q)]])
            counter += 1 << 20  # disjoint keystream blocks
        out[j] = got[:n]
    return out


def ternary(n: int) -> np.ndarray:
    """Uniform ternary polynomial (coefficients in {-1, 0, 1}) from :mod:`secrets` (int64)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        raw = np.frombuffer(secrets.token_bytes(2 * n), dtype=np.uint8)
        raw = raw[raw < 255]  # 255 = 3 * 85: unbiased mod 3
        out = np.concatenate([out, raw.astype(np.int64) % 3 - 1])
    return out[:n]


def centred_binomial(n: int, eta: int = _CBD_ETA) -> np.ndarray:
    """RLWE error: ``popcount(x) - popcount(y)`` for random ``eta``-bit ``x, y`` (int64)."""
    raw = np.frombuffer(secrets.token_bytes(8 * n), dtype="<u8").astype(np.uint64)
    mask = np.uint64((1 << eta) - 1)
    x = raw & mask
    y = (raw >> np.uint64(32)) & mask

    def popcount(v: np.ndarray) -> np.ndarray:
        return np.unpackbits(v.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int64)

    return popcount(x) - popcount(y)


def small_to_rns(values: np.ndarray, primes: list[int]) -> np.ndarray:
    """Signed small int64 coefficients -> ``(len(primes), n)`` residues."""
    v = np.asarray(values, dtype=np.int64)
    return np.stack([np.mod(v, q).astype(np.uint64) for q in primes])


def addmod(a: np.ndarray, b: np.ndarray, primes: list[int]) -> np.ndarray:
    """``(a + b) mod q`` row-wise (values < q < 2^62, so the sum cannot overflow)."""
    q = np.asarray(primes, dtype=np.uint64).reshape(-1, *([1] * (a.ndim - 1)))
    s = a + b
    return s - q * (s >= q)


def negmod(a: np.ndarray, primes: list[int]) -> np.ndarray:
    q = np.asarray(primes, dtype=np.uint64).reshape(-1, *([1] * (a.ndim - 1)))
    return np.where(a == 0, a, q - a)


def smudging_words(key: bytes, context: bytes, bits: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` uint64 words of ``n`` values ``hi * 2^64 + lo`` uniform in ``[0, 2^(bits+1))``.

    The smudging coefficient is that value minus ``2^bits``: uniform on ``[-2^bits, 2^bits)``.
    ChaCha20 keyed by ``SHA-256(key || context)``.
    """
    k = hashlib.sha256(b"he_ml/committee/smudge" + key + context).digest()
    w = np.frombuffer(chacha_bytes(k, bytes(16), 16 * n), dtype="<u8").astype(np.uint64).reshape(n, 2)
    width = bits + 1
    if width <= 64:
        lo = w[:, 0] & np.uint64((1 << width) - 1) if width < 64 else w[:, 0].copy()
        return np.zeros(n, dtype=np.uint64), lo
    if width > 124:
        raise ParameterError(f"smudging width {width} bits exceeds the 124-bit sampler.")
    return w[:, 1] & np.uint64((1 << (width - 64)) - 1), w[:, 0].copy()


def smudging_integers(hi: np.ndarray, lo: np.ndarray, bits: int) -> list[int]:
    """The signed smudging coefficients as Python ints (tests and statistics)."""
    off = 1 << bits
    return [(int(h) << 64) + int(low) - off for h, low in zip(hi.tolist(), lo.tolist())]


def smudging_rns(hi: np.ndarray, lo: np.ndarray, bits: int, primes: list[int]) -> np.ndarray:
    """Residues of ``hi * 2^64 + lo - 2^bits`` mod each prime, via the native modular multiply."""
    n = lo.size
    rows = len(primes)
    qcol = np.asarray(primes, dtype=np.uint64).reshape(-1, 1)
    lo_r = lo[None, :] % qcol
    if np.any(hi):
        two64 = np.array([[(1 << 64) % q] * n for q in primes], dtype=np.uint64)
        hi_r = np.broadcast_to(hi[None, :], (rows, n)) % qcol  # hi < 2^60 < q already
        lo_r = addmod(lo_r, native.pointwise_mul_rns(np.ascontiguousarray(hi_r), two64, primes), primes)
    off = np.array([[(1 << bits) % q] for q in primes], dtype=np.uint64)
    return addmod(lo_r, negmod(np.broadcast_to(off, (rows, n)).copy(), primes), primes)


# ------------------------------------------------------------------------ partial decryption
def partial_polys(c: np.ndarray, ntt_form: bool, subkeys: dict[tuple[int, ...], tuple[np.ndarray, bytes]],
                  primes: list[int], bits: int, context: bytes) -> dict[tuple[int, ...], np.ndarray]:
    """``h_A = c1 r_A + e_A`` for every sub-key (same representation as the ciphertext)."""
    L = len(primes)
    n = c.shape[-1]
    c1 = np.ascontiguousarray(c[1])
    c1_ntt = c1 if ntt_form else native.ntt_rns(c1, primes)
    out = {}
    for A, (r, key) in sorted(subkeys.items()):
        prod = native.pointwise_mul_rns(c1_ntt, np.ascontiguousarray(r[:L]), primes)
        hi, lo = smudging_words(key, context + repr(A).encode(), bits, n)
        e = smudging_rns(hi, lo, bits, primes)
        if ntt_form:
            h = addmod(prod, native.ntt_rns(e, primes), primes)
        else:
            h = addmod(native.intt_rns(prod, primes), e, primes)
        out[A] = h
    return out
