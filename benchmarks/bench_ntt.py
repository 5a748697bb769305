"""NTT benchmark: he_ml's native core against Microsoft SEAL's NTT (as shipped in TenSEAL).

For every n in {4096, 8192, 16384, 32768} and primes of 50 and 60 bits this
measures the median time of one forward + inverse negacyclic NTT per
(polynomial, prime):

* **SEAL-in-TenSEAL** (the baseline, measured in the same run):
  ``Evaluator.transform_to_ntt_inplace`` + ``transform_from_ntt_inplace`` on a
  fresh BFV ciphertext (2 polynomials x k data primes) whose coefficient
  modulus holds exactly the primes he_ml uses (plus one special prime SEAL
  keeps for key switching, not part of the ciphertext); time / (2 k);
* **he_ml tiers** of the compiled core (``avx512ifma`` where ``q < 2**50``,
  ``avx512``, ``scalar``, ``reference``), each forced through the raw module on
  the same (2, k, n) RNS batch in one call per transform, as SEAL does;
* **he_ml public API**: ``native.ntt_rns`` + ``native.intt_rns`` with
  automatic dispatch and input validation, once returning new arrays
  ("public API": allocation and copy included) and once in place
  ("public API, out=");
* **numba fallback** (``he_ml.native._numba``) on the same batch;
* **numpy**: a vectorised per-layer NTT written below (Shoup products from
  32-bit halves), the pure-Python-stack baseline.

Every implementation's forward output is checked equal to the others' before
timing. Measurements are interleaved round-robin so drift on a noisy machine
hits every implementation alike; in each round every implementation runs twice
back to back and only the second call is timed, so each is measured in the
steady state of a loop of transforms (its data and tables in cache, the
AVX-512 units powered up) instead of paying for whatever ran before it — the
same treatment for SEAL and for he_ml. Times are the thread's CPU time (every
kernel runs on the calling thread), so time spent descheduled on a shared
machine does not count; wall-clock medians are stored in the JSON too. The table shows medians and the speed-up against SEAL, with
the issue's targets:

* ``avx512ifma`` >= 6.5x SEAL at n = 4096 ... 16384 (50-bit primes),
* ``avx512`` >= 3.0x SEAL with 60-bit primes,
* ``scalar`` >= 1.2x SEAL, numba no more than 3x slower than SEAL.

A second table puts side by side, for the tier that automatic dispatch picks:
the raw kernel, the public API with ``out=`` and the public API without
``out=`` (new arrays returned) on the forward + inverse chain above, each with
its speed-up against SEAL. The chain without ``out=`` holds three arrays (input,
forward result, inverse result) where the in-place chain holds one; see
docs/native.md for what that costs once they outgrow the L2 cache.

A third table is issue 10's target, function by function: ``ntt``, ``intt``
and ``polymul`` on one polynomial and ``ntt_rns``, ``intt_rns`` and
``polymul_rns`` on the (2, k, n) batch, each called without ``out=`` (a new
array returned) and with ``out=`` (in place for the transforms, a preallocated
array for the products, which may not overlap their inputs), interleaved, for
every n in {4096, ..., 32768} (also with ``--quick``) and both prime widths.
Each sample times a loop of calls long enough (2 ms, 4 ms in the full run)
for the clock's granularity not to matter; the ratio no out= / out= of the medians must
be at most 1.15 (PASS / MISS per row).

Usage::

    python benchmarks/bench_ntt.py                  # full run (a few minutes)
    python benchmarks/bench_ntt.py --quick          # tiers at n in {4096, 8192}, fewer repeats
    python benchmarks/bench_ntt.py --quick --save   # also write the results

With ``--save`` writes ``benchmarks/results/bench_ntt.json`` (``bench_ntt_quick.json``
with ``--quick``) and the PNG next to it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from he_ml import native

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = (4096, 8192, 16384, 32768)
QUICK_SIZES = (4096, 8192)
WIDTHS = (50, 60)
DATA_PRIMES = 3  # k: a ciphertext is 2 polynomials x k primes (SEAL adds 1 special prime)
BASELINE = "SEAL (TenSEAL)"
PUBLIC_NO_OUT = "public API"
PUBLIC_OUT = "public API, out="
NO_OUT_MAX_OVERHEAD = 1.15  # issue 10: no-out within 15 % of out= for n >= 4096
API_FUNCTIONS = ("ntt", "intt", "polymul", "ntt_rns", "intt_rns", "polymul_rns")

# (implementation, prime bits, n range) -> minimum speed-up vs SEAL
TARGETS = {
    ("avx512ifma", 50): (6.5, (4096, 16384)),
    ("avx512", 60): (3.0, (4096, 32768)),
    ("scalar", 50): (1.2, (4096, 32768)),
    ("scalar", 60): (1.2, (4096, 32768)),
    ("numba", 50): (1 / 3, (4096, 32768)),
    ("numba", 60): (1 / 3, (4096, 32768)),
}


# ---------------------------------------------------------------------------
# Pure numpy baseline: one vectorised step per butterfly layer
# ---------------------------------------------------------------------------
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def _mulhi_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """High 64 bits of a * b from four 32 x 32-bit partial products (numpy has no 128-bit)."""
    a0, a1 = a & _M32, a >> _S32
    b0, b1 = b & _M32, b >> _S32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)
    return p11 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)


def _shoup_mul_np(y: np.ndarray, w: np.ndarray, ws: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``w * y mod q`` in [0, q) given the Shoup companion ``ws = floor(w 2^64 / q)``."""
    r = w * y - _mulhi_np(ws, y) * q  # in [0, 2q); uint64 arithmetic wraps
    return r - q * (r >= q)


