"""The he_ml blob container: self-describing, versioned, checksummed bytes.

Every context, ciphertext vector and aggregation blob that leaves a process is
wrapped in this container so that a reader can tell, before handing a single
byte to a native library, what it is, which scheme and parameters produced it,
which public key it belongs to, and whether it was damaged in transit.

Layout (all integers little-endian)::

    offset  size  field
    0       4     magic  b"HEML"
    4       2     format version (currently 2; see FORMAT_VERSION)
    6       1     kind   (see ``Kind``)
    7       1     scheme (see ``SCHEME_IDS``)
    8       16    public-key fingerprint (zeros if not applicable)
    24      4     length M of the metadata
    28      M     metadata: UTF-8 JSON object
    28+M    4     number S of sections
    ...           S times: 8-byte length L, then L bytes (opaque backend payload)
    end-4   4     CRC-32 of every preceding byte

The CRC is not a security measure (anyone can recompute it); it makes random
corruption and truncation fail in this parser with `InvalidCiphertextError`
instead of reaching TenSEAL/SEAL or gmpy2 with garbage.  Authenticity of blobs
is out of scope: an attacker who can replace blobs can always send a valid
encryption of anything under the public key.
"""
from __future__ import annotations

import enum
import json
import math
import struct
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import ContextMismatchError, InvalidCiphertextError
from .limits import limit

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "Kind",
    "SCHEME_IDS",
    "Blob",
    "pack_blob",
    "unpack_blob",
    "MAX_SECTIONS",
    "parse_metadata",
]

MAGIC = b"HEML"
#: 2: SEAL context fingerprints cover the encoding and a key-certification key, public contexts
#: carry a signed certificate of their evaluation keys, ciphertexts carry CKKS magnitude bounds,
#: and ``Kind.SIGNED`` envelopes exist (docs/binding-and-bounds.md). Version-1 blobs are refused:
#: their fingerprints do not bind the encoding, so they cannot be checked for tampering.
FORMAT_VERSION = 2
FINGERPRINT_BYTES = 16
MAX_METADATA_BYTES = limit("metadata_bytes_max")  # see he_ml.schemes.limits for the reasons
MAX_SECTIONS = limit("sections_max")

_HEAD = struct.Struct("<4sHBB16sI")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Kind(enum.IntEnum):
    """What a blob holds."""

    PUBLIC_CONTEXT = 1
    SECRET_CONTEXT = 2
    CIPHERTEXT = 3
    AGGREGATE = 4
    SIGNED = 5  # an Ed25519 envelope around another blob (he_ml.schemes.signing)


SCHEME_IDS = {"ckks": 1, "bfv": 2, "paillier": 3}
_SCHEME_NAMES = {v: k for k, v in SCHEME_IDS.items()}


@dataclass(frozen=True)
class Blob:
    """A parsed container: header fields, JSON metadata and opaque sections."""

    kind: Kind
    scheme: str
    fingerprint: bytes
    metadata: dict[str, Any]
    sections: list[bytes] = field(default_factory=list)

    def expect(self, *, kind: Kind | tuple[Kind, ...] | None = None, scheme: str | None = None,
               fingerprint: bytes | None = None, what: str = "blob") -> "Blob":
        """Check kind, scheme and key fingerprint; raise the matching he_ml error otherwise."""
        if kind is not None:
            kinds = kind if isinstance(kind, tuple) else (kind,)
            if self.kind not in kinds:
                raise InvalidCiphertextError(
                    f"{what} must be a {' or '.join(k.name.lower() for k in kinds)} blob; "
                    f"got a {self.kind.name.lower()} blob. Pass the bytes produced by the matching "
                    f"to_bytes() call."
                )
        if scheme is not None and self.scheme != scheme:
            raise ContextMismatchError(
                f"{what} was produced by the {self.scheme!r} scheme but this context is {scheme!r}; "
                f"load it with a {self.scheme!r} context (he_ml.load_context on its context blob)."
            )
        if fingerprint is not None and self.fingerprint != fingerprint:
            raise ContextMismatchError(
                f"{what} belongs to another key (public-key fingerprint {self.fingerprint.hex()} "
                f"!= this context's {fingerprint.hex()}); it was encrypted under a different context. "
                f"Encrypt with this context's public_context(), or decrypt with the context that made it."
            )
        return self


