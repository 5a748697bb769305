"""CKKS over Microsoft SEAL (reached through TenSEAL's ``sealapi``), and the shared SEAL backend.

This module and :mod:`he_ml.schemes.bfv` are the only ones that import TenSEAL.  We drive
SEAL's own objects (``SEALContext``, ``KeyGenerator``, ``Evaluator``, encoders) instead of
TenSEAL's ``CKKSVector`` because we need what TenSEAL's vectors hide:

* Galois (rotation) keys for an explicit list of steps.  ``sum``/``dot`` need only the
  log2(slots) power-of-two rotations (plus the row swap for BFV), generated when first
  needed; TenSEAL's default key set is about 33 MB at n = 8192 (measured), ours is half of
  that and is never generated for a context that only adds.
* Relinearization keys only for contexts meant to multiply ciphertexts.
* Levels: the chain index of every ciphertext (``x.level``) and exact CKKS scales (a
  plaintext multiplier is encoded at the scale of the prime that the following rescale
  removes, so the scale after ``x * w`` is exactly the scale before).
* Security levels below 128 bits (only with ``allow_insecure=True``) and error translation:
  SEAL exceptions never reach the user; they become :mod:`he_ml.errors` classes ``from e``.

SEAL serializes only to streams, which ``sealapi`` exposes as file paths; bytes therefore
go through a private temporary directory (``/dev/shm`` when available, mode 0700, each file
0600 and removed immediately).  The secret key is written there only when the caller asks
for ``to_bytes(include_secret_key=True)`` or loads such a blob.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import tenseal
import tenseal.sealapi as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import (
    ContextMismatchError,
    DepthExhaustedError,
    EncodingOverflowError,
    HEError,
    InsecureParametersError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    UnsupportedOperationError,
)
from ._format import Blob
from .base import EncryptedVector, SchemeContext, fingerprint_of
from .limits import check_int, limit, seal_context_bytes_estimate, seal_min_prime_bits
from .signing import sign_blob
from .params import (
    CKKS_PRESETS,
    HE_STANDARD_MAX_BITS,
    MAX_PRIME_BITS,
    SUPPORTED_RING_SIZES,
    Preset,
    check_security,
    security_bits,
)

__all__ = ["CKKS"]

# ---------------------------------------------------------------------------- SEAL byte I/O
_TMP_LOCK = threading.Lock()
_TMP_DIR: str | None = None


def _tmp_dir() -> str:
    global _TMP_DIR
    with _TMP_LOCK:
        if _TMP_DIR is None or not os.path.isdir(_TMP_DIR):
            base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            _TMP_DIR = tempfile.mkdtemp(prefix="he_ml-seal-", dir=base)
            atexit.register(shutil.rmtree, _TMP_DIR, True)
        return _TMP_DIR


def _seal_to_bytes(obj: Any) -> bytes:
    """SEAL ``save`` of any object (ciphertext, keys, parameters) as bytes."""
    fd, path = tempfile.mkstemp(dir=_tmp_dir())
    os.close(fd)
    try:
        obj.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def _seal_from_bytes(obj: Any, data: bytes, seal_context: Any | None = None) -> Any:
    """SEAL ``load`` into `obj` (validated against `seal_context` when given); returns `obj`."""
    fd, path = tempfile.mkstemp(dir=_tmp_dir())
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    try:
        if seal_context is None:
            obj.load(path)
        else:
            obj.load(seal_context, path)
    finally:
        os.unlink(path)
    return obj


# ---------------------------------------------------------------------------- shared backend

#: Domain strings of the fingerprint and of the evaluation-key certificate (never reused).
_FP_DOMAIN = b"he_ml seal context fingerprint v2"
_CERT_DOMAIN = b"he_ml evaluation keys v1\x00"


def _raw_public(sk: Ed25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


#: SEALContexts by (scheme, serialized EncryptionParameters) -> (context, estimated bytes);
#: see _SEALContext._make_seal_context. Bounded by the estimated bytes of its entries
#: (limit "seal_context_cache_bytes"), not by their number.
_SEAL_CONTEXT_CACHE: "collections.OrderedDict[tuple[str, bytes], tuple[Any, int]]" = collections.OrderedDict()
_SEAL_CONTEXT_CACHE_LOCK = threading.Lock()
_SEAL_CONTEXT_CACHE_BYTES = 0


def _seal_cache_get(key: tuple[str, bytes]) -> Any | None:
    with _SEAL_CONTEXT_CACHE_LOCK:
        entry = _SEAL_CONTEXT_CACHE.get(key)
        if entry is None:
            return None
        _SEAL_CONTEXT_CACHE.move_to_end(key)
        return entry[0]


def _seal_cache_put(key: tuple[str, bytes], seal: Any, estimate: int) -> None:
    """Keep `seal` for reuse; evict least recently used entries beyond the byte budget."""
    global _SEAL_CONTEXT_CACHE_BYTES
    budget = limit("seal_context_cache_bytes")
    if estimate > budget:
        return
    with _SEAL_CONTEXT_CACHE_LOCK:
        if key in _SEAL_CONTEXT_CACHE:
            _SEAL_CONTEXT_CACHE.move_to_end(key)
            return
        _SEAL_CONTEXT_CACHE[key] = (seal, int(estimate))
        _SEAL_CONTEXT_CACHE_BYTES += int(estimate)
        while _SEAL_CONTEXT_CACHE_BYTES > budget:
            _, (_, est) = _SEAL_CONTEXT_CACHE.popitem(last=False)
            _SEAL_CONTEXT_CACHE_BYTES -= est


def seal_context_cache_info() -> dict[str, int]:
    """Entries and estimated bytes of the shared SEALContext cache (for tests and monitoring)."""
    with _SEAL_CONTEXT_CACHE_LOCK:
        return {"entries": len(_SEAL_CONTEXT_CACHE), "estimated_bytes": _SEAL_CONTEXT_CACHE_BYTES,
                "budget_bytes": limit("seal_context_cache_bytes")}


# ---------------------------------------------------------------------------- SEAL versions
_SEAL_MAGIC = b"\x5e\xa1"  # SEALHeader.magic 0xA15E, little-endian
_SEAL_VERSION: str | None = None


def seal_serialization_version() -> str:
    """``"major.minor"`` of the SEAL library that serializes here (read from SEAL's own header).

    Every SEAL object starts with a 16-byte header: magic 0xA15E (2 bytes), header size
    (1 byte), the library's major and minor version (1 byte each), compression mode,
    reserved bytes and the total size.
    """
    global _SEAL_VERSION
    if _SEAL_VERSION is None:
        head = _seal_to_bytes(sa.EncryptionParameters(sa.SCHEME_TYPE.CKKS))[:5]
        _SEAL_VERSION = f"{head[3]}.{head[4]}"
    return _SEAL_VERSION


_SEAL_HEADER_BYTES = 16
_COMPR_NONE, _COMPR_ZLIB, _COMPR_ZSTD = 0, 1, 2


def _check_seal_section(data: bytes, max_bytes: int, what: str, scheme: str) -> None:
    """Refuse a SEAL section that would inflate beyond `max_bytes` (or beyond the expansion limit).

    SEAL objects are stored zstd- (or zlib-) compressed and SEAL inflates them completely before
    checking anything, so a small section of zeros can allocate gigabytes. The payload is
    inflated here first, in bounded chunks, stopping as soon as it exceeds
    ``min(max_bytes, seal_expansion_max * len(data) + 4 KiB)``; the cost is one extra
    decompression pass (about 1 GB/s).
    """
    cap = min(int(max_bytes), limit("seal_expansion_max") * len(data) + 4096)
    if len(data) < _SEAL_HEADER_BYTES or data[:2] != _SEAL_MAGIC:
        return  # not a SEAL object: SEAL's own parser refuses it without inflating anything
    mode = data[5]
    body = memoryview(data)[_SEAL_HEADER_BYTES:]
    total = 0
    try:
        if mode == _COMPR_NONE:
            total = len(body)
        elif mode == _COMPR_ZSTD:
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True) as reader:
                while total <= cap:
                    chunk = reader.read(1 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
        elif mode == _COMPR_ZLIB:
            import zlib

            inflater = zlib.decompressobj()
            pending = bytes(body)
            while pending and total <= cap:
                total += len(inflater.decompress(pending, 1 << 20))
                pending = inflater.unconsumed_tail
        else:
            return  # unknown mode: SEAL refuses it
    except Exception:  # a corrupt stream: SEAL's parser refuses it (translated to he_ml errors)
        return
    if total > cap:
        raise InvalidCiphertextError(
            f"{scheme}: the {what} ({len(data)} bytes stored) inflates to more than {cap} bytes (the most "
            f"this context's parameters need, and at most {limit('seal_expansion_max')}x its stored size: "
            f"he_ml limit 'seal_expansion_max'); it is a decompression bomb or corrupted. Refusing it "
            f"before SEAL allocates it."
        )


def _section_seal_version(section: bytes) -> str | None:
    if len(section) >= 16 and section[:2] == _SEAL_MAGIC:
        return f"{section[3]}.{section[4]}"
    return None


class _SEALContext(SchemeContext):
    """Shared machinery of the CKKS and BFV contexts (keys, levels, rotations, bytes, errors)."""

    _scheme_type: ClassVar[Any] = None
    _presets: ClassVar[dict[str, Preset]] = {}
    _default_preset: ClassVar[str] = "inference"

    # ------------------------------------------------------------------ construction
    def _build(self, *, preset: str | None, n: int, bits: list[int], rotations: Any,
               relin_keys: bool, allow_insecure: bool, extra: dict[str, Any]) -> None:
        self._validate_common(n, bits)
        self._extra = dict(extra)
        self._validate_extra(n, bits)
        self._security = check_security(self.name, n, bits, allow_insecure)
        parms = sa.EncryptionParameters(self._scheme_type)
        with self._seal_errors("parameter setup"):
            parms.set_poly_modulus_degree(n)
            parms.set_coeff_modulus(sa.CoeffModulus.Create(n, list(bits)))
            self._set_plain_modulus(parms, n)
        parms_bytes = _seal_to_bytes(parms)
        seal = self._make_seal_context(parms, parms_bytes)
        keygen = sa.KeyGenerator(seal)
        sk = keygen.secret_key()
        pk = sa.PublicKey()
        keygen.create_public_key(pk)
        cert_sk = Ed25519PrivateKey.generate()
        self._setup(preset=preset, allow_insecure=allow_insecure, seal=seal, parms_bytes=parms_bytes,
                    pk=pk, pk_bytes=_seal_to_bytes(pk), sk=sk, cert_vk=_raw_public(cert_sk),
                    cert_sk=cert_sk)
        if relin_keys:
            self.enable_multiplication()
        elts = self._rotation_request(rotations)
        if elts:
            self._ensure_galois(elts, "rotation key generation")
        self._register()

    def _validate_common(self, n: int, bits: list[int]) -> None:
        if n not in SUPPORTED_RING_SIZES:
            raise ParameterError(
                f"{self.name}: poly_modulus_degree must be one of {list(SUPPORTED_RING_SIZES)}; got {n!r}."
            )
        if not isinstance(bits, (list, tuple)) or not bits or not all(
                isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bits):
            raise ParameterError(
                f"{self.name}: coeff_mod_bit_sizes must be a non-empty list of integers; got {bits!r}."
            )
        low = int(math.log2(2 * n)) + 2  # a prime = 1 mod 2n needs more bits than 2n
        bad = [b for b in bits if not low <= b <= MAX_PRIME_BITS]
        if bad:
            raise ParameterError(
                f"{self.name}: every coeff_mod_bit_sizes entry must be in [{low}, {MAX_PRIME_BITS}] for "
                f"n={n}; got {list(bits)}. Use he_ml.plan(...) to choose a modulus chain."
            )
        if len(bits) < 2:
            raise ParameterError(
                f"{self.name}: coeff_mod_bit_sizes needs at least 2 primes (data + special prime for "
                f"key switching); got {list(bits)}."
            )
        # the loaders' size limits (he_ml.schemes.limits) apply here too: a context they would
        # refuse to load is refused at creation, before key generation
        est = seal_context_bytes_estimate(n, len(bits))
        if len(bits) > limit("primes_max") or sum(bits) > limit("modulus_bits_max") \
                or est > limit("seal_context_bytes_max"):
            raise ParameterError(
                f"{self.name}: n={n} with {len(bits)} primes ({sum(bits)} bits, an estimated SEAL context of "
                f"{est >> 20} MiB) exceeds he_ml's limits (at most {limit('primes_max')} primes, "
                f"{limit('modulus_bits_max')} bits, {limit('seal_context_bytes_max') >> 20} MiB; see "
                f"docs/security-limits.md): he_ml.load_context would refuse it. Use fewer, larger primes "
                f"or he_ml.plan(...)."
            )

    def _validate_extra(self, n: int, bits: list[int]) -> None:
        """Scheme-specific parameter checks (scale, plain modulus)."""

    def _set_plain_modulus(self, parms: Any, n: int) -> None:
        """BFV sets its batching prime here."""

    def _make_seal_context(self, parms: Any, parms_bytes: bytes, *, cache: bool = True) -> Any:
        """A SEALContext for ``parms``, shared between contexts with identical parameters.

        Building one precomputes NTT tables for every prime and level (milliseconds to
        seconds); a SEALContext is immutable once built, so contexts loaded with the same
        parameters (a server loading many blobs, a key holder and its public twin) share it.
        The cache is bounded by estimated bytes (``limits.seal_context_bytes_estimate``).
        With ``cache=False`` a new context is not stored: the loader stores it only after
        the whole blob loaded, so a blob that fails later leaves nothing behind.
        """
        key = (self.name, bytes(parms_bytes))
        seal = _seal_cache_get(key)
        if seal is not None:
            return seal
        seal = self._build_seal_context(parms)
        if cache:
            _seal_cache_put(key, seal, self._seal_estimate(parms))
        return seal

    @staticmethod
    def _seal_estimate(parms: Any) -> int:
        return seal_context_bytes_estimate(parms.poly_modulus_degree(), len(parms.coeff_modulus()))

    def _build_seal_context(self, parms: Any) -> Any:
        n = parms.poly_modulus_degree()
        total = sum(m.bit_count() for m in parms.coeff_modulus())
        level = sa.SEC_LEVEL_TYPE.TC128 if total <= HE_STANDARD_MAX_BITS[n][128] else sa.SEC_LEVEL_TYPE.NONE
        seal = sa.SEALContext(parms, True, level)
        if not seal.parameters_set():
            raise ParameterError(
                f"{self.name}: Microsoft SEAL rejected the parameters ({seal.parameters_error_name()}: "
                f"{seal.parameters_error_message()}). Use a preset or he_ml.plan(...)."
            )
        return seal

    def _setup(self, *, preset: str | None, allow_insecure: bool, seal: Any, parms_bytes: bytes,
               pk: Any, pk_bytes: bytes, sk: Any | None, cert_vk: bytes,
               cert_sk: Ed25519PrivateKey | None = None) -> None:
        self._preset = preset
        self._allow_insecure = bool(allow_insecure)
        self._seal = seal
        self._parms_bytes = parms_bytes
        self._pk = pk
        self._pk_bytes = pk_bytes
        self._sk = sk
        self._rk = None
        self._rk_bytes = b""
        self._gk = None
        self._gk_bytes = b""
        self._galois_elts: tuple[int, ...] = ()
        self._lock = threading.RLock()
        self._public_blob: bytes | None = None
        self._public_twin: _SEALContext | None = None
        first = seal.first_context_data()
        self._n = first.parms().poly_modulus_degree()
        self._bits = [m.bit_count() for m in seal.key_context_data().parms().coeff_modulus()]
        self._primes = [m.value() for m in seal.key_context_data().parms().coeff_modulus()]
        self._security = security_bits(self._n, sum(self._bits))
        self._cert_vk = bytes(cert_vk)
        self._cert_sk = cert_sk
        self._fp = fingerprint_of(_FP_DOMAIN, self.name.encode(), parms_bytes, self._encoding_bytes(),
                                  pk_bytes, self._cert_vk)
        self._eval_sig = self._sign_eval_keys() if cert_sk is not None else b""
        # The key holder encrypts with the secret key (SEAL's symmetric encryption): under RLWE
        # the ciphertexts are as secure as public-key ones (c1 uniform, c0 = -c1*s + e + m), and
        # they are about twice as fast to produce (no u * pk products, one error term instead of
        # three) with smaller fresh noise. Decryption is identical, so nothing else changes.
        # Servers (public contexts) keep encrypting with the public key.
        self._encryptor = sa.Encryptor(seal, pk, sk) if sk is not None else sa.Encryptor(seal, pk)
        self._evaluator = sa.Evaluator(seal)
        self._decryptor = sa.Decryptor(seal, sk) if sk is not None else None
        self._galois_tool = seal.key_context_data().galois_tool()
        self._setup_encoder()

    def _setup_encoder(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ binding (docs/binding-and-bounds.md)
    def _encoding_bytes(self) -> bytes:
        """Canonical bytes of the public encoding choices (scale bits / plain modulus bits /
        fixed-point bits, preset name): hashed into the fingerprint, so an edited field changes it."""
        return json.dumps({"preset": self._preset, "extra": self._extra}, sort_keys=True,
                          separators=(",", ":")).encode()

    def _eval_statement(self) -> bytes:
        """What the key holder signs about its evaluation keys: this fingerprint and their digests.

        The fingerprint commits to the certification key ``_cert_vk``; the signature under it
        binds the relinearization and Galois keys (and the list of Galois elements) to this
        public key. Keys added later (enable_multiplication / enable_rotations) are re-certified
        by the same key, so the fingerprint -- and every ciphertext made under it -- stays valid.
        """
        return b"".join([
            _CERT_DOMAIN, self._fp,
            hashlib.sha256(self._rk_bytes).digest(),
            hashlib.sha256(self._gk_bytes).digest(),
            hashlib.sha256(json.dumps(list(self._galois_elts)).encode()).digest(),
        ])

    def _sign_eval_keys(self) -> bytes:
        return self._cert_sk.sign(self._eval_statement())

    def _verify_eval_keys(self, sig: bytes) -> None:
        if self._extra.get("multiparty") is True and (self._rk_bytes or self._gk_bytes):
            raise ContextMismatchError(
                f"{self.name}: a committee (multiparty) context carries relinearization/Galois keys, but no "
                f"party holds its secret key to make or certify them; they were added by someone else. "
                f"Refusing the context; use the committee's public context as generated."
            )
        try:
            Ed25519PublicKey.from_public_bytes(self._cert_vk).verify(sig, self._eval_statement())
        except (InvalidSignature, ValueError) as e:
            raise ContextMismatchError(
                f"{self.name}: the context's relinearization/Galois keys are not the ones its key holder "
                f"certified for public key {self._fp.hex()} (spliced from another key pair or edited); "
                f"computing with them would give garbage. Refusing the context; ask the key holder "
                f"for its public context."
            ) from e

    # ------------------------------------------------------------------ interface properties
    @property
    def fingerprint(self) -> bytes:
        return self._fp

    @property
    def has_secret_key(self) -> bool:
        return self._sk is not None

    @property
    def security_level(self) -> int:
        """Classical security in bits per the HE-standard table (128, 192, 256; lower only if allowed)."""
        return self._security

    @property
    def poly_modulus_degree(self) -> int:
        return self._n

    @property
    def coeff_mod_bit_sizes(self) -> list[int]:
        return list(self._bits)

    @property
    def preset(self) -> str | None:
        """Preset the context was made from (None for custom parameters)."""
        return self._preset

    @property
    def has_relin_keys(self) -> bool:
        return self._rk is not None

    @property
    def rotation_steps_available(self) -> tuple[int, ...]:
        """Galois elements for which this context holds keys."""
        return self._galois_elts

    @property
    def public_context_bytes(self) -> int:
        """Size of ``to_bytes(include_secret_key=False)``."""
        return len(self.to_bytes(include_secret_key=False))

    # ------------------------------------------------------------------ key management
    def enable_multiplication(self) -> "_SEALContext":
        """Generate relinearization keys (needed for ciphertext x ciphertext); key holder only.

        Call before ``public_context()`` so that servers can multiply ciphertexts.
        """
        with self._lock:
            if self._rk is not None:
                return self
            if self._sk is None:
                raise UnsupportedOperationError(
                    f"{self.name}: ciphertext x ciphertext multiplication needs relinearization keys, "
                    f"and this public context has none. On the key holder, create the context with "
                    f"relin_keys=True (or call ctx.enable_multiplication()) before making public_context()."
                )
            rk = sa.RelinKeys()
            with self._seal_errors("relinearization key generation"):
                sa.KeyGenerator(self._seal, self._sk).create_relin_keys(rk)
            self._rk, self._rk_bytes = rk, _seal_to_bytes(rk)
            self._eval_sig = self._sign_eval_keys()
            self._public_blob = None
            self._public_twin = None
        return self

    def enable_rotations(self, steps: Any = "sum") -> "_SEALContext":
        """Generate Galois (rotation) keys; key holder only.

        Parameters
        ----------
        steps : "sum" or iterable of int, default "sum"
            ``"sum"``: the log2(slots) power-of-two rotations that ``sum`` and ``dot`` use (for BFV
            also the row swap). ``"all"``: +-powers of two, enough for ``x.rotate(k)`` with any k
            (composed from at most log2(slots) rotations). Integers: rotation steps (positive =
            towards index 0; for BFV 0 means swapping the two rows). Keys already present are kept.

        Notes
        -----
        Each key costs about ``2 * n * log2(Q) / 8 * (primes - 1)`` bytes, e.g. 1.4 MB at n = 8192
        with a 4-prime chain; the "sum" set there is 12 keys (~17 MB), half of SEAL's default.
        """
        elts = self._rotation_request(steps)
        self._ensure_galois(elts, "enable_rotations")
        return self

    def _rotation_request(self, steps: Any) -> tuple[int, ...]:
        if steps is None or steps is False:
            return ()
        if steps is True or (isinstance(steps, str) and steps == "sum"):
            return self._sum_galois_elts()
        if isinstance(steps, str) and steps == "all":
            pw = [1 << i for i in range(int(math.log2(self._n // 2)))]
            return tuple(sorted(set(int(e) for e in self._galois_tool.get_elts_from_steps(pw + [-p for p in pw]))))
        if isinstance(steps, str):
            raise ParameterError(f"{self.name}: rotations must be None, 'sum', 'all' or a list of ints; got {steps!r}.")
        try:
            step_list = [int(s) for s in steps]
        except (TypeError, ValueError) as e:
            raise ParameterError(
                f"{self.name}: rotations must be None, 'sum' or a list of ints; got {steps!r}."
            ) from e
        half = self._n // 2
        bad = [s for s in step_list if abs(s) >= half]
        if bad:
            raise ParameterError(
                f"{self.name}: rotation steps must satisfy |step| < {half} (half the ring size); got {bad}."
            )
        with self._seal_errors("rotation key setup"):
            return tuple(sorted(set(int(e) for e in self._galois_tool.get_elts_from_steps(step_list))))

    def _sum_galois_elts(self) -> tuple[int, ...]:
        steps = [1 << i for i in range(int(math.log2(self._n // 2)))]
        return tuple(sorted(set(int(e) for e in self._galois_tool.get_elts_from_steps(steps))))

    def _ensure_galois(self, elts: Iterable[int], op: str) -> Any:
        elts = tuple(sorted(set(elts)))
        with self._lock:
            missing = [e for e in elts if e not in self._galois_elts]
            if not missing:
                return self._gk
            if self._sk is None:
                raise UnsupportedOperationError(
                    f"{self.name}: {op} needs rotation (Galois) keys that this public context does not "
                    f"carry. On the key holder, create the context with rotations='sum' (or call "
                    f"ctx.enable_rotations()) before making public_context()."
                )
            union = sorted(set(self._galois_elts) | set(elts))
            gk = sa.GaloisKeys()
            with self._seal_errors("rotation key generation"):
                sa.KeyGenerator(self._seal, self._sk).create_galois_keys(union, gk)
            self._gk, self._gk_bytes, self._galois_elts = gk, _seal_to_bytes(gk), tuple(union)
            self._eval_sig = self._sign_eval_keys()
            self._public_blob = None
            self._public_twin = None
            return gk

    def _require_relin(self, op: str) -> Any:
        if self._rk is None:
            if self._sk is None:
                raise UnsupportedOperationError(
                    f"{self.name}: {op} needs relinearization keys that this public context does not "
                    f"carry. On the key holder, create the context with relin_keys=True (or call "
                    f"ctx.enable_multiplication()) before making public_context()."
                )
            self.enable_multiplication()
        return self._rk

    # ------------------------------------------------------------------ public context and bytes
    def public_context(self) -> "_SEALContext":
        """A copy without the secret key (shares parameters, public, relinearization and rotation keys)."""
        with self._lock:
            if self._sk is None:
                return self
            if self._public_twin is not None:
                return self._public_twin
            twin = object.__new__(type(self))
            twin._extra = dict(self._extra)
            twin._setup(preset=self._preset, allow_insecure=self._allow_insecure, seal=self._seal,
                        parms_bytes=self._parms_bytes, pk=self._pk, pk_bytes=self._pk_bytes, sk=None,
                        cert_vk=self._cert_vk)
            twin._rk, twin._rk_bytes = self._rk, self._rk_bytes
            twin._gk, twin._gk_bytes, twin._galois_elts = self._gk, self._gk_bytes, self._galois_elts
            twin._eval_sig = self._eval_sig
            twin._register()
            self._public_twin = twin
            return twin

    def to_bytes(self, include_secret_key: bool = False, *, sign_with: Any = None) -> bytes:
        """Serialize; the secret key only with ``include_secret_key=True``. Public bytes are cached.

        ``sign_with`` (an Ed25519 private key, see ``he_ml.generate_signing_key``) wraps the blob
        in a signed envelope that clients verify with ``load_context(..., verify_key=...)``.
        """
        if include_secret_key:
            data = super().to_bytes(include_secret_key=True)
        else:
            with self._lock:
                if self._public_blob is None:
                    self._public_blob = super().to_bytes(include_secret_key=False)
                data = self._public_blob
        return data if sign_with is None else sign_blob(data, sign_with)

    def _context_payload(self, include_secret_key: bool) -> tuple[dict[str, Any], list[bytes]]:
        # No "allow_insecure" here: only the caller of load_context can opt in (a blob never can).
        meta = {
            "preset": self._preset,
            "galois_elts": list(self._galois_elts),
            "extra": self._extra,
            "keycert": {"vk": self._cert_vk.hex(), "sig": self._eval_sig.hex()},
        }
        sections = [self._parms_bytes, self._pk_bytes, self._rk_bytes, self._gk_bytes]
        if include_secret_key:
            sections.append(_seal_to_bytes(self._sk))
            sections.append(self._cert_sk.private_bytes(serialization.Encoding.Raw,
                                                        serialization.PrivateFormat.Raw,
                                                        serialization.NoEncryption()))
        return meta, sections

    @classmethod
    def _from_context_payload(cls, blob: Blob, *, allow_insecure: bool = False) -> "_SEALContext":
        meta, sections = blob.metadata, blob.sections
        secret = blob.kind.name == "SECRET_CONTEXT"
        if len(sections) != (6 if secret else 4):
            raise InvalidCiphertextError(
                f"{cls.name}: context blob has {len(sections)} sections; expected 4 (public) or 6 (secret)."
            )
        cert_vk, eval_sig, cert_sk = cls._parse_keycert(meta, sections[5] if secret else None)
        extra = meta.get("extra")
        elts = meta.get("galois_elts")
        # (a list longer than galois_keys_max is refused by name in _load_parms_within_limits)
        if not isinstance(extra, dict) or not isinstance(elts, list) or not all(
                isinstance(e, int) and not isinstance(e, bool) for e in elts[:limit("galois_keys_max") + 1]):
            raise InvalidCiphertextError(f"{cls.name}: context blob metadata is malformed.")
        # meta.get("allow_insecure") of older blobs is ignored: the opt-in is the caller's alone.
        preset = meta.get("preset")
        ctx = object.__new__(cls)
        ctx._extra = dict(extra)
        parms = cls._load_parms_within_limits(sections[0], elts, allow_insecure)
        n = parms.poly_modulus_degree()
        bits = [m.bit_count() for m in parms.coeff_modulus()]
        ctx._validate_extra(n, bits)
        key = (cls.name, bytes(sections[0]))
        cls._check_key_sections(sections, n, len(bits), len(elts))
        with ctx._seal_errors("loading the context", invalid=True):
            seal = ctx._make_seal_context(parms, sections[0], cache=False)
            pk = _seal_from_bytes(sa.PublicKey(), sections[1], seal)
            sk = _seal_from_bytes(sa.SecretKey(), sections[4], seal) if secret else None
        ctx._setup(preset=preset if isinstance(preset, str) else None, allow_insecure=allow_insecure,
                   seal=seal, parms_bytes=sections[0], pk=pk, pk_bytes=sections[1], sk=sk,
                   cert_vk=cert_vk, cert_sk=cert_sk)
        with ctx._seal_errors("loading the context", invalid=True):
            if sections[2]:
                ctx._rk = _seal_from_bytes(sa.RelinKeys(), sections[2], seal)
                ctx._rk_bytes = sections[2]
            if sections[3]:
                gk = _seal_from_bytes(sa.GaloisKeys(), sections[3], seal)
                if not all(gk.has_key(e) for e in elts):
                    raise InvalidCiphertextError(f"{cls.name}: rotation keys do not match the blob's list.")
                ctx._gk, ctx._gk_bytes, ctx._galois_elts = gk, sections[3], tuple(sorted(set(elts)))
            elif elts:
                raise InvalidCiphertextError(f"{cls.name}: context blob lists rotation keys it lacks.")
        if ctx._fp != blob.fingerprint:
            raise InvalidCiphertextError(
                f"{cls.name}: the context's parameters, encoding, public key or certification key do not "
                f"hash to the fingerprint in its header ({blob.fingerprint.hex()}); a field was edited. "
                f"Refusing it; ask the key holder for its public context."
            )
        ctx._verify_eval_keys(eval_sig)
        ctx._eval_sig = eval_sig
        if sk is not None:
            ctx._check_key_pair()
        # Only a context whose whole blob loaded is kept for reuse.
        _seal_cache_put(key, seal, cls._seal_estimate(parms))
        ctx._register()
        return ctx

    @classmethod
    def _parse_keycert(cls, meta: dict[str, Any], cert_sk_bytes: bytes | None
                       ) -> tuple[bytes, bytes, Ed25519PrivateKey | None]:
        kc = meta.get("keycert")
        try:
            vk, sig = bytes.fromhex(kc["vk"]), bytes.fromhex(kc["sig"])
        except (TypeError, KeyError, ValueError, AttributeError):
            vk = sig = b""
        if len(vk) != 32 or len(sig) != 64:
            raise InvalidCiphertextError(
                f"{cls.name}: the context blob lacks a valid evaluation-key certificate (keycert with a "
                f"32-byte key and a 64-byte signature); it was written by he_ml < format 2 or edited. "
                f"Re-export it with this version."
            )
        cert_sk = None
        if cert_sk_bytes is not None:
            if len(cert_sk_bytes) != 32:
                raise InvalidCiphertextError(f"{cls.name}: the certification key section must be 32 bytes.")
            cert_sk = Ed25519PrivateKey.from_private_bytes(cert_sk_bytes)
            if _raw_public(cert_sk) != vk:
                raise ContextMismatchError(
                    f"{cls.name}: the secret context's certification key does not match its public one; "
                    f"the blob was assembled from different contexts."
                )
        return vk, sig, cert_sk

    @classmethod
    def _check_key_sections(cls, sections: list[bytes], n: int, k: int, galois_keys: int) -> None:
        """Bound what SEAL may inflate for each key section, from the declared parameters.

        A public key is 2 polynomials of n * k words; relinearization keys hold k - 1 such keys
        (one per decomposition prime), Galois keys k - 1 per declared element; the key vectors
        are indexed by up to n slots (8 bytes each), and every object carries small headers.
        """
        pk = 2 * n * k * 8 + 512
        switching = 8 * n + 1024 + (k - 1) * (pk + 8)
        limits_ = [("public key", pk), ("relinearization keys", switching),
                   ("Galois keys", 8 * n + 1024 + galois_keys * (k - 1) * (pk + 8) + 8 * galois_keys),
                   ("secret key", n * k * 8 + 512)]
        for (what, cap), data in zip(limits_, sections[1:]):
            if data:
                _check_seal_section(data, cap, f"context's {what}", cls.name)

    @classmethod
    def _load_parms_within_limits(cls, data: bytes, elts: list[int], allow_insecure: bool) -> Any:
        """Parse SEAL EncryptionParameters and check every declared size before SEAL builds anything.

        Order matters: the section's length is checked before SEAL parses it; ring degree,
        prime count and widths, total modulus bits and the estimated SEALContext memory are
        checked (limits table, :mod:`he_ml.schemes.limits`) before ``SEALContext`` allocates
        its tables; the security floor comes last and is the only check that the caller's
        ``allow_insecure=True`` relaxes.
        """
        def too_big(what: str, got: Any, lim: str, hint: str = "") -> InvalidCiphertextError:
            return InvalidCiphertextError(
                f"{cls.name}: the context blob declares {what} {got}, beyond the limit {limit(lim)} "
                f"({lim!r} in he_ml.schemes.limits.LIMITS); refusing it before building anything. "
                + (hint or "Such parameters are not produced by he_ml; use a preset or he_ml.plan(...).")
                + " allow_insecure does not lift size limits.")

        if len(data) > limit("seal_params_bytes_max"):
            raise too_big("encryption parameters of", f"{len(data)} bytes", "seal_params_bytes_max")
        _check_seal_section(data, limit("seal_params_bytes_max"), "context's encryption parameters", cls.name)
        parms = sa.EncryptionParameters(cls._scheme_type)
        with cls._class_seal_errors("loading the context parameters"):
            _seal_from_bytes(parms, data)
        if parms.scheme() != cls._scheme_type:
            raise ContextMismatchError(f"{cls.name}: the context blob holds parameters of another scheme.")
        n = int(parms.poly_modulus_degree())
        if n not in SUPPORTED_RING_SIZES:
            if limit("ring_degree_min") <= n <= limit("ring_degree_max"):
                raise InvalidCiphertextError(f"{cls.name}: context blob has unsupported ring size {n}.")
            raise too_big("ring degree n =", n, "ring_degree_max")
        moduli = parms.coeff_modulus()
        k = len(moduli)
        if k > limit("primes_max"):
            raise too_big("a coefficient modulus of", f"{k} primes", "primes_max")
        bits = [int(m.bit_count()) for m in moduli]
        low = seal_min_prime_bits(n)
        if k < 2 or any(not low <= b <= limit("prime_bits_max") for b in bits):
            raise InvalidCiphertextError(
                f"{cls.name}: the context blob's primes have {bits} bits; each must have "
                f"{low}..{limit('prime_bits_max')} bits for n={n}, and there must be at least 2.")
        if sum(bits) > limit("modulus_bits_max"):
            raise too_big("a total coefficient modulus of", f"{sum(bits)} bits", "modulus_bits_max")
        est = seal_context_bytes_estimate(n, k)
        if est > limit("seal_context_bytes_max"):
            raise too_big(f"n={n} with {k} primes, an estimated SEAL context of", f"{est >> 20} MiB",
                          "seal_context_bytes_max")
        if len(elts) > limit("galois_keys_max"):
            raise too_big("rotation keys:", len(elts), "galois_keys_max")
        if any(not (0 < e < 2 * n and e % 2 == 1) for e in elts):
            raise InvalidCiphertextError(
                f"{cls.name}: the context blob lists Galois elements outside the odd residues mod 2n={2 * n}.")
        if security_bits(n, sum(bits)) < 128 and not allow_insecure:
            raise InsecureParametersError(
                f"{cls.name}: the context blob has a {sum(bits)}-bit modulus at n={n}, above the "
                f"{HE_STANDARD_MAX_BITS[n][128]}-bit bound for 128-bit security (HomomorphicEncryption.org "
                f"standard). Refusing to load it. If you created these test-sized parameters yourself, "
                f"load them with he_ml.load_context(blob, allow_insecure=True); a blob cannot opt in by itself."
            )
        return parms

    @classmethod
    @contextlib.contextmanager
    def _class_seal_errors(cls, op: str):
        """SEAL exceptions while parsing bytes, before any instance exists -> InvalidCiphertextError."""
        try:
            yield
        except HEError:
            raise
        except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError, IndexError) as e:
            raise InvalidCiphertextError(
                f"{cls.name}: {op} failed: the bytes are not valid SEAL parameters ({type(e).__name__}); "
                f"they are corrupted, truncated or written by another SEAL version."
            ) from e

    # ------------------------------------------------------------------ SEAL serialization version
    @classmethod
    def _backend_versions(cls) -> dict[str, str]:
        return {"seal_version": seal_serialization_version(), "tenseal_version": str(tenseal.__version__)}

    @classmethod
    def _check_backend_versions(cls, blob: Blob, what: str) -> None:
        """Refuse material serialized by another SEAL version, naming both versions.

        The blob's ``seal_version`` (written since this release) and the version in the SEAL
        header of every section (present in all blobs, older ones included) must equal the
        running SEAL's ``major.minor``: SEAL objects of another release fail to load or, worse,
        load with other semantics. Raised as `InvalidCiphertextError` (the bytes cannot be used
        here), like a container format version mismatch.
        """
        here = seal_serialization_version()
        recorded = blob.metadata.get("seal_version")
        found = recorded if isinstance(recorded, str) and recorded != here else None
        if found is None:
            for sec in blob.sections:
                v = _section_seal_version(sec)
                if v is not None and v != here:
                    found = v
                    break
        if found is not None:
            written = blob.metadata.get("tenseal_version")
            by = f" (TenSEAL {written:.20})" if isinstance(written, str) else ""
            raise InvalidCiphertextError(
                f"{cls.name}: the {what} was serialized by Microsoft SEAL {found:.20}{by}, but this process "
                f"runs SEAL {here} (TenSEAL {tenseal.__version__}); SEAL objects do not load across "
                f"versions. Re-create the {what} with SEAL {here}, or load it where SEAL {found:.20} is "
                f"installed (pip install tenseal==<the version that wrote it>) and re-serialize there."
            )

    def _check_key_pair(self) -> None:
        """Reject a secret key that does not belong to the public key (tampered or mixed blobs)."""
        ct = sa.Ciphertext()
        self._encryptor.encrypt_zero(ct)
        if not self._decrypts_to_zero(ct):
            raise ContextMismatchError(
                f"{self.name}: the secret key in this blob does not match its public key; the blob was "
                f"assembled from different contexts or tampered with."
            )

    def _decrypts_to_zero(self, ct: Any) -> bool:
        raise NotImplementedError

    def _encrypt_plaintext(self, pt: Any, ct: Any) -> None:
        """Encrypt an encoded plaintext: symmetric (secret key) on the key holder, else public key."""
        if self._sk is not None:
            self._encryptor.encrypt_symmetric(pt, ct)
        else:
            self._encryptor.encrypt(pt, ct)

    # ------------------------------------------------------------------ chunks
    def _chunk_count(self, size: int) -> int:
        return -(-size // self.slot_count)

    def _serialize_chunks(self, vector: EncryptedVector) -> list[bytes]:
        with self._seal_errors("serializing a ciphertext"):
            return [_seal_to_bytes(ct) for ct in vector.chunks]

    def _deserialize_chunks(self, sections: list[bytes], size: int, meta: dict[str, Any]) -> list[Any]:
        expected = self._chunk_count(size)
        if len(sections) != expected:
            raise InvalidCiphertextError(
                f"{self.name}: ciphertext blob for {size} values must hold {expected} ciphertext(s); "
                f"got {len(sections)}."
            )
        chunks = []
        # a ciphertext is 2 polynomials at a data level (at most k - 1 primes)
        ct_cap = 2 * self._n * max(1, len(self._bits) - 1) * 8 + 512
        for i, data in enumerate(sections):
            _check_seal_section(data, ct_cap, f"ciphertext {i}", self.name)
            ct = sa.Ciphertext()
            with self._seal_errors("loading a ciphertext", invalid=True):
                _seal_from_bytes(ct, data, self._seal)
            self._validate_chunk(ct, i)
            chunks.append(ct)
        self._validate_meta(meta, size)
        return chunks

    def _validate_chunk(self, ct: Any, i: int) -> None:
        data = self._seal.get_context_data(ct.parms_id())
        if ct.size() != 2 or data is None or ct.is_transparent():
            raise InvalidCiphertextError(
                f"{self.name}: ciphertext {i} in the blob is not a fresh-form (2-polynomial) ciphertext "
                f"of this context; the bytes were tampered with or come from another library."
            )

    def _validate_meta(self, meta: dict[str, Any], size: int) -> None:
        """Scheme-specific checks of vector metadata from untrusted bytes."""

    def _copy(self, ct: Any) -> Any:
        """Deep copy (sealapi binds no copy constructor; mod-switching to the same level copies)."""
        out = sa.Ciphertext()
        self._evaluator.mod_switch_to(ct, ct.parms_id(), out)
        return out

    def _zero_like(self, parms_id: Any, scale: float | None) -> Any:
        """A fresh encryption of zero: SEAL refuses to produce 'transparent' results (x - x, x * 0)."""
        ct = sa.Ciphertext()
        self._encryptor.encrypt_zero(parms_id, ct)
        if scale is not None:
            ct.scale = scale
        return ct

    def _chain_index(self, ct: Any) -> int:
        return self._seal.get_context_data(ct.parms_id()).chain_index()

    def _align_level(self, a: Any, b: Any) -> tuple[Any, Any]:
        """Bring two ciphertexts to the same (lower) level of the modulus chain."""
        ia, ib = self._chain_index(a), self._chain_index(b)
        if ia > ib:
            a2 = sa.Ciphertext()
            self._evaluator.mod_switch_to(a, b.parms_id(), a2)
            return a2, b
        if ib > ia:
            b2 = sa.Ciphertext()
            self._evaluator.mod_switch_to(b, a.parms_id(), b2)
            return a, b2
        return a, b

    def _binary(self, x: EncryptedVector, y: EncryptedVector, fn_name: str, op: str) -> list[Any]:
        out = []
        with self._seal_errors(op):
            for a, b in zip(x.chunks, y.chunks):
                a, b = self._align_level(a, b)
                a, b = self._align_scale(a, b)
                dst, _ = self._evaluate(fn_name, a, b,
                                        zero=lambda a=a: self._zero_like(a.parms_id(), self._scale_of(a)))
                out.append(dst)
        return out

    def _evaluate(self, op: str, *args: Any, zero: Callable[[], Any]) -> tuple[Any, bool]:
        """Run ``evaluator.<op>(*args, dst)``; return ``(dst, True)``.

        SEAL refuses to output a *transparent* ciphertext (one whose second polynomial is zero,
        e.g. a product with a plaintext that encodes to zero): that result is an encryption of
        zero, so it is replaced by ``zero()`` (a fresh encryption of zero at the right level and
        scale) and ``(zero(), False)`` is returned, so callers can skip relinearize/rescale.
        """
        dst = sa.Ciphertext()
        try:
            getattr(self._evaluator, op)(*args, dst)
        except RuntimeError as e:
            if "transparent" not in str(e):
                raise
            return zero(), False
        return dst, True

    def _align_scale(self, a: Any, b: Any) -> tuple[Any, Any]:
        return a, b

    def _scale_of(self, ct: Any) -> float | None:
        return None

    def _rotate_sum(self, ct: Any, op: str) -> Any:
        raise NotImplementedError

    def _add_chunks(self, chunks: list[Any]) -> Any:
        acc = chunks[0]
        for c in chunks[1:]:
            a, b = self._align_level(acc, c)
            a, b = self._align_scale(a, b)
            acc, _ = self._evaluate("add", a, b, zero=lambda a=a: self._zero_like(a.parms_id(), self._scale_of(a)))
        return acc

    def _op_neg(self, x: EncryptedVector) -> EncryptedVector:
        out = []
        with self._seal_errors("negation"):
            for c in x.chunks:
                d = sa.Ciphertext()
                self._evaluator.negate(c, d)
                out.append(d)
        return EncryptedVector(self, out, x.shape, self._meta_neg(x))

    def _meta_neg(self, x: EncryptedVector) -> dict[str, Any]:
        return dict(x.meta)

    def _pad(self, flat: np.ndarray, dtype: Any) -> list[np.ndarray]:
        """Split a flat array into slot-count pieces, zero-padding the last one."""
        s = self.slot_count
        k = self._chunk_count(flat.size)
        buf = np.zeros(k * s, dtype=dtype)
        buf[:flat.size] = flat
        return [buf[i * s:(i + 1) * s] for i in range(k)]

    # ------------------------------------------------------------------ levels and errors
    def _vector_level(self, vector: EncryptedVector) -> int | None:
        return min(self._chunk_level(c) for c in vector.chunks)

    def _depth_hint(self, needed: int) -> str:
        """Parameters with `needed` levels that still hold this context's values.

        Only suggestions that work: presets whose magnitude room (CKKS: first prime minus scale
        and the scale itself; BFV: plain modulus) is at least this context's, and a ``he_ml.plan``
        call carrying this context's magnitude, printed only if the planner accepts it.
        """
        fits = [p for p in self._presets.values()
                if self._preset_depth(p) >= needed and self._preset_holds_values(p)]
        kwargs = self._plan_magnitude_kwargs()
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        ctx_args = ", ".join(f"{k}={v!r}" for k, v in self._plan_context_overrides().items())
        hint = f"he_ml.plan(depth={needed}, scheme={self.name!r}{', ' + args if args else ''}).context({ctx_args})"
        from .params import plan

        try:
            plan(depth=needed, scheme=self.name, **kwargs)
        except ParameterError:
            hint = ""
        if fits:
            p = min(fits, key=lambda p: self._preset_depth(p))
            preset = f"preset {p.name!r} (depth {self._preset_depth(p)})"
            return f"{preset} or {hint}" if hint else preset
        return hint or (f"no 128-bit parameter set reaches depth {needed} with these values; split the "
                        f"computation and refresh (decrypt and re-encrypt) at the key holder")

    def _preset_holds_values(self, p: Preset) -> bool:
        return True

    def _plan_magnitude_kwargs(self) -> dict[str, Any]:
        return {}

    def _plan_context_overrides(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def _preset_depth(p: Preset) -> int:
        return len(p.coeff_mod_bit_sizes) - 2

    def _depth_error(self, op: str, used: int, need: int = 1) -> DepthExhaustedError:
        avail = self.max_depth or 0
        where = f"preset {self._preset!r}" if self._preset else "these parameters"
        return DepthExhaustedError(
            f"{self.name}: {op} needs {need} more multiplicative level(s), but the ciphertext has already "
            f"used {used} of the {avail} level(s) this context has ({where}). The computation needs "
            f"depth {used + need}: use {self._depth_hint(used + need)}, or decrypt and re-encrypt "
            f"(refresh) at the key holder."
        )

    @contextlib.contextmanager
    def _seal_errors(self, op: str, *, invalid: bool = False):
        """Translate SEAL/TenSEAL exceptions into he_ml errors (``raise ... from e``)."""
        try:
            yield
        except HEError:
            raise
        except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError, IndexError) as e:
            raise self._translate(e, op, invalid) from e

    def _translate(self, e: BaseException, op: str, invalid: bool) -> HEError:
        text = str(e).lower()
        if invalid:
            return InvalidCiphertextError(
                f"{self.name}: {op} failed: the bytes are not a valid SEAL object for this context "
                f"({type(e).__name__}); they are corrupted, truncated or from other parameters."
            )
        if "scale out of bounds" in text or "end of modulus switching chain" in text \
                or "modulus switching chain" in text:
            return DepthExhaustedError(
                f"{self.name}: {op} ran out of multiplicative levels (this context has "
                f"{self.max_depth} level(s); {self._preset and 'preset ' + repr(self._preset) or 'custom parameters'}). "
                f"Use {self._depth_hint((self.max_depth or 0) + 1)}."
            )
        if "encoded values are too large" in text or "too large" in text:
            return EncodingOverflowError(
                f"{self.name}: {op}: a value is too large to encode at this scale/modulus. Scale the "
                f"values down or use parameters with a larger first prime (he_ml.plan(max_value=...))."
            )
        if "galois key" in text or "relinearization" in text or "keyswitching is not supported" in text:
            return UnsupportedOperationError(
                f"{self.name}: {op} needs evaluation keys this context lacks. Create the key holder's "
                f"context with rotations='sum' / relin_keys=True before public_context()."
            )
        if "mismatch" in text:
            return ContextMismatchError(
                f"{self.name}: {op}: operands do not share parameters (levels, scales or keys). Encrypt "
                f"every operand with the same context."
            )
        return ParameterError(
            f"{self.name}: {op} was rejected by the SEAL backend ({type(e).__name__}: {e}). Check the "
            f"parameters and operands; this message is a bug report candidate if the inputs were valid."
        )

    def __getstate__(self):
        raise TypeError(
            f"{type(self).__name__} is not pickled directly (it may hold a secret key); use "
            f"ctx.to_bytes(include_secret_key=...) and he_ml.load_context()."
        )


# ---------------------------------------------------------------------------- CKKS
class CKKS(_SEALContext):
    """CKKS (approximate arithmetic on real vectors) over Microsoft SEAL.

    Parameters
    ----------
    preset : {"sum", "light", "inference", "deep"} or None, default "inference"
        Named parameter set (see ``he_ml.schemes.params.CKKS_PRESETS``); keyword arguments below
        override its fields. ``None`` requires ``poly_modulus_degree`` and ``coeff_mod_bit_sizes``.
    poly_modulus_degree : int, optional
        Ring size n (1024 ... 32768); n/2 values per ciphertext.
    coeff_mod_bit_sizes : list of int, optional
        Modulus chain ``[q0, scale primes..., special prime]``; the number of scale primes is the
        multiplicative depth. Checked against the HE-standard 128-bit table.
    scale_bits : int, optional
        log2 of the encoding scale; precision is about ``scale_bits - log2(n) - 1`` bits for |values| <= 1.
    rotations : None, "sum", "all" or list of int, default None
        Rotation keys to generate now ("all": +-powers of two, for ``x.rotate(k)``). By default none: ``sum``/``dot`` generate their
        power-of-two keys on first use when the secret key is present. A public context
        can only rotate with keys declared (or generated) before ``public_context()``.
    relin_keys : bool, optional
        Generate relinearization keys (ciphertext x ciphertext). Preset default.
    allow_insecure : bool, default False
        Allow a modulus above the 128-bit bound (tests only); ``security_level`` then reports the
        lower estimate.
    wide_scale : bool, default False
        Sum-only contexts: the scale may span all data primes (``scale_bits < sum of the data
        primes``) instead of the first one, and values must satisfy ``|x| < 2^(data_bits -
        scale_bits - 1)``. Products would exceed the modulus and are refused by the magnitude
        tracking. Used by ``aggregation_context("ckks")`` so a released total can be smudged
        (:mod:`he_ml.aggregation.flooding`).

    Notes
    -----
    Values must satisfy ``|x| < 2^(q0_bits - scale_bits - 1)`` (and so must every result): the
    final decryption happens modulo the first prime q0 where a value occupies
    ``|x| * 2^scale_bits``. Larger values raise `EncodingOverflowError` before encryption.

    Magnitude tracking: every vector carries a public bound ``v.bound`` on ``|value|`` (at
    encryption the smallest power of two >= max |values|, or ``encrypt(values, bound=...)``),
    propagated by interval arithmetic through every operation. An operation whose result bound
    could reach ``Q_l / (2 * 2^scale_bits)`` at the result's level l (``Q_l`` the product of
    the remaining primes; 15/16 of it for noise and scale drift) raises `EncodingOverflowError`
    before it runs, naming parameters that fit (docs/binding-and-bounds.md).

    Precision: a fresh encryption has a per-slot error of standard deviation ``n / 6 / 2^scale_bits``
    (measured; n = 8192, 40-bit scale: 1.2e-9, maximum over many slots ~1e-8); a rotation (used
    by ``sum``/``dot``) adds key-switching noise of a few 1e-9 per slot with heavy tails; each
    multiplication adds a comparable rounding error relative
    to the operands, and adding ciphertexts whose scales differ (a product plus a fresh value)
    snaps the scales together with a relative error ``|q_l / 2^scale_bits - 1|`` (< 1e-6 for the
    presets' primes).

    Security: classical 128-bit per the HomomorphicEncryption.org standard (ternary secret),
    enforced by SEAL: total modulus bits <= 27/54/109/218/438/881 for n = 1024...32768.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> ctx = he_ml.CKKS("light")
    >>> x = ctx.encrypt(np.arange(5.0))
    >>> np.round(ctx.decrypt((x * x).sum()), 4)
    array([30.])
    """

    name: ClassVar[str] = "ckks"
    capabilities = frozenset({"add", "mul_plain", "mul", "sum", "dot", "rotate"})
    _scheme_type = sa.SCHEME_TYPE.CKKS
    _presets = CKKS_PRESETS

    def __init__(self, preset: str | None = "inference", *, poly_modulus_degree: int | None = None,
                 coeff_mod_bit_sizes: list[int] | None = None, scale_bits: int | None = None,
                 rotations: Any = None, relin_keys: bool | None = None,
                 allow_insecure: bool = False, wide_scale: bool = False) -> None:
        base = _resolve_preset(self.name, self._presets, preset)
        if not isinstance(wide_scale, bool):
            raise ParameterError(f"ckks: wide_scale must be True or False; got {wide_scale!r}.")
        n = poly_modulus_degree if poly_modulus_degree is not None else base.get("poly_modulus_degree")
        bits = list(coeff_mod_bit_sizes) if coeff_mod_bit_sizes is not None else base.get("coeff_mod_bit_sizes")
        if n is None or bits is None:
            raise ParameterError(
                "ckks: without a preset, poly_modulus_degree and coeff_mod_bit_sizes are required; got "
                f"poly_modulus_degree={n!r}, coeff_mod_bit_sizes={bits!r}."
            )
        sb = scale_bits if scale_bits is not None else base.get("scale_bits")
        if sb is None:  # custom chain: the middle primes give the natural scale
            sb = bits[1] if len(bits) > 2 else min(40, bits[0] - 10)
        relin = base.get("relin_keys", len(bits) > 2) if relin_keys is None else bool(relin_keys)
        self._build(preset=preset if not _overridden(base, n, bits, sb) else _custom_name(preset),
                    n=int(n), bits=[int(b) for b in bits], rotations=rotations, relin_keys=relin,
                    allow_insecure=allow_insecure,
                    extra={"scale_bits": int(sb), **({"wide_scale": True} if wide_scale else {})})

    def _wide_scale(self) -> bool:
        """True when the scale spans all data primes (sum-only contexts: committees, released sums)."""
        return self._extra.get("multiparty") is True or self._extra.get("wide_scale") is True

    def _validate_extra(self, n: int, bits: list[int]) -> None:
        sb = self._extra.get("scale_bits")
        mp = self._extra.get("multiparty", False)  # committee keys (h9): scale spans the data primes
        ws = self._extra.get("wide_scale", False)  # sum-only key holder: scale spans the data primes
        wide = mp is True or ws is True
        limit = sum(bits[:-1]) if wide and len(bits) > 1 else bits[0]
        if not isinstance(mp, bool) or not isinstance(ws, bool) or not isinstance(sb, int) \
                or isinstance(sb, bool) or not 10 <= sb < limit:
            raise ParameterError(
                f"ckks: scale_bits must be an integer in [10, {'data' if wide else 'q0'}_bits={limit}); got "
                f"{sb!r}. The {'data primes' if wide else 'first prime'} must hold the scale plus the magnitude "
                f"of the results."
            )

    def _setup_encoder(self) -> None:
        self._encoder = sa.CKKSEncoder(self._seal)
        self._scale = 2.0 ** self._extra["scale_bits"]
        # A result decrypts modulo q0 where it occupies |x| * scale; keep one bit for the sign.
        q_bits = sum(self._bits[:-1]) if self._wide_scale() and len(self._bits) > 1 else self._bits[0]
        self._value_bound = 2.0 ** (q_bits - self._extra["scale_bits"] - 1)
        self._setup_bounds()

    # ------------------------------------------------------------------ magnitude bounds
    def _setup_bounds(self) -> None:
        """Representable magnitude per level and the largest scale drift per depth.

        Representable bound. A ciphertext at chain index l holds ``x * scale`` modulo
        ``Q_l = q_0 * q_1 * ... * q_l`` (the data primes left), and decoding centres the
        result in ``(-Q_l/2, Q_l/2)``; the value is recovered iff ``|x| * scale < Q_l / 2``.
        A product is formed at scale ``scale^2`` modulo ``Q_l`` and rescaled to ``Q_(l-1)``:
        ``|xy| * scale^2 < Q_l / 2`` is the same condition as ``|xy| * scale < Q_(l-1) / 2``
        (up to ``q_l / scale``, within the margin below). So a result that ends at chain index l
        must satisfy ``|x| < Q_l / (2 * 2^scale_bits)``; we keep a relative margin of 1/16
        for the scale drift of products (``_max_drift``, < 1e-3 for he_ml's chains) and the
        noise (a few ``n / 2^scale_bits``): ``limit_l = 15/16 * Q_l / 2^(scale_bits + 1)``.
        At l = 0 this is ``q_0 / 2^(scale_bits+1)``, the "|x| * scale < q0/2 at the last level"
        rule; inputs are held to the stricter ``value_bound`` so they can reach level 0.

        Scale drift. he_ml changes a scale only in ciphertext products: ``s_a * s_b / q_l``.
        With ``delta(s) = ln(s / 2^scale_bits)`` and ``e = max_l |ln(q_l / 2^scale_bits)|``
        over the scale primes, ``|delta| <= D_d`` after d levels where ``D_0 = 0`` and
        ``D_d = 2 D_(d-1) + e``, i.e. ``D_d = (2^d - 1) e`` (plaintext products, rescales of
        plaintext products and additions keep or copy a scale exactly).
        """
        data = [m.value() for m in self._seal.first_context_data().parms().coeff_modulus()]
        acc, self._log2_q_prefix = 0.0, []
        for q in data:
            acc += math.log2(q)
            self._log2_q_prefix.append(acc)
        sb = self._extra["scale_bits"]
        scale_primes = data[1:] or data
        self._drift_step = max(abs(math.log(q) - sb * math.log(2.0)) for q in scale_primes)
        self._top_index = len(data) - 1

    def _level_limit(self, chain_index: int) -> float:
        """Largest |value| a ciphertext at `chain_index` represents (see `_setup_bounds`)."""
        return 15.0 / 16.0 * 2.0 ** (self._log2_q_prefix[chain_index] - self._extra["scale_bits"] - 1)

    def _max_drift(self, chain_index: int) -> float:
        """Largest |ln(scale / 2^scale_bits)| he_ml's operations reach at `chain_index`."""
        d = self._top_index - chain_index
        return (2.0 ** d - 1.0) * self._drift_step + 1e-9 * 2.0 ** d

    def value_bound_of(self, vector: EncryptedVector) -> float:
        """The public upper bound on |value| tracked for `vector` (``vector.meta["bound"]``)."""
        return self._bound(vector)

    def headroom_bits(self, vector: EncryptedVector) -> float:
        """log2 of how much `vector`'s values may still grow at its level before overflowing."""
        return math.log2(self._level_limit(vector.level) / max(self._bound(vector), 2.0 ** -1000))

    def _bound(self, x: EncryptedVector) -> float:
        b = x.meta.get("bound")
        return self._value_bound if b is None else float(b)

    def _tracked_bound(self, vector: EncryptedVector) -> float:
        return self._bound(vector)

    def _with_bound(self, vector: EncryptedVector, bound: Any) -> EncryptedVector:
        if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(bound)) or float(bound) < 0:
            raise ParameterError(f"ckks: with_bound needs a finite number >= 0; got {bound!r}.")
        return EncryptedVector(self, vector.chunks, vector.shape,
                               dict(vector.meta, bound=min(float(bound), self._bound(vector))))

    def _fresh_bound(self, m: float) -> float:
        """Smallest power of two >= max |values| (reveals about log2 of the magnitude)."""
        if m <= 0:
            return 2.0 ** -30
        return min(2.0 ** math.ceil(math.log2(m)), self._value_bound)

    def _bounded(self, bound: float, chain_index: int, op: str) -> dict[str, Any]:
        """Metadata of a result with `bound` at `chain_index`; raise before computing if it overflows."""
        if chain_index < 0:  # depth errors are raised by the callers; never reached with a valid level
            return {"bound": float(bound)}
        limit = self._level_limit(chain_index)
        if not bound < limit:  # also catches inf / nan
            raise EncodingOverflowError(
                f"ckks: {op} could produce values up to {bound:.6g} in magnitude (tracked bound), but "
                f"at level {chain_index} this context represents only |x| < {limit:.6g} (|x| * 2^"
                f"{self.scale_bits} must stay below half the remaining modulus, "
                f"2^{self._log2_q_prefix[chain_index]:.1f}); the result would wrap around and decrypt "
                f"to garbage. {self._overflow_hint(bound)}"
            )
        return {"bound": float(bound)}

    def _overflow_hint(self, bound: float) -> str:
        """A plan that fits |values| up to `bound` at this depth -- only one that he_ml.plan accepts."""
        depth = self.max_depth
        # the failing operation may be a partial result: ask for 2^4 headroom when a plan has it
        for target in (16.0 * bound, bound):
            fits = _ckks_plan_or_none(depth, target)
            if fits is not None:
                return (f"Use parameters with a larger first prime: he_ml.plan(depth={depth}, "
                        f"max_value={_round_up(target):g}).context() (chain {list(fits.coeff_mod_bit_sizes)}, "
                        f"scale 2^{fits.scale_bits}, |x| < {fits.value_bound:g}), or scale the inputs down.")
        # The first prime has at most 60 bits and must hold |x| * scale: find the largest power of
        # two that some 128-bit plan at this depth still holds, and say how far to scale down.
        top = max((e for e in range(0, 60) if _ckks_plan_or_none(depth, 2.0 ** e) is not None), default=None)
        if top is None:
            return "No CKKS parameter set has this depth at 20 bits of precision; lower the depth."
        k = math.ceil(math.log2(bound)) - top
        return (f"No CKKS parameter set holds |x| up to {bound:.3g} at depth {depth} (the first prime has at "
                f"most 60 bits and must hold |x| * scale); the largest is he_ml.plan(depth={depth}, "
                f"max_value=2.0 ** {top}).context(). Scale the inputs down so that every intermediate "
                f"result shrinks by at least 2^{k} (a product of d factors shrinks by the d-th power of "
                f"the input factor), use that plan, and rescale the decrypted result.")

    # ------------------------------------------------------------------ properties
    @property
    def slot_count(self) -> int:
        return self._n // 2

    @property
    def scale_bits(self) -> int:
        return self._extra["scale_bits"]

    @property
    def value_bound(self) -> float:
        """Largest |value| (input or result) that encodes and decrypts correctly."""
        return self._value_bound

    @property
    def max_depth(self) -> int:
        """Multiplications a fresh ciphertext supports (one scale prime each)."""
        return len(self._bits) - 2

    @property
    def parameters(self) -> dict[str, Any]:
        return {"preset": self._preset, "poly_modulus_degree": self._n,
                "coeff_mod_bit_sizes": list(self._bits), "scale_bits": self.scale_bits}

    def _chunk_level(self, chunk: Any) -> int:
        return self._chain_index(chunk)

    def _scale_of(self, ct: Any) -> float:
        return ct.scale

    # ------------------------------------------------------------------ encoding
    def _preset_holds_values(self, p: Preset) -> bool:
        sb = p.scale_bits or 40
        return sb >= self.scale_bits and p.coeff_mod_bit_sizes[0] - sb >= self._bits[0] - self.scale_bits

    def _plan_magnitude_kwargs(self) -> dict[str, Any]:
        # plan(max_value=m) gives |x| < 2^(ceil(log2 m) + 1) >= this context's value_bound
        return {"max_value": self._value_bound / 2}

    def _check_magnitude(self, arr: np.ndarray | float, what: str) -> None:
        m = float(np.max(np.abs(arr))) if isinstance(arr, np.ndarray) else abs(float(arr))
        if m >= self._value_bound and self._extra.get("wide_scale") is True:
            data = sum(self._bits[:-1])
            raise EncodingOverflowError(
                f"ckks: {what} has |value| up to {m:g}, but this sum-only context holds |x| < "
                f"{self._value_bound:g} = 2^({data} - {self.scale_bits} - 1) (data primes {data} bits, scale "
                f"2^{self.scale_bits}). Plan the key holder's context for larger sums: "
                f"he_ml.aggregation.aggregation_context('ckks', max_clients=..., max_value=...) with max_clients "
                f"* max_value >= {m:g}, or scale the inputs down."
            )
        if m >= self._value_bound:
            raise EncodingOverflowError(
                f"ckks: {what} has |value| up to {m:g}, but these parameters hold |x| < "
                f"{self._value_bound:g} = 2^({self._bits[0]} - {self.scale_bits} - 1) (first prime "
                f"{self._bits[0]} bits, scale 2^{self.scale_bits}). {self._overflow_hint(m)}"
            )

    def _prepare_values(self, flat: np.ndarray) -> np.ndarray:
        flat = flat.astype(np.float64)
        self._check_magnitude(flat, "the input")
        return flat

    def _encrypt_flat(self, flat: np.ndarray) -> tuple[list[Any], dict[str, Any]]:
        chunks = []
        with self._seal_errors("encryption"):
            for piece in self._pad(flat, np.float64):
                pt = sa.Plaintext()
                self._encoder.encode(piece.tolist(), self._scale, pt)
                ct = sa.Ciphertext()
                self._encrypt_plaintext(pt, ct)
                chunks.append(ct)
        m = float(np.max(np.abs(flat))) if flat.size else 0.0
        return chunks, {"bound": self._fresh_bound(m)}

    def encrypt(self, values: Any, *, bound: float | None = None) -> EncryptedVector:
        """Encrypt a real array of any shape.

        Parameters
        ----------
        values : array-like of float
            ``|values| < value_bound``.
        bound : float, optional
            Public upper bound on |values| carried with the ciphertext (``vector.meta["bound"]``)
            and propagated through every operation; default: the smallest power of two
            >= max |values| (reveals about log2 of the magnitude).

        Raises
        ------
        EncodingOverflowError
            If a value (or `bound`) is at least ``value_bound``.
        ParameterError
            If `bound` is smaller than max |values| or not a finite number.
        """
        vec = super().encrypt(values)
        if bound is not None:
            m = float(np.max(np.abs(np.asarray(values, dtype=np.float64))))
            if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(bound)) or float(bound) < m:
                raise ParameterError(f"ckks: bound must be a finite number >= max |values| = {m:g}; got {bound!r}.")
            self._check_magnitude(float(bound), "the declared bound")
            vec.meta["bound"] = float(bound)
        return vec

    def _decrypt_flat(self, vector: EncryptedVector) -> np.ndarray:
        out = np.empty(len(vector.chunks) * self.slot_count)
        with self._seal_errors("decryption"):
            for i, ct in enumerate(vector.chunks):
                pt = sa.Plaintext()
                self._decryptor.decrypt(ct, pt)
                out[i * self.slot_count:(i + 1) * self.slot_count] = self._encoder.decode_double(pt)
        return out[:vector.size]

    def _decrypts_to_zero(self, ct: Any) -> bool:
        pt = sa.Plaintext()
        self._decryptor.decrypt(ct, pt)
        ct.scale = self._scale
        pt.scale = self._scale
        vals = np.asarray(self._encoder.decode_double(pt))
        # A matching key leaves fresh-encryption noise (std ~ n / (6 * scale), heavy-tailed over
        # n/2 slots); a foreign key leaves values spread over the whole modulus (~ q0 / scale).
        # 256 * n / scale sits far above the first and far below the second for every valid chain.
        tol = max(1e-3, 256.0 * self._n / self._scale)
        return bool(np.max(np.abs(vals)) < tol)

    def _validate_chunk(self, ct: Any, i: int) -> None:
        super()._validate_chunk(ct, i)
        q_bits = sum(self._bits[:self._chain_index(ct) + 1])
        if not ct.is_ntt_form() or not (1.0 <= ct.scale < 2.0 ** q_bits) or not math.isfinite(ct.scale):
            raise InvalidCiphertextError(
                f"ckks: ciphertext {i} in the blob has an invalid scale or form; the bytes were tampered "
                f"with or come from another library."
            )
        self._check_scale_binding(ct, i)

    def _check_scale_binding(self, ct: Any, i: int) -> None:
        """Refuse a scale that he_ml's operations cannot produce at this level (see `_setup_bounds`).

        The scale is not trusted from the blob: it must equal ``2^scale_bits`` at the top level
        and stay within the product drift ``D_d`` at depth d. An edit outside that band (e.g. a
        factor 2) is refused; an edit inside it changes decrypted values by a relative
        ``e^D_d - 1`` at most (< 1e-5 for he_ml's presets), below CKKS's own error.
        """
        level = self._chain_index(ct)
        drift = abs(math.log(ct.scale) - self.scale_bits * math.log(2.0))
        if drift > self._max_drift(level):
            raise InvalidCiphertextError(
                f"ckks: ciphertext {i} in the blob has scale 2^{math.log2(ct.scale):.6f} at level {level}, "
                f"but this context's operations keep the scale within a factor "
                f"{math.exp(self._max_drift(level)):.9g} of 2^{self.scale_bits} there; the scale was edited "
                f"or the ciphertext belongs to other parameters. Re-send the original bytes."
            )

    def _validate_meta(self, meta: dict[str, Any], size: int) -> None:
        b = meta.get("bound")
        if set(meta) - {"bound"} or isinstance(b, bool) or not isinstance(b, (int, float)) \
                or not math.isfinite(b) or b < 0:
            raise InvalidCiphertextError(
                f"ckks: ciphertext blob metadata must be {{'bound': finite number >= 0}} (the public "
                f"magnitude bound); got {meta!r:.120}. Re-send the original bytes."
            )

    def _deserialize_chunks(self, sections: list[bytes], size: int, meta: dict[str, Any]) -> list[Any]:
        chunks = super()._deserialize_chunks(sections, size, meta)
        level = min(self._chain_index(c) for c in chunks)
        if not float(meta["bound"]) < self._level_limit(level):
            raise InvalidCiphertextError(
                f"ckks: ciphertext blob declares values up to {float(meta['bound']):.6g}, more than "
                f"level {level} of this context represents ({self._level_limit(level):.6g}); it cannot "
                f"decrypt correctly. The metadata was edited or the vector overflowed elsewhere."
            )
        return chunks

    # ------------------------------------------------------------------ operations
    def _align_scale(self, a: Any, b: Any) -> tuple[Any, Any]:
        if a.scale == b.scale:
            return a, b
        ratio = a.scale / b.scale
        if abs(ratio - 1.0) > 1e-3:
            raise ParameterError(
                f"ckks: cannot add ciphertexts whose scales differ by a factor {ratio:.6g}; this happens "
                f"only with ciphertexts from other tools. Re-encrypt with he_ml."
            )
        # The scales differ only by the ratio of a rescaling prime to 2^scale_bits (< 1e-6 relative).
        b = self._copy(b)
        b.scale = a.scale
        return a, b

    def _op_add(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        meta = self._bounded(self._bound(x) + self._bound(y), min(x.level, y.level), "addition")
        return EncryptedVector(self, self._binary(x, y, "add", "addition"), x.shape, meta)

    def _op_sub(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        meta = self._bounded(self._bound(x) + self._bound(y), min(x.level, y.level), "subtraction")
        return EncryptedVector(self, self._binary(x, y, "sub", "subtraction"), x.shape, meta)

    @staticmethod
    def _abs_max(other: Any) -> float:
        return float(np.max(np.abs(other))) if isinstance(other, np.ndarray) and other.size else abs(float(other))

    def _plain_pieces(self, other: Any) -> list[Any]:
        if isinstance(other, np.ndarray):
            return [p.tolist() for p in self._pad(other.astype(np.float64), np.float64)]
        return [float(other)]

    def _op_add_plain(self, x: EncryptedVector, other: Any) -> EncryptedVector:
        self._check_magnitude(other if isinstance(other, np.ndarray) else float(other), "the plaintext addend")
        meta = self._bounded(self._bound(x) + self._abs_max(other), x.level, "addition of a plaintext")
        if not isinstance(other, np.ndarray):
            # only the vector's own slots: padding slots must stay (encrypted) zeros for sum/dot
            other = np.full(x.size, float(other))
        pieces = self._plain_pieces(other)
        out = []
        with self._seal_errors("addition of a plaintext"):
            for i, ct in enumerate(x.chunks):
                pt = sa.Plaintext()
                self._encoder.encode(pieces[i] if len(pieces) > 1 else pieces[0], ct.parms_id(), ct.scale, pt)
                dst, _ = self._evaluate("add_plain", ct, pt,
                                        zero=lambda ct=ct: self._zero_like(ct.parms_id(), ct.scale))
                out.append(dst)
        return EncryptedVector(self, out, x.shape, meta)

    def _op_mul_plain(self, x: EncryptedVector, other: Any) -> EncryptedVector:
        self._check_magnitude(other if isinstance(other, np.ndarray) else float(other), "the plaintext factor")
        is_scalar = not isinstance(other, np.ndarray)
        integral = is_scalar and float(other).is_integer()
        if not integral:
            level = x.level
            if level < 1:
                raise self._depth_error("multiplication by a non-integer plaintext", self.max_depth - level)
        meta = self._bounded(self._bound(x) * self._abs_max(other), x.level - (0 if integral else 1),
                             "multiplication by a plaintext")
        pieces = self._plain_pieces(other)
        out = []
        with self._seal_errors("multiplication by a plaintext"):
            for i, ct in enumerate(x.chunks):
                piece = pieces[i] if len(pieces) > 1 else pieces[0]
                if integral:
                    # An integer scalar encoded at scale 1 is exact and costs no level.
                    if piece == 0:
                        out.append(self._zero_like(ct.parms_id(), ct.scale))
                        continue
                    pt = sa.Plaintext()
                    self._encoder.encode(float(piece), ct.parms_id(), 1.0, pt)
                    dst, _ = self._evaluate("multiply_plain", ct, pt,
                                            zero=lambda ct=ct: self._zero_like(ct.parms_id(), ct.scale))
                    out.append(dst)
                    continue
                # Encode at the scale of the prime the rescale removes: the scale is then unchanged.
                data = self._seal.get_context_data(ct.parms_id())
                q_last = float(data.parms().coeff_modulus()[-1].value())
                if (isinstance(piece, list) and not any(piece)) or (not isinstance(piece, list) and piece == 0):
                    zero = self._zero_like(data.next_context_data().parms_id(), ct.scale)
                    out.append(zero)
                    continue
                pt = sa.Plaintext()
                self._encoder.encode(piece, ct.parms_id(), q_last, pt)
                # factors so small that they encode to the zero polynomial give a transparent result
                dst, nonzero = self._evaluate(
                    "multiply_plain", ct, pt,
                    zero=lambda ct=ct, data=data: self._zero_like(data.next_context_data().parms_id(), ct.scale))
                if not nonzero:
                    out.append(dst)
                    continue
                self._evaluator.rescale_to_next_inplace(dst)
                dst.scale = ct.scale  # exact up to double rounding: scale * q / q
                out.append(dst)
        return EncryptedVector(self, out, x.shape, meta)

    def _op_mul(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        lx, ly = x.level, y.level
        if min(lx, ly) < 1:
            raise self._depth_error("ciphertext x ciphertext multiplication", self.max_depth - min(lx, ly))
        meta = self._bounded(self._bound(x) * self._bound(y), min(lx, ly) - 1,
                             "ciphertext x ciphertext multiplication")
        rk = self._require_relin("ciphertext x ciphertext multiplication")
        out = []
        with self._seal_errors("ciphertext x ciphertext multiplication"):
            for a, b in zip(x.chunks, y.chunks):
                a, b = self._align_level(a, b)
                dst, nonzero = self._evaluate("multiply", a, b, zero=lambda a=a: self._zero_like(
                    self._seal.get_context_data(a.parms_id()).next_context_data().parms_id(), a.scale))
                if not nonzero:
                    out.append(dst)
                    continue
                self._evaluator.relinearize_inplace(dst, rk)
                self._evaluator.rescale_to_next_inplace(dst)
                out.append(dst)
        return EncryptedVector(self, out, x.shape, meta)

    def _rotate_sum(self, ct: Any, op: str) -> Any:
        gk = self._ensure_galois(self._sum_galois_elts(), op)
        acc = ct
        step = 1
        while step < self.slot_count:
            rot = sa.Ciphertext()
            self._evaluator.rotate_vector(acc, step, gk, rot)
            nxt = sa.Ciphertext()
            self._evaluator.add(acc, rot, nxt)
            acc = nxt
            step <<= 1
        return acc

    def _op_sum(self, x: EncryptedVector, bound: float | None = None) -> EncryptedVector:
        # |sum of `size` values| <= size * bound (padding slots are encrypted zeros)
        meta = self._bounded(self._bound(x) * x.size if bound is None else bound, x.level,
                             f"sum of {x.size} values")
        with self._seal_errors("sum"):
            total = self._add_chunks(list(x.chunks))
            if x.size > 1:
                total = self._rotate_sum(total, "sum")
        return EncryptedVector(self, [total], (1,), meta)

    def _op_dot(self, x: EncryptedVector, w: np.ndarray) -> EncryptedVector:
        w = np.asarray(w, dtype=np.float64)
        # |sum_i w_i x_i| <= bound * sum_i |w_i|, checked before the product is computed
        bound = self._bound(x) * float(np.sum(np.abs(w)))
        if x.level >= 1:
            self._bounded(bound, x.level - 1, f"dot product with {x.size} weights")
        return self._op_sum(self._op_mul_plain(x, w), bound=bound)

    def _rotation_elts_pow2_both(self) -> tuple[int, ...]:
        steps = [1 << i for i in range(int(math.log2(self.slot_count)))]
        steps += [-s for s in steps]
        return tuple(sorted(set(int(e) for e in self._galois_tool.get_elts_from_steps(steps))))

    def _op_rotate(self, x: EncryptedVector, steps: int) -> EncryptedVector:
        """Left rotation by `steps` (0 < steps < slot_count) of a one-ciphertext vector.

        Uses the key for `steps` if present; otherwise SEAL composes the rotation from the
        +-power-of-two keys (non-adjacent form, at most log2(slots) rotations). A key holder lacking
        both generates the +-power-of-two set once (2 log2(slots) keys); a public context raises.
        """
        elt = int(self._galois_tool.get_elt_from_step(int(steps)))
        if elt not in self._galois_elts:
            both = self._rotation_elts_pow2_both()
            if not all(e in self._galois_elts for e in both):
                self._ensure_galois(both, f"rotation by {steps}")
        dst = sa.Ciphertext()
        with self._seal_errors("rotation"):
            self._evaluator.rotate_vector(x.chunks[0], int(steps), self._gk, dst)
        return EncryptedVector(self, [dst], x.shape, dict(x.meta))


# ---------------------------------------------------------------------------- helpers
def _round_up(x: float) -> float:
    """`x` rounded up to 3 significant digits (a max_value to print that still covers `x`)."""
    if x <= 0:
        return x
    e = math.floor(math.log10(x)) - 2
    return math.ceil(x / 10.0 ** e) * 10.0 ** e


def _ckks_plan_or_none(depth: int, max_value: float):
    from .params import plan

    try:
        return plan(depth=depth, max_value=_round_up(float(max_value)), precision_bits=20, scheme="ckks")
    except ParameterError:
        return None


def _resolve_preset(scheme: str, presets: dict[str, Preset], preset: str | None) -> dict[str, Any]:
    if preset is None:
        return {}
    if not isinstance(preset, str) or preset not in presets:
        raise ParameterError(
            f"{scheme}: preset must be one of {sorted(presets)} or None; got {preset!r}. Presets: "
            + "; ".join(f"{p.name!r}: {p.purpose}" for p in presets.values())
        )
    return presets[preset].as_kwargs()


def _overridden(base: dict[str, Any], n: int, bits: list[int], extra_value: Any,
                extra_key: str = "scale_bits") -> bool:
    if not base:
        return True
    return (base["poly_modulus_degree"] != n or list(base["coeff_mod_bit_sizes"]) != list(bits)
            or base.get(extra_key) != extra_value)


def _custom_name(preset: str | None) -> str | None:
    return None
