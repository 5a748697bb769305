"""Numba fallback of the native NTT core (``he_ml._native``).

This module mirrors the raw API of the compiled module function for function
(``forward_ntt``, ``inverse_ntt``, ``pointwise_mul``, ``polymul``,
``find_primes``, ``is_prime``, ``psi``) and follows the same conventions
(see ``native/include/he_native/ntt.hpp``), so results agree bit for bit:

* ``n`` is a power of two in ``[2, 65536]``; ``q`` is prime, ``q < 2**62`` and
  ``q == 1 (mod 2n)``;
* ``psi`` is the *smallest* primitive ``2n``-th root of unity modulo ``q``;
* the forward transform writes ``A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i)``
  (bit-reversed output order); the inverse undoes it; inputs and outputs lie
  in ``[0, q)``.

Arithmetic without 128-bit integers
-----------------------------------
Numba has no 128-bit integer type, but LLVM has ``i128``. The high word of a
64 x 64 -> 128-bit product is emitted through a tiny LLVM intrinsic
(:func:`_mulhi`), which compiles to a single ``mul``/``mulx`` instruction on
x86-64. A 128-bit *division* in LLVM would call ``__udivti3`` /
``__umodti3``, which numba's JIT does not link, so division is done in
software (:func:`_div128`, Knuth's algorithm D with 32-bit digits). Division
only appears where tables are built, in primality tests and in the Barrett
constant; the transforms themselves use Shoup multiplication (one high
product, two low products) and the pointwise product uses Barrett reduction.

Kernels
-------
Forward: Cooley-Tukey butterflies on bit-reversed root powers with Harvey's
lazy reduction, values kept in ``[0, 4q)`` between layers (needs
``4q < 2**64``, hence ``q < 2**62``). Inverse: Gentleman-Sande butterflies,
values kept in ``[0, 2q)``, the last layer fused with the multiplication by
``n^-1``.

References
----------
D. Harvey, "Faster arithmetic for number-theoretic transforms", J. Symbolic
Computation 60 (2014), Algorithms 4 (forward) and the GS variant.
V. Shoup, NTL ``MulModPrecon``. D. Knuth, TAOCP vol. 2, 4.3.1, Algorithm D.
P. Longa, M. Naehrig, "Speeding up the number theoretic transform for faster
ideal lattice-based cryptography" (2016), Algorithms 1 and 2 (loop structure).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = [
    "barrett_ratio",
    "div128",
    "find_primes",
    "forward_ntt",
    "inverse_ntt",
    "is_prime",
    "mulhi",
    "mulmod",
    "mulmod_barrett",
    "clear_table_cache",
    "ntt_tables",
    "pointwise_mul",
    "polymul",
    "psi",
    "set_table_cache_budget",
    "table_cache_info",
]

MIN_N = 2
MAX_N = 65536
MAX_MODULUS = 1 << 62  # exclusive: lazy butterflies keep values below 4q < 2^64
MAX_PRIME_COUNT = 65536  # find_primes' limit, the same as the C++ core's

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U32 = np.uint64(32)
_U64 = np.uint64(64)
_MASK32 = np.uint64(0xFFFFFFFF)
_B32 = np.uint64(1 << 32)
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)

# Bases for deterministic Miller-Rabin: correct for every n < 3.3e24 > 2^64
# (Sorenson & Webster 2015, the first 12 primes).
_MR_BASES = np.array([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37], dtype=np.uint64)


# --------------------------------------------------------------------------
# LLVM intrinsics: 64x64 -> high 64 bits, count leading zeros
# --------------------------------------------------------------------------
@intrinsic
def _mulhi(typingctx, a, b):
    """High 64 bits of the 128-bit product ``a * b`` (both uint64)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        x = builder.zext(args[0], i128)
        y = builder.zext(args[1], i128)
        prod = builder.mul(x, y)
        return builder.trunc(builder.lshr(prod, ir.Constant(i128, 64)), ir.IntType(64))

    return sig, codegen