def pack_blob(kind: Kind, scheme: str, fingerprint: bytes, metadata: dict[str, Any],
              sections: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    """Serialize a container. `metadata` must be JSON-serializable."""
    if scheme not in SCHEME_IDS:
        raise ValueError(f"scheme must be one of {sorted(SCHEME_IDS)}; got {scheme!r}")
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes; got {len(fingerprint)}")
    # allow_nan=False: Infinity/NaN are not JSON and the reader refuses them
    meta = json.dumps(metadata, separators=(",", ":"), sort_keys=True, allow_nan=False).encode("utf-8")
    parts = [
        _HEAD.pack(MAGIC, FORMAT_VERSION, int(kind), SCHEME_IDS[scheme], fingerprint, len(meta)),
        meta,
        _U32.pack(len(sections)),
    ]
    for s in sections:
        parts.append(_U64.pack(len(s)))
        parts.append(bytes(s))
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body) & 0xFFFFFFFF)


def _bad(msg: str) -> InvalidCiphertextError:
    return InvalidCiphertextError(
        f"not a valid he_ml blob: {msg}. The bytes are truncated, corrupted or were not produced "
        f"by he_ml's to_bytes(); re-send the original bytes."
    )


def unpack_blob(data: bytes | bytearray | memoryview) -> Blob:
    """Parse and verify a container. Never trusts a length field beyond the buffer.

    Raises
    ------
    InvalidCiphertextError
        If the bytes are not a complete, undamaged he_ml blob of a known version.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidCiphertextError(
            f"expected bytes from to_bytes(); got {type(data).__name__}. Pass the bytes object itself."
        )
    if len(data) > limit("blob_bytes_max"):
        raise _bad(f"{len(data)} bytes exceeds the {limit('blob_bytes_max')}-byte blob limit")
    data = bytes(data)
    total = len(data)
    if total < _HEAD.size + 4 + 4:
        raise _bad(f"{total} bytes is shorter than the {_HEAD.size + 8}-byte minimum")
    if data[:4] != MAGIC:
        raise _bad(f"magic must be {MAGIC!r}; got {data[:4]!r}")
    crc_stored = _U32.unpack_from(data, total - 4)[0]
    if zlib.crc32(memoryview(data)[:-4]) & 0xFFFFFFFF != crc_stored:  # a view: no copy of a large blob
        raise _bad("checksum mismatch")
    magic, version, kind_id, scheme_id, fp, meta_len = _HEAD.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise InvalidCiphertextError(
            f"blob format version must be {FORMAT_VERSION}; got {version}. It was written by a "
            f"different he_ml release; re-create it with this version."
        )
    try:
        kind = Kind(kind_id)
    except ValueError:
        raise _bad(f"unknown blob kind {kind_id}") from None
    if scheme_id not in _SCHEME_NAMES:
        raise _bad(f"unknown scheme id {scheme_id}")
    end = total - 4
    pos = _HEAD.size
    if meta_len > MAX_METADATA_BYTES or pos + meta_len + 4 > end:
        raise _bad(f"metadata length {meta_len} exceeds the buffer")
    metadata = parse_metadata(data[pos:pos + meta_len])
    pos += meta_len
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    if count > MAX_SECTIONS or count * 8 > end - pos:
        raise _bad(f"section count {count} exceeds the buffer")
    sections = []
    for i in range(count):
        if pos + 8 > end:
            raise _bad(f"section {i} header is truncated")
        (length,) = _U64.unpack_from(data, pos)
        pos += 8
        if length > end - pos:
            raise _bad(f"section {i} length {length} exceeds the buffer")
        sections.append(data[pos:pos + length])
        pos += length
    if pos != end:
        raise _bad(f"{end - pos} trailing bytes after the last section")
    return Blob(kind, _SCHEME_NAMES[scheme_id], fp, metadata, sections)


class _MetadataError(Exception):
    """Raised inside the JSON hooks; turned into InvalidCiphertextError by parse_metadata."""


_PARSE_STATE = threading.local()


def _parse_int(text: str) -> int:
    if len(text) <= 19:
        return int(text)
    digits = len(text) - (text[:1] == "-")
    if digits > limit("json_int_digits_max"):
        raise _MetadataError(f"an integer of {digits} digits exceeds the {limit('json_int_digits_max')}-digit limit")
    if digits > 19:  # beyond int64: count them, the conversion is quadratic in the digits
        left = getattr(_PARSE_STATE, "big_ints_left", limit("json_big_ints_max")) - 1
        if left < 0:
            raise _MetadataError(f"more than {limit('json_big_ints_max')} integers beyond 19 digits")
        _PARSE_STATE.big_ints_left = left
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 64:  # a double needs 17 significant digits and a 3-digit exponent
        raise _MetadataError(f"a number literal of {len(text)} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _MetadataError(f"the number {text[:24]} overflows a double")
    return value


def _parse_constant(name: str) -> float:
    raise _MetadataError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


_CONTAINERS = frozenset((dict, list))


def _check_shape_of_json(value: Any, check_floats: bool = False) -> None:
    """Level-by-level walk: nesting depth and number of values within the limits.

    Scalars are counted with ``len`` and their types looked at with C-level ``map``/``set``,
    so a 100,000-element list of numbers costs a few milliseconds, not a Python call each.
    With ``check_floats`` (the fast decoder, which has no float hook), a float that
    overflowed to infinity is refused here instead.
    """
    max_depth, max_nodes = limit("json_depth_max"), limit("json_nodes_max")
    nodes = 1
    level = [value] if type(value) in _CONTAINERS else []
    if check_floats and type(value) is float and math.isinf(value):
        raise _MetadataError("a number overflows a double")
    depth = 1
    while level:
        if depth > max_depth:
            raise _MetadataError(f"nesting deeper than {max_depth} levels")
        below = []
        for v in level:
            children = list(v.values()) if type(v) is dict else v
            nodes += len(children)
            if nodes > max_nodes:
                raise _MetadataError(f"more than {max_nodes} JSON values")
            kinds = set(map(type, children))
            if kinds & _CONTAINERS:
                below.extend(c for c in children if type(c) in _CONTAINERS)
            if check_floats and float in kinds and any(math.isinf(c) for c in children if type(c) is float):
                raise _MetadataError("a number overflows a double")
        level = below
        depth += 1


# Text that may need the hooked decoder: a digit run of 20 or more, i.e. an integer beyond
# int64 (whose conversion is quadratic and counted) or a number literal over 64 characters
# (which must hold such a run). Anything else parses with the C decoder's own int/float,
# whose cost is linear; a float that overflows to infinity is refused by the walk instead.
# A run inside a string only sends the header down the slower, exact path. The test runs at
# C speed: digits become "0", everything else " ", then bytes' substring search.
_CLASSES = bytes(48 if 48 <= c <= 57 else 32 for c in range(256))
_LONG_RUN = b"0" * 20


def _needs_hooks(raw: bytes) -> bool:
    return _LONG_RUN in raw.translate(_CLASSES)


_FAST_DECODER = json.JSONDecoder(parse_constant=_parse_constant)


def parse_metadata(raw: bytes) -> dict[str, Any]:
    """Parse a blob's JSON header under the limits of :mod:`he_ml.schemes.limits`.

    Refuses (with `InvalidCiphertextError`) invalid UTF-8 or JSON, integers longer than
    ``json_int_digits_max`` digits (checked on the digit string, before conversion),
    more than ``json_big_ints_max`` integers beyond 19 digits,
    ``Infinity``/``NaN`` and literals that overflow a double, nesting deeper than
    ``json_depth_max`` and more than ``json_nodes_max`` values; never raises ``ValueError``,
    ``OverflowError`` or ``RecursionError``.
    """
    if len(raw) > MAX_METADATA_BYTES:
        raise _bad(f"metadata of {len(raw)} bytes exceeds the {MAX_METADATA_BYTES}-byte limit")
    _PARSE_STATE.big_ints_left = limit("json_big_ints_max")
    try:
        text = raw.decode("utf-8")
        if _needs_hooks(raw):
            metadata = _DECODER.decode(text)
            _check_shape_of_json(metadata)
        else:
            metadata = _FAST_DECODER.decode(text)
            _check_shape_of_json(metadata, check_floats=True)
    except _MetadataError as e:
        raise _bad(f"metadata refused: {e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError, OverflowError) as e:
        raise _bad(f"metadata is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(metadata, dict):
        raise _bad("metadata must be a JSON object")
    return metadata
