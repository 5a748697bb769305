"""Packed Paillier: python-paillier keys, DJN fast encryption, CRT decryption, packed fixed point.

This is the only module of he_ml that imports ``phe``.  Encoding (fixed point,
slot packing, headroom) lives in :mod:`he_ml.encoding` and knows nothing of
cryptography; this module adds the encryption, the homomorphic operations and
the public bookkeeping that keeps every slot inside its range.
"""
from __future__ import annotations

import json
import math
import secrets
import threading
from typing import Any

import gmpy2
import numpy as np
from phe import paillier as _phe
from phe import util as _phe_util

from ..encoding.fixed_point import encode_multiplier, encode_multipliers, from_fixed, to_fixed
from ..encoding.packing import LAYOUTS, PackedEncoding
from ..errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InsecureParametersError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
)
from ._format import Blob, Kind
from .base import EncryptedVector, SchemeContext, fingerprint_of
from .limits import check_int, limit

__all__ = ["Paillier", "DEFAULT_PAILLIER_KEY_BITS", "PRESETS", "paillier_security_level"]

DEFAULT_PAILLIER_KEY_BITS = 3072  # 128-bit security, NIST SP 800-57 Part 1 Rev. 5, Table 2
MIN_PAILLIER_KEY_BITS = limit("paillier_key_bits_min")  # 112-bit; smaller needs allow_insecure=True
_MIN_KEY_BITS = limit("paillier_key_bits_insecure_min")
_MAX_KEY_BITS = limit("paillier_key_bits_max")  # reasons in he_ml.schemes.limits

# NIST SP 800-57 Part 1 Rev. 5, Table 2 (factoring modulus size -> security strength).
_NIST_FACTORING = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))

#: Encoding presets. "general" keeps room for plaintext multiplications and dot
#: products; "sum" packs densely for aggregation (sum of many encrypted vectors).
PRESETS: dict[str, dict[str, Any]] = {
    "general": dict(precision_bits=24, max_value=1024.0, max_additions=1024, multiplier_bits=32,
                    max_reduction_terms=4096, layout="product"),
    "sum": dict(precision_bits=24, max_value=1024.0, max_additions=1024, multiplier_bits=0,
                max_reduction_terms=1, layout="dense"),
}

# gmpy2 is a hard dependency; phe picks it up by itself -- make sure it did, since
# without it phe's key generation and decryption fall back to pure Python (~10x slower).
if not getattr(_phe_util, "HAVE_GMP", False):  # pragma: no cover - environment check
    raise ImportError("python-paillier did not detect gmpy2; install gmpy2 (a dependency of he_ml).")


def paillier_security_level(key_bits: int) -> int:
    """Classical security (bits) of an RSA/Paillier modulus, NIST SP 800-57 Table 2 (0 below 1024)."""
    for bits, level in _NIST_FACTORING:
        if key_bits >= bits:
            return level
    return 0


def _fixed_bytes(x: int, width: int) -> bytes:
    return int(x).to_bytes(width, "big")


