"""Raw RNS access to SEAL objects for multiparty (committee) keys.

Used by :mod:`he_ml.aggregation.committee_lattice` / ``committee_keygen``: ciphertexts and public
keys as uint64 RNS arrays (NTT form) and back, the modulus chain, contexts built around a
collective public key, and a private zero-key decoder for combined decryptions. Part of the SEAL
backend: it reaches SEAL only through :mod:`he_ml.schemes.ckks` (the module that imports
TenSEAL) and only reads/writes SEAL objects through SEAL's own serialization format (SEAL 4.x,
uncompressed), so SEAL validates every object it loads.
"""
from __future__ import annotations

import hashlib
import struct as _struct
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import InvalidCiphertextError, ParameterError
from .ckks import (
    _COMPR_NONE,
    _SEAL_HEADER_BYTES,
    _SEAL_MAGIC,
    CKKS,
    _raw_public,
    _seal_from_bytes,
    _seal_to_bytes,
    _SEALContext,
    sa,
    seal_serialization_version,
)

__all__ = ["ciphertext_to_rns", "ciphertext_from_rns", "rns_moduli", "with_public_key", "plaintext_decoder",
           "multiparty_context"]

# ============================================================================================
# Raw RNS access for multiparty (committee) keys -- used by he_ml.aggregation.committee_lattice
# (branch h9-committee). Everything below only reads/writes SEAL objects through SEAL's own
# serialization format (SEAL 4.x, uncompressed), so SEAL validates every object it loads.
# ============================================================================================

# The header constants and the SEAL version are the module's shared ones (section "SEAL
# versions" above): the loader's decompression and version checks compare against the same
# _SEAL_MAGIC, so this section must not rebind those names.
_RAW_HEADER = _struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compr_mode, reserved, size
_RAW_MAGIC = int.from_bytes(_SEAL_MAGIC, "little")  # 0xA15E


def _seal_version() -> tuple[int, int]:
    """(major, minor) of the linked SEAL, read from the header of a saved object."""
    major, minor = seal_serialization_version().split(".")
    return int(major), int(minor)


def _seal_object_bytes(payload: bytes) -> bytes:
    """An uncompressed SEAL object: 16-byte header + ``payload``."""
    major, minor = _seal_version()
    return _RAW_HEADER.pack(_RAW_MAGIC, _SEAL_HEADER_BYTES, major, minor, _COMPR_NONE, 0,
                            _SEAL_HEADER_BYTES + len(payload)) + payload


