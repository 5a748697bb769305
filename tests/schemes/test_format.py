"""The blob container: layout, checksum, limits and error classes."""
from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_ml.errors import ContextMismatchError, InvalidCiphertextError
from he_ml.schemes._format import FORMAT_VERSION, MAGIC, Kind, pack_blob, unpack_blob

FP = bytes(range(16))


def test_roundtrip():
    data = pack_blob(Kind.CIPHERTEXT, "ckks", FP, {"shape": [3], "x": "é"}, [b"abc", b"", b"\x00" * 10])
    b = unpack_blob(data)
    assert b.kind == Kind.CIPHERTEXT and b.scheme == "ckks" and b.fingerprint == FP
    assert b.metadata == {"shape": [3], "x": "é"}
    assert b.sections == [b"abc", b"", b"\x00" * 10]
    assert data[:4] == MAGIC and struct.unpack_from("<H", data, 4)[0] == FORMAT_VERSION
    assert unpack_blob(memoryview(data)).sections == b.sections


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def test_rejections():
    data = pack_blob(Kind.PUBLIC_CONTEXT, "bfv", FP, {}, [b"xyz"])
    with pytest.raises(InvalidCiphertextError, match="checksum"):
        unpack_blob(data[:-5] + b"\x00" + data[-4:])
    with pytest.raises(InvalidCiphertextError, match="shorter"):
        unpack_blob(data[:10])
    with pytest.raises(InvalidCiphertextError, match="magic"):
        unpack_blob(b"XXXX" + data[4:])
    with pytest.raises(InvalidCiphertextError, match="version"):
        unpack_blob(_recrc(data[:4] + struct.pack("<H", 99) + data[6:-4]))
    with pytest.raises(InvalidCiphertextError, match="unknown blob kind"):
        unpack_blob(_recrc(data[:6] + b"\x09" + data[7:-4]))
    with pytest.raises(InvalidCiphertextError, match="unknown scheme"):
        unpack_blob(_recrc(data[:7] + b"\x09" + data[8:-4]))
    with pytest.raises(InvalidCiphertextError, match="trailing"):
        unpack_blob(_recrc(data[:-4] + b"\x00"))
    # a section length pointing past the end
    body = data[:-4]
    off = body.index(b"xyz") - 8
    with pytest.raises(InvalidCiphertextError, match="exceeds"):
        unpack_blob(_recrc(body[:off] + struct.pack("<Q", 2 ** 40) + body[off + 8:]))
    with pytest.raises(InvalidCiphertextError, match="bytes"):
        unpack_blob("not bytes")


def test_expect():
    b = unpack_blob(pack_blob(Kind.CIPHERTEXT, "ckks", FP, {}, []))
    with pytest.raises(InvalidCiphertextError, match="context"):
        b.expect(kind=Kind.PUBLIC_CONTEXT)
    with pytest.raises(ContextMismatchError, match="'ckks' scheme"):
        b.expect(scheme="bfv")
    with pytest.raises(ContextMismatchError, match="another key"):
        b.expect(fingerprint=bytes(16))
    assert b.expect(kind=Kind.CIPHERTEXT, scheme="ckks", fingerprint=FP) is b


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 199), st.integers(0, 255))
def test_fuzz_never_crashes(prefix, pos, value):
    base = bytearray(pack_blob(Kind.CIPHERTEXT, "ckks", FP, {"shape": [1]}, [prefix]))
    base[pos % len(base)] = value
    for candidate in (bytes(base), bytes(base[: pos % len(base)]), _recrc(bytes(base[:-4]))):
        try:
            unpack_blob(candidate)
        except InvalidCiphertextError:
            pass
