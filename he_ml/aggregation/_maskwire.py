"""Byte framing and key derivation shared by the masked-round parties (internal).

A message is ``MAGIC (4) | version (1) | type (1) | header length (4) | JSON header |
section count (4) | (length (4) | bytes) * count``. Every length is checked against the
remaining buffer before slicing (nothing is allocated from a length field), and any
deviation raises `InvalidCiphertextError`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ContextMismatchError, InvalidCiphertextError, ParameterError

MAGIC = b"HEMR"
VERSION = 1
TYPES = {"advertise": 1, "keys": 2, "shares": 3, "routed": 4, "masked": 5, "unmask_request": 6,
         "unmask": 7, "evidence": 8, "receipt": 9, "client_state": 10}
_TYPE_NAMES = {v: k for k, v in TYPES.items()}
MAX_HEADER = 1 << 24
MAX_SECTIONS = 1 << 22
_U32 = struct.Struct(">I")

RAW = serialization.Encoding.Raw
RAW_PUB = serialization.PublicFormat.Raw
RAW_PRIV = serialization.PrivateFormat.Raw
NOENC = serialization.NoEncryption()


def pack(kind: str, header: dict[str, Any], sections: list[bytes] = ()) -> bytes:
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    parts = [MAGIC, bytes([VERSION, TYPES[kind]]), _U32.pack(len(head)), head, _U32.pack(len(sections))]
    for s in sections:
        parts.append(_U32.pack(len(s)))
        parts.append(bytes(s))
    return b"".join(parts)


def unpack(data: Any, kind: str, what: str) -> tuple[dict[str, Any], list[bytes]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidCiphertextError(f"{what} must be bytes; got {type(data).__name__}. Pass the bytes the "
                                     f"other party's stage function returned.")
    data = bytes(data)

    def bad(msg: str) -> InvalidCiphertextError:
        return InvalidCiphertextError(f"{what} is malformed ({msg}); pass the exact bytes the sending party's "
                                      f"stage function returned for this stage.")

    if len(data) < 14 or data[:4] != MAGIC:
        raise bad("no masked-round magic header")
    if data[4] != VERSION:
        raise bad(f"version {data[4]}, this he_ml reads {VERSION}")
    got = _TYPE_NAMES.get(data[5], f"unknown ({data[5]})")
    if got != kind:
        raise InvalidCiphertextError(f"{what} is a {got!r} message, expected {kind!r}; messages were passed to "
                                     f"the wrong stage (run the stages in order: advertise, share keys, masked "
                                     f"input, unmask).")
    (hlen,) = _U32.unpack_from(data, 6)
    pos = 10
    if hlen > MAX_HEADER or pos + hlen + 4 > len(data):
        raise bad(f"header length {hlen} exceeds the message")
    try:
        header = json.loads(data[pos:pos + hlen])
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(f"header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise bad("header is not an object")
    pos += hlen
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    if count > MAX_SECTIONS or count * 4 > len(data) - pos:
        raise bad(f"{count} sections cannot fit")
    sections = []
    for _ in range(count):
        if pos + 4 > len(data):
            raise bad("truncated section length")
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if n > len(data) - pos:
            raise bad(f"section of {n} bytes exceeds the message")
        sections.append(data[pos:pos + n])
        pos += n
    if pos != len(data):
        raise bad(f"{len(data) - pos} trailing bytes")
    return header, sections


def field(header: dict[str, Any], key: str, typ: type | tuple, what: str) -> Any:
    v = header.get(key)
    if not isinstance(v, typ) or isinstance(v, bool):
        raise InvalidCiphertextError(f"{what}: header field {key!r} must be {typ}; got {v!r}.")
    return v


def id_list(header: dict[str, Any], key: str, what: str, limit: int = 1 << 20) -> list[int]:
    v = header.get(key)
    if not isinstance(v, list) or len(v) > limit or not all(isinstance(i, int) and not isinstance(i, bool)
                                                            and 1 <= i < 2**31 for i in v):
        raise InvalidCiphertextError(f"{what}: header field {key!r} must be a list of client ids; got "
                                     f"{str(v)[:80]}.")
    if len(set(v)) != len(v):
        raise InvalidCiphertextError(f"{what}: header field {key!r} repeats a client id.")
    return v


def check_round(header: dict[str, Any], round_id: str, what: str) -> None:
    got = header.get("round")
    if got != round_id:
        raise ContextMismatchError(f"{what} belongs to round {got!r}, not {round_id!r}; a message from another "
                                   f"round (or a replay) is refused. Run each round with fresh client state.")


@functools.lru_cache(maxsize=64)
def round_hash(round_id: str) -> bytes:
    return hashlib.sha256(b"he_ml/masked-round/v1/" + round_id.encode()).digest()


def hkdf(secret: bytes, round_id: str, label: str, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) with the round hash as salt and ``label`` as info."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=round_hash(round_id),
                info=b"he_ml/masked-round/v1/" + label.encode()).derive(secret)


def x25519_pub(data: bytes, what: str) -> X25519PublicKey:
    if len(data) != 32:
        raise InvalidCiphertextError(f"{what}: an X25519 public key is 32 bytes; got {len(data)}.")
    return X25519PublicKey.from_public_bytes(data)


def pub_bytes(key: Any) -> bytes:
    return key.public_key().public_bytes(RAW, RAW_PUB) if hasattr(key, "public_key") else key.public_bytes(RAW, RAW_PUB)


def agree(priv: X25519PrivateKey, pub: bytes, what: str) -> bytes:
    try:
        return priv.exchange(x25519_pub(pub, what))
    except ValueError as e:  # all-zero shared secret: a low-order public key
        raise InvalidCiphertextError(f"{what}: the X25519 public key is of low order ({e}); refused.") from e


def seal(key: bytes | ChaCha20Poly1305, plaintext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 with a random 96-bit nonce (``key``: 32 bytes, or an AEAD object built from them)."""
    nonce = os.urandom(12)
    aead = key if isinstance(key, ChaCha20Poly1305) else ChaCha20Poly1305(key)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes | ChaCha20Poly1305, data: bytes, aad: bytes, what: str) -> bytes:
    if len(data) < 28:
        raise InvalidCiphertextError(f"{what}: an AEAD ciphertext has at least 28 bytes; got {len(data)}.")
    try:
        aead = key if isinstance(key, ChaCha20Poly1305) else ChaCha20Poly1305(key)
        return aead.decrypt(data[:12], data[12:], aad)
    except InvalidTag as e:
        raise InvalidCiphertextError(f"{what}: authentication failed (forged, altered, or sealed for another "
                                     f"party or round); refused.") from e