class NumpyNTT:
    """Negacyclic NTT of (rows, n) uint64 arrays, row r modulo ``moduli[r]``, in numpy.

    Same convention as he_ml (bit-reversed output, smallest primitive 2n-th
    root). Tables are built here with Python integers from ``native.psi``.
    """

    def __init__(self, n: int, moduli: list[int]) -> None:
        self.n = n
        log_n = n.bit_length() - 1
        rev = [int(format(i, f"0{log_n}b")[::-1], 2) for i in range(n)]
        fw, fws, iw, iws, ninv, ninvs = [], [], [], [], [], []
        for q in moduli:
            p = native.psi(n, q)
            p_inv = pow(p, -1, q)
            pw = [1] * n
            ipw = [1] * n
            for e in range(1, n):
                pw[e] = pw[e - 1] * p % q
                ipw[e] = ipw[e - 1] * p_inv % q
            f = [pw[rev[i]] for i in range(n)]
            g = [ipw[rev[i]] for i in range(n)]
            fw.append(f)
            fws.append([(v << 64) // q for v in f])
            iw.append(g)
            iws.append([(v << 64) // q for v in g])
            ni = pow(n, -1, q)
            ninv.append(ni)
            ninvs.append((ni << 64) // q)
        as_u = lambda x: np.array(x, dtype=np.uint64)
        self.fw, self.fws, self.iw, self.iws = as_u(fw), as_u(fws), as_u(iw), as_u(iws)
        self.q = as_u(moduli)[:, None]
        self.ninv = as_u(ninv)[:, None]
        self.ninvs = as_u(ninvs)[:, None]

    def forward(self, x: np.ndarray) -> np.ndarray:
        rows, n = x.shape
        x = x.copy()
        q3 = self.q[:, :, None]
        m, t = 1, n // 2
        while m < n:
            v = x.reshape(rows, m, 2, t)
            w = self.fw[:, m:2 * m, None]
            ws = self.fws[:, m:2 * m, None]
            top = v[:, :, 0, :].copy()
            prod = _shoup_mul_np(v[:, :, 1, :], w, ws, q3)
            s = top + prod
            d = top + q3 - prod
            v[:, :, 0, :] = s - q3 * (s >= q3)
            v[:, :, 1, :] = d - q3 * (d >= q3)
            m, t = 2 * m, t // 2
        return x

    def inverse(self, x: np.ndarray) -> np.ndarray:
        rows, n = x.shape
        x = x.copy()
        q3 = self.q[:, :, None]
        m, t = n, 1
        while m > 1:
            h = m // 2
            v = x.reshape(rows, h, 2, t)
            w = self.iw[:, h:2 * h, None]
            ws = self.iws[:, h:2 * h, None]
            u, vv = v[:, :, 0, :].copy(), v[:, :, 1, :].copy()
            s = u + vv
            v[:, :, 0, :] = s - q3 * (s >= q3)
            v[:, :, 1, :] = _shoup_mul_np(u + q3 - vv, w, ws, q3)
            m, t = h, 2 * t
        return _shoup_mul_np(x, self.ninv, self.ninvs, self.q)


# ---------------------------------------------------------------------------
# SEAL through tenseal.sealapi
# ---------------------------------------------------------------------------
class SealNTT:
    """A BFV ciphertext whose data level holds exactly ``primes``; times SEAL's NTT on it."""

    def __init__(self, n: int, primes: list[int], special_prime: int) -> None:
        import tenseal.sealapi as seal

        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV)
        parms.set_poly_modulus_degree(n)
        # the last modulus is SEAL's special (key-switching) prime; ciphertexts live on the rest
        parms.set_coeff_modulus([seal.Modulus(q) for q in [*primes, special_prime]])
        parms.set_plain_modulus(seal.PlainModulus.Batching(n, 20))
        # explicit primes may exceed the 128-bit budget for small n: this is a speed test
        self.context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.NONE)
        if not self.context.parameters_set():
            raise RuntimeError(f"SEAL rejected the parameters: "
                               f"{self.context.parameters_error_message()}")
        keygen = seal.KeyGenerator(self.context)
        public_key = seal.PublicKey()
        keygen.create_public_key(public_key)
        self.evaluator = seal.Evaluator(self.context)
        self.ct = seal.Ciphertext(self.context)
        seal.Encryptor(self.context, public_key).encrypt(seal.Plaintext("3x^2 + 1"), self.ct)
        if self.ct.coeff_modulus_size() != len(primes):
            raise RuntimeError("ciphertext level does not hold the expected primes")
        self.polys = self.ct.size() * self.ct.coeff_modulus_size()

    def pair(self) -> None:
        self.evaluator.transform_to_ntt_inplace(self.ct)
        self.evaluator.transform_from_ntt_inplace(self.ct)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def _interleaved_medians(cands: dict[str, Callable[[], None]], repeats: int,
                         budget_s: float) -> dict[str, tuple[float, float]]:
    """(median thread-CPU seconds, median wall seconds) per call of each candidate.

    Calls run round-robin after a warm-up; in each round a candidate's timed
    call directly follows an untimed call of the same candidate (steady state,
    see the module docstring). Every kernel here runs on the calling thread, so
    thread CPU time (``CLOCK_THREAD_CPUTIME_ID``) measures the work itself and
    is not inflated when the shared machine deschedules us; wall time is
    recorded alongside.
    """
    single = {}
    for name, fn in cands.items():
        fn()  # warm-up (tables, caches, JIT)
        t0 = time.thread_time()
        fn()
        single[name] = time.thread_time() - t0
    # slow candidates get fewer rounds so one grid point stays within the budget
    # (a round costs two calls)
    rounds = {name: max(5, min(repeats, int(budget_s / max(2 * s, 1e-9))))
              for name, s in single.items()}
    cpu: dict[str, list[float]] = {name: [] for name in cands}
    wall: dict[str, list[float]] = {name: [] for name in cands}
    for r in range(max(rounds.values())):
        for name, fn in cands.items():
            if r < rounds[name]:
                fn()  # untimed: leave the caches and the vector units as this candidate's loop would
                w0, c0 = time.perf_counter(), time.thread_time()
                fn()
                c1, w1 = time.thread_time(), time.perf_counter()
                cpu[name].append(c1 - c0)
                wall[name].append(w1 - w0)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in cands}


def run(sizes: tuple[int, ...], repeats: int, budget_s: float, with_reference: bool,
        progress: Callable[[str], None]) -> list[dict]:
    """Rows of results for every n in ``sizes`` and both prime widths."""
    cpp = native._cpp_module if native.implementation() == "cpp" else None
    rows_out = []
    for n in sizes:
        for bits in WIDTHS:
            rows_out += _bench_point(n, bits, cpp, repeats, budget_s, with_reference, progress)
    return rows_out


def _bench_point(n: int, bits: int, cpp, repeats: int, budget_s: float, with_reference: bool,
                 progress: Callable[[str], None]) -> list[dict]:
    """Check, then time, every implementation at one (n, prime width)."""
    from he_ml.native import _numba

    rows_out = []
    found = native.find_primes(bits, n, DATA_PRIMES + 1)
    # SEAL's special (key-switching) prime is the last modulus; give it the largest
    primes, special = found[1:], found[0]
    k = len(primes)
    rng = np.random.default_rng(n + bits)
    batch = np.stack([np.stack([rng.integers(0, q, size=n, dtype=np.uint64)
                                for q in primes]) for _ in range(2)])  # (2, k, n)
    flat = batch.reshape(2 * k, n)
    mods = np.array(primes * 2, dtype=np.uint64)
    polys = 2 * k

    seal_ntt = SealNTT(n, primes, special)
    assert seal_ntt.polys == polys
    np_ntt = NumpyNTT(n, primes * 2)

    # --- correctness first: every candidate computes the same forward transform
    with native.use_backend("numba"):
        expected = native.ntt_rns(batch, primes).reshape(2 * k, n)
    np.testing.assert_array_equal(np_ntt.forward(flat), expected)
    np.testing.assert_array_equal(np_ntt.inverse(expected), flat)
    tiers = native.available_tiers(primes[0]) if cpp is not None else []
    if not with_reference:
        tiers = [t for t in tiers if t != "reference"]
    for tier in tiers:
        y = flat.copy()
        cpp.forward_ntt(y, mods, tier)
        np.testing.assert_array_equal(y, expected, err_msg=tier)

    # --- candidates (each forward + inverse on all 2k rows, in place where the API is)
    work = {name: flat.copy() for name in ["numba", *tiers]}
    cands: dict[str, Callable[[], None]] = {BASELINE: seal_ntt.pair}
    for tier in tiers:
        def pair(y=work[tier], tier=tier):
            cpp.forward_ntt(y, mods, tier)
            cpp.inverse_ntt(y, mods, tier)
        cands[tier] = pair
    # the public API (automatic tier, validation included), both ways of calling it
    cands[PUBLIC_NO_OUT] = lambda: native.intt_rns(native.ntt_rns(batch, primes), primes)
    in_place = batch.copy()

    def public_in_place(y=in_place):
        native.ntt_rns(y, primes, out=y)
        native.intt_rns(y, primes, out=y)
    cands[PUBLIC_OUT] = public_in_place

    def numba_pair(y=work["numba"]):
        _numba.forward_ntt(y, mods)
        _numba.inverse_ntt(y, mods)
    cands["numba"] = numba_pair
    cands["numpy"] = lambda: np_ntt.inverse(np_ntt.forward(flat))

    progress(f"n = {n}, {bits}-bit primes: {', '.join(cands)}")
    medians = _interleaved_medians(cands, repeats, budget_s)
    np.testing.assert_array_equal(cands_check(batch, primes), batch)
    for name, y in work.items():  # forward+inverse pairs must leave the data unchanged
        np.testing.assert_array_equal(y, flat, err_msg=name)
    np.testing.assert_array_equal(in_place, batch)
    seal_us = medians[BASELINE][0] / polys * 1e6
    for name, (sec, wall_sec) in medians.items():
        us = sec / polys * 1e6
        target = TARGETS.get((name, bits))
        if target is not None and not target[1][0] <= n <= target[1][1]:
            target = None
        speedup = seal_us / us
        rows_out.append({
            "n": n, "prime_bits": bits, "primes": primes, "implementation": name,
            "us_per_ntt_pair": round(us, 3), "speedup_vs_seal": round(speedup, 3),
            "wall_us_per_ntt_pair": round(wall_sec / polys * 1e6, 3),
            "target_speedup": None if target is None else round(target[0], 3),
            "meets_target": None if target is None else bool(speedup >= target[0]),
            "auto_tier": native.backend(primes[0]),
        })
    return rows_out


def cands_check(batch: np.ndarray, primes: list[int]) -> np.ndarray:
    """The no-out round trip as timed (its result must equal the input)."""
    return native.intt_rns(native.ntt_rns(batch, primes), primes)


# ---------------------------------------------------------------------------
# Issue 10: every public function without out= against the same call with out=
# ---------------------------------------------------------------------------
def _loop_medians(cands: dict[str, Callable[[], object]], repeats: int,
                  sample_s: float) -> dict[str, float]:
    """Median thread-CPU seconds per call; each sample is a loop of calls lasting ~sample_s.

    A sample starts after one untimed call (steady state, as in
    :func:`_interleaved_medians`), candidates alternate round-robin, and a
    candidate's loop length is fixed from a calibration so that every sample
    spans many clock ticks (a 6 us call timed alone is mostly clock overhead).
    """
    inner = {}
    for name, fn in cands.items():
        fn()
        t0 = time.thread_time()
        for _ in range(5):
            fn()
        inner[name] = max(1, int(sample_s / max((time.thread_time() - t0) / 5, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in cands}
    for _ in range(repeats):
        for name, fn in cands.items():
            fn()
            k = inner[name]
            t0 = time.thread_time()
            for _ in range(k):
                fn()
            samples[name].append((time.thread_time() - t0) / k)
    return {name: statistics.median(v) for name, v in samples.items()}


def api_rows(sizes: tuple[int, ...], repeats: int, sample_s: float,
             progress: Callable[[str], None]) -> list[dict]:
    """Per (n, prime width, function): median us per call with and without out=."""
    rows_out = []
    for n in sizes:
        for bits in WIDTHS:
            primes = native.find_primes(bits, n, DATA_PRIMES + 1)[1:]  # as in the tier table
            q = primes[0]
            rng = np.random.default_rng(7 * n + bits)
            a, b = (np.stack([np.stack([rng.integers(0, p, size=n, dtype=np.uint64)
                                        for p in primes]) for _ in range(2)]) for _ in range(2))
            a1, b1 = a[0, 0].copy(), b[0, 0].copy()
            # correctness first: no-out == out= == the numba fallback, for every function
            with native.use_backend("numba"):
                ref = {"ntt": native.ntt(a1, q), "intt": native.intt(a1, q),
                       "polymul": native.polymul(a1, b1, q),
                       "ntt_rns": native.ntt_rns(a, primes), "intt_rns": native.intt_rns(a, primes),
                       "polymul_rns": native.polymul_rns(a, b, primes)}
            calls = {  # function -> (no out=, out=, the array out= writes)
                "ntt": (lambda: native.ntt(a1, q), lambda y: native.ntt(y, q, out=y), a1),
                "intt": (lambda: native.intt(a1, q), lambda y: native.intt(y, q, out=y), a1),
                "polymul": (lambda: native.polymul(a1, b1, q),
                            lambda r: native.polymul(a1, b1, q, out=r), None),
                "ntt_rns": (lambda: native.ntt_rns(a, primes),
                            lambda y: native.ntt_rns(y, primes, out=y), a),
                "intt_rns": (lambda: native.intt_rns(a, primes),
                             lambda y: native.intt_rns(y, primes, out=y), a),
                "polymul_rns": (lambda: native.polymul_rns(a, b, primes),
                                lambda r: native.polymul_rns(a, b, primes, out=r), None),
            }
            cands: dict[str, Callable[[], object]] = {}
            for fname, (no_out, with_out, src) in calls.items():
                np.testing.assert_array_equal(no_out(), ref[fname], err_msg=fname)
                target = np.empty_like(ref[fname]) if src is None else src.copy()
                if src is not None:  # in place: check one call, then start from the input again
                    np.testing.assert_array_equal(with_out(target), ref[fname], err_msg=fname)
                    np.copyto(target, src)
                else:
                    np.testing.assert_array_equal(with_out(target), ref[fname], err_msg=fname)
                cands[f"{fname} no out="] = no_out
                cands[f"{fname} out="] = lambda f=with_out, t=target: f(t)
            progress(f"public API, n = {n}, {bits}-bit primes: {', '.join(calls)}")
            med = _loop_medians(cands, repeats, sample_s)
            for fname in calls:
                no_out, with_out = med[f"{fname} no out="], med[f"{fname} out="]
                ratio = no_out / with_out
                rows_out.append({
                    "n": n, "prime_bits": bits, "function": fname,
                    "shape": list(a1.shape if fname in ("ntt", "intt", "polymul") else a.shape),
                    "tier": native.backend(q),
                    "out_us": round(with_out * 1e6, 3), "no_out_us": round(no_out * 1e6, 3),
                    "no_out_over_out": round(ratio, 3),
                    "meets_target": None if n < 4096 else bool(ratio <= NO_OUT_MAX_OVERHEAD),
                })
    return rows_out


def _print_api(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="public API per function: median thread-CPU us per call, without out= "
                        "(new array) and with out= (in place; products: a preallocated array); "
                        f"target no out= / out= <= {NO_OUT_MAX_OVERHEAD:.2f} for n >= 4096")
    for col in ("n", "q bits", "tier", "function", "shape", "out=", "no out=",
                "no out= / out=", "status"):
        table.add_column(col, justify="left" if col in ("tier", "function", "shape", "status")
                         else "right")
    last = None
    for r in rows:
        key = (r["n"], r["prime_bits"])
        if last is not None and key != last:
            table.add_section()
        last = key
        status = "" if r["meets_target"] is None else ("[green]PASS" if r["meets_target"]
                                                       else "[red]MISS")
        table.add_row(str(r["n"]), str(r["prime_bits"]), r["tier"], r["function"],
                      "x".join(map(str, r["shape"])), f"{r['out_us']:.1f}",
                      f"{r['no_out_us']:.1f}", f"{r['no_out_over_out']:.3f}", status)
    Console(width=120).print(table)
    ratios = [r["no_out_over_out"] for r in rows if r["meets_target"] is not None]
    if ratios:
        met = sum(r["meets_target"] for r in rows if r["meets_target"] is not None)
        print(f"no out= / out=: {met}/{len(ratios)} rows within {NO_OUT_MAX_OVERHEAD:.2f} "
              f"(worst {max(ratios):.3f}, median {statistics.median(ratios):.3f})")


def overhead_rows(rows: list[dict]) -> list[dict]:
    """Per (n, width): the auto tier's kernel vs the public API with and without out=."""
    out = []
    by_point: dict[tuple[int, int], dict[str, dict]] = {}
    for r in rows:
        by_point.setdefault((r["n"], r["prime_bits"]), {})[r["implementation"]] = r
    for (n, bits), impls in by_point.items():
        tier = next(iter(impls.values()))["auto_tier"]
        if tier not in impls or PUBLIC_OUT not in impls or PUBLIC_NO_OUT not in impls:
            continue  # numba-only run: no compiled tier to compare with
        k, o, p = impls[tier], impls[PUBLIC_OUT], impls[PUBLIC_NO_OUT]
        ratio = p["us_per_ntt_pair"] / o["us_per_ntt_pair"]
        out.append({
            "n": n, "prime_bits": bits, "tier": tier,
            "kernel_us": k["us_per_ntt_pair"], "out_us": o["us_per_ntt_pair"],
            "no_out_us": p["us_per_ntt_pair"],
            "kernel_vs_seal": k["speedup_vs_seal"], "out_vs_seal": o["speedup_vs_seal"],
            "no_out_vs_seal": p["speedup_vs_seal"],
            "no_out_over_out": round(ratio, 3),
            "out_over_kernel": round(o["us_per_ntt_pair"] / k["us_per_ntt_pair"], 3),
        })
    return out


def _print_overhead(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="forward + inverse chain (auto tier): median thread-CPU us per "
                        f"(polynomial, prime) and speed-up vs {BASELINE}; without out= the "
                        "chain holds 3 arrays, in place 1 (docs/native.md)")
    for col in ("n", "q bits", "tier", "kernel", "public, out=", "public, no out=",
                "no out= / out="):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for r in rows:
        table.add_row(str(r["n"]), str(r["prime_bits"]), r["tier"],
                      f"{r['kernel_us']:.1f} ({r['kernel_vs_seal']:.2f}x)",
                      f"{r['out_us']:.1f} ({r['out_vs_seal']:.2f}x)",
                      f"{r['no_out_us']:.1f} ({r['no_out_vs_seal']:.2f}x)",
                      f"{r['no_out_over_out']:.3f}")
    Console(width=140).print(table)


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="forward + inverse NTT, median thread-CPU us per (polynomial, prime); "
                        f"speed-up = {BASELINE} time / time")
    for col in ("n", "q bits", "implementation", "us / NTT pair", "vs SEAL", "target", "status"):
        table.add_column(col, justify="right" if col not in ("implementation", "status") else "left")
    last = None
    for r in rows:
        key = (r["n"], r["prime_bits"])
        if last is not None and key != last:
            table.add_section()
        last = key
        tgt = r["target_speedup"]
        status = "" if r["meets_target"] is None else ("[green]PASS" if r["meets_target"]
                                                       else "[red]MISS")
        table.add_row(str(r["n"]), str(r["prime_bits"]), r["implementation"],
                      f"{r['us_per_ntt_pair']:.1f}", f"{r['speedup_vs_seal']:.2f}x",
                      "" if tgt is None else f">= {tgt:.2f}x",
                      status)
    Console(width=120).print(table)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["implementation"] for r in rows))
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(WIDTHS), figsize=(12, 4.8), sharey=True)
    for ax, bits in zip(axes, WIDTHS):
        sub = [r for r in rows if r["prime_bits"] == bits]
        for name in dict.fromkeys(r["implementation"] for r in sub):
            pts = [(r["n"], r["speedup_vs_seal"]) for r in sub if r["implementation"] == name]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name,
                    color=colors[name], linestyle="--" if name == BASELINE else "-")
        for (name, b), (tgt, _) in TARGETS.items():
            if b == bits and name in {r["implementation"] for r in sub}:
                ax.axhline(tgt, color="grey", linewidth=0.7, linestyle=":")
                ax.annotate(f"{name} target {tgt:.2g}x", (sub[0]["n"], tgt), fontsize=7,
                            color="grey", va="bottom")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n")
        ax.set_title(f"{bits}-bit primes")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(f"speed-up vs {BASELINE} (forward + inverse NTT)")
    handles = [plt.Line2D([], [], color=colors[nm], marker="o",
                          linestyle="--" if nm == BASELINE else "-") for nm in names]
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiers at n in {4096, 8192}, fewer repeats, no reference tier; "
                             "the per-function API table still covers n = 4096 ... 32768")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per candidate (default 41; quick: 11 for the "
                             "tiers, 21 for the per-function table)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="override n values (both tables)")
    parser.add_argument("--api-only", action="store_true",
                        help="only the per-function no out= / out= table (no SEAL, no tiers)")
    parser.add_argument("--save", action="store_true",
                        help="write the JSON and PNG results (default: print only)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path with --save (default benchmarks/results/bench_ntt"
                             "[_quick].json)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS_DIR / ("bench_ntt_quick.json" if args.quick else "bench_ntt.json")

    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    api_sizes = tuple(args.sizes) if args.sizes else SIZES
    repeats = args.repeats or (11 if args.quick else 41)
    budget = 1.0 if args.quick else 4.0
    # The per-function table is cheap (about 20 s even in full), so --quick keeps enough
    # rounds for stable medians: its ratios sit within a few per cent of 1 and noise would
    # decide PASS / MISS otherwise.
    api_repeats = args.repeats or (21 if args.quick else 41)
    api_sample_s = 2e-3 if args.quick else 4e-3
    from he_ml.bench.sysinfo import cpu_info

    cpu = cpu_info(native)
    print(f"he_ml native: implementation={native.implementation()}, best tier="
          f"{native.backend()}, CPU: {cpu['model']} ({cpu['logical_cpus']} logical CPUs)",
          flush=True)
    load_before = os.getloadavg()
    started = time.time()
    rows: list[dict] = []
    if not args.api_only:
        rows = run(sizes, repeats, budget, with_reference=not args.quick,
                   progress=lambda msg: print(msg, flush=True))
        _print_table(rows)
    overhead = overhead_rows(rows)
    if overhead:
        _print_overhead(overhead)
    api = api_rows(api_sizes, api_repeats, api_sample_s,
                   progress=lambda msg: print(msg, flush=True)) \
        if native.implementation() == "cpp" else []
    if api:
        _print_api(api)
    load_after = os.getloadavg()
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} logical CPUs")
    if not args.save:
        return 0

    import tenseal

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": "bench_ntt",
        "baseline": f"{BASELINE}: Evaluator.transform_to_ntt_inplace + transform_from_ntt_inplace "
                    f"on a BFV ciphertext (2 polynomials x {DATA_PRIMES} data primes)",
        "unit": "microseconds per forward+inverse NTT per (polynomial, prime): median thread CPU "
                "time (us_per_ntt_pair, used for the ratios) and median wall time",
        "quick": args.quick,
        "repeats": repeats,
        "sizes": list(sizes),
        "implementation": native.implementation(),
        "cpu": cpu,
        "best_tier": native.backend(),
        "cpu_features": native.cpu_features(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "versions": {"numpy": np.__version__, "tenseal": tenseal.__version__},
        "seconds": round(time.time() - started, 1),
        "targets": [{"implementation": k[0], "prime_bits": k[1], "min_speedup": v[0],
                     "n_range": list(v[1])} for k, v in TARGETS.items()],
        "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
        "results": rows,
        "public_api_overhead": overhead,
        "public_api_per_function": api,
        "public_api_target": f"no out= / out= <= {NO_OUT_MAX_OVERHEAD} for n >= 4096",
    }
    args.out.write_text(json.dumps(meta, indent=1) + "\n")
    if rows:
        png = args.out.with_suffix(".png")
        _plot(rows, png)
        print(f"wrote {args.out} and {png}")
    else:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
