"""Server side of encrypted summation at Snips scale: 250,000 client blobs of 100 values each.

Scenario (issue 5, section 4): 250K users each report 100 values (events), encrypted with
the public key; an untrusted server streams the blobs from disk and adds them; the key
holder decrypts the total. Targets: server < 60 s on 2 cores, < 2 GB peak memory, no blob
lost (the decrypted sum equals the plaintext sum within the stated precision -- here
exactly, see below).

Scheme: packed Paillier, 3072-bit key (128-bit security), the "sum" layout with 24
fractional bits, ``|x| <= 1`` and headroom for ``max_additions = clients``: 43-bit slots,
71 values per ciphertext, 2 ciphertexts (1.7 kB) per 100-value blob.

Blobs (generated once, cached in ``benchmarks/.cache/``, then streamed from disk):

* ``--distinct`` clients (default 2000) encrypt their own vector for real
  (``GradientAggregator.encrypt``, 2 processes);
* every other blob is one of those encryptions re-randomized: its ciphertexts are
  multiplied by ``R_a * R_b`` for a distinct pair ``(a, b)`` of a pool of precomputed
  randomizers ``R = h_s**r`` (encryptions of zero). Each is therefore a distinct, valid
  encryption of a known vector -- what a client would have sent -- at 4 modular
  multiplications instead of a full encryption (client-side cost is not what this
  benchmark measures; ``bench_aggregation.py`` does).

Values are multiples of ``2**-24`` (``k / 2**24`` with integer ``|k| <= 2**24``), which the
encoding represents exactly, so the decrypted total must equal the integer sum of the
``k`` *exactly*: any lost, duplicated or corrupted blob changes it.

The server runs in a **separate process** (so generation memory does not count): it
loads the public context, reads length-prefixed blobs from the cache files one at a time
and runs ``GradientAggregator.sum(stream, processes=2)``, which validates every blob
completely before adding it (container, checksum, key fingerprint, metadata, every
ciphertext range-checked and one gcd per blob; see ``he_ml.aggregation.aggregator``); it
reports its wall time and
``resource.getrusage`` max RSS of itself and of its worker processes. The server runs
``--repeats`` times (median wall time reported) with ``--processes`` and, as the baseline
measured in the same run, with ``--baseline-processes`` (default 1); every run's total is
decrypted and checked exactly.

Usage::

    python benchmarks/bench_scale.py                    # 250,000 clients (generation: several minutes once)
    python benchmarks/bench_scale.py --clients 10000    # quick check
    python benchmarks/bench_scale.py --quick            # same as --clients 10000 --distinct 500

With ``--save``, writes ``benchmarks/results/bench_scale.json`` (and ``bench_scale_quick.json`` for small runs).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
PRECISION_BITS = 24
KEY_BITS = 3072
POOL = 100  # randomizers; C(100, 2) = 4950 distinct pairs per real encryption
_LEN = struct.Struct("<I")


# ---------------------------------------------------------------------------- generation
def _real_encryptions(args):
    ctx_bytes, ints = args
    import he_ml
    from he_ml.aggregation import GradientAggregator

    client = GradientAggregator(he_ml.load_context(ctx_bytes), max_value=1.0)
    return [client.encrypt(row / 2.0**PRECISION_BITS) for row in ints]


def _rerandomized_part(args):
    ctx_bytes, templates, pool, start, stop, path = args
    import gmpy2

    import he_ml
    from he_ml.schemes._format import Kind, pack_blob, unpack_blob

    ctx = he_ml.load_context(ctx_bytes)
    n2 = ctx._n2
    w = ctx._width
    pool = [gmpy2.mpz(p) for p in pool]
    parsed = []
    for t in templates:
        b = unpack_blob(t)
        sec = b.sections[0]
        parsed.append((b, [gmpy2.mpz(int.from_bytes(sec[i:i + w], "big")) for i in range(0, len(sec), w)]))
    pairs = [(a, b) for a in range(POOL) for b in range(a + 1, POOL)]
    n_t = len(templates)
    with open(path, "wb") as f:
        for j in range(start, stop):
            blob, chunks = parsed[j % n_t]
            copy = j // n_t  # copy 0 is the real encryption itself
            if copy == 0:
                data = pack_blob(Kind.AGGREGATE, blob.scheme, blob.fingerprint, blob.metadata, blob.sections)
            else:
                a, b = pairs[copy - 1]
                r = pool[a] * pool[b] % n2
                sec = b"".join(int(c * r % n2).to_bytes(w, "big") for c in chunks)
                data = pack_blob(Kind.AGGREGATE, blob.scheme, blob.fingerprint, blob.metadata, [sec])
            f.write(_LEN.pack(len(data)))
            f.write(data)
    return path


def generate(cache: Path, clients: int, values: int, distinct: int, processes: int) -> dict:
    import multiprocessing as mp

    import he_ml

    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ctx = he_ml.Paillier(KEY_BITS, preset="sum", precision_bits=PRECISION_BITS, max_value=1.0,
                         max_additions=clients)
    secret = ctx.to_bytes(include_secret_key=True)
    public = ctx.public_context().to_bytes()
    keygen = time.perf_counter() - t0
    distinct = min(distinct, clients)
    if (clients + distinct - 1) // distinct - 1 > POOL * (POOL - 1) // 2:
        raise SystemExit(f"--distinct must be at least {clients // (POOL * (POOL - 1) // 2) + 1}")
    rng = np.random.default_rng(2024)  # test data only (the keys and randomness come from secrets)
    ints = rng.integers(-(2**PRECISION_BITS), 2**PRECISION_BITS + 1, size=(distinct, values), dtype=np.int64)
    t1 = time.perf_counter()
    mpctx = mp.get_context("fork")
    with mpctx.Pool(processes) as pool:
        parts = pool.map(_real_encryptions, [(public, chunk) for chunk in np.array_split(ints, processes * 4)])
        templates = [b for part in parts for b in part]
        t_real = time.perf_counter() - t1
        rand_pool = [int(ctx._randomizer()) for _ in range(POOL)]
        bounds = np.linspace(0, clients, processes * 4 + 1).astype(int)
        jobs = [(public, templates, rand_pool, int(a), int(b), str(cache / f"part{i:03d}.blobs"))
                for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        files = pool.map(_rerandomized_part, jobs)
    # Exact expected total: blob j carries row j mod distinct.
    reps = np.bincount(np.arange(clients) % distinct, minlength=distinct)
    truth = (ints * reps[:, None]).sum(axis=0)
    np.save(cache / "truth.npy", truth)
    (cache / "secret_context.bin").write_bytes(secret)
    (cache / "public_context.bin").write_bytes(public)
    info = {"clients": clients, "values": values, "distinct_real_encryptions": distinct, "pool": POOL,
            "files": [Path(f).name for f in files], "keygen_seconds": keygen,
            "real_encryption_seconds": t_real, "generation_seconds": time.perf_counter() - t0,
            "bytes_on_disk": sum(Path(f).stat().st_size for f in files)}
    (cache / "info.json").write_text(json.dumps(info, indent=1))
    return info


# ---------------------------------------------------------------------------- server (subprocess)
def stream(cache: Path, files: list[str]):
    """Length-prefixed blobs, read one at a time (the reader holds one blob)."""
    for name in files:
        with open(cache / name, "rb", buffering=1 << 20) as f:
            while True:
                head = f.read(4)
                if not head:
                    break
                (n,) = _LEN.unpack(head)
                yield f.read(n)


def server_main(cache: Path, processes: int) -> None:
    import he_ml
    from he_ml.aggregation import GradientAggregator

    info = json.loads((cache / "info.json").read_text())
    t0 = time.perf_counter()
    pub = he_ml.load_context((cache / "public_context.bin").read_bytes())
    server = GradientAggregator(pub, max_clients=info["clients"])
    total = server.sum(stream(cache, info["files"]), processes=processes, batch_size=1024)
    seconds = time.perf_counter() - t0
    (cache / "total.bin").write_bytes(total)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"server_seconds": seconds, "server_maxrss_mib": own, "worker_maxrss_mib": children,
                      "processes": processes}))


# ---------------------------------------------------------------------------- driver
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=250_000)
    ap.add_argument("--values", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=2000, help="real client encryptions (the rest re-randomized)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--baseline-processes", type=int, default=1,
                    help="server processes of the baseline measured in the same run (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="server runs per configuration (median reported)")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--quick", action="store_true", help="10,000 clients, 500 real encryptions")
    ap.add_argument("--server-only", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--save", action="store_true", help="write JSON (and PNG) to benchmarks/results/ (default: write nothing)")
    args = ap.parse_args(argv)
    if args.server_only:
        server_main(args.server_only, args.processes)
        return {}
    if args.quick:
        args.clients, args.distinct = 10_000, 500
    sys.path.insert(0, str(HERE.parent))
    import he_ml
    from he_ml.aggregation import GradientAggregator

    cache = CACHE / f"scale_{args.clients}x{args.values}"
    info_path = cache / "info.json"
    if args.regenerate or not info_path.exists():
        print(f"generating {args.clients} blobs of {args.values} values in {cache} ...", flush=True)
        info = generate(cache, args.clients, args.values, args.distinct, args.processes)
    else:
        info = json.loads(info_path.read_text())
    print(f"blobs: {info['clients']} x {info['values']} values, {info['bytes_on_disk'] / 1e6:.1f} MB on disk "
          f"({info['bytes_on_disk'] / info['clients']:.0f} B/blob); generation {info['generation_seconds']:.0f} s "
          f"({info['distinct_real_encryptions']} real encryptions in {info['real_encryption_seconds']:.0f} s)")
    # Warm the page cache so the timing measures the server, not the first disk read.
    for name in info["files"]:
        with open(cache / name, "rb") as f:
            while f.read(1 << 24):
                pass
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Key holder: decrypt every run's total and compare with the exact integer sum.
    ctx = he_ml.load_context((cache / "secret_context.bin").read_bytes())
    truth = np.load(cache / "truth.npy")

    def run_server(processes: int) -> dict:
        proc = subprocess.run([sys.executable, __file__, "--server-only", str(cache), "--processes",
                               str(processes)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        total = (cache / "total.bin").read_bytes()
        got = GradientAggregator(ctx).decrypt(total)
        got_ints = np.rint(got * 2.0**PRECISION_BITS).astype(np.int64)
        out["count_in_total"] = GradientAggregator.count_of(total)
        out["exact"] = bool(np.array_equal(got_ints, truth)) and bool(np.all(got * 2.0**PRECISION_BITS == got_ints))
        out["max_abs_error"] = float(np.max(np.abs(got - truth / 2.0**PRECISION_BITS)))
        return out

    load_before = os.getloadavg()
    runs = {p: [run_server(p) for _ in range(max(1, args.repeats))]
            for p in dict.fromkeys([args.baseline_processes, args.processes])}
    load_after = os.getloadavg()
    main_runs, base_runs = runs[args.processes], runs[args.baseline_processes]
    median = float(np.median([r["server_seconds"] for r in main_runs]))
    base_median = float(np.median([r["server_seconds"] for r in base_runs]))
    server = {"server_seconds": median, "server_seconds_runs": [r["server_seconds"] for r in main_runs],
              "server_maxrss_mib": max(r["server_maxrss_mib"] for r in main_runs),
              "worker_maxrss_mib": max(r["worker_maxrss_mib"] for r in main_runs), "processes": args.processes}
    count = main_runs[-1]["count_in_total"]
    exact = all(r["exact"] and r["count_in_total"] == info["clients"] for rs in runs.values() for r in rs)
    max_err = max(r["max_abs_error"] for rs in runs.values() for r in rs)
    rate = info["clients"] / server["server_seconds"] * 60
    peak_total = server["server_maxrss_mib"] + args.processes * server["worker_maxrss_mib"]
    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    res = {
        "name": "bench_scale", "clients": info["clients"], "values": info["values"], "scheme": "paillier",
        "key_bits": KEY_BITS, "precision_bits": PRECISION_BITS, "slots_per_ciphertext": ctx.slot_count,
        "bytes_per_blob": info["bytes_on_disk"] / info["clients"] - 4, **server,
        "per_blob_validation": True, "repeats": max(1, args.repeats),
        "baseline": {"processes": args.baseline_processes, "server_seconds": base_median,
                     "server_seconds_runs": [r["server_seconds"] for r in base_runs]},
        "speedup_vs_baseline": base_median / median,
        "blobs_per_minute": rate, "peak_memory_mib_server_plus_workers": peak_total,
        "count_in_total": count, "decrypted_equals_plaintext_sum_exactly": exact, "max_abs_error": max_err,
        "targets": {"server_seconds": 60, "peak_memory_mib": 2048},
        "generation": info, "platform": platform.platform(), "cpu_model": cpu_model, "cpu_count": os.cpu_count(),
        "load_average_before_after": [load_before[0], load_after[0]],
        "command": "python benchmarks/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"\nCPU: {cpu_model} ({os.cpu_count()} logical CPUs); load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after; median of {res['repeats']} server run(s)")
    print(f"\n{'metric':<44}{'value':>16}{'target':>12}")
    print(f"{'server wall time (s), ' + str(args.processes) + ' processes':<44}{server['server_seconds']:>16.1f}{'< 60':>12}")
    if args.baseline_processes != args.processes:
        label = f"baseline: {args.baseline_processes} process(es) (s)"
        print(f"{label:<44}{base_median:>16.1f}{'':>12}")
        print(f"{'speedup vs baseline':<44}{base_median / median:>15.2f}x{'':>12}")
    print(f"{'blobs per minute':<44}{rate:>16,.0f}{'':>12}")
    print(f"{'peak RSS server process (MiB)':<44}{server['server_maxrss_mib']:>16.0f}{'':>12}")
    print(f"{'peak RSS largest worker (MiB)':<44}{server['worker_maxrss_mib']:>16.0f}{'':>12}")
    print(f"{'server + workers, upper bound (MiB)':<44}{peak_total:>16.0f}{'< 2048':>12}")
    print(f"{'updates counted in the total':<44}{count:>16,}{info['clients']:>12,}")
    print(f"{'decrypted sum == plaintext sum (exact)':<44}{str(exact):>16}{'True':>12}")
    if not args.save:
        return res
    RESULTS.mkdir(exist_ok=True)
    name = "bench_scale.json" if info["clients"] >= 250_000 else "bench_scale_quick.json"
    (RESULTS / name).write_text(json.dumps(res, indent=1))
    print(f"\nwrote {RESULTS / name}")
    return res


if __name__ == "__main__":
    main()