def sign(identity: Ed25519PrivateKey | None, message: bytes) -> bytes:
    return b"" if identity is None else identity.sign(message)


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def as_identity(identity: Any) -> Ed25519PrivateKey | None:
    if identity is None or isinstance(identity, Ed25519PrivateKey):
        return identity
    if isinstance(identity, (bytes, bytearray)) and len(identity) == 32:
        return Ed25519PrivateKey.from_private_bytes(bytes(identity))
    raise ParameterError(f"identity must be an Ed25519PrivateKey or its 32 raw bytes; got "
                         f"{type(identity).__name__}. Create one with he_ml.aggregation.new_identity().")


def as_public_registry(identities: Any, what: str) -> dict[int, bytes] | None:
    if identities is None:
        return None
    out = {}
    try:
        items = identities.items()
    except AttributeError as e:
        raise ParameterError(f"{what} must be a mapping client id -> Ed25519 public key bytes; got "
                             f"{type(identities).__name__}.") from e
    for cid, pk in items:
        if isinstance(pk, Ed25519PublicKey):
            pk = pk.public_bytes(RAW, RAW_PUB)
        if isinstance(cid, bool) or not isinstance(cid, int) or not isinstance(pk, (bytes, bytearray)) \
                or len(pk) != 32:
            raise ParameterError(f"{what}: each entry must be int id -> 32-byte Ed25519 public key; got "
                                 f"{cid!r} -> {type(pk).__name__}.")
        out[cid] = bytes(pk)
    return out


def advert_message(round_id: str, cid: int, c_pk: bytes, s_pk: bytes) -> bytes:
    return b"he_ml/masked-round/v1/advertise" + round_hash(round_id) + cid.to_bytes(4, "big") + c_pk + s_pk


def survivors_message(round_id: str, survivors: list[int]) -> bytes:
    body = b"".join(i.to_bytes(4, "big") for i in sorted(survivors))
    return b"he_ml/masked-round/v1/survivors" + round_hash(round_id) + hashlib.sha256(body).digest()
