"""Ed25519 signatures on he_ml blobs: authenticity for contexts and ciphertexts a third party relays.

A blob's fingerprint binds everything public to one key pair, but a server that *relays* a
context to its clients could relay another one altogether (its own key pair, with every
fingerprint recomputed): nothing inside the bytes can tell, because every check a client can
run on public data the server can run too.  The remedy is the usual one: the key holder signs
what it publishes and clients pin the key holder's *verification* key (distributed out of
band, like an SSH host key).  The same envelope authenticates any blob (a ciphertext sent to
the key holder, an aggregate), which is the only way to make ciphertext metadata authentic
rather than merely consistent (see ``docs/binding-and-bounds.md``).

Envelope: a container of kind ``SIGNED`` whose header repeats the inner blob's scheme and
fingerprint, whose metadata names the algorithm and the signer's raw 32-byte public key, and
whose two sections are the inner blob and the 64-byte Ed25519 signature over
``DOMAIN || inner``.  The domain string separates these signatures from any other use of the
same key (e.g. the evaluation-key certificates in :mod:`he_ml.schemes.ckks`).

Security: Ed25519 (RFC 8032) via ``cryptography``; 128-bit security, deterministic signatures,
strongly unforgeable under chosen-message attack (Brendel et al., "The provable security of
Ed25519: theory and practice", IEEE S&P 2021).  The signer's private key never enters a blob.

References
----------
.. [1] S. Josefsson, I. Liusvaara, "Edwards-Curve Digital Signature Algorithm (EdDSA)",
   RFC 8032, 2017, Section 5.1.
"""
from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ContextMismatchError, InvalidCiphertextError, ParameterError
from ._format import Blob, Kind, pack_blob, unpack_blob

__all__ = [
    "generate_signing_key",
    "verification_key",
    "sign_blob",
    "verify_blob",
    "open_blob",
    "is_signed",
    "SIGNATURE_DOMAIN",
]

#: Domain separation for blob signatures (never reused for another message type).
SIGNATURE_DOMAIN = b"he_ml signed blob v1\x00"
_ALG = "ed25519"


def generate_signing_key() -> tuple[Ed25519PrivateKey, bytes]:
    """A fresh Ed25519 key pair for the key holder: ``(private_key, verification_key_bytes)``.

    Keep the private key with the secret context; publish the 32-byte verification key to
    clients out of band (configuration, a pinned constant) so they can pass it as
    ``verify_key=`` to ``he_ml.load_context``.

    Returns
    -------
    private_key : cryptography Ed25519PrivateKey
        Drawn from the operating system's CSPRNG by ``cryptography``.
    verification_key : bytes
        Its raw 32-byte public key.

    Example
    -------
    >>> import he_ml
    >>> sk, vk = he_ml.generate_signing_key()
    >>> len(vk)
    32
    """
    sk = Ed25519PrivateKey.generate()
    return sk, verification_key(sk)


def verification_key(private_key: Any) -> bytes:
    """The raw 32-byte Ed25519 public key of ``private_key``."""
    sk = _private_key(private_key)
    return sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _private_key(key: Any) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return Ed25519PrivateKey.from_private_bytes(bytes(key))
    raise ParameterError(
        f"a signing key must be a cryptography Ed25519PrivateKey or its 32 raw bytes; got "
        f"{type(key).__name__}{' of length ' + str(len(key)) if isinstance(key, (bytes, bytearray)) else ''}. "
        f"Create one with he_ml.generate_signing_key()."
    )


def _public_key_bytes(key: Any) -> bytes:
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return bytes(key)
    raise ParameterError(
        f"verify_key must be an Ed25519 public key (cryptography Ed25519PublicKey or its 32 raw "
        f"bytes); got {type(key).__name__}"
        f"{' of length ' + str(len(key)) if isinstance(key, (bytes, bytearray)) else ''}. Pass the "
        f"verification key returned by he_ml.generate_signing_key()."
    )


def sign_blob(data: bytes, private_key: Any) -> bytes:
    """Wrap an he_ml blob in a signed envelope.

    Parameters
    ----------
    data : bytes
        Any he_ml blob (``ctx.to_bytes()``, ``vector.to_bytes()``, an aggregate); it is parsed
        first, so damaged bytes are refused here rather than signed.
    private_key : Ed25519PrivateKey or 32 bytes
        From `generate_signing_key`.

    Returns
    -------
    bytes
        The envelope; ``he_ml.load_context`` / ``ctx.ciphertext_from_bytes`` accept it directly.

    Raises
    ------
    InvalidCiphertextError
        If `data` is not an intact he_ml blob, or is itself an envelope.
    ParameterError
        If `private_key` is not an Ed25519 private key.
    """
    inner = unpack_blob(data)
    if inner.kind == Kind.SIGNED:
        raise InvalidCiphertextError(
            "sign_blob: the blob is already signed; sign the original blob (verify_blob returns it)."
        )
    sk = _private_key(private_key)
    signer = verification_key(sk)
    sig = sk.sign(SIGNATURE_DOMAIN + bytes(data))
    return pack_blob(Kind.SIGNED, inner.scheme, inner.fingerprint,
                     {"alg": _ALG, "signer": signer.hex()}, [bytes(data), sig])