def _dynarray_bytes(values: np.ndarray) -> bytes:
    data = np.ascontiguousarray(values, dtype="<u8").tobytes()
    return _seal_object_bytes(_struct.pack("<Q", len(data) // 8) + data)


def _uncompressed_payload(obj: Any) -> bytes | None:
    """SEAL ``save`` output without its header, decompressed; None if the codec is unavailable."""
    raw = _seal_to_bytes(obj)
    magic, _, _, _, compr, _, _ = _RAW_HEADER.unpack_from(raw, 0)
    if magic != _RAW_MAGIC:  # pragma: no cover - SEAL always writes its magic
        raise InvalidCiphertextError("seal: saved object has no SEAL header.")
    body = raw[16:]
    if compr == 0:
        return body
    if compr == 1:
        import zlib

        return zlib.decompress(body)
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 31)


def ciphertext_to_rns(ct: Any) -> np.ndarray:
    """The polynomials of a SEAL ciphertext (or public key's ciphertext) as uint64 ``(size, L, n)``.

    Parameters
    ----------
    ct : seal Ciphertext
        Any ciphertext; ``ct.is_ntt_form()`` tells the representation (CKKS: NTT form,
        evaluations in the same bit-reversed order as :func:`he_ml.native.ntt`; BFV:
        coefficients). Row ``j`` of every polynomial is reduced modulo the ``j``-th prime of
        the ciphertext's level.

    Returns
    -------
    ndarray of uint64, shape ``(ct.size(), ct.coeff_modulus_size(), ct.poly_modulus_degree())``
    """
    shape = (ct.size(), ct.coeff_modulus_size(), ct.poly_modulus_degree())
    count = shape[0] * shape[1] * shape[2]
    body = _uncompressed_payload(ct)
    if body is not None:
        return np.frombuffer(body[len(body) - 8 * count:], dtype="<u8").astype(np.uint64).reshape(shape)
    arr = ct.dyn_array()  # slow path without the zstandard codec (~0.2 us per coefficient)
    return np.fromiter((arr.at(i) for i in range(count)), dtype=np.uint64, count=count).reshape(shape)


def ciphertext_from_rns(ctx: "_SEALContext", polys: np.ndarray, *, parms_id: Any, ntt_form: bool,
                        scale: float = 1.0) -> Any:
    """Build (and let SEAL validate) a ciphertext from uint64 RNS polynomials ``(size, L, n)``.

    Raises
    ------
    InvalidCiphertextError
        If SEAL rejects the data (a coefficient not below its prime, wrong level or size).
    """
    polys = np.ascontiguousarray(polys, dtype=np.uint64)
    size, levels, n = polys.shape
    meta = _struct.pack("<4QBQQQdQ", *[int(x) for x in parms_id], 1 if ntt_form else 0, size, n, levels,
                        float(scale), 1)
    data = _seal_object_bytes(meta + _dynarray_bytes(polys.reshape(-1)))
    with ctx._seal_errors("building a ciphertext from RNS data", invalid=True):
        return _seal_from_bytes(sa.Ciphertext(), data, ctx._seal)


def rns_moduli(ctx: "_SEALContext") -> dict[str, Any]:
    """The ring size and modulus chain of a CKKS/BFV context, as plain ints.

    Returns
    -------
    dict
        ``n``; ``key_primes`` (every prime, the special prime last, as SEAL orders them);
        ``data_primes`` (the primes of a fresh ciphertext); ``key_parms_id`` and
        ``first_parms_id`` (SEAL's level identifiers, 4-tuples of ints).
    """
    key = ctx._seal.key_context_data()
    first = ctx._seal.first_context_data()
    return {"n": ctx._n,
            "key_primes": [int(m.value()) for m in key.parms().coeff_modulus()],
            "data_primes": [int(m.value()) for m in first.parms().coeff_modulus()],
            "key_parms_id": tuple(int(x) for x in ctx._seal.key_parms_id()),
            "first_parms_id": tuple(int(x) for x in ctx._seal.first_parms_id())}


def with_public_key(ctx: "_SEALContext", pk_rns: np.ndarray) -> "_SEALContext":
    """A public context (no secret key) of ``ctx``'s parameters whose public key is ``pk_rns``.

    Parameters
    ----------
    ctx : CKKS or BFV context
        Supplies parameters, encoder settings and ``_extra``; its own keys are not used.
    pk_rns : ndarray of uint64, shape ``(2, K, n)``
        ``(p0, p1)`` in NTT form over all ``K`` primes (the key level), e.g. a collective
        public key ``p0 = -(a s + e)``, ``p1 = a``.
    """
    info = rns_moduli(ctx)
    pk_rns = np.ascontiguousarray(pk_rns, dtype=np.uint64)
    if pk_rns.shape != (2, len(info["key_primes"]), info["n"]):
        raise ParameterError(f"{ctx.name}: a public key needs shape (2, {len(info['key_primes'])}, {info['n']}); "
                             f"got {pk_rns.shape}.")
    meta = _struct.pack("<4QBQQQdQ", *info["key_parms_id"], 1, 2, info["n"], len(info["key_primes"]), 1.0, 1)
    pk_bytes = _seal_object_bytes(meta + _dynarray_bytes(pk_rns.reshape(-1)))
    with ctx._seal_errors("building a public key from RNS data", invalid=True):
        pk = _seal_from_bytes(sa.PublicKey(), pk_bytes, ctx._seal)
    pk_bytes = _seal_to_bytes(pk)  # canonical SEAL bytes (the fingerprint hashes these)
    twin = object.__new__(type(ctx))
    twin._extra = dict(ctx._extra)
    # Nobody holds a committee's secret key, so nobody may certify evaluation keys for it: the
    # certification key is derived publicly from the public key (every member computes the same
    # fingerprint) and only signs "no evaluation keys"; loading a multiparty context that carries
    # relinearization/Galois keys is refused (_verify_eval_keys), so a forged certificate is useless.
    cert_sk = Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"he_ml/committee/no-evaluation-keys/" + pk_bytes).digest())
    twin._setup(preset=ctx._preset, allow_insecure=ctx._allow_insecure, seal=ctx._seal,
                parms_bytes=ctx._parms_bytes, pk=pk, pk_bytes=pk_bytes, sk=None,
                cert_vk=_raw_public(cert_sk), cert_sk=cert_sk)
    twin._cert_sk = None  # publicly derivable: never used to sign anything else
    twin._register()
    return twin


