"""Mask arithmetic for masked rounds: a cryptographic PRG expanded to an exact modular domain.

Three domains, one per place a mask can live:

* `UIntDomain` -- integers mod ``2**bits`` (``bits <= 64``), the HE-free backend; expansion
  reads 8 keystream bytes per value and keeps the low ``bits`` (exactly uniform);
* `PrimeDomain` -- integers mod a prime ``t < 2**62`` (BFV's plain modulus, one mask per slot);
  rejection sampling from ``bit_length(t)``-bit cuts of 32-bit keystream words (64-bit when
  ``t > 2**32``): exactly uniform, 4 keystream bytes per value for he_ml's 30-bit ``t``;
* `BigDomain` -- one integer mod ``n`` per Paillier ciphertext (the whole packed plaintext);
  ``bit_length(n) + 128`` keystream bits reduced mod ``n`` (statistical distance from uniform
  below ``2**-128`` per element).

Lazy sums. A client adds one self mask and ``k`` pairwise masks, the server and the key holder
add up to ``n`` masks; every domain therefore offers ``accumulator() / accumulate(acc, key, sign)
/ finish(acc)``: the *unreduced* keystream words are summed with their signs and reduced once.
Reduction mod ``t`` is a ring homomorphism ``Z -> Z_t``, so ``finish`` returns exactly
``sum(sign * (word mod t)) mod t`` -- the same residues as expanding and adding each mask on its
own (``expand(key) == finish(accumulate(accumulator(), key))``), at a fraction of the cost.

Exact uniformity (`PrimeDomain`). A keystream word cut to its low ``b = bit_length(t)`` bits is
uniform on ``[0, 2**b)``; kept only when below ``t`` it is exactly uniform on ``Z_t`` (rejection
sampling), and since ``t > 2**(b-1)`` a word is rejected with probability ``(2**b - t) / 2**b <
1/2`` -- for he_ml's 30-bit BFV plain modulus ``t = 1073692673`` it is ``4.6e-5``, under one word
per 12,288-slot mask. The ``size`` words of a mask are checked together (one ``max``); a rejected
position takes the next kept word of the same, continuing keystream, so a mask is a
deterministic function of its key whichever party expands it. Kept words are ``< t``, so the
lazy sum is a plain signed sum: int64 for ``t <= 2**32`` (each term ``< 2**32``; at most
``MAX_TERMS = 2**24`` terms, far below overflow), reduced once by ``finish``; for wider ``t``
(not used by he_ml's aggregation contexts) the sum is reduced after every term. The earlier
sampler (wide ``bits + 80``-bit words reduced mod ``t``, statistically close to uniform) read 4x
more keystream and summed 4 limbs per value; this one is exact and about twice as fast per mask.

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
#: Most masks one accumulator may absorb (int64 limb sums stay far below 2**63).
MAX_TERMS = 1 << 24


def keystream(key: bytes):
    """A ChaCha20 keystream generator object: ``.update(bytes(k))`` yields the next k bytes."""
    return Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()


class _Acc:
    """An unreduced sum of masks (see the module docstring)."""

    __slots__ = ("value", "terms")

    def __init__(self, value) -> None:
        self.value = value
        self.terms = 0


def _count(acc: _Acc) -> None:
    acc.terms += 1
    if acc.terms > MAX_TERMS:
        raise ParameterError(f"a mask accumulator takes at most {MAX_TERMS} masks; finish() it first.")


class UIntDomain:
    """Vectors of ``size`` integers mod ``2**bits`` as uint64 arrays."""

    kind = "uint"

    def __init__(self, bits: int, size: int) -> None:
        if not 1 <= bits <= 64:
            raise ParameterError(f"mask bits must be in [1, 64]; got {bits}.")
        self.bits, self.size = int(bits), int(size)
        self.mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
        self._zeros = bytes(8 * self.size)
        self._buf = bytearray(8 * self.size)  # scratch keystream, consumed before the next expansion
        self._view = np.frombuffer(self._buf, dtype="<u8")

    def zero(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.uint64)

    def _words(self, key: bytes) -> np.ndarray:
        keystream(key).update_into(self._zeros, self._buf)
        return self._view

    def expand(self, key: bytes) -> np.ndarray:
        return self._words(key).astype(np.uint64) & self.mask

    def accumulator(self) -> _Acc:
        return _Acc(np.zeros(self.size, dtype=np.uint64))

    def accumulate(self, acc: _Acc, key: bytes, sign: int = 1) -> _Acc:
        _count(acc)
        w = self._words(key)  # uint64 arithmetic wraps mod 2**64, a multiple of 2**bits: exact
        if sign >= 0:
            np.add(acc.value, w, out=acc.value)
        else:
            np.subtract(acc.value, w, out=acc.value)
        return acc

    def finish(self, acc: _Acc) -> np.ndarray:
        return acc.value & self.mask

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b) & self.mask  # uint64 wraps mod 2**64, a multiple of 2**bits

    def sub(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) & self.mask


class PrimeDomain:
    """Vectors of ``size`` integers mod a prime ``t < 2**62`` as uint64 arrays (exactly uniform masks).

    Expansion is rejection sampling (see the module docstring): ``size`` keystream words of
    ``W = 32`` bits (``64`` when ``t > 2**32``), each cut to its low ``bits = bit_length(t)``
    bits and kept when below ``t``; every rejected position, in increasing order, takes the next
    kept word of the continuing keystream.
    """

    kind = "prime"

    def __init__(self, t: int, size: int) -> None:
        if not 2 < t < 2**62:
            raise ParameterError(f"mask modulus must be in (2, 2**62); got {t}.")
        self.t, self.size = int(t), int(size)
        self.bits = self.t.bit_length()
        self.word_bytes = 4 if self.bits <= 32 else 8
        dtype = np.dtype("<u4") if self.word_bytes == 4 else np.dtype("<u8")
        self._low = dtype.type((1 << self.bits) - 1)
        self._zeros = bytes(self.word_bytes * self.size)
        self._buf = bytearray(len(self._zeros))  # scratch keystream, consumed before the next expansion
        self._view = np.frombuffer(self._buf, dtype=dtype)
        self._words = np.empty(self.size, dtype=dtype)

    def zero(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.uint64)

    def _uniform(self, key: bytes) -> np.ndarray:
        """The mask of ``key``: ``size`` values exactly uniform on [0, t) (a scratch array)."""
        ks = keystream(key)
        ks.update_into(self._zeros, self._buf)
        w = np.bitwise_and(self._view, self._low, out=self._words)
        if w.max(initial=0) >= self.t:  # rare: P(reject) = (2**bits - t) / 2**bits < 1/2 per word
            bad = np.flatnonzero(w >= self.t)
            fill: list[int] = []
            while len(fill) < bad.size:
                more = np.frombuffer(ks.update(bytes(self.word_bytes * (2 * (bad.size - len(fill)) + 8))),
                                     dtype=w.dtype) & self._low
                fill.extend(more[more < self.t][:bad.size - len(fill)].tolist())
            w[bad] = fill
        return w

    def accumulator(self) -> _Acc:
        return _Acc(np.zeros(self.size, dtype=np.int64 if self.word_bytes == 4 else np.uint64))

    def accumulate(self, acc: _Acc, key: bytes, sign: int = 1) -> _Acc:
        _count(acc)
        w = self._uniform(key)
        if self.word_bytes == 4:  # int64 sums of terms < 2**32: at most MAX_TERMS = 2**24 of them
            if sign >= 0:
                np.add(acc.value, w, out=acc.value)
            else:
                np.subtract(acc.value, w, out=acc.value)
        else:  # t up to 2**62: keep the sum reduced (a + b < 2**63)
            w64 = w if sign >= 0 else np.uint64(self.t) - w
            np.add(acc.value, w64, out=acc.value)
            np.remainder(acc.value, np.uint64(self.t), out=acc.value)
        return acc

    def finish(self, acc: _Acc) -> np.ndarray:
        """The accumulated sum mod ``t``, as uint64 residues in ``[0, t)``."""
        if self.word_bytes == 4:
            return np.mod(acc.value, np.int64(self.t)).astype(np.uint64)  # numpy's mod: divisor's sign
        return acc.value.copy()

    def expand(self, key: bytes) -> np.ndarray:
        return self._uniform(key).astype(np.uint64)

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
        self._zeros = bytes(self._bytes * self.size)

    def zero(self) -> list[int]:
        return [0] * self.size

    def _words(self, key: bytes) -> list[int]:
        data = keystream(key).update(self._zeros)
        w = self._bytes
        return [int.from_bytes(data[i * w:(i + 1) * w], "big") for i in range(self.size)]

    def expand(self, key: bytes) -> list[int]:
        n = self.n
        return [x % n for x in self._words(key)]

    def accumulator(self) -> _Acc:
        return _Acc([0] * self.size)

    def accumulate(self, acc: _Acc, key: bytes, sign: int = 1) -> _Acc:
        _count(acc)
        words = self._words(key)
        acc.value = [a + x for a, x in zip(acc.value, words)] if sign >= 0 else \
            [a - x for a, x in zip(acc.value, words)]
        return acc

    def finish(self, acc: _Acc) -> list[int]:
        n = self.n
        return [x % n for x in acc.value]

    def add(self, a: list[int], b: list[int]) -> list[int]:
        n = self.n
        return [(x + y) % n for x, y in zip(a, b)]

    def sub(self, a: list[int], b: list[int]) -> list[int]:
        n = self.n
        return [(x - y) % n for x, y in zip(a, b)]


def domain_for(backend: Any, size: int):
    """The mask domain of a backend for a vector of ``size`` values (or ciphertexts for Paillier)."""
    return backend.domain(size)
