"""Shamir secret sharing over the prime field GF(2**256 + 297), for masked rounds.

A secret ``s`` (an integer below ``2**256``, e.g. a 32-byte seed or X25519 private key) is
split with a random polynomial ``f(x) = s + a_1 x + ... + a_{t-1} x^{t-1}`` over GF(p); the
share of the party with x-coordinate ``i`` is ``f(i)``. Any ``t`` shares give ``s`` back by
Lagrange interpolation at 0; any ``t - 1`` shares are jointly uniform and independent of ``s``
(perfect secrecy: for every candidate secret there is exactly one polynomial of degree
``t - 1`` through the ``t - 1`` points and ``(0, s)``).

Field and parameters
--------------------
* ``p = 2**256 + 297``, the smallest prime above ``2**256`` (checked in the test suite with
  gmpy2's Miller-Rabin), so every 256-bit secret is a field element and no reduction loses
  information; a share is 33 bytes.
* Coefficients ``a_1 .. a_{t-1}`` come from :func:`secrets.randbelow` (the OS CSPRNG).
* x-coordinates are the parties' ids, which must be distinct integers in ``[1, 2**31)`` (never
  0: ``f(0)`` is the secret).
* The threshold is the caller's choice (see :mod:`he_ml.aggregation.masking` for the security
  argument that picks it in a masked round).

References
----------
.. [1] A. Shamir, "How to share a secret", Communications of the ACM 22(11), 1979.
"""
from __future__ import annotations

import functools
import math
import operator
import secrets
from collections.abc import Iterable, Sequence

from ..errors import ParameterError, SecretKeyMissingError

__all__ = ["PRIME", "SHARE_BYTES", "split", "reconstruct", "share_to_bytes", "share_from_bytes"]

#: The field modulus: the smallest prime above 2**256.
PRIME = 2**256 + 297
#: Bytes of one serialized share value (big-endian, fixed width).
SHARE_BYTES = 33
_MAX_X = 2**31


def _check_x(x: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < _MAX_X:
        raise ParameterError(f"a Shamir x-coordinate (party id) must be an int in [1, 2**31); got {x!r}.")
    return x


def split(secret: int, xs: Sequence[int], threshold: int) -> dict[int, int]:
    """Shares of ``secret`` for the parties at ``xs``; any ``threshold`` of them recover it.

    Parameters
    ----------
    secret : int
        In ``[0, 2**256)``.
    xs : sequence of int
        Distinct party ids in ``[1, 2**31)``.
    threshold : int
        ``1 <= threshold <= len(xs)``.

    Returns
    -------
    dict
        ``{x: f(x)}`` with field elements in ``[0, PRIME)``.

    Raises
    ------
    ParameterError
        If the secret, an id or the threshold is out of range, or ids repeat.
    """
    if isinstance(secret, bool) or not isinstance(secret, int) or not 0 <= secret < 2**256:
        raise ParameterError(f"a Shamir secret must be an int in [0, 2**256); got {type(secret).__name__}.")
    xs = [_check_x(x) for x in xs]
    if len(set(xs)) != len(xs):
        raise ParameterError(f"Shamir party ids must be distinct; got {len(xs)} ids with repeats.")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= len(xs):
        raise ParameterError(f"threshold must be an int in [1, {len(xs)}] (the number of share holders); "
                             f"got {threshold!r}.")
    coeffs = [secret] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    # f(x) = sum_j c_j (x^j mod p): the powers depend only on (x, threshold) -- the same few ids
    # recur across a round's clients -- so they are cached, and each share is one C-level
    # sum of products and one reduction.
    powers = _powers_cached if threshold <= 128 else _powers
    return {x: sum(map(operator.mul, coeffs, powers(x, threshold))) % PRIME for x in xs}


def _powers(x: int, count: int) -> tuple[int, ...]:
    """``(x^0, x^1, ..., x^(count-1)) mod p`` (cached for thresholds up to 128: at most 2048
    tuples of <= 128 field elements, ~16 MB)."""
    out = [1] * count
    for j in range(1, count):
        out[j] = out[j - 1] * x % PRIME
    return tuple(out)


_powers_cached = functools.lru_cache(maxsize=2048)(_powers)
_LAZY = 16


def _prod_mod(values: list[int]) -> int:
    """``prod(values) mod p`` for small ints, multiplied exactly in chunks of ``_LAZY`` (C-level math.prod)."""
    acc = 1
    for k in range(0, len(values), _LAZY):
        acc = acc * math.prod(values[k:k + _LAZY]) % PRIME
    return acc


@functools.lru_cache(maxsize=1024)
def _lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """``lambda_i = prod_{j != i} x_j / (x_j - x_i) mod p`` for the distinct ids ``xs``.

    Numerators and denominators are exact products of small integers, reduced mod p; the ``t``
    denominators are inverted together with one modular inversion (Montgomery's trick).
    """
    t = len(xs)
    nums, dens = [], []
    for i, xi in enumerate(xs):
        others = xs[:i] + xs[i + 1:]
        nums.append(_prod_mod(others))
        dens.append(_prod_mod([xj - xi for xj in others]))
    prefix = [1] * (t + 1)
    for i, d in enumerate(dens):
        prefix[i + 1] = prefix[i] * d % PRIME
    inv = pow(prefix[t], -1, PRIME)
    lam = [0] * t
    for i in range(t - 1, -1, -1):
        lam[i] = nums[i] * (inv * prefix[i] % PRIME) % PRIME  # inv * prefix[i] = 1 / dens[i]
        inv = inv * dens[i] % PRIME
    return tuple(lam)


def reconstruct(shares: dict[int, int] | Iterable[tuple[int, int]], threshold: int) -> int:
    """The secret from at least ``threshold`` shares (Lagrange interpolation at 0).

    Only the first ``threshold`` shares (in increasing id order) are used; with honest share
    holders any subset gives the same secret.

    Raises
    ------
    SecretKeyMissingError
        If fewer than ``threshold`` distinct shares are given.
    ParameterError
        If an id or share value is out of range.
    """
    items = dict(shares.items() if isinstance(shares, dict) else shares)
    if len(items) < threshold:
        raise SecretKeyMissingError(
            f"Shamir reconstruction needs {threshold} shares; got {len(items)}. Wait for more share holders "
            f"(a masked round cannot finish with fewer survivors than its threshold).")
    pts = sorted(items.items())[:threshold]
    for x, y in pts:
        _check_x(x)
        if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < PRIME:
            raise ParameterError(f"a Shamir share value must be an int in [0, PRIME); got one for id {x}.")
    lam = _lagrange_at_zero(tuple(x for x, _ in pts))  # cached per holder set
    return sum(y * c for (_, y), c in zip(pts, lam)) % PRIME


def share_to_bytes(value: int) -> bytes:
    """A share value as 33 big-endian bytes."""
    return int(value).to_bytes(SHARE_BYTES, "big")


def share_from_bytes(data: bytes) -> int:
    """Inverse of :func:`share_to_bytes`.

    Raises
    ------
    ParameterError
        If ``data`` is not 33 bytes or encodes a value >= PRIME.
    """
    if len(data) != SHARE_BYTES:
        raise ParameterError(f"a Shamir share is {SHARE_BYTES} bytes; got {len(data)}.")
    v = int.from_bytes(data, "big")
    if v >= PRIME:
        raise ParameterError("a Shamir share value must be below the field prime; the bytes are corrupted.")
    return v