class Paillier(SchemeContext):
    """Additively homomorphic Paillier with many fixed-point values packed per ciphertext.

    Parameters
    ----------
    key_bits : int, default 3072
        Modulus size. 3072 bits gives 128-bit security, 2048 bits 112-bit
        (NIST SP 800-57); smaller keys need ``allow_insecure=True``.
    preset : {"general", "sum"}, default "general"
        Encoding defaults. "general": 24 fractional bits, ``|x| <= 1024``, up to 1024
        additions, 32 multiplier bits, sum/dot over up to 4096 values, product layout
        (17 values per 3072-bit ciphertext). "sum": same range and precision, no multiplier
        reserve, dense layout (66 values per ciphertext) -- for summing many vectors.
        Any keyword below overrides the preset.
    precision_bits : int
        Fractional bits; each value is quantized with error at most ``2**-(precision_bits+1)``.
    max_value : float
        Declared range ``|x| <= max_value``; encrypting anything larger raises
        `EncodingOverflowError`.
    max_additions : int
        Number of fresh encryptions that may be summed into one (e.g. clients).
    multiplier_bits : int
        Bits reserved for plaintext multipliers (the encoded multipliers applied to a vector
        may multiply its slots by up to ``2**multiplier_bits``).
    max_reduction_terms : int
        Number of values one ``sum()``/``dot()`` may combine.
    layout : {"product", "dense"}
        "product" leaves half of each plaintext free so that ``dot`` works; "dense" fills it
        (``dot`` on more than one slot then raises `UnsupportedOperationError`).
    slots_per_ciphertext : int, optional
        Pack fewer values per ciphertext. With 1, every operation including elementwise
        multiplication by a plaintext array is available (at one ciphertext per value).
    randomness_bits : int, optional
        Length of the DJN randomness exponent; default ``2 * security_level`` (256 bits at
        3072). ``key_bits // 2`` reproduces the exponent length analysed by DJN (slower).
    allow_insecure : bool, default False
        Permit keys below 2048 bits / randomness below ``2 * security_level`` (tests only).

    Raises
    ------
    InsecureParametersError
        If ``key_bits < 2048`` or ``randomness_bits < 2 * security_level`` without
        ``allow_insecure=True``.
    ParameterError
        If the encoding parameters do not fit one plaintext, or a parameter is malformed.

    Notes
    -----
    **Slot layout.** A plaintext (an integer mod ``n``) is read as ``D`` signed digits of
    ``b`` bits, ``M = sum v_i 2**(b*i)`` with ``|v_i| <= 2**(b-1) - 1``, stored as
    ``M mod n`` and lifted back to ``(-n/2, n/2)`` on decryption; negative values need no
    offset, the balanced digit decoder absorbs the borrows (see :mod:`he_ml.encoding.packing`).
    ``b = 1 + bits(ceil(max_value * 2**precision_bits) * max_additions * 2**multiplier_bits * R)``
    with ``R`` the reduction reserve, ``D = (key_bits - 2) // b``; the dense layout puts a value
    in every digit, the product layout in the low ``(D+1)//2`` digits.

    **Operations.** ``x + y``, ``x - y``, ``-x``, ``x + a`` (a plaintext scalar/array is encoded
    at ``x``'s scale, packed the same way and added), ``x * c`` for a scalar ``c`` (``c`` encoded
    with the fewest fractional bits that represent it exactly, at most ``precision_bits``; the
    vector's scale grows by those bits and is tracked in ``x.meta["scale"]``), ``x.sum()`` and
    ``x.dot(w)``. ``x * arr`` multiplies every slot of a ciphertext by the same plaintext, so it
    is supported only when ``arr`` is constant over each ciphertext's slots (always with
    ``slots_per_ciphertext=1``); otherwise it raises `UnsupportedOperationError` -- use ``dot``,
    a scalar, or ``slots_per_ciphertext=1``. ``x * y`` of two ciphertexts is impossible in
    Paillier.

    ``sum``/``dot`` (product layout): the ciphertext of ``M`` is raised to
    ``W = sum_i w_i 2**(b*(k-1-i))`` (weights reversed), a plaintext polynomial product whose
    digit ``k-1`` is ``sum_i v_i w_i``; chunk products are added. The other digits of that
    plaintext hold partial convolutions. ``sum`` on the dense layout adds the chunks and
    records that the result is the sum of all lanes, added up after decryption.

    **Overflow.** Every vector carries public metadata (``x.meta``): ``scale`` (fractional
    bits), ``bound`` (a proven bound on every |digit|, computed from the declared parameters
    and the plaintext operands -- never from the encrypted data) and ``terms`` (encryptions
    absorbed). An operation whose bound would exceed the slot, or whose ``terms`` would exceed
    ``max_additions``, raises `EncodingOverflowError` before computing; decryption re-checks
    every digit. A slot never wraps silently.

    **Security.** Semantic security of Paillier rests on the decisional composite residuosity
    (DCR) assumption; factoring the modulus breaks it, so the key size follows NIST SP 800-57
    for factoring-based keys: 3072 bits for 128-bit security (default), 2048 for 112-bit.
    Encryption uses the Damgard-Jurik-Nielsen randomizer: at key creation a random ``x``
    (from `secrets`) gives ``h = -x**2 mod n`` and the public ``h_s = h**n mod n**2``; a
    ciphertext is ``(1 + m n) * h_s**a mod n**2`` with a fresh uniformly random ``a`` of
    ``randomness_bits`` bits. ``h_s**a`` is an n-th residue, so the ciphertext is a valid
    Paillier encryption of ``m`` that any Paillier key decrypts. With ``a`` as long as DJN
    analyse (``key_bits/2``) security reduces to DCR; we default to ``2 * security_level``
    bits (256 at 3072), the usual short-exponent setting: distinguishing ``h_s**a`` for short
    ``a`` from a random element of ``<h_s>`` is the short-exponent indistinguishability
    assumption; the best known attack recovers ``a`` from ``h_s**a`` (equivalently tests a
    candidate plaintext) by Pollard's lambda / baby-step giant-step in ``2**(randomness_bits/2)``
    = ``2**128`` group operations, and the van Oorschot-Wiener small-subgroup speed-up needs
    the order of ``<h_s>``, i.e. the factorization of ``n``. Pass ``randomness_bits=key_bits//2``
    to rely on DCR alone. A fixed-base table of ``h_s**(d * 2**(w j))`` (public, rebuilt from
    ``h_s`` when a context is loaded, never serialized) makes one encryption cost about
    ``randomness_bits / w`` multiplications mod ``n**2`` instead of a full ``r**n``.
    Decryption uses CRT with ``p`` and ``q``. The public context (``n``, ``h_s``, encoding
    parameters) contains neither ``p`` nor ``q``. Ciphertexts produced by ``dot`` are
    re-randomized so the key holder cannot learn the weights from the randomness; note that
    the decrypted plaintext of a ``sum``/``dot`` result also contains partial sums (lanes or
    convolution digits) which he_ml discards but a key holder inspecting raw plaintexts could
    read -- do not rely on ``dot`` to hide plaintext weights from the key holder.

    References
    ----------
    .. [1] P. Paillier, "Public-key cryptosystems based on composite degree residuosity
       classes", EUROCRYPT 1999.
    .. [2] I. Damgard, M. Jurik, J. B. Nielsen, "A generalization of Paillier's public-key
       system with applications to electronic voting", Int. J. Inf. Security 9(6), 2010,
       Section 4.2 (the ``h_s**a`` randomizer).
    .. [3] T. Koshiba, K. Kurosawa, "Short exponent Diffie-Hellman problems", PKC 2004.
    .. [4] P. van Oorschot, M. Wiener, "On Diffie-Hellman key agreement with short
       exponents", EUROCRYPT 1996.
    .. [5] NIST SP 800-57 Part 1 Rev. 5, "Recommendation for key management", Table 2.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> ctx = he_ml.Paillier(key_bits=1024, allow_insecure=True)   # tiny key: doctest only
    >>> x = ctx.encrypt(np.array([1.5, -2.25, 3.0]))
    >>> np.allclose(ctx.decrypt((x + x) * 0.5 - 1.0), [0.5, -3.25, 2.0])
    True
    """

    name = "paillier"

    def __init__(self, key_bits: int = DEFAULT_PAILLIER_KEY_BITS, *, preset: str = "general",
                 precision_bits: int | None = None, max_value: float | None = None,
                 max_additions: int | None = None, multiplier_bits: int | None = None,
                 max_reduction_terms: int | None = None, layout: str | None = None,
                 slots_per_ciphertext: int | None = None, randomness_bits: int | None = None,
                 allow_insecure: bool = False) -> None:
        _check_key_bits(key_bits, allow_insecure)
        encoding = _make_encoding(key_bits, preset, precision_bits=precision_bits,
                                  max_value=max_value, max_additions=max_additions,
                                  multiplier_bits=multiplier_bits,
                                  max_reduction_terms=max_reduction_terms, layout=layout,
                                  slots=slots_per_ciphertext)
        _check_randomness(int(key_bits), randomness_bits, allow_insecure)  # fail before keygen
        pk, sk = _phe.generate_paillier_keypair(n_length=int(key_bits))
        self._setup(int(pk.n), None, sk.p, sk.q, encoding, randomness_bits, allow_insecure)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_phe_keys(cls, public_key: "_phe.PaillierPublicKey",
                      private_key: "_phe.PaillierPrivateKey | None" = None, *,
                      preset: str = "general", allow_insecure: bool = False,
                      randomness_bits: int | None = None, **encoding: Any) -> "Paillier":
        """Wrap existing python-paillier keys (a fresh public ``h_s`` is drawn).

        Parameters
        ----------
        public_key, private_key : phe keys
            ``private_key`` may be omitted for an encrypt-only context.
        **encoding
            ``precision_bits``, ``max_value``, ``max_additions``, ``multiplier_bits``,
            ``max_reduction_terms``, ``layout``, ``slots_per_ciphertext``.
        """
        n = int(public_key.n)
        key_bits = n.bit_length()
        _check_key_bits(key_bits, allow_insecure)
        allowed = {"precision_bits", "max_value", "max_additions", "multiplier_bits",
                   "max_reduction_terms", "layout", "slots_per_ciphertext"}
        unknown = set(encoding) - allowed
        if unknown:
            raise ParameterError(f"paillier: unknown encoding parameter(s) {sorted(unknown)}; "
                                 f"allowed: {sorted(allowed)}.")
        enc = dict(encoding)
        slots = enc.pop("slots_per_ciphertext", None)
        encoding_obj = _make_encoding(key_bits, preset, slots=slots, **enc)
        p = q = None
        if private_key is not None:
            if int(private_key.public_key.n) != n:
                raise ContextMismatchError("paillier: private_key does not belong to public_key.")
            p, q = private_key.p, private_key.q
        self = cls.__new__(cls)
        self._setup(n, None, p, q, encoding_obj, randomness_bits, allow_insecure)
        return self

    def _setup(self, n: int, h_s: int | None, p: int | None, q: int | None,
               encoding: PackedEncoding, randomness_bits: int | None, allow_insecure: bool) -> None:
        self._n = gmpy2.mpz(n)
        self._n2 = self._n * self._n
        self._key_bits = int(self._n.bit_length())
        self._allow_insecure = bool(allow_insecure)
        self.encoding = encoding
        randomness_bits = _check_randomness(self._key_bits, randomness_bits, allow_insecure)
        self._randomness_bits = int(randomness_bits)
        self._pk = _phe.PaillierPublicKey(int(n))
        if h_s is None:
            h_s = self._new_h_s()
        self._h_s = gmpy2.mpz(h_s)
        if p is not None:
            self._sk = _phe.PaillierPrivateKey(self._pk, int(p), int(q))
            sk = self._sk
            self._p, self._q = gmpy2.mpz(sk.p), gmpy2.mpz(sk.q)
            self._p2, self._q2 = self._p * self._p, self._q * self._q
            self._hp, self._hq = gmpy2.mpz(sk.hp), gmpy2.mpz(sk.hq)
            self._p_inv = gmpy2.mpz(sk.p_inverse)
        else:
            self._sk = None
        self._table: list[list[Any]] | None = None
        self._table_lock = threading.Lock()
        self._public_blob: bytes | None = None
        self._width = (self._n2.bit_length() + 7) // 8
        params = json.dumps({"encoding": encoding.to_dict(), "randomness_bits": self._randomness_bits},
                            sort_keys=True).encode()
        self._fp = fingerprint_of(_fixed_bytes(self._n, (self._key_bits + 7) // 8),
                                  _fixed_bytes(self._h_s, self._width), params)
        caps = {"add", "mul_plain", "sum"}
        k = encoding.slot_count
        if encoding.layout == "product" or k == 1:
            caps.add("dot")
        if k == 1:
            caps.add("mul_plain_array")
        self.capabilities = frozenset(caps)
        self._register()

    def _new_h_s(self) -> int:
        n = self._n
        while True:
            x = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
            if gmpy2.gcd(x, n) == 1:
                break
        h = (-x * x) % n
        return gmpy2.powmod(h, n, self._n2)

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> bytes:
        return self._fp

    @property
    def has_secret_key(self) -> bool:
        return self._sk is not None

    @property
    def security_level(self) -> int:
        return paillier_security_level(self._key_bits)

    @property
    def slot_count(self) -> int:
        return self.encoding.slot_count

    @property
    def key_bits(self) -> int:
        return self._key_bits

    @property
    def max_additions(self) -> int:
        """Declared headroom: how many fresh encryptions one sum may absorb."""
        return self.encoding.max_additions

    @property
    def precision_bits(self) -> int:
        """Fractional bits of a fresh encryption (quantization error ``2**-(precision_bits+1)``)."""
        return self.encoding.precision_bits

    @property
    def max_value(self) -> float:
        """Declared range of encrypted values, ``|x| <= max_value``."""
        return float(self.encoding.max_value)

    @property
    def public_key(self) -> "_phe.PaillierPublicKey":
        """The python-paillier public key."""
        return self._pk

    @property
    def private_key(self) -> "_phe.PaillierPrivateKey":
        """The python-paillier private key (raises `SecretKeyMissingError` on a public context)."""
        if self._sk is None:
            raise SecretKeyMissingError("paillier: this is a public context; it has no private key.")
        return self._sk

    @property
    def parameters(self) -> dict[str, Any]:
        enc = self.encoding
        lay = enc.slot_layout
        return {"key_bits": self._key_bits, "slots": lay.slots, "slot_bits": lay.slot_bits,
                "layout": enc.layout, "precision_bits": enc.precision_bits,
                "max_value": enc.max_value, "max_additions": enc.max_additions,
                "multiplier_bits": enc.multiplier_bits,
                "max_reduction_terms": enc.max_reduction_terms,
                "randomness_bits": self._randomness_bits}

    # ------------------------------------------------------------------ raw layer (phe spirit)
    def _fixed_base_table(self) -> list[list[Any]]:
        """Table ``T[j][d] = h_s**(d * 2**(w*j)) mod n**2`` for the windows of the exponent."""
        if self._table is None:
            with self._table_lock:
                if self._table is None:
                    ell = self._randomness_bits
                    w = 8 if ell <= 512 else 5  # ~6 MB at 3072/256 bits; larger exponents: smaller tables
                    n2 = self._n2
                    table = []
                    base = self._h_s
                    for _ in range((ell + w - 1) // w):
                        row = [gmpy2.mpz(1), base]
                        for _d in range(2, 1 << w):
                            row.append(row[-1] * base % n2)
                        table.append(row)
                        base = row[-1] * base % n2  # base ** (2**w)
                    self._window = w
                    self._table = table
        return self._table

    def _randomizer(self, exponent: int | None = None) -> Any:
        """``h_s**a mod n**2`` for a fresh random ``a`` of ``randomness_bits`` bits (or the given one)."""
        table = self._fixed_base_table()
        w = self._window
        mask = (1 << w) - 1
        a = secrets.randbits(self._randomness_bits) if exponent is None else int(exponent)
        if a < 0 or a.bit_length() > self._randomness_bits:
            raise ParameterError(f"paillier: exponent must be in [0, 2**{self._randomness_bits}); got {a}.")
        n2 = self._n2
        r = None
        j = 0
        while a:
            d = a & mask
            if d:
                r = table[j][d] if r is None else r * table[j][d] % n2
            a >>= w
            j += 1
        return gmpy2.mpz(1) if r is None else r

    def _encrypt_residue(self, m: Any) -> Any:
        # (1 + m n) * R mod n^2 = R + n * (m R mod n): one multiplication mod n instead of n^2.
        r = self._randomizer()
        return (r + self._n * (m * r % self._n)) % self._n2

    def raw_encrypt(self, plaintext: int, *, exponent: int | None = None) -> int:
        """Encrypt an integer ``0 <= plaintext < n`` without any encoding (fast DJN path).

        Parameters
        ----------
        plaintext : int
            The raw Paillier plaintext.
        exponent : int, optional
            The DJN exponent ``a`` (for known-answer tests only; default: fresh from `secrets`).

        Returns
        -------
        int
            ``(1 + plaintext * n) * h_s**a mod n**2``; decryptable by phe's ``raw_decrypt``.
        """
        if not isinstance(plaintext, (int, np.integer)) or isinstance(plaintext, bool) \
                or not 0 <= int(plaintext) < self._n:
            raise ParameterError(f"paillier: raw_encrypt needs an integer in [0, n); got {plaintext!r}. "
                                 f"Use encrypt() for real values.")
        r = self._randomizer(exponent)
        return int((r + self._n * (gmpy2.mpz(int(plaintext)) * r % self._n)) % self._n2)

    def _decrypt_residue(self, c: Any) -> Any:
        # CRT (Paillier 1999, section 7): m_p = L_p(c^(p-1) mod p^2) * h_p mod p, same for q.
        p, q = self._p, self._q
        mp = (gmpy2.powmod(c, p - 1, self._p2) - 1) // p * self._hp % p
        mq = (gmpy2.powmod(c, q - 1, self._q2) - 1) // q * self._hq % q
        return mp + ((mq - mp) * self._p_inv % q) * p

    def raw_decrypt(self, ciphertext: int) -> int:
        """Decrypt a raw ciphertext integer to its plaintext in ``[0, n)`` (CRT, gmpy2)."""
        if self._sk is None:
            raise SecretKeyMissingError(
                "paillier: raw_decrypt needs the secret key; this is a public context. Decrypt at "
                "the key holder.")
        if not isinstance(ciphertext, (int, np.integer)) or isinstance(ciphertext, bool) \
                or not 0 < int(ciphertext) < self._n2:
            raise InvalidCiphertextError(f"paillier: a raw ciphertext is an integer in (0, n**2); "
                                         f"got {str(ciphertext)[:40]!r}.")
        return int(self._decrypt_residue(gmpy2.mpz(int(ciphertext))))

    def _centered(self, m: Any) -> int:
        m = int(m)
        n = int(self._n)
        return m - n if m > n // 2 else m

    def _plain_residue(self, m_signed: int) -> Any:
        """``(1 + m n) mod n**2`` -- the deterministic 'encryption' used to add a plaintext."""
        return (1 + self._n * (gmpy2.mpz(m_signed) % self._n)) % self._n2

    def rerandomize(self, vector: EncryptedVector) -> EncryptedVector:
        """Same plaintexts, fresh randomness (multiply every ciphertext by a new ``h_s**a``)."""
        self._check_same_key(vector.context, "rerandomize")
        n2 = self._n2
        return EncryptedVector(self, [c * self._randomizer() % n2 for c in vector.chunks],
                               vector.shape, vector.meta)

    # ------------------------------------------------------------------ encryption / decryption
    def _prepare_values(self, flat: np.ndarray) -> np.ndarray:
        self.encoding.check_range(flat)
        return flat

    def _fresh_meta(self) -> dict[str, Any]:
        return {"scale": self.encoding.precision_bits, "bound": self.encoding.fresh_bound, "terms": 1}

    def _encrypt_flat(self, flat: np.ndarray) -> tuple[list[Any], dict[str, Any]]:
        ms = self.encoding.encode_chunks(flat)
        n = self._n
        return [self._encrypt_residue(gmpy2.mpz(m) % n) for m in ms], self._fresh_meta()

    def _decrypt_flat(self, vector: EncryptedVector) -> np.ndarray:
        meta = vector.meta
        lay = self.encoding.slot_layout
        bound = int(meta["bound"])
        red = meta.get("reduce")
        k = lay.slots
        ints: list[int] = []
        for j, c in enumerate(vector.chunks):
            digits = lay.unpack(self._centered(self._decrypt_residue(c)), lay.digits)
            count = 1 if red else min(k, vector.size - j * k)
            used = lay.digits if red else count
            if any(abs(v) > bound for v in digits[:used]) or any(digits[used:]):
                raise InvalidCiphertextError(
                    f"paillier: ciphertext {j} decrypts to slot values beyond its public bound "
                    f"{bound}: it was altered, or encrypted under other encoding parameters."
                )
            ints.extend([sum(digits[red[0]:red[1]])] if red else digits[:count])
        return from_fixed(ints, int(meta["scale"]))

    # ------------------------------------------------------------------ bookkeeping
    def _overflow(self, op: str, bound: int, detail: str) -> EncodingOverflowError:
        lay = self.encoding.slot_layout
        return EncodingOverflowError(
            f"paillier: {op} would let a slot reach |v| <= {bound} (2^{math.log2(max(bound, 1)):.1f}) "
            f"but a {lay.slot_bits}-bit slot holds at most {lay.cap} (2^{lay.slot_bits - 1}). "
            f"{detail + ' ' if detail else ''}"
            f"Create the context with more headroom (max_additions, multiplier_bits, "
            f"max_reduction_terms), fewer precision_bits, or a larger key."
        )

    def _check_bound(self, bound: int, op: str, detail: str = "") -> int:
        if bound > self.encoding.cap:
            raise self._overflow(op, bound, detail)
        return bound

    def _check_terms(self, terms: int, op: str) -> int:
        if terms > self.encoding.max_additions:
            raise EncodingOverflowError(
                f"paillier: {op} would combine {terms} encryptions but the context declares "
                f"max_additions={self.encoding.max_additions} (the headroom reserved in every slot). "
                f"Create the context with max_additions>={terms}."
            )
        return terms

    def _reduce_range(self) -> list[int]:
        k = self.slot_count
        return [k - 1, k] if self.encoding.layout == "product" else [0, k]

    def _shift(self, x: EncryptedVector, bits: int) -> EncryptedVector:
        """Multiply every slot by ``2**bits`` (scale or position change)."""
        if bits == 0:
            return x
        e = gmpy2.mpz(1) << bits
        return EncryptedVector(self, [gmpy2.powmod(c, e, self._n2) for c in x.chunks], x.shape, x.meta)

    def _align(self, x: EncryptedVector, y: EncryptedVector, op: str):
        """Bring two vectors to the same scale and the same reduction position."""
        sx, sy = int(x.meta["scale"]), int(y.meta["scale"])
        if sx != sy:
            lo, hi = (x, y) if sx < sy else (y, x)
            d = abs(sx - sy)
            self._check_bound(int(lo.meta["bound"]) << d, op,
                              f"(aligning scales 2^-{min(sx, sy)} and 2^-{max(sx, sy)} multiplies the "
                              f"lower-precision operand by 2^{d})")
            lo2 = self._shift(lo, d)
            lo2.meta = dict(lo.meta, scale=max(sx, sy), bound=int(lo.meta["bound"]) << d)
            x, y = (lo2, hi) if lo is x else (hi, lo2)
        rx, ry = x.meta.get("reduce"), y.meta.get("reduce")
        if rx != ry:
            if rx and ry:
                raise ContextMismatchError(f"paillier: {op} of two reductions with different layouts "
                                           f"({rx} vs {ry}).")
            red, plain = (x, y) if rx else (y, x)
            start = red.meta["reduce"][0]
            moved = self._shift(plain, self.encoding.slot_layout.slot_bits * start)
            moved.meta = dict(plain.meta, reduce=list(red.meta["reduce"]))
            x, y = (red, moved) if red is x else (moved, red)
        return x, y

    # ------------------------------------------------------------------ operations
    def _op_add(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        x, y = self._align(x, y, "addition")
        terms = self._check_terms(int(x.meta["terms"]) + int(y.meta["terms"]), "addition")
        bound = self._check_bound(int(x.meta["bound"]) + int(y.meta["bound"]), "addition")
        n2 = self._n2
        chunks = [a * b % n2 for a, b in zip(x.chunks, y.chunks)]
        return EncryptedVector(self, chunks, x.shape, dict(x.meta, bound=bound, terms=terms))

    def _op_neg(self, x: EncryptedVector) -> EncryptedVector:
        n2 = self._n2
        return EncryptedVector(self, [gmpy2.invert(c, n2) for c in x.chunks], x.shape, x.meta)

    def _op_add_plain(self, x: EncryptedVector, other) -> EncryptedVector:
        s = int(x.meta["scale"])
        size = x.size
        arr = np.full(size, other) if not isinstance(other, np.ndarray) else other
        try:
            ints = to_fixed(arr, s)
        except OverflowError as e:
            raise self._overflow("adding a plaintext", 1 << 4096, "(the plaintext overflows float64 "
                                 f"at scale 2^-{s})") from e
        pmax = max(abs(v) for v in ints)
        bound = self._check_bound(int(x.meta["bound"]) + pmax, "adding a plaintext",
                                  f"(the plaintext reaches {pmax} at scale 2^-{s})")
        lay = self.encoding.slot_layout
        red = x.meta.get("reduce")
        if red:
            packed = [lay.pack(ints, start=red[0])]
        else:
            packed = self.encoding.pack_ints(ints)
        n2 = self._n2
        chunks = [c * self._plain_residue(m) % n2 for c, m in zip(x.chunks, packed)]
        return EncryptedVector(self, chunks, x.shape, dict(x.meta, bound=bound))

    def _tracked_bound(self, vector: EncryptedVector) -> float:
        """``vector.bound`` in value units: the slot bound (integers) divided by ``2**scale``."""
        return math.ldexp(float(int(vector.meta["bound"])), -int(vector.meta["scale"]))

    def _zero_chunk(self) -> Any:
        return self._randomizer()  # h_s^a is an encryption of 0

    def _op_mul_plain(self, x: EncryptedVector, other) -> EncryptedVector:
        frac = self.encoding.precision_bits
        n2 = self._n2
        if isinstance(other, np.ndarray):
            k = self.slot_count
            nch = len(x.chunks)
            reps = []
            for j in range(nch):
                seg = other[j * k:(j + 1) * k]
                if not np.all(seg == seg[0]):
                    raise self._unsupported(
                        "elementwise multiplication by a non-constant plaintext array on packed "
                        f"ciphertexts ({k} values share one ciphertext, so they can only be scaled "
                        f"by the same factor)",
                        "Use x.dot(w) for inner products, multiply by a scalar, or create the context "
                        "with slots_per_ciphertext=1 (one value per ciphertext: every x * arr works).")
                reps.append(seg[0])
            ints, j_bits = encode_multipliers(np.asarray(reps, dtype=other.dtype), frac)
        else:
            c_int, j_bits = encode_multiplier(other, frac)
            ints = [c_int] * len(x.chunks)
        cmax = max(abs(v) for v in ints)
        bound = self._check_bound(int(x.meta["bound"]) * cmax, "multiplication by a plaintext",
                                  f"(the multiplier is encoded as an integer of {cmax.bit_length()} bits "
                                  f"with {j_bits} fractional bits)")
        chunks = [self._zero_chunk() if c_int == 0 else gmpy2.powmod(c, c_int, n2)
                  for c, c_int in zip(x.chunks, ints)]
        meta = dict(x.meta, scale=int(x.meta["scale"]) + j_bits, bound=bound)
        return EncryptedVector(self, chunks, x.shape, meta)

    def _op_sum(self, x: EncryptedVector) -> EncryptedVector:
        if x.size == 1:
            return EncryptedVector(self, x.chunks, (1,), x.meta)
        n2 = self._n2
        acc = x.chunks[0]
        for c in x.chunks[1:]:
            acc = acc * c % n2
        lay = self.encoding.slot_layout
        bx = int(x.meta["bound"])
        if self.encoding.layout == "product":
            # Each digit of (sum of chunks) * (1 + B + ... + B^(k-1)) adds every value at most once.
            bound = self._check_bound(bx * x.size, f"sum of {x.size} values")
            acc = gmpy2.powmod(acc, lay.reversed_weights([1] * lay.slots), n2)
        else:
            bound = self._check_bound(bx * len(x.chunks), f"sum of {x.size} values",
                                      f"({len(x.chunks)} ciphertexts are added lane-wise)")
        meta = dict(x.meta, bound=bound, reduce=self._reduce_range())
        return EncryptedVector(self, [acc], (1,), meta)

    def _op_dot(self, x: EncryptedVector, w: np.ndarray) -> EncryptedVector:
        if x.size == 1:
            return self._op_mul_plain(x, w[0].item()).reshape(1)
        lay = self.encoding.slot_layout
        if self.encoding.layout != "product":
            raise self._unsupported(
                f"dot on a dense layout with {lay.slots} values per ciphertext (the reversed-weight "
                f"product needs 2k-1 = {2 * lay.slots - 1} digits, the plaintext has {lay.digits})",
                "Create the context with layout='product' (preset='general', the default) or "
                "slots_per_ciphertext=1, or use sum() on x * scalar.")
        ints, j_bits = encode_multipliers(w, self.encoding.precision_bits)
        wmax = max(abs(v) for v in ints)
        # Per digit, each weight meets at most one value, so |digit| <= bound * sum|w| <=
        # bound * size * 2^bits(wmax); the bit length (not the weights) goes into the public meta.
        bound = self._check_bound(int(x.meta["bound"]) * x.size * (1 << wmax.bit_length()),
                                  f"dot with {x.size} weights",
                                  f"(weights encoded with up to {wmax.bit_length()} bits, {j_bits} "
                                  f"of them fractional)")
        n2 = self._n2
        k = lay.slots
        acc = self._zero_chunk()  # also re-randomizes the result
        for j, c in enumerate(x.chunks):
            wj = lay.reversed_weights(ints[j * k:(j + 1) * k])
            if wj:
                acc = acc * gmpy2.powmod(c, wj, n2) % n2
        meta = dict(x.meta, scale=int(x.meta["scale"]) + j_bits, bound=bound,
                    reduce=self._reduce_range())
        return EncryptedVector(self, [acc], (1,), meta)

    # ------------------------------------------------------------------ serialization
    def _serialize_chunks(self, vector: EncryptedVector) -> list[bytes]:
        w = self._width
        return [b"".join(int(c).to_bytes(w, "big") for c in vector.chunks)]

    def _validate_meta(self, meta: dict[str, Any], size: int) -> int:
        """Check untrusted vector metadata; return the expected number of ciphertexts."""
        enc = self.encoding

        def bad(msg: str) -> InvalidCiphertextError:
            return InvalidCiphertextError(f"paillier: ciphertext metadata {msg}; got {meta!r}. "
                                          f"Re-send the original bytes.")

        if set(meta) - {"scale", "bound", "terms", "reduce"} or not {"scale", "bound", "terms"} <= set(meta):
            raise bad("must have keys scale, bound, terms (and optionally reduce)")
        for key in ("scale", "bound", "terms"):
            if not isinstance(meta[key], int) or isinstance(meta[key], bool):
                raise bad(f"field {key!r} must be an integer")
        if not enc.precision_bits <= meta["scale"] <= enc.precision_bits * 64 + 4096:
            raise bad("field 'scale' is out of range")
        if not 0 <= meta["bound"] <= enc.cap:
            raise bad(f"field 'bound' must be in [0, {enc.cap}]")
        if not 1 <= meta["terms"] <= enc.max_additions:
            raise bad(f"field 'terms' must be in [1, {enc.max_additions}]")
        if "reduce" in meta:
            if meta["reduce"] != self._reduce_range() or size != 1:
                raise bad(f"field 'reduce' must be {self._reduce_range()} on a size-1 vector")
            return 1
        return -(-size // enc.slot_count)

    def _deserialize_chunks(self, sections: list[bytes], size: int, meta: dict[str, Any]) -> list[Any]:
        count = self._validate_meta(meta, size)
        w = self._width
        if len(sections) != 1 or len(sections[0]) != count * w:
            got = [len(s) for s in sections]
            raise InvalidCiphertextError(
                f"paillier: a ciphertext blob of {size} values needs one section of {count} x {w} "
                f"bytes; got section lengths {got}. The bytes are truncated or corrupted.")
        data = sections[0]
        n, n2 = self._n, self._n2
        chunks = []
        for j in range(count):
            c = gmpy2.mpz(int.from_bytes(data[j * w:(j + 1) * w], "big"))
            if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:
                raise InvalidCiphertextError(
                    f"paillier: ciphertext {j} is not an element of Z*_(n^2) (zero, >= n^2 or sharing a "
                    f"factor with n); the bytes are corrupted.")
            chunks.append(c)
        return chunks

    def _context_payload(self, include_secret_key: bool) -> tuple[dict[str, Any], list[bytes]]:
        kb = (self._key_bits + 7) // 8
        # No "allow_insecure": only the caller of load_context can opt in (a blob never can).
        meta = {"key_bits": self._key_bits, "encoding": self.encoding.to_dict(),
                "randomness_bits": self._randomness_bits}
        sections = [_fixed_bytes(self._n, kb), _fixed_bytes(self._h_s, self._width)]
        if include_secret_key:
            half = (kb + 1) // 2 + 1
            sections += [_fixed_bytes(self._p, half), _fixed_bytes(self._q, half)]
        return meta, sections

    def to_bytes(self, include_secret_key: bool = False, *, sign_with: Any = None) -> bytes:
        """Serialize; the public form (no ``p``, ``q``) is cached, pickling reuses it.

        ``sign_with`` (an Ed25519 private key) returns a signed envelope (``he_ml.sign_blob``).
        """
        if include_secret_key:
            data = super().to_bytes(include_secret_key=True)
        else:
            if self._public_blob is None:
                self._public_blob = super().to_bytes(include_secret_key=False)
            data = self._public_blob
        if sign_with is None:
            return data
        from .signing import sign_blob

        return sign_blob(data, sign_with)

    @classmethod
    def _from_context_payload(cls, blob: Blob, *, allow_insecure: bool = False) -> "Paillier":
        meta = blob.metadata
        try:
            key_bits = meta["key_bits"]
            enc_d = dict(meta["encoding"])
            rbits = meta["randomness_bits"]
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(f"paillier: context metadata is malformed ({e!r}).") from e
        # meta.get("allow_insecure") of older blobs is ignored: the opt-in is the caller's alone.
        # 1. declared sizes against the limits table, before any big integer is built
        key_bits = check_int(key_bits, "paillier_key_bits_max", "paillier: context key_bits",
                             low=_MIN_KEY_BITS)
        rbits = check_int(rbits, "paillier_key_bits_max", "paillier: context randomness_bits", low=1,
                          high=key_bits)
        secret = blob.kind == Kind.SECRET_CONTEXT
        if len(blob.sections) != (4 if secret else 2):
            raise InvalidCiphertextError(f"paillier: a {'secret' if secret else 'public'} context has "
                                         f"{4 if secret else 2} sections; got {len(blob.sections)}.")
        kb = (key_bits + 7) // 8
        width = (2 * key_bits + 7) // 8
        half = (kb + 1) // 2 + 1
        lengths = [len(x) for x in blob.sections]
        if lengths[0] != kb or lengths[1] > width or (secret and max(lengths[2:]) > half):
            raise InvalidCiphertextError(
                f"paillier: the modulus has {8 * lengths[0]} bits of storage, the metadata says "
                f"{key_bits} bits (sections of {lengths} bytes); the blob is corrupted.")
        # 2. the security floor: the only check the caller's allow_insecure relaxes
        try:
            _check_key_bits(key_bits, allow_insecure)
        except InsecureParametersError as e:
            raise InsecureParametersError(
                f"{e} This context blob was not loaded. If you created the test-sized key yourself, "
                f"load it with he_ml.load_context(blob, allow_insecure=True); a blob cannot opt in by itself."
            ) from None
        # 3. the public modulus and h_s
        n = int.from_bytes(blob.sections[0], "big")
        h_s = int.from_bytes(blob.sections[1], "big")
        _check_public_modulus(n, key_bits)
        if not 0 < h_s < n * n or gmpy2.gcd(h_s, n) != 1:
            raise InvalidCiphertextError("paillier: h_s is not a unit mod n^2; the blob is corrupted.")
        if enc_d.get("usable_bits") != key_bits - 2:
            raise InvalidCiphertextError("paillier: encoding usable_bits does not match the key size.")
        try:
            encoding = PackedEncoding.from_dict(enc_d)
        except ParameterError as e:
            raise InvalidCiphertextError(f"paillier: context encoding parameters are invalid ({e}).") from e
        p = q = None
        if secret:
            p = int.from_bytes(blob.sections[2], "big")
            q = int.from_bytes(blob.sections[3], "big")
            if p <= 1 or q <= 1 or p * q != n or p == q:
                raise InvalidCiphertextError("paillier: the secret primes do not factor n; the blob "
                                             "is corrupted.")
        try:
            _check_randomness(key_bits, rbits, allow_insecure)
        except InsecureParametersError as e:
            raise InsecureParametersError(
                f"{e} Load the blob with he_ml.load_context(blob, allow_insecure=True) only if you made it.") from None
        self = cls.__new__(cls)
        self._setup(n, h_s, p, q, encoding, rbits, allow_insecure)
        return self

    def _section_count_for(self, size: int) -> int:
        return 1  # all ciphertexts of a vector travel in one fixed-width section

    def public_context(self) -> "Paillier":
        """A copy without ``p`` and ``q`` (same ``h_s``, encoding and fingerprint)."""
        pub = type(self).__new__(type(self))
        pub._setup(int(self._n), int(self._h_s), None, None, self.encoding, self._randomness_bits,
                   self._allow_insecure)
        # Share the public fixed-base table (immutable once built).
        pub._table = self._table
        if self._table is not None:
            pub._window = self._window
        pub._public_blob = self._public_blob
        return pub


_PRIMORIALS: dict[int, Any] = {}


def _small_factor_bound(key_bits: int) -> int:
    """Trial-division bound: 2^16, or 2^(key_bits/2 - 2) for keys so small that p, q are below it."""
    return min(limit("paillier_small_factor_bound"), 1 << max(2, key_bits // 2 - 2))


def _check_public_modulus(n: int, key_bits: int) -> None:
    """Validate an untrusted Paillier modulus: size, odd, not a perfect power, no small factor.

    A genuine modulus is ``p * q`` with two primes of about ``key_bits / 2`` bits, so it has
    exactly ``key_bits`` bits, is odd, is not ``m**k`` (``gmpy2.is_power``) and has no prime
    factor below the trial-division bound (primes < 2^16; ``limits.paillier_small_factor_bound``),
    tested with one gcd against the primorial. Compositeness of a random-looking modulus
    cannot be told apart from ``p * q`` cheaply; these checks refuse the corrupted, forged
    and degenerate moduli that would make encryption insecure or decryption meaningless,
    and ~90 % of random odd integers. (The format stores ``h_s`` instead of phe's ``g``,
    which is always ``n + 1``; ``h_s`` is checked to be a unit mod ``n^2``.)
    """
    def bad(why: str) -> InvalidCiphertextError:
        return InvalidCiphertextError(
            f"paillier: the context's public modulus is not a valid Paillier modulus ({why}); the "
            f"blob is corrupted or forged. Ask the key holder for its public context again.")

    if n.bit_length() != key_bits:
        raise bad(f"it has {n.bit_length()} bits, the metadata says {key_bits}")
    if n % 2 == 0:
        raise bad("it is even")
    mpz_n = gmpy2.mpz(n)
    if gmpy2.is_power(mpz_n):
        raise bad("it is a perfect power")
    bound = _small_factor_bound(key_bits)
    prim = _PRIMORIALS.get(bound)
    if prim is None:
        prim = _PRIMORIALS.setdefault(bound, gmpy2.primorial(bound - 1))
    g = gmpy2.gcd(prim % mpz_n, mpz_n)
    if g != 1:
        raise bad(f"it has a prime factor below {bound}")


def _check_key_bits(key_bits: Any, allow_insecure: bool) -> None:
    if not isinstance(key_bits, (int, np.integer)) or isinstance(key_bits, bool) \
            or not _MIN_KEY_BITS <= int(key_bits) <= _MAX_KEY_BITS:
        raise ParameterError(f"paillier: key_bits must be an integer in [{_MIN_KEY_BITS}, {_MAX_KEY_BITS}]; "
                             f"got {key_bits!r}. Use 3072 (128-bit security).")
    if int(key_bits) < MIN_PAILLIER_KEY_BITS and not allow_insecure:
        raise InsecureParametersError(
            f"paillier: key_bits={key_bits} gives {paillier_security_level(int(key_bits))}-bit "
            f"security (NIST SP 800-57), below the 112-bit minimum. Use key_bits=3072 (128-bit, the "
            f"default) or 2048 (112-bit); pass allow_insecure=True only in tests.")


def _check_randomness(key_bits: int, randomness_bits: Any, allow_insecure: bool) -> int:
    level = paillier_security_level(key_bits)
    if randomness_bits is None:
        return 2 * max(level, 64)
    if (not isinstance(randomness_bits, (int, np.integer)) or isinstance(randomness_bits, bool)
            or not 1 <= int(randomness_bits) <= key_bits):
        raise ParameterError(f"paillier: randomness_bits must be an integer in [1, key_bits="
                             f"{key_bits}]; got {randomness_bits!r}.")
    if int(randomness_bits) < 2 * level and not allow_insecure:
        raise InsecureParametersError(
            f"paillier: randomness_bits={randomness_bits} gives less than the key's {level}-bit "
            f"security (Pollard lambda recovers a short exponent in 2**(bits/2) steps). Use "
            f"randomness_bits>={2 * level} (the default), or allow_insecure=True for tests."
        )
    return int(randomness_bits)


def _make_encoding(key_bits: int, preset: str, *, slots: int | None = None, **overrides: Any) -> PackedEncoding:
    if preset not in PRESETS:
        raise ParameterError(f"paillier: preset must be one of {sorted(PRESETS)}; got {preset!r}.")
    params = dict(PRESETS[preset])
    for k, v in overrides.items():
        if v is not None:
            params[k] = v
    if params.get("layout") not in LAYOUTS:
        raise ParameterError(f"paillier: layout must be one of {LAYOUTS}; got {params.get('layout')!r}.")
    try:
        return PackedEncoding(usable_bits=int(key_bits) - 2, slots=slots, **params)
    except ParameterError as e:
        raise ParameterError(f"paillier: {e}") from None


# ============================================================================================
# Threshold (committee) support -- used by he_ml.aggregation.committee_paillier (h9-committee).
# ============================================================================================
def paillier_public_from_modulus(n: int, *, preset: str = "sum", allow_insecure: bool = False,
                                 **encoding: Any) -> "Paillier":
    """A public (encrypt-only) context for a modulus whose factors nobody in this process holds.

    ``h_s`` is derived publicly from ``n`` (``h = -x**2 mod n`` for a random ``x``,
    ``h_s = h**n mod n**2``); DJN ciphertexts under it decrypt with any Paillier decryption of
    ``n`` -- in particular with threshold decryption.
    """
    pub = _phe.PaillierPublicKey(int(n))
    return Paillier.from_phe_keys(pub, None, preset=preset, allow_insecure=allow_insecure, **encoding)


def paillier_decode_plaintexts(ctx: "Paillier", vector: EncryptedVector, plaintexts: list[int]) -> np.ndarray:
    """Decode raw plaintexts (in ``[0, n)``, one per ciphertext of ``vector``) exactly as
    ``ctx.decrypt(vector)`` would decode the plaintexts it computes itself (same slot layout,
    same bound checks). Used when the plaintexts come from threshold decryption."""
    if len(plaintexts) != len(vector.chunks):
        raise ContextMismatchError(f"paillier: {len(plaintexts)} plaintexts for {len(vector.chunks)} ciphertexts.")
    meta = vector.meta
    lay = ctx.encoding.slot_layout
    bound = int(meta["bound"])
    red = meta.get("reduce")
    k = lay.slots
    ints: list[int] = []
    for j, m in enumerate(plaintexts):
        digits = lay.unpack(ctx._centered(m), lay.digits)
        count = 1 if red else min(k, vector.size - j * k)
        used = lay.digits if red else count
        if any(abs(v) > bound for v in digits[:used]) or any(digits[used:]):
            raise InvalidCiphertextError(
                f"paillier: ciphertext {j} decrypts to slot values beyond its public bound {bound}: it was "
                f"altered, a partial decryption was wrong, or it was encrypted under other parameters.")
        ints.extend([sum(digits[red[0]:red[1]])] if red else digits[:count])
    return from_fixed(ints, int(meta["scale"])).reshape(vector.shape)
