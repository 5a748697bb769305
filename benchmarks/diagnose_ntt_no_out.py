"""Where the cost of calling he_ml.native without ``out=`` comes from (issue 10, item 7).

Four timing experiments on the compiled core's automatic tier (50-bit primes,
so the AVX-512 IFMA tier where the CPU has it), each against the in-place
(``out=a``) call measured in the same run, interleaved, median thread-CPU time
of one call after an untimed call of the same candidate (steady state):

1. **Page faults and the kernel itself**: minor page faults per no-``out=`` call
   (``resource.getrusage``), and the raw out-of-place kernel
   (``_native.forward_ntt_copy``) against the raw in-place one. If the no-out
   path paid for fresh pages or for a copy sweep, it would show here.
2. **Working set of a forward + inverse chain**: ``intt_rns(ntt_rns(x))`` holds
   three arrays (x, the forward result, the inverse result) where the in-place
   chain holds one. The chain's ratio is measured while the batch grows (rows of
   n = 16384 under one prime) and set against the bytes each form touches (data
   plus the tier's forward and inverse tables) and the per-core L2 size; a
   control runs the in-place chain while reading two extra arrays' worth of
   memory between its transforms.
3. **Results kept alive**: ``[ntt_rns(x) for ...]`` cannot reuse memory, so
   every result lands on fresh or cold pages; compared with what the caller
   would do with ``out=`` in the same situation (``out=np.empty(...)``, kept).
4. **Fixed cost per call** at n = 16 (nothing but overhead): no ``out=``
   against ``out=a``.
5. **First touch of fresh memory** (what 3 pays per page): writing a fresh
   anonymous mapping (one fault per 4 KiB page), one made with MAP_POPULATE,
   one advised MADV_HUGEPAGE, and an already-touched one.
6. **Alignment**: the raw kernels in place on a 64-byte aligned array against
   one starting 16 bytes past a cache line (where numpy puts large arrays), and
   out of place into such an array. The no-out path's pool buffers are aligned,
   so a misalignment penalty of the kernels lands on the ``out=`` side only.

Usage::

    python benchmarks/diagnose_ntt_no_out.py            # about a minute
    python benchmarks/diagnose_ntt_no_out.py --save     # also write results/diagnose_ntt_no_out.json

The conclusions drawn from its output are in docs/native.md ("Why no out= can
cost more").
"""
from __future__ import annotations

import argparse
import gc
import json
import mmap
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from he_ml import native

RESULTS = Path(__file__).resolve().parent / "results" / "diagnose_ntt_no_out.json"


def _medians(cands: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    for fn in cands.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in cands}
    for _ in range(rounds):
        for name, fn in cands.items():
            fn()
            t0 = time.thread_time()
            fn()
            samples[name].append(time.thread_time() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _batch(n: int, primes: list[int], polys: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.stack([rng.integers(0, q, n, dtype=np.uint64) for q in primes])
                     for _ in range(polys)])