def plaintext_decoder(pub: "_SEALContext") -> "_SEALContext":
    """A private twin of ``pub`` whose secret key is 0, to decode combined decryptions.

    ``decrypt`` of a ciphertext ``(x, 0)`` under the zero key returns ``x`` itself, so the
    scheme's own decoding (BFV's ``round(t/q * x)``, CKKS's scale and canonical embedding,
    he_ml's range checks) runs unchanged on a combined committee decryption ``x``. The twin
    is never registered nor returned to users: it would "encrypt" in the clear.
    """
    info = rns_moduli(pub)
    k, n = len(info["key_primes"]), info["n"]
    meta = _struct.pack("<4QQd", *info["key_parms_id"], k * n, 1.0)
    sk_bytes = _seal_object_bytes(meta + _dynarray_bytes(np.zeros(k * n, dtype=np.uint64)))
    with pub._seal_errors("building the decoder key", invalid=True):
        sk = _seal_from_bytes(sa.SecretKey(), sk_bytes, pub._seal)
    twin = object.__new__(type(pub))
    twin._extra = dict(pub._extra)
    twin._setup(preset=pub._preset, allow_insecure=pub._allow_insecure, seal=pub._seal,
                parms_bytes=pub._parms_bytes, pk=pub._pk, pk_bytes=pub._pk_bytes, sk=sk,
                cert_vk=pub._cert_vk)
    return twin


def multiparty_context(scheme: str, *, poly_modulus_degree: int, coeff_mod_bit_sizes: list[int],
                       scale_bits: int | None = None, plain_modulus_bits: int | None = None,
                       fixed_point_bits: int | None = None) -> "_SEALContext":
    """A CKKS/BFV context marked ``multiparty`` (its own keys are placeholders, replaced by
    :func:`with_public_key`). For CKKS the mark lets the scale use the whole data modulus
    (``scale_bits < sum(data primes)``) instead of the first prime only: a committee's
    smudging noise needs a scale far above 60 bits, and a sum-only context never rescales.
    """
    if scheme == "ckks":
        ctx = object.__new__(CKKS)
        extra = {"scale_bits": int(scale_bits), "multiparty": True}
    else:
        from .bfv import BFV

        ctx = object.__new__(BFV)
        from .bfv import default_fixed_point_bits

        fb = default_fixed_point_bits(int(plain_modulus_bits)) if fixed_point_bits is None else int(fixed_point_bits)
        extra = {"plain_modulus_bits": int(plain_modulus_bits), "fixed_point_bits": fb, "multiparty": True}
    ctx._build(preset=None, n=int(poly_modulus_degree), bits=[int(b) for b in coeff_mod_bit_sizes],
               rotations=None, relin_keys=False, allow_insecure=False, extra=extra)
    return ctx
