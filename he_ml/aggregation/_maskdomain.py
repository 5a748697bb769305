"""Mask arithmetic for masked rounds: a cryptographic PRG expanded to an exact modular domain.

Three domains, one per place a mask can live:

* `UIntDomain` -- integers mod ``2**bits`` (``bits <= 64``), the HE-free backend; expansion
  reads 8 keystream bytes per value and keeps the low ``bits`` (exactly uniform);
* `PrimeDomain` -- integers mod a prime ``t < 2**62`` (BFV's plain modulus, one mask per slot);
  rejection sampling on ``bit_length(t)``-bit words (exactly uniform, acceptance > 1/2);
* `BigDomain` -- one integer mod ``n`` per Paillier ciphertext (the whole packed plaintext);
  ``bit_length(n) + 128`` keystream bits reduced mod ``n`` (statistical distance from uniform
  below ``2**-128`` per element).

The PRG is ChaCha20 (RFC 8439, from `cryptography`) keyed with a 32-byte key that is used for
exactly one expansion (keys come from HKDF with a label naming the round, the pair or the
client and the purpose), so the all-zero nonce is safe.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ..errors import ParameterError

_ZERO_NONCE = bytes(16)


def keystream(key: bytes):
    """A ChaCha20 keystream generator object: ``.update(bytes(k))`` yields the next k bytes."""
    return Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()


class UIntDomain:
    """Vectors of ``size`` integers mod ``2**bits`` as uint64 arrays."""

    kind = "uint"

    def __init__(self, bits: int, size: int) -> None:
        if not 1 <= bits <= 64:
            raise ParameterError(f"mask bits must be in [1, 64]; got {bits}.")
        self.bits, self.size = int(bits), int(size)
        self.mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)

    def zero(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.uint64)

    def expand(self, key: bytes) -> np.ndarray:
        words = np.frombuffer(keystream(key).update(bytes(8 * self.size)), dtype="<u8").astype(np.uint64)
        return words & self.mask

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b) & self.mask  # uint64 wraps mod 2**64, a multiple of 2**bits

    def sub(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) & self.mask


class PrimeDomain:
    """Vectors of ``size`` integers mod a prime ``t < 2**62`` as uint64 arrays."""

    kind = "prime"

    def __init__(self, t: int, size: int) -> None:
        if not 2 < t < 2**62:
            raise ParameterError(f"mask modulus must be in (2, 2**62); got {t}.")
        self.t, self.size = int(t), int(size)
        self._bits = self.t.bit_length()

    def zero(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.uint64)

    def expand(self, key: bytes) -> np.ndarray:
        stream = keystream(key)
        wmask = np.uint64((1 << self._bits) - 1)
        out = np.empty(0, dtype=np.uint64)
        while out.size < self.size:
            need = self.size - out.size
            draw = need + need // 2 + 64  # acceptance probability t / 2**bits > 1/2
            w = np.frombuffer(stream.update(bytes(8 * draw)), dtype="<u8").astype(np.uint64) & wmask
            out = np.concatenate([out, w[w < np.uint64(self.t)]])
        return out[:self.size]

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b) % np.uint64(self.t)

    def sub(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + (np.uint64(self.t) - b)) % np.uint64(self.t)

    def centered(self, a: np.ndarray) -> np.ndarray:
        """Representatives in ``(-t/2, t/2)`` as int64."""
        s = a.astype(np.int64)
        return np.where(s > self.t // 2, s - self.t, s)


class BigDomain:
    """Lists of ``size`` integers mod ``n`` (one per Paillier ciphertext)."""

    kind = "big"

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = int(n), int(size)
        self._bytes = (self.n.bit_length() + 128 + 7) // 8

    def zero(self) -> list[int]:
        return [0] * self.size

    def expand(self, key: bytes) -> list[int]:
        data = keystream(key).update(bytes(self._bytes * self.size))
        w, n = self._bytes, self.n
        return [int.from_bytes(data[i * w:(i + 1) * w], "big") % n for i in range(self.size)]

    def add(self, a: list[int], b: list[int]) -> list[int]:
        n = self.n
        return [(x + y) % n for x, y in zip(a, b)]

    def sub(self, a: list[int], b: list[int]) -> list[int]:
        n = self.n
        return [(x - y) % n for x, y in zip(a, b)]


def domain_for(backend: Any, size: int):
    """The mask domain of a backend for a vector of ``size`` values (or ciphertexts for Paillier)."""
    return backend.domain(size)