def l2_bytes() -> int | None:
    """Per-core L2 size from sysfs (None if unknown)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")):
        try:
            if (idx / "level").read_text().strip() == "2":
                text = (idx / "size").read_text().strip().upper()
                return int(text[:-1]) << (10 if text.endswith("K") else 20)
        except (OSError, ValueError):
            continue
    return None


def faults_and_kernel(rounds: int) -> list[dict]:
    cpp = native._cpp_module
    out = []
    for n in (4096, 8192, 16384, 32768):
        primes = native.find_primes(50, n, 4)[1:]
        x = _batch(n, primes, 2, n)
        flat = x.reshape(-1, n)
        mods = np.array(primes * 2, dtype=np.uint64)
        y = flat.copy()
        native.ntt_rns(x, primes)
        f0 = _minflt()
        for _ in range(50):
            native.ntt_rns(x, primes)
        faults = (_minflt() - f0) / 50
        m = _medians({"raw in place": lambda: cpp.forward_ntt(y, mods, "auto"),
                      "raw out of place": lambda: cpp.forward_ntt_copy(flat, mods, "auto")},
                     rounds)
        out.append({"n": n, "shape": list(x.shape), "minflt_per_no_out_call": faults,
                    "raw_in_place_us": m["raw in place"] * 1e6,
                    "raw_out_of_place_us": m["raw out of place"] * 1e6,
                    "ratio": m["raw out of place"] / m["raw in place"]})
    return out


def chain_working_set(rounds: int) -> list[dict]:
    n = 16384
    q = native.find_primes(50, n, 1)[0]
    table_bytes = 2 * 2 * 8 * n  # forward and inverse: root and its Shoup factor, 8 bytes each
    out = []
    for rows in (1, 2, 4, 6, 8, 12):
        x = _batch(n, [q], rows, rows)[:, 0, :]  # (rows, n), one prime
        y = x.copy()
        extra = np.ones(2 * x.size, dtype=np.uint64)

        def in_place(y=y):
            native.ntt(y, q, out=y)
            native.intt(y, q, out=y)

        def in_place_plus_reads(y=y, extra=extra):
            native.ntt(y, q, out=y)
            extra.max()  # two arrays' worth of other data through the caches
            native.intt(y, q, out=y)

        m = _medians({"in place": in_place,
                      "no out=": lambda x=x: native.intt(native.ntt(x, q), q),
                      "in place + 2 arrays read": in_place_plus_reads,
                      "2 arrays read alone": lambda extra=extra: extra.max()}, rounds)
        base = m["in place"]
        out.append({
            "n": n, "rows": rows, "array_kib": x.nbytes >> 10,
            "in_place_bytes_kib": (x.nbytes + table_bytes) >> 10,
            "no_out_bytes_kib": (3 * x.nbytes + table_bytes) >> 10,
            "in_place_us": base * 1e6, "no_out_us": m["no out="] * 1e6,
            "no_out_ratio": m["no out="] / base,
            "in_place_plus_reads_ratio":
                (m["in place + 2 arrays read"] - m["2 arrays read alone"]) / base,
        })
    return out


def kept_results(reps: int) -> list[dict]:
    out = []
    for n in (8192, 16384, 32768):
        primes = native.find_primes(50, n, 4)[1:]
        x = _batch(n, primes, 2, n)
        y = x.copy()
        native.ntt_rns(x, primes)
        native.ntt_rns(y, primes, out=y)
        times: dict[str, list[float]] = {}
        for _ in range(reps):
            for name in ("no out=, kept", "out=np.empty, kept", "out=x in place"):
                keep = []
                gc.collect()
                t0 = time.thread_time()
                for _ in range(30):
                    if name == "no out=, kept":
                        keep.append(native.ntt_rns(x, primes))
                    elif name == "out=np.empty, kept":
                        keep.append(native.ntt_rns(x, primes, out=np.empty(x.shape, np.uint64)))
                    else:
                        native.ntt_rns(y, primes, out=y)
                times.setdefault(name, []).append((time.thread_time() - t0) / 30)
                del keep
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["out=x in place"]
        out.append({"n": n, "shape": list(x.shape),
                    **{f"{k} us": v * 1e6 for k, v in med.items()},
                    **{f"{k} ratio": v / base for k, v in med.items()}})
    return out


def fixed_cost(rounds: int) -> dict:
    n = 16
    q = native.find_primes(50, n, 1)[0]
    a = np.arange(n, dtype=np.uint64)
    y = a.copy()
    inner = 2000

    def loop(fn):
        return lambda: [fn() for _ in range(inner)]

    m = _medians({"no out=": loop(lambda: native.ntt(a, q)),
                  "out=a": loop(lambda: native.ntt(y, q, out=y))}, rounds)
    return {"n": n, "no_out_ns": m["no out="] / inner * 1e9, "out_ns": m["out=a"] / inner * 1e9}


def first_touch(reps: int) -> list[dict]:
    out = []
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    for size in (384 << 10, 1536 << 10, 4 << 20):
        times: dict[str, list[float]] = {}
        for _ in range(reps):
            for name in ("4 KiB faults", "MAP_POPULATE", "MADV_HUGEPAGE", "already touched"):
                if name == "already touched":
                    m = mmap.mmap(-1, size, flags=flags)
                    np.frombuffer(m, np.uint64).fill(0)
                t0 = time.perf_counter()
                if name == "4 KiB faults":
                    m = mmap.mmap(-1, size, flags=flags)
                elif name == "MAP_POPULATE":
                    m = mmap.mmap(-1, size, flags=flags | mmap.MAP_POPULATE)
                elif name == "MADV_HUGEPAGE":
                    m = mmap.mmap(-1, size, flags=flags)
                    m.madvise(mmap.MADV_HUGEPAGE)
                view = np.frombuffer(m, np.uint64)
                view.fill(1)
                times.setdefault(name, []).append(time.perf_counter() - t0)
                del view
                m.close()
        out.append({"bytes": size, **{f"{k} us": statistics.median(v) * 1e6
                                      for k, v in times.items()}})
    return out


def alignment(rounds: int) -> list[dict]:
    cpp = native._cpp_module
    out = []
    for n in (4096, 16384, 32768):
        q = native.find_primes(50, n, 1)[0]
        mods = np.array([q], np.uint64)
        bufs = [np.zeros(n + 64, np.uint64) for _ in range(3)]

        def at(buf: np.ndarray, offset_bytes: int) -> np.ndarray:
            start = ((-buf.__array_interface__["data"][0]) % 64 + offset_bytes) // 8
            return buf[start:start + n].reshape(1, n)

        aligned, shifted, dst = at(bufs[0], 0), at(bufs[1], 16), at(bufs[2], 16)
        x = np.random.default_rng(n).integers(0, q, n, dtype=np.uint64)
        aligned[:] = x
        shifted[:] = x
        m = _medians({"in place, aligned": lambda: cpp.forward_ntt(aligned, mods),
                      "in place, 16 past a line": lambda: cpp.forward_ntt(shifted, mods),
                      "out of place into 16 past a line":
                          lambda: cpp.forward_ntt_into(aligned, dst, mods)}, rounds)
        base = m["in place, aligned"]
        out.append({"n": n, "aligned_us": base * 1e6,
                    **{f"{k} ratio": v / base for k, v in m.items() if k != "in place, aligned"}})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--save", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args(argv)
    if native.implementation() != "cpp":
        print("the compiled core is not available: nothing to diagnose")
        return 1
    from he_ml.bench.sysinfo import cpu_info

    cpu = cpu_info(native)
    l2 = l2_bytes()
    load0 = os.getloadavg()[0]
    print(f"CPU: {cpu['model']}, {cpu['logical_cpus']} logical CPUs, L2 per core "
          f"{'unknown' if l2 is None else f'{l2 >> 10} KiB'}, tier {native.backend()}, "
          f"load average {load0:.2f}")
    res: dict = {"cpu": cpu, "l2_bytes": l2}

    res["faults_and_kernel"] = faults_and_kernel(args.rounds)
    print("\n1. no out= (2, 3, n) batch: page faults per call; raw kernel out of place / in place")
    for r in res["faults_and_kernel"]:
        print(f"   n={r['n']:6d}  minflt/call {r['minflt_per_no_out_call']:5.2f}   "
              f"in place {r['raw_in_place_us']:7.1f} us  out of place "
              f"{r['raw_out_of_place_us']:7.1f} us  ratio {r['ratio']:.3f}")

    res["chain_working_set"] = chain_working_set(args.rounds)
    print("\n2. intt(ntt(x)) vs the in-place chain, n = 16384, one 50-bit prime, growing batch")
    print("   rows  bytes touched: in place / no out=   no out= / in place   "
          "in place + 2 arrays read / in place")
    for r in res["chain_working_set"]:
        print(f"   {r['rows']:4d}  {r['in_place_bytes_kib']:6d} KiB / {r['no_out_bytes_kib']:6d} KiB"
              f"   {r['no_out_ratio']:17.3f}   {r['in_place_plus_reads_ratio']:10.3f}")

    res["kept_results"] = kept_results(max(3, args.rounds // 6))
    print("\n3. results kept alive (30 calls into a list), (2, 3, n) batch, per call")
    for r in res["kept_results"]:
        print(f"   n={r['n']:6d}  " + "  ".join(
            f"{k[:-6]} {r[k]:.2f}" for k in r if k.endswith(" ratio")))

    res["fixed_cost"] = fixed_cost(args.rounds)
    fc = res["fixed_cost"]
    print(f"\n4. fixed cost per call at n = 16: no out= {fc['no_out_ns']:.0f} ns, "
          f"out=a {fc['out_ns']:.0f} ns")
    res["first_touch"] = first_touch(max(5, args.rounds // 4))
    print("\n5. writing fresh memory once (wall us)")
    for r in res["first_touch"]:
        print(f"   {r['bytes'] >> 10:5d} KiB  " + "  ".join(
            f"{k[:-3]} {v:.0f}" for k, v in r.items() if k.endswith(" us")))
    res["alignment"] = alignment(args.rounds)
    print(f"\n6. alignment, forward NTT of one polynomial, tier {native.backend()}: time / in place "
          "on a 64-byte aligned array")
    for r in res["alignment"]:
        print(f"   n={r['n']:6d}  aligned {r['aligned_us']:.1f} us  " + "  ".join(
            f"{k[:-6]} {v:.2f}" for k, v in r.items() if k.endswith(" ratio")))
    res["load_average_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    print(f"\nload average before / after: {load0:.2f} / {os.getloadavg()[0]:.2f} "
          "(a shared machine: other jobs compete for the caches too)")
    if args.save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