@intrinsic
def _clz(typingctx, a):
    """Number of leading zero bits of a non-zero uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


# --------------------------------------------------------------------------
# Scalar arithmetic helpers (all uint64; literals are cast because numba
# turns uint64 (op) int64 into float64)
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def mulhi(a, b):
    """High word of ``a * b`` for uint64 ``a``, ``b``."""
    return _mulhi(np.uint64(a), np.uint64(b))


@njit(cache=True)
def div128(hi, lo, d):
    """Divide the 128-bit number ``hi * 2**64 + lo`` by ``d``.

    Parameters
    ----------
    hi, lo : uint64
        High and low words of the dividend; ``hi < d`` is required so the
        quotient fits 64 bits.
    d : uint64
        Non-zero divisor.

    Returns
    -------
    (quotient, remainder) : tuple of uint64

    Notes
    -----
    Knuth's algorithm D specialised to a 4-digit dividend and 2-digit divisor
    in base ``2**32``: normalise ``d`` so its top bit is set, estimate each
    quotient digit from the leading divisor digit and correct it at most
    twice.
    """
    hi = np.uint64(hi)
    lo = np.uint64(lo)
    d = np.uint64(d)
    s = _clz(d)
    d = d << s
    vn1 = d >> _U32
    vn0 = d & _MASK32
    if s == _U0:
        un32 = hi
    else:
        un32 = (hi << s) | (lo >> (_U64 - s))
    un10 = lo << s
    un1 = un10 >> _U32
    un0 = un10 & _MASK32

    q1 = un32 // vn1
    rhat = un32 - q1 * vn1
    while q1 >= _B32 or q1 * vn0 > ((rhat << _U32) | un1):
        q1 -= _U1
        rhat += vn1
        if rhat >= _B32:
            break
    un21 = ((un32 << _U32) | un1) - q1 * d

    q0 = un21 // vn1
    rhat = un21 - q0 * vn1
    while q0 >= _B32 or q0 * vn0 > ((rhat << _U32) | un0):
        q0 -= _U1
        rhat += vn1
        if rhat >= _B32:
            break
    rem = (((un21 << _U32) | un0) - q0 * d) >> s
    return (q1 << _U32) | q0, rem


@njit(cache=True)
def mulmod(a, b, q):
    """``a * b mod q`` for any uint64 ``q > 0`` and ``a, b < q`` (exact, slow path)."""
    a = np.uint64(a)
    b = np.uint64(b)
    q = np.uint64(q)
    return div128(_mulhi(a, b), a * b, q)[1]


@njit(cache=True)
def _powmod(base, exp, q):
    base = np.uint64(base) % np.uint64(q)
    exp = np.uint64(exp)
    result = np.uint64(1) % np.uint64(q)
    while exp > _U0:
        if exp & _U1:
            result = mulmod(result, base, q)
        base = mulmod(base, base, q)
        exp >>= _U1
    return result


@njit(cache=True)
def _shoup(w, q):
    """Shoup companion ``floor(w * 2**64 / q)`` of ``w < q``."""
    return div128(np.uint64(w), _U0, np.uint64(q))[0]


@njit(cache=True)
def barrett_ratio(q):
    """``floor(2**128 / q)`` as (high word, low word), for ``1 < q < 2**64``."""
    q = np.uint64(q)
    # 2^64 = (2^64 - 1) + 1 -> floor and remainder of 2^64 / q
    hi = _ALL_ONES // q
    r = _ALL_ONES - hi * q + _U1
    if r == q:
        hi += _U1
        r = _U0
    lo = div128(r, _U0, q)[0]
    return hi, lo


@njit(cache=True, inline="always")
def _mulmod_barrett(a, b, q, ratio_hi, ratio_lo):
    # x = a*b as (xh, xl); quotient estimate Q = floor(x * floor(2^128/q) / 2^128)
    # computed exactly from the four partial products. Q >= floor(x/q) - 1,
    # so x - Q*q lies in [0, 2q) and one conditional subtraction finishes.
    xl = a * b
    xh = _mulhi(a, b)
    c0 = _mulhi(xl, ratio_lo)
    p1l = xl * ratio_hi
    p1h = _mulhi(xl, ratio_hi)
    p2l = xh * ratio_lo
    p2h = _mulhi(xh, ratio_lo)
    s1 = p1l + p2l
    carry = p1h + p2h
    if s1 < p1l:
        carry += _U1
    s2 = s1 + c0
    if s2 < s1:
        carry += _U1
    quot = xh * ratio_hi + carry
    r = xl - quot * q
    if r >= q:
        r -= q
    return r


@njit(cache=True)
def mulmod_barrett(a, b, q, ratio_hi, ratio_lo):
    """``a * b mod q`` by Barrett reduction, for ``q < 2**63`` and ``a, b < q``."""
    return _mulmod_barrett(np.uint64(a), np.uint64(b), np.uint64(q), np.uint64(ratio_hi),
                           np.uint64(ratio_lo))


# --------------------------------------------------------------------------
# Number theory
# --------------------------------------------------------------------------
@njit(cache=True)
def _is_prime(q):
    q = np.uint64(q)
    if q < _U2:
        return False
    for i in range(_MR_BASES.shape[0]):
        p = _MR_BASES[i]
        if q == p:
            return True
        if q % p == _U0:
            return False
    d = q - _U1
    s = 0
    while (d & _U1) == _U0:
        d >>= _U1
        s += 1
    for i in range(_MR_BASES.shape[0]):
        x = _powmod(_MR_BASES[i], d, q)
        if x == _U1 or x == q - _U1:
            continue
        composite = True
        for _ in range(s - 1):
            x = mulmod(x, x, q)
            if x == q - _U1:
                composite = False
                break
        if composite:
            return False
    return True


@njit(cache=True)
def _find_primes(bits, two_n, count):
    out = np.zeros(count, dtype=np.uint64)
    found = 0
    lower = _U1 << np.uint64(bits - 1)
    top = (_U1 << np.uint64(bits)) - _U1
    # largest candidate <= top with candidate == 1 (mod 2n)
    cand = top - ((top - _U1) % two_n)
    while found < count and cand >= lower:
        if _is_prime(cand):
            out[found] = cand
            found += 1
        if cand < two_n:
            break
        cand -= two_n
    return out[:found]


@njit(cache=True)
def _minimal_psi(n, q):
    """Smallest primitive 2n-th root of unity mod q (q prime, q == 1 mod 2n)."""
    n = np.uint64(n)
    q = np.uint64(q)
    two_n = n + n
    cofactor = (q - _U1) // two_n
    g = _U0
    x = _U2
    while x < q:
        g = _powmod(x, cofactor, q)
        # g has order dividing 2n; since 2n is a power of two, g^n == -1
        # exactly when its order is 2n.
        if _powmod(g, n, q) == q - _U1:
            break
        x += _U1
    # The primitive 2n-th roots are g^k for odd k; keep the smallest.
    g2 = mulmod(g, g, q)
    cur = g
    best = g
    for _ in range(n):
        best = min(best, cur)
        cur = mulmod(cur, g2, q)
    return best


@njit(cache=True)
def _bitrev(x, log_n):
    r = 0
    for _ in range(log_n):
        r = (r << 1) | (x & 1)
        x >>= 1
    return r


@njit(cache=True)
def _build_tables(n, q):
    """Tables for one (n, q).

    Returns ``tab`` of shape (4, n) and ``scal`` of shape (8,):

    * ``tab[0, i] = psi^bitrev(i)``, ``tab[1, i]`` its Shoup companion
      (forward Cooley-Tukey order: layer with ``m`` groups uses ``[m, 2m)``);
    * ``tab[2, i] = psi^-bitrev(i)``, ``tab[3, i]`` its Shoup companion
      (the inverse Gentleman-Sande layer with ``h`` groups uses ``[h, 2h)``);
    * ``scal = [q, n^-1, shoup(n^-1), psi^-bitrev(1) n^-1, its Shoup,
      floor(2^128/q) high, low, psi]``.
    """
    qq = np.uint64(q)
    log_n = 0
    while (1 << log_n) < n:
        log_n += 1
    p = _minimal_psi(n, qq)
    p_inv = _powmod(p, np.uint64(2 * n - 1), qq)  # psi^(2n) == 1
    fwd = np.empty(n, dtype=np.uint64)
    inv = np.empty(n, dtype=np.uint64)
    cur_f = _U1
    cur_i = _U1
    for e in range(n):
        j = _bitrev(e, log_n)
        fwd[j] = cur_f
        inv[j] = cur_i
        cur_f = mulmod(cur_f, p, qq)
        cur_i = mulmod(cur_i, p_inv, qq)
    tab = np.empty((4, n), dtype=np.uint64)
    for i in range(n):
        tab[0, i] = fwd[i]
        tab[1, i] = _shoup(fwd[i], qq)
        tab[2, i] = inv[i]
        tab[3, i] = _shoup(inv[i], qq)
    n_inv = _powmod(np.uint64(n), qq - _U2, qq)
    last = mulmod(inv[1], n_inv, qq)
    rh, rl = barrett_ratio(qq)
    scal = np.empty(8, dtype=np.uint64)
    scal[0] = qq
    scal[1] = n_inv
    scal[2] = _shoup(n_inv, qq)
    scal[3] = last
    scal[4] = _shoup(last, qq)
    scal[5] = rh
    scal[6] = rl
    scal[7] = p
    return tab, scal


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------
@njit(cache=True)
def _forward_one(x, w, ws, q):
    # Indices are uint64 on purpose: numba then omits the negative-index
    # wrap-around fix-up it adds for signed indices (about 40% of the time).
    n = np.uint64(x.shape[0])
    two_q = q + q
    t = n >> _U1
    m = _U1
    while m < n:
        j1 = _U0
        for i in range(m):
            wi = w[m + i]
            wsi = ws[m + i]
            for j in range(j1, j1 + t):
                X = x[j]
                Y = x[j + t]
                if X >= two_q:
                    X -= two_q
                T = wi * Y - _mulhi(wsi, Y) * q  # Shoup: in [0, 2q) for any Y < 2^64
                x[j] = X + T  # [0, 4q)
                x[j + t] = X - T + two_q  # (0, 4q)
            j1 += t + t
        m <<= _U1
        t >>= _U1
    for j in range(n):
        v = x[j]
        if v >= two_q:
            v -= two_q
        if v >= q:
            v -= q
        x[j] = v


@njit(cache=True)
def _inverse_one(x, w, ws, q, n_inv, n_inv_s, last, last_s):
    n = np.uint64(x.shape[0])
    two_q = q + q
    t = _U1
    m = n
    while m > _U2:
        h = m >> _U1
        j1 = _U0
        for i in range(h):
            wi = w[h + i]
            wsi = ws[h + i]
            for j in range(j1, j1 + t):
                U = x[j]
                V = x[j + t]
                S = U + V
                if S >= two_q:
                    S -= two_q
                D = U - V + two_q  # (0, 4q)
                x[j] = S
                x[j + t] = wi * D - _mulhi(wsi, D) * q  # [0, 2q)
            j1 += t + t
        t <<= _U1
        m = h
    # last layer (one group, distance n/2) fused with the factor n^-1
    for j in range(t):
        U = x[j]
        V = x[j + t]
        S = U + V
        D = U - V + two_q
        r0 = n_inv * S - _mulhi(n_inv_s, S) * q
        r1 = last * D - _mulhi(last_s, D) * q
        if r0 >= q:
            r0 -= q
        if r1 >= q:
            r1 -= q
        x[j] = r0
        x[j + t] = r1


@njit(cache=True, nogil=True)
def _forward_rows(a, tabs, scal, row_idx):
    for r in range(a.shape[0]):
        k = row_idx[r]
        _forward_one(a[r], tabs[k, 0], tabs[k, 1], scal[k, 0])


@njit(cache=True, nogil=True)
def _inverse_rows(a, tabs, scal, row_idx):
    for r in range(a.shape[0]):
        k = row_idx[r]
        _inverse_one(a[r], tabs[k, 2], tabs[k, 3], scal[k, 0], scal[k, 1], scal[k, 2],
                     scal[k, 3], scal[k, 4])


@njit(cache=True, nogil=True)
def _pointwise_rows(a, b, out, scal, row_idx):
    n = np.uint64(a.shape[1])  # unsigned index: no wrap-around check
    for r in range(a.shape[0]):
        k = row_idx[r]
        q = scal[k, 0]
        rh = scal[k, 5]
        rl = scal[k, 6]
        for j in range(n):
            out[r, j] = _mulmod_barrett(a[r, j], b[r, j], q, rh, rl)


@njit(cache=True, nogil=True)
def _polymul_rows(a, b, out, tabs, scal, row_idx):
    n = np.uint64(a.shape[1])  # unsigned index: no wrap-around check
    tmp = np.empty(a.shape[1], dtype=np.uint64)
    for r in range(a.shape[0]):
        k = row_idx[r]
        q = scal[k, 0]
        rh = scal[k, 5]
        rl = scal[k, 6]
        o = out[r]
        for j in range(n):
            tmp[j] = a[r, j]
            o[j] = b[r, j]
        _forward_one(tmp, tabs[k, 0], tabs[k, 1], q)
        _forward_one(o, tabs[k, 0], tabs[k, 1], q)
        for j in range(n):
            o[j] = _mulmod_barrett(tmp[j], o[j], q, rh, rl)
        _inverse_one(o, tabs[k, 2], tabs[k, 3], q, scal[k, 1], scal[k, 2], scal[k, 3],
                     scal[k, 4])


# --------------------------------------------------------------------------
# Table cache and the raw API (same names and signatures as he_ml._native)
# --------------------------------------------------------------------------
DEFAULT_TABLE_CACHE_BYTES = 256 << 20  # the C++ core's default (he_native/ntt.hpp)


class _ByteLRU:
    """Least-recently-used cache whose values' bytes never exceed ``budget``.

    Values are tuples of numpy arrays; an entry alone larger than the budget is
    not kept. Thread-safe (the numba kernels release the GIL).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0
        self._entries: OrderedDict[tuple, tuple[tuple[np.ndarray, ...], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[np.ndarray, ...] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: tuple, value: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        size = sum(int(v.nbytes) for v in value)
        with self._lock:
            self.misses += 1
            if key in self._entries:  # another thread won the race
                self._entries.move_to_end(key)
                return self._entries[key][0]
            if size <= self.budget:
                self._entries[key] = (value, size)
                self.bytes += size
                self._evict(self.budget)
        return value

    def set_budget(self, budget: int) -> None:
        with self._lock:
            self.budget = budget
            self._evict(budget)

    def clear(self) -> None:
        with self._lock:
            self._evict(0)
            self.hits = self.misses = self.evictions = 0

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self.bytes, "budget": self.budget,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}

    def _evict(self, limit: int) -> None:
        while self.bytes > limit and self._entries:
            _, (_, size) = self._entries.popitem(last=False)
            self.bytes -= size
            self.evictions += 1


# One byte budget for the per-(n, q) tables and the stacked per-call copies built from them.
_cache = _ByteLRU(DEFAULT_TABLE_CACHE_BYTES)


def set_table_cache_budget(nbytes: int) -> None:
    """Byte budget of the table cache (LRU; 0 disables caching)."""
    _cache.set_budget(int(nbytes))


def table_cache_info() -> dict[str, int]:
    """Entries, bytes, budget and hit / miss / eviction counters of the table cache."""
    return _cache.info()


def clear_table_cache() -> None:
    """Drop every cached table and reset the counters."""
    _cache.clear()


def _check_n_q(n: int, q: int) -> None:
    if n < MIN_N or n > MAX_N or n & (n - 1):
        raise ValueError(f"n must be a power of two in [{MIN_N}, {MAX_N}]; got {n}")
    if not 2 < q < MAX_MODULUS:
        raise ValueError(f"q must be in (2, 2^62); got {q}")
    if q % (2 * n) != 1:
        raise ValueError(f"q must be 1 mod 2n = {2 * n}; got q = {q} (q mod 2n = {q % (2 * n)})")
    if not _is_prime(np.uint64(q)):
        raise ValueError(f"q must be prime; got {q}")


def ntt_tables(n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached tables ``(tab, scal)`` for ``(n, q)``; see :func:`_build_tables`.

    Raises
    ------
    ValueError
        If ``n`` is not a power of two in ``[2, 65536]`` or ``q`` is not a prime
        ``< 2**62`` with ``q == 1 (mod 2n)``.
    """
    key = ("tables", int(n), int(q))
    entry = _cache.get(key)
    if entry is None:
        _check_n_q(key[1], key[2])
        tab, scal = _build_tables(key[1], np.uint64(key[2]))
        tab.flags.writeable = False
        scal.flags.writeable = False
        entry = _cache.put(key, (tab, scal))
    return entry  # type: ignore[return-value]


def _stack(n: int, moduli: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables for every distinct modulus of ``moduli`` and the row -> table index."""
    key = ("stack", n, moduli.tobytes())
    entry = _cache.get(key)
    if entry is not None:
        return entry  # type: ignore[return-value]
    distinct, row_idx = np.unique(moduli, return_inverse=True)
    parts = [ntt_tables(n, int(q)) for q in distinct]
    tabs = np.ascontiguousarray(np.stack([p[0] for p in parts]))
    scal = np.ascontiguousarray(np.stack([p[1] for p in parts]))
    entry = (tabs, scal, np.ascontiguousarray(row_idx.reshape(-1), dtype=np.int64))
    return _cache.put(key, entry)  # type: ignore[return-value]


def _check_rows(name: str, a: np.ndarray, writable: bool) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint64 or a.ndim != 2:
        got = type(a).__name__ if not isinstance(a, np.ndarray) else f"{a.dtype} array of ndim {a.ndim}"
        raise ValueError(f"{name} must be a 2-D uint64 numpy array (rows, n); got {got}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; got a strided array")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable; got a read-only array")


def _check_moduli(moduli: np.ndarray, rows: int) -> np.ndarray:
    """Per-row moduli from ``(k,)`` moduli with ``k`` dividing ``rows`` (row i: moduli[i % k])."""
    moduli = np.ascontiguousarray(moduli, dtype=np.uint64)
    k = moduli.shape[0] if moduli.ndim == 1 else -1
    if k < 0 or (rows % k if k else rows):
        raise ValueError(f"moduli must have shape (k,) with k dividing the number of rows "
                         f"({rows}; row i uses moduli[i % k]); got shape {moduli.shape}")
    return moduli if k == rows else np.tile(moduli, rows // k)


def _check_tier(tier: str) -> None:
    if tier not in ("auto", "numba"):
        raise ValueError(f"tier must be 'auto' for the numba fallback; got {tier!r}")


def forward_ntt(a: np.ndarray, moduli: np.ndarray, tier: str = "auto") -> None:
    """Forward negacyclic NTT of every row of ``a`` in place (row ``r`` mod ``moduli[r]``)."""
    _check_tier(tier)
    _check_rows("a", a, writable=True)
    moduli = _check_moduli(moduli, a.shape[0])
    if a.shape[0] == 0:
        return
    tabs, scal, idx = _stack(a.shape[1], moduli)
    _forward_rows(a, tabs, scal, idx)


def inverse_ntt(a: np.ndarray, moduli: np.ndarray, tier: str = "auto") -> None:
    """Inverse of :func:`forward_ntt`, in place."""
    _check_tier(tier)
    _check_rows("a", a, writable=True)
    moduli = _check_moduli(moduli, a.shape[0])
    if a.shape[0] == 0:
        return
    tabs, scal, idx = _stack(a.shape[1], moduli)
    _inverse_rows(a, tabs, scal, idx)


def _check_binary(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    _check_rows("a", a, writable=False)
    _check_rows("b", b, writable=False)
    _check_rows("out", out, writable=True)
    if a.shape != b.shape or a.shape != out.shape:
        raise ValueError(
            f"a, b and out must have the same shape; got {a.shape}, {b.shape}, {out.shape}")


def pointwise_mul(a: np.ndarray, b: np.ndarray, out: np.ndarray, moduli: np.ndarray) -> None:
    """``out[r] = a[r] * b[r] mod moduli[r]`` element-wise (``out`` may alias ``a`` or ``b``)."""
    _check_binary(a, b, out)
    moduli = _check_moduli(moduli, a.shape[0])
    if a.shape[0] == 0:
        return
    _, scal, idx = _stack(a.shape[1], moduli)
    _pointwise_rows(a, b, out, scal, idx)


def polymul(a: np.ndarray, b: np.ndarray, out: np.ndarray, moduli: np.ndarray,
            tier: str = "auto") -> None:
    """Negacyclic product of each row pair, ``out`` aliasing neither input."""
    _check_tier(tier)
    _check_binary(a, b, out)
    if np.shares_memory(out, a) or np.shares_memory(out, b):
        raise ValueError("out must not alias a or b; got an overlapping output array")
    moduli = _check_moduli(moduli, a.shape[0])
    if a.shape[0] == 0:
        return
    tabs, scal, idx = _stack(a.shape[1], moduli)
    _polymul_rows(a, b, out, tabs, scal, idx)


def is_prime(q: int) -> bool:
    """Deterministic Miller-Rabin for every ``0 <= q < 2**64``."""
    q = int(q)
    if not 0 <= q < 1 << 64:
        raise ValueError(f"q must be in [0, 2^64); got {q}")
    return bool(_is_prime(np.uint64(q)))


def find_primes(bits: int, n: int, count: int) -> list[int]:
    """``count`` distinct primes of exactly ``bits`` bits with ``q == 1 mod 2n``, largest first."""
    bits, n, count = int(bits), int(n), int(count)
    # every limit is checked before the output array is allocated (count sizes it)
    if n < MIN_N or n > MAX_N or n & (n - 1):
        raise ValueError(f"n must be a power of two in [{MIN_N}, {MAX_N}]; got {n}")
    min_bits = n.bit_length() + 1  # log2(n) + 2: the largest candidate 2^bits - 2n + 1 has bits bits
    if not min_bits <= bits <= 62:
        raise ValueError(f"bits must be in [{min_bits}, 62] for n = {n}; got {bits}")
    if not 1 <= count <= MAX_PRIME_COUNT:
        raise ValueError(f"count must be in [1, {MAX_PRIME_COUNT}]; got {count}")
    found = _find_primes(bits, np.uint64(2 * n), count)
    if found.shape[0] < count:
        raise ValueError(
            f"count must be at most the number of {bits}-bit primes == 1 mod {2 * n} "
            f"({found.shape[0]}); got {count}")
    return [int(v) for v in found]


def psi(n: int, q: int) -> int:
    """Smallest primitive ``2n``-th root of unity modulo ``q``."""
    return int(ntt_tables(n, q)[1][7])
