"""Mask arithmetic for masked rounds: a cryptographic PRG expanded to an exact modular domain.

Three domains, one per place a mask can live:

* `UIntDomain` -- integers mod ``2**bits`` (``bits <= 64``), the HE-free backend; expansion
  reads 8 keystream bytes per value and keeps the low ``bits`` (exactly uniform);
* `PrimeDomain` -- integers mod a prime ``t < 2**62`` (BFV's plain modulus, one mask per slot);
  each value is a ``32 L``-bit keystream word reduced mod ``t``, with ``L`` 32-bit limbs chosen
  so that ``32 L >= bit_length(t) + 80`` (rejection-free; see below);
* `BigDomain` -- one integer mod ``n`` per Paillier ciphertext (the whole packed plaintext);
  ``bit_length(n) + 128`` keystream bits reduced mod ``n`` (statistical distance from uniform
  below ``2**-128`` per element).

Lazy sums. A client adds one self mask and ``k`` pairwise masks, the server and the key holder
add up to ``n`` masks; every domain therefore offers ``accumulator() / accumulate(acc, key, sign)
/ finish(acc)``: the *unreduced* keystream words are summed with their signs and reduced once.
Reduction mod ``t`` is a ring homomorphism ``Z -> Z_t``, so ``finish`` returns exactly
``sum(sign * (word mod t)) mod t`` -- the same residues as expanding and adding each mask on its
own (``expand(key) == finish(accumulate(accumulator(), key))``), at a fraction of the cost.

Statistical distance (`PrimeDomain`). A word ``X`` uniform on ``[0, 2**w)`` reduced mod ``t``
is within ``t / 2**w`` of uniform on ``Z_t`` (each residue has ``floor(2**w / t)`` or one more
pre-image). With ``w = 32 L >= bit_length(t) + 80`` that is ``< 2**-80`` per value for any ``t``;
for he_ml's 30-bit BFV plain modulus ``L = 4`` and it is ``t / 2**128 < 2**-98``. Distances add up
over the masks of a round: the ``7 * 10**7`` mask values of a 100-client round with 66 neighbours
over 10,000 values are within ``2**-72`` of independent uniform masks, and even the largest round
the limits allow (``2**16`` clients x ``2**16`` masks x ``2**27`` values) within ``2**-39``. The
words are read as little-endian uint32 limbs and summed per limb in int64 (each term ``< 2**32``, so ``2**31``
terms cannot overflow; we allow at most ``2**24``), then combined with the weights
``2**(32 j) mod t``. The previous rejection sampler was exactly uniform but drew a data-dependent
number of words and needed one reduction per mask.

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
#: Extra keystream bits per PrimeDomain value beyond bit_length(t) (statistical distance 2**-80).
PRIME_MARGIN_BITS = 80


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
    """Vectors of ``size`` integers mod a prime ``t < 2**62`` as uint64 arrays."""

    kind = "prime"

    def __init__(self, t: int, size: int) -> None:
        if not 2 < t < 2**62:
            raise ParameterError(f"mask modulus must be in (2, 2**62); got {t}.")
        self.t, self.size = int(t), int(size)
        self._bits = self.t.bit_length()
        self.limbs = -(-(self._bits + PRIME_MARGIN_BITS) // 32)
        self._weights = [pow(2, 32 * j, self.t) for j in range(self.limbs)]
        self._zeros = bytes(4 * self.limbs * self.size)
        self._buf = bytearray(len(self._zeros))  # scratch keystream, consumed before the next expansion
        self._view = np.frombuffer(self._buf, dtype="<u4").reshape(self.size, self.limbs)

    def zero(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.uint64)

    def accumulator(self) -> _Acc:
        return _Acc(np.zeros((self.size, self.limbs), dtype=np.int64))

    def accumulate(self, acc: _Acc, key: bytes, sign: int = 1) -> _Acc:
        _count(acc)
        keystream(key).update_into(self._zeros, self._buf)
        w = self._view
        if sign >= 0:
            np.add(acc.value, w, out=acc.value)
        else:
            np.subtract(acc.value, w, out=acc.value)
        return acc

    def finish(self, acc: _Acc) -> np.ndarray:
        """``sum_j (limb sum j) * 2**(32 j) mod t`` for every value, as uint64 residues in ``[0, t)``."""
        t = self.t
        out = np.zeros(self.size, dtype=np.uint64)
        for j, wj in enumerate(self._weights):
            r = np.mod(acc.value[:, j], np.int64(t)).astype(np.uint64)  # numpy's mod has the divisor's sign
            out = self.add(out, self._mulmod(r, wj))
        return out

    def _mulmod(self, r: np.ndarray, c: int) -> np.ndarray:
        t = self.t
        if c == 1:
            return r
        if t <= 2**32:  # r, c < t <= 2**32: the product fits in uint64
            return (r * np.uint64(c)) % np.uint64(t)
        # wide plain moduli (not used by he_ml's aggregation contexts): exact Python integers
        return np.array([(int(x) * c) % t for x in r], dtype=np.uint64)

    def expand(self, key: bytes) -> np.ndarray:
        return self.finish(self.accumulate(self.accumulator(), key))

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
