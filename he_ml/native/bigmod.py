"""Batched big-integer modular exponentiation: ``[b^e mod N for b in bases]``.

Many bases, one shared odd modulus ``N`` (up to 8192 bits) and one shared exponent ``e``: the
workload of a threshold-Paillier committee member (``c^(2 Delta s_i) mod n^2`` for every
ciphertext of a total) and of any same-key RSA batch.

Backends, picked at run time like the NTT tiers of :mod:`he_ml.native`:

* ``"avx512ifma"`` -- the C++ core's multi-buffer kernel (``he_ml._native.modexp_batch``):
  8 bases per AVX-512 register in radix 2^52, almost-Montgomery multiplication with
  ``vpmadd52luq/huq`` (the technique of Intel IPP-crypto's mbx RSA and of Drucker-Gueron 2019 /
  Gueron-Krasnov 2016). Runs when the module is built with it, the CPU has AVX-512 IFMA and
  ``HE_ML_DISABLE_AVX512IFMA`` is not set (the NTT tiers' kill switch, read once per process).
  Groups of bases run in ``threads`` threads with the GIL released.
* ``"gmpy2"`` -- the portable fallback: GMP's ``mpz_powm_sec`` (constant time) or ``mpz_powm``
  per base, optionally in a pool of worker processes.
* ``"reference"`` -- the C++ core's plain 64-bit Montgomery path (a test oracle; slower than GMP).

Constant time: the native paths scan the exponent with a fixed window and read the window's
table entry by a masked select over every entry, so neither branches nor memory addresses depend
on the exponent's value; the work depends on ``exponent_bits`` (public), not on the exponent.
The gmpy2 path is constant time only with ``secret_exponent=True`` (``powmod_sec``, about 1.7x
slower than ``powmod`` here). Bases and modulus are treated as public.

Example
-------
>>> from he_ml.native.bigmod import powmod_many
>>> powmod_many([2, 3, 4], 5, 1009)
[32, 243, 15]
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np

from ..errors import ParameterError

__all__ = ["powmod_many", "backend", "backends", "MAX_MODULUS_BITS", "MAX_EXPONENT_BITS"]

#: Widest modulus accepted: Paillier 4096 gives n^2 of 8192 bits (the C++ core's kBigModMaxBits).
MAX_MODULUS_BITS = 8192
#: Widest exponent accepted (the work is linear in it; kBigModMaxExponentBits).
MAX_EXPONENT_BITS = 4 * MAX_MODULUS_BITS
#: Bases per IFMA group (8 lanes of a zmm register): threads get whole groups.
_LANES = 8

try:
    from .. import _native as _cpp  # type: ignore[attr-defined]

    if not hasattr(_cpp, "modexp_batch"):  # a module built before this kernel existed
        _cpp = None
except ImportError:  # not built: gmpy2 only
    _cpp = None


def backends() -> tuple[str, ...]:
    """Backends that can run here, fastest first (``"gmpy2"`` always)."""
    out = []
    if _cpp is not None and _cpp.bigmod_tier_supported("avx512ifma"):
        out.append("avx512ifma")
    out.append("gmpy2")
    if _cpp is not None:
        out.append("reference")
    return tuple(out)


def backend() -> str:
    """The backend ``powmod_many(..., backend="auto")`` runs: ``"avx512ifma"`` or ``"gmpy2"``."""
    return backends()[0]


def _check_int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer, type(gmpy2.mpz(0)))):
        raise ParameterError(f"{what} must be an int; got {type(x).__name__}.")
    return int(x)


def powmod_many(bases: Sequence[Any], exponent: Any, modulus: Any, *, exponent_bits: int | None = None,
                backend: str = "auto", threads: int | None = None, processes: int = 1,
                mp_context: str = "spawn", secret_exponent: bool = True) -> list[int]:
    """``[pow(b, exponent, modulus) for b in bases]``, on the fastest backend here.

    Parameters
    ----------
    bases : sequence of int
        Each in ``[0, modulus)`` (ints or gmpy2 ``mpz``).
    exponent : int
        ``0 <= exponent < 2**MAX_EXPONENT_BITS``. ``b**0 = 1`` for every base (also 0).
    modulus : int
        Odd, ``>= 3``, at most ``MAX_MODULUS_BITS`` bits.
    exponent_bits : int, optional
        A public upper bound on the exponent's bit length; the native paths do the work of an
        exponent of this length, so the time does not reveal the exponent's actual length.
        Default: ``exponent.bit_length()``.
    backend : {"auto", "avx512ifma", "gmpy2", "reference"}, default "auto"
        ``"auto"`` is :func:`backend`.
    threads : int, optional
        Native paths: threads running groups of 8 bases with the GIL released. Default: the
        number of CPUs this process may run on (``os.sched_getaffinity``, else ``os.cpu_count()``).
    processes : int, default 1
        gmpy2 path: with more than one, the bases are split over that many worker processes
        (start method ``mp_context``; with ``"spawn"``, a script that calls this at import
        time needs the usual ``if __name__ == "__main__":`` guard). Ignored by native paths.
    mp_context : {"spawn", "forkserver", "fork"}, default "spawn"
    secret_exponent : bool, default True
        gmpy2 path: use the constant-time ``powmod_sec`` (the native paths always are).

    Returns
    -------
    list of int
        ``b^exponent mod modulus`` for each base, in order.

    Raises
    ------
    ParameterError
        If the modulus is even, below 3 or wider than ``MAX_MODULUS_BITS``; the exponent is
        negative, wider than ``MAX_EXPONENT_BITS`` or than ``exponent_bits``; a base is outside
        ``[0, modulus)`` (reduce it first); ``backend``, ``threads`` or ``processes`` is invalid
        or the asked backend cannot run here.

    Notes
    -----
    Cost (measured on the development machine, Xeon with AVX-512 IFMA, one core, noisy):
    a 6144-bit modulus with a 6150-bit exponent takes about 14 ms per base with
    ``"avx512ifma"`` and about 50 ms with gmpy2's ``powmod``. See ``docs/committee.md``.

    References
    ----------
    .. [1] N. Drucker, S. Gueron, "Fast modular squaring with AVX512IFMA", ITNG 2019.
    .. [2] S. Gueron, V. Krasnov, "Accelerating big integer arithmetic using Intel IFMA
       extensions", ARITH 2016.
    .. [3] S. Gueron, "Efficient software implementations of modular exponentiation",
       J. Cryptographic Engineering 2 (2012), Sect. 4 (almost Montgomery multiplication).
    """
    n = _check_int(modulus, "modulus")
    if n < 3 or n % 2 == 0 or n.bit_length() > MAX_MODULUS_BITS:
        raise ParameterError(
            f"modulus must be odd, >= 3 and at most {MAX_MODULUS_BITS} bits; got a {n.bit_length()}-bit "
            f"{'even ' if n % 2 == 0 else ''}value{' below 3' if n < 3 else ''}. Use an odd modulus such as n^2 "
            "of a Paillier key.")
    e = _check_int(exponent, "exponent")
    if e < 0:
        raise ParameterError("exponent must be >= 0; got a negative value. Invert the bases first.")
    ebits = e.bit_length() if exponent_bits is None else _check_int(exponent_bits, "exponent_bits")
    if ebits < e.bit_length() or ebits > MAX_EXPONENT_BITS:
        raise ParameterError(
            f"exponent_bits must be in [exponent.bit_length(), {MAX_EXPONENT_BITS}] = "
            f"[{e.bit_length()}, {MAX_EXPONENT_BITS}]; got {ebits}.")
    values = [_check_int(b, "every base") for b in bases]
    for i, b in enumerate(values):
        if not 0 <= b < n:
            raise ParameterError(
                f"every base must be in [0, modulus); base {i} is {'negative' if b < 0 else '>= modulus'}. "
                "Reduce it mod the modulus first (b % modulus).")
    if backend == "auto":
        backend = backends()[0]
    if backend not in ("avx512ifma", "gmpy2", "reference"):
        raise ParameterError(f"backend must be 'auto', 'avx512ifma', 'gmpy2' or 'reference'; got {backend!r}.")
    if backend not in backends():
        raise ParameterError(
            f"backend {backend!r} cannot run here (available: {', '.join(backends())}): it needs the compiled "
            "module with AVX-512 IFMA on a CPU that has it and HE_ML_DISABLE_AVX512IFMA unset. Use backend='auto'.")
    if not values:
        return []
    if backend == "gmpy2":
        return _gmpy2_many(values, e, n, processes, mp_context, secret_exponent)
    if threads is None:  # the CPUs this process may run on (affinity / cgroup cpusets), else all
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
        raise ParameterError(f"threads must be an int in [1, 1024]; got {threads!r}.")
    return _native_many(values, e, max(ebits, 1), n, backend, threads)


def _native_many(values: list[int], e: int, ebits: int, n: int, tier: str, threads: int) -> list[int]:
    w = (n.bit_length() + 63) // 64
    width = 8 * w
    arr = np.frombuffer(b"".join(b.to_bytes(width, "little") for b in values), dtype="<u8").reshape(len(values), w)
    exp = np.frombuffer(e.to_bytes(8 * ((ebits + 63) // 64), "little"), dtype="<u8")
    mod = np.frombuffer(n.to_bytes(width, "little"), dtype="<u8")
    groups = -(-len(values) // _LANES)
    k = min(threads, groups)
    # whole groups of 8 per thread: no thread pads a group another one could have filled
    cuts = [len(values) if j == k else min(len(values), _LANES * (groups * j // k)) for j in range(k + 1)]

    def run(lo: int, hi: int) -> np.ndarray:
        try:
            return _cpp.modexp_batch(arr[lo:hi], exp, mod, tier)
        except ValueError as err:  # the core re-checks; keep our error type
            raise ParameterError(f"powmod_many: {err}") from err

    if k == 1:
        parts = [run(0, len(values))]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=k) as pool:
            parts = list(pool.map(run, cuts[:-1], cuts[1:]))
    out = []
    for p in parts:
        raw = p.tobytes()
        out.extend(int.from_bytes(raw[i:i + width], "little") for i in range(0, len(raw), width))
    return out


def _gmpy2_chunk(args: tuple[list[int], int, int, bool]) -> list[int]:
    values, e, n, sec = args
    if sec and e > 0:  # mpz_powm_sec needs a positive exponent; e = 0 leaks nothing anyway
        return [int(gmpy2.powmod_sec(b, e, n)) for b in values]
    return [int(gmpy2.powmod(b, e, n)) for b in values]


def _gmpy2_many(values: list[int], e: int, n: int, processes: int, mp_context: str, sec: bool) -> list[int]:
    if isinstance(processes, bool) or not isinstance(processes, int) or not 1 <= processes <= 1024:
        raise ParameterError(f"processes must be an int in [1, 1024]; got {processes!r}.")
    k = min(processes, len(values))
    if k == 1:
        return _gmpy2_chunk((values, e, n, sec))
    import concurrent.futures as cf
    import multiprocessing as mp

    try:
        ctx = mp.get_context(mp_context)
    except ValueError as err:
        raise ParameterError(f"mp_context must be 'spawn', 'forkserver' or 'fork'; got {mp_context!r}.") from err
    cuts = [len(values) * j // k for j in range(k + 1)]
    with cf.ProcessPoolExecutor(max_workers=k, mp_context=ctx) as pool:
        parts = pool.map(_gmpy2_chunk, [(values[a:b], e, n, sec) for a, b in zip(cuts[:-1], cuts[1:])])
        return [x for part in parts for x in part]
