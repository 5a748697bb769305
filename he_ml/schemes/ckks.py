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
import math
import os
import shutil
import tempfile
import threading
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import tenseal.sealapi as sa

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
from .params import (
    CKKS_PRESETS,
    HE_STANDARD_MAX_BITS,
    MAX_PRIME_BITS,
    SUPPORTED_RING_SIZES,
    Preset,
    check_security,
    security_bits,
)

__all__ = ["CKKS", "linear_map", "compact"]

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

#: SEALContexts by (scheme, serialized EncryptionParameters); see _SEALContext._make_seal_context.
_SEAL_CONTEXT_CACHE: "collections.OrderedDict[tuple[str, bytes], Any]" = collections.OrderedDict()
_SEAL_CONTEXT_CACHE_LOCK = threading.Lock()
_SEAL_CONTEXT_CACHE_SIZE = 8

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
        self._setup(preset=preset, allow_insecure=allow_insecure, seal=seal, parms_bytes=parms_bytes,
                    pk=pk, pk_bytes=_seal_to_bytes(pk), sk=sk)
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

    def _validate_extra(self, n: int, bits: list[int]) -> None:
        """Scheme-specific parameter checks (scale, plain modulus)."""

    def _set_plain_modulus(self, parms: Any, n: int) -> None:
        """BFV sets its batching prime here."""

    def _make_seal_context(self, parms: Any, parms_bytes: bytes) -> Any:
        """A SEALContext for ``parms``, shared between contexts with identical parameters.

        Building one precomputes NTT tables for every prime (milliseconds); a SEALContext is
        immutable once built, so contexts loaded with the same parameters (a server loading many
        blobs, a key holder and its public twin) share it. The cache holds a few parameter sets.
        """
        key = (self.name, bytes(parms_bytes))
        with _SEAL_CONTEXT_CACHE_LOCK:
            seal = _SEAL_CONTEXT_CACHE.get(key)
            if seal is not None:
                _SEAL_CONTEXT_CACHE.move_to_end(key)
                return seal
        seal = self._build_seal_context(parms)
        with _SEAL_CONTEXT_CACHE_LOCK:
            _SEAL_CONTEXT_CACHE[key] = seal
            while len(_SEAL_CONTEXT_CACHE) > _SEAL_CONTEXT_CACHE_SIZE:
                _SEAL_CONTEXT_CACHE.popitem(last=False)
        return seal

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
               pk: Any, pk_bytes: bytes, sk: Any | None) -> None:
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
        self._fp = fingerprint_of(self.name.encode(), parms_bytes, pk_bytes)
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
                        parms_bytes=self._parms_bytes, pk=self._pk, pk_bytes=self._pk_bytes, sk=None)
            twin._rk, twin._rk_bytes = self._rk, self._rk_bytes
            twin._gk, twin._gk_bytes, twin._galois_elts = self._gk, self._gk_bytes, self._galois_elts
            twin._register()
            self._public_twin = twin
            return twin

    def to_bytes(self, include_secret_key: bool = False) -> bytes:
        """Serialize; the secret key only with ``include_secret_key=True``. Public bytes are cached."""
        if include_secret_key:
            return super().to_bytes(include_secret_key=True)
        with self._lock:
            if self._public_blob is None:
                self._public_blob = super().to_bytes(include_secret_key=False)
            return self._public_blob

    def _context_payload(self, include_secret_key: bool) -> tuple[dict[str, Any], list[bytes]]:
        meta = {
            "preset": self._preset,
            "allow_insecure": self._allow_insecure,
            "galois_elts": list(self._galois_elts),
            "extra": self._extra,
        }
        sections = [self._parms_bytes, self._pk_bytes, self._rk_bytes, self._gk_bytes]
        if include_secret_key:
            sections.append(_seal_to_bytes(self._sk))
        return meta, sections

    @classmethod
    def _from_context_payload(cls, blob: Blob) -> "_SEALContext":
        meta, sections = blob.metadata, blob.sections
        if len(sections) != (5 if blob.kind.name == "SECRET_CONTEXT" else 4):
            raise InvalidCiphertextError(
                f"{cls.name}: context blob has {len(sections)} sections; expected 4 (public) or 5 (secret)."
            )
        extra = meta.get("extra")
        elts = meta.get("galois_elts")
        if not isinstance(extra, dict) or not isinstance(elts, list) or not all(
                isinstance(e, int) and not isinstance(e, bool) for e in elts):
            raise InvalidCiphertextError(f"{cls.name}: context blob metadata is malformed.")
        allow_insecure = bool(meta.get("allow_insecure", False))
        preset = meta.get("preset")
        ctx = object.__new__(cls)
        ctx._extra = dict(extra)
        parms = sa.EncryptionParameters(cls._scheme_type)
        with ctx._seal_errors("loading the context", invalid=True):
            _seal_from_bytes(parms, sections[0])
        if parms.scheme() != cls._scheme_type:
            raise ContextMismatchError(f"{cls.name}: the context blob holds parameters of another scheme.")
        n = parms.poly_modulus_degree()
        bits = [m.bit_count() for m in parms.coeff_modulus()]
        if n not in SUPPORTED_RING_SIZES:
            raise InvalidCiphertextError(f"{cls.name}: context blob has unsupported ring size {n}.")
        if security_bits(n, sum(bits)) < 128 and not allow_insecure:
            raise InsecureParametersError(
                f"{cls.name}: the context blob has {sum(bits)}-bit modulus at n={n}, below 128-bit security, "
                f"and was not marked allow_insecure; refusing to load it."
            )
        ctx._validate_extra(n, bits)
        with ctx._seal_errors("loading the context", invalid=True):
            seal = ctx._make_seal_context(parms, sections[0])
            pk = _seal_from_bytes(sa.PublicKey(), sections[1], seal)
            sk = _seal_from_bytes(sa.SecretKey(), sections[4], seal) if len(sections) == 5 else None
        ctx._setup(preset=preset if isinstance(preset, str) else None, allow_insecure=allow_insecure,
                   seal=seal, parms_bytes=sections[0], pk=pk, pk_bytes=sections[1], sk=sk)
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
        if sk is not None:
            ctx._check_key_pair()
        ctx._register()
        return ctx

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
        for i, data in enumerate(sections):
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
        fits = [p for p in self._presets.values() if self._preset_depth(p) >= needed]
        hint = f"he_ml.plan(depth={needed}, scheme={self.name!r}).context()"
        if fits:
            p = min(fits, key=lambda p: self._preset_depth(p))
            return f"preset {p.name!r} (depth {self._preset_depth(p)}) or {hint}"
        return hint

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

    Notes
    -----
    Values must satisfy ``|x| < 2^(q0_bits - scale_bits - 1)`` (and so must every result): the
    final decryption happens modulo the first prime q0 where a value occupies
    ``|x| * 2^scale_bits``. Larger values raise `EncodingOverflowError` before encryption.

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
                 allow_insecure: bool = False) -> None:
        base = _resolve_preset(self.name, self._presets, preset)
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
                    allow_insecure=allow_insecure, extra={"scale_bits": int(sb)})

    def _validate_extra(self, n: int, bits: list[int]) -> None:
        sb = self._extra.get("scale_bits")
        if not isinstance(sb, int) or isinstance(sb, bool) or not 10 <= sb < bits[0]:
            raise ParameterError(
                f"ckks: scale_bits must be an integer in [10, q0_bits={bits[0]}); got {sb!r}. The first "
                f"prime must hold the scale plus the magnitude of the results."
            )

    def _setup_encoder(self) -> None:
        self._encoder = sa.CKKSEncoder(self._seal)
        self._scale = 2.0 ** self._extra["scale_bits"]
        # A result decrypts modulo q0 where it occupies |x| * scale; keep one bit for the sign.
        self._value_bound = 2.0 ** (self._bits[0] - self._extra["scale_bits"] - 1)

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
    def _check_magnitude(self, arr: np.ndarray | float, what: str) -> None:
        m = float(np.max(np.abs(arr))) if isinstance(arr, np.ndarray) else abs(float(arr))
        if m >= self._value_bound:
            raise EncodingOverflowError(
                f"ckks: {what} has |value| up to {m:g}, but these parameters hold |x| < "
                f"{self._value_bound:g} = 2^({self._bits[0]} - {self.scale_bits} - 1) (first prime "
                f"{self._bits[0]} bits, scale 2^{self.scale_bits}). Scale the values down, lower "
                f"scale_bits, or use he_ml.plan(max_value={m:g}, ...)."
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
        return chunks, {}

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
        return EncryptedVector(self, self._binary(x, y, "add", "addition"), x.shape, {})

    def _op_sub(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        return EncryptedVector(self, self._binary(x, y, "sub", "subtraction"), x.shape, {})

    def _plain_pieces(self, other: Any) -> list[Any]:
        if isinstance(other, np.ndarray):
            return [p.tolist() for p in self._pad(other.astype(np.float64), np.float64)]
        return [float(other)]

    def _op_add_plain(self, x: EncryptedVector, other: Any) -> EncryptedVector:
        self._check_magnitude(other if isinstance(other, np.ndarray) else float(other), "the plaintext addend")
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
        return EncryptedVector(self, out, x.shape, {})

    def _op_mul_plain(self, x: EncryptedVector, other: Any) -> EncryptedVector:
        self._check_magnitude(other if isinstance(other, np.ndarray) else float(other), "the plaintext factor")
        is_scalar = not isinstance(other, np.ndarray)
        integral = is_scalar and float(other).is_integer()
        if not integral:
            level = x.level
            if level < 1:
                raise self._depth_error("multiplication by a non-integer plaintext", self.max_depth - level)
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
        return EncryptedVector(self, out, x.shape, {})

    def _op_mul(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        lx, ly = x.level, y.level
        if min(lx, ly) < 1:
            raise self._depth_error("ciphertext x ciphertext multiplication", self.max_depth - min(lx, ly))
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
        return EncryptedVector(self, out, x.shape, {})

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

    def _op_sum(self, x: EncryptedVector) -> EncryptedVector:
        with self._seal_errors("sum"):
            total = self._add_chunks(list(x.chunks))
            if x.size > 1:
                total = self._rotate_sum(total, "sum")
        return EncryptedVector(self, [total], (1,), {})

    def _op_dot(self, x: EncryptedVector, w: np.ndarray) -> EncryptedVector:
        return self._op_sum(self._op_mul_plain(x, np.asarray(w, dtype=np.float64)))

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
        return EncryptedVector(self, [dst], x.shape, {})


# ---------------------------------------------------------------------------- helpers
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


# ---------------------------------------------------------------------------- fused multiply-accumulate
#: Memory budget of the per-call cache of encoded weights (conv kernels reuse a few values many times).
_WEIGHT_CACHE_BYTES = 256 << 20


def linear_map(context: CKKS, inputs: list[EncryptedVector], indptr: np.ndarray, indices: np.ndarray,
               data: np.ndarray, bias: np.ndarray,
               post: Callable[[EncryptedVector], EncryptedVector] | None = None) -> list[EncryptedVector]:
    """Encrypted ``y_o = sum_j W[o, j] * x_j + b_o`` for every output ``o``, one rescale per output.

    The inputs are encrypted vectors of the same shape (one per input feature, each holding many
    samples); ``W`` is given in CSR form (``indptr``, ``indices``, ``data``) so that zero weights
    cost nothing. Every weight is encoded at the scale of the prime the rescale removes, the
    products are summed at scale ``Delta * q_last`` and rescaled **once** per output (a rescale
    costs about four plaintext products), so the result has the inputs' scale ``Delta`` and one
    level less. The bias is added to the samples' slots only (padding slots stay zero, so a
    padding slot can never grow outside the modulus in later layers).

    Weights with ``|w| * q_last < 1/2`` encode to the zero polynomial and are skipped (their
    contribution is below ``2^-(bits of q_last)`` times the input, far under CKKS noise).

    Parameters
    ----------
    context : CKKS
    inputs : list of EncryptedVector
        Same size, same number of chunks, at the same level (>= 1).
    indptr, indices, data : ndarray
        CSR matrix of shape (len(bias), len(inputs)).
    bias : ndarray (n_outputs,)
    post : callable, optional
        Applied to each output as soon as it is computed (e.g. the next activation), so that the
        pre-activation ciphertext is freed at once: SEAL's memory pool keeps freed blocks per size,
        and a full stage of pre-activations would otherwise stay allocated.

    Returns
    -------
    list of EncryptedVector, one per output (``post`` applied), shape of the inputs.

    Raises
    ------
    DepthExhaustedError
        If the inputs have no level left.
    ShapeMismatchError
        Inconsistent sizes.
    """
    from ..errors import ShapeMismatchError
    if not inputs:
        raise ShapeMismatchError("linear_map needs at least one input vector.")
    n_out = int(len(bias))
    if len(indptr) != n_out + 1 or (len(indices) and int(np.max(indices)) >= len(inputs)):
        raise ShapeMismatchError(f"linear_map: weights of {len(indptr) - 1} rows / bias of {n_out} entries "
                                 f"do not match each other or the {len(inputs)} inputs.")
    first = inputs[0]
    n_chunks, shape, size = len(first.chunks), first.shape, first.size
    for v in inputs:
        context._check_same_key(v.context, "linear_map")
        if len(v.chunks) != n_chunks or v.size != size:
            raise ShapeMismatchError("linear_map: every input must hold the same number of values.")
    level = min(v.level for v in inputs)
    if level < 1:
        raise context._depth_error("a linear layer (plaintext multiply-accumulate)", context.max_depth - level)
    context._check_magnitude(np.asarray(bias, dtype=np.float64), "a bias")
    ev, enc, seal = context._evaluator, context._encoder, context._seal
    with context._seal_errors("linear layer"):
        # bring every input chunk to the common level (normally they already are)
        target = min((ct for v in inputs for ct in v.chunks), key=context._chain_index).parms_id()
        chunks = [[ct if ct.parms_id() == target else _switched(context, ct, target) for ct in v.chunks]
                  for v in inputs]
        scale_in = chunks[0][0].scale
        cdata = seal.get_context_data(target)
        q_last = float(cdata.parms().coeff_modulus()[-1].value())
        next_id = cdata.next_context_data().parms_id()
        slots = context.slot_count
        per_pt = context.poly_modulus_degree * len(cdata.parms().coeff_modulus()) * 8
        cache: dict[float, Any] = {}
        cache_cap = max(16, _WEIGHT_CACHE_BYTES // per_pt)

        def encoded(w: float) -> Any:
            pt = cache.get(w)
            if pt is None:
                pt = sa.Plaintext()
                enc.encode(w, target, q_last, pt)
                if len(cache) < cache_cap:
                    cache[w] = pt
            return pt

        real = [min(slots, size - p * slots) for p in range(n_chunks)]
        outputs = []
        tmp = sa.Ciphertext()
        for o in range(n_out):
            lo, hi = int(indptr[o]), int(indptr[o + 1])
            accs: list[Any] = [None] * n_chunks
            for j, w in zip(indices[lo:hi], data[lo:hi]):
                w = float(w)
                if abs(w) * q_last < 0.5:
                    continue
                pt = encoded(w)
                for p in range(n_chunks):
                    src = chunks[int(j)][p]
                    if accs[p] is None:
                        accs[p] = sa.Ciphertext()
                        ev.multiply_plain(src, pt, accs[p])
                    else:
                        ev.multiply_plain(src, pt, tmp)
                        tmp.scale = accs[p].scale  # equal up to double rounding of s * q_last
                        ev.add_inplace(accs[p], tmp)
            b = float(bias[o])
            out_chunks = []
            for p in range(n_chunks):
                acc = accs[p]
                if acc is None or acc.is_transparent():
                    acc = context._zero_like(next_id, scale_in)
                else:
                    ev.rescale_to_next_inplace(acc)
                    acc.scale = scale_in  # Delta * q_last / q_last
                if b != 0.0:
                    pt = sa.Plaintext()
                    if real[p] == slots:
                        enc.encode(b, acc.parms_id(), acc.scale, pt)
                    else:
                        vals = np.zeros(slots)
                        vals[:real[p]] = b
                        enc.encode(vals.tolist(), acc.parms_id(), acc.scale, pt)
                    ev.add_plain_inplace(acc, pt)
                out_chunks.append(acc)
            vec = EncryptedVector(context, out_chunks, shape, {})
            del accs, out_chunks
            outputs.append(vec if post is None else post(vec))
    return outputs


def _switched(context: CKKS, ct: Any, parms_id: Any) -> Any:
    out = sa.Ciphertext()
    context._evaluator.mod_switch_to(ct, parms_id, out)
    return out


def compact(context: CKKS, vector: EncryptedVector) -> EncryptedVector:
    """The same ciphertexts re-allocated at their exact size.

    A ciphertext x ciphertext product leaves SEAL's buffer sized for three polynomials at the
    higher level after relinearization and rescaling (measured at n = 16384: 2.27 MB kept per
    ciphertext instead of 1.28 MB); a network holding hundreds of activations keeps that waste.
    Copying (a mod-switch to the same level) allocates exactly two polynomials.
    """
    chunks = [context._copy(ct) if ct.size_capacity() > ct.size() else ct for ct in vector.chunks]
    return EncryptedVector(context, chunks, vector.shape, vector.meta)