def is_signed(data: bytes) -> bool:
    """Whether `data` is a signed envelope (parses the header and checksum only)."""
    return unpack_blob(data).kind == Kind.SIGNED


def _check_envelope(env: Blob) -> tuple[bytes, bytes, bytes]:
    meta = env.metadata
    if meta.get("alg") != _ALG or not isinstance(meta.get("signer"), str) or len(env.sections) != 2:
        raise InvalidCiphertextError(
            f"signed blob: the envelope must name alg {_ALG!r}, a signer key and hold 2 sections; got "
            f"alg={meta.get('alg')!r} and {len(env.sections)} section(s). Re-send the original bytes."
        )
    try:
        signer = bytes.fromhex(meta["signer"])
    except ValueError:
        signer = b""
    inner, sig = env.sections
    if len(signer) != 32 or len(sig) != 64:
        raise InvalidCiphertextError(
            f"signed blob: signer key must be 32 bytes and the signature 64; got {len(signer)} and "
            f"{len(sig)}. The envelope was corrupted or forged."
        )
    return signer, inner, sig


def open_blob(data: bytes, verify_key: Any = None) -> bytes:
    """Return the blob inside a signed envelope after checking its signature (or `data` as is).

    Parameters
    ----------
    data : bytes
        A blob, signed or not.
    verify_key : Ed25519PublicKey or 32 bytes, optional
        The pinned key of the expected signer. When given, `data` MUST be an envelope signed
        by exactly this key. When omitted, an envelope is still verified against the key it
        names (integrity only: anyone can sign with a key of their own) and unsigned blobs
        pass through.

    Raises
    ------
    ContextMismatchError
        If `verify_key` is given and the blob is unsigned or signed by another key.
    InvalidCiphertextError
        If the envelope is malformed or its signature does not verify (content changed).
    """
    pinned = None if verify_key is None else _public_key_bytes(verify_key)
    if pinned is None and isinstance(data, bytes) and len(data) > 7 and data[6] != Kind.SIGNED:
        return data  # not an envelope (header kind byte): the caller parses and checks it fully
    env = unpack_blob(data)
    if env.kind != Kind.SIGNED:
        if pinned is not None:
            raise ContextMismatchError(
                f"the {env.kind.name.lower()} blob is not signed, but a verification key was pinned "
                f"({pinned.hex()[:16]}…); a relay may have replaced it. Ask the key holder for the "
                f"signed blob (he_ml.sign_blob(blob, signing_key)) or drop verify_key= if you do not "
                f"need authenticity."
            )
        return bytes(data) if not isinstance(data, bytes) else data
    signer, inner, sig = _check_envelope(env)
    if pinned is not None and signer != pinned:
        raise ContextMismatchError(
            f"the blob is signed by key {signer.hex()[:16]}…, not by the pinned key "
            f"{pinned.hex()[:16]}…; it does not come from the expected key holder (a relay swapped "
            f"it). Refusing it."
        )
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(sig, SIGNATURE_DOMAIN + inner)
    except (InvalidSignature, ValueError) as e:
        raise InvalidCiphertextError(
            "signed blob: the Ed25519 signature does not verify; the content was altered after "
            "signing. Refusing it; re-send the original bytes."
        ) from e
    head = unpack_blob(inner)
    if head.kind == Kind.SIGNED or head.scheme != env.scheme or head.fingerprint != env.fingerprint:
        raise InvalidCiphertextError(
            "signed blob: the envelope header does not match the signed blob inside it; it was forged."
        )
    return inner


def verify_blob(data: bytes, verify_key: Any) -> bytes:
    """Check that `data` is signed by `verify_key` and return the inner blob.

    Same as ``open_blob(data, verify_key)`` with a required key.

    Example
    -------
    >>> import he_ml
    >>> sk, vk = he_ml.generate_signing_key()
    >>> ctx = he_ml.Paillier(1024, allow_insecure=True)
    >>> signed = he_ml.sign_blob(ctx.to_bytes(), sk)
    >>> he_ml.verify_blob(signed, vk) == ctx.to_bytes()
    True
    """
    if verify_key is None:
        raise ParameterError("verify_blob: verify_key is required; use open_blob to accept unsigned blobs.")
    return open_blob(data, verify_key)
