"""Committee (threshold) decryption cost vs single-key decryption, every scheme.

Workload: ``--clients`` clients (100) x ``--values`` values (10,000, uniform in [-1, 1]);
``GradientAggregator`` clients encrypt under the committee's public context, the server
sums, a 3-of-5 committee decrypts. Measured in one process, medians over ``--repeats``:

* **keygen** -- ``Committee.generate`` (Paillier: two safe primes + dealing; lattice: CKG and
  replicated re-sharing for all members).
* **partial / member** -- ``partial_decrypt(share, total)`` of one member (members work in
  parallel, so this is the committee's latency), **combine** -- ``combine(pub, total, parts)``.
* **baseline (same run)** -- a single key holder's ``GradientAggregator.decrypt`` of the same
  workload with the same parameters (Paillier: CRT decryption with p, q; BFV/CKKS: SEAL's
  Decryptor plus decoding).
* **Paillier share-decryption variants** (the member's ``c^(2 Delta s_i) mod n^2`` over every
  ciphertext of the total, the whole cost of a Paillier partial decryption): GMP serial
  (``gmpy2.powmod``, the variable-time path used before), GMP constant-time serial
  (``powmod_sec``), GMP in ``os.cpu_count()`` processes, the AVX-512 IFMA kernel in one thread
  and in ``os.cpu_count()`` threads (:mod:`he_ml.native.bigmod`); wall and CPU seconds per
  member and per ciphertext, each with its ratio to the single-key CRT decryption of the same run.
* **native vs SEAL, per ciphertext** (BFV/CKKS) -- the native core's work for one sub-key
  (``ntt_rns`` of c1 for BFV, ``pointwise_mul_rns`` with the sub-key, ``intt_rns`` or the
  noise ``ntt_rns``) against ``sa.Decryptor.decrypt`` of the same ciphertext: the polynomial
  arithmetic of a partial decryption is the same size as SEAL's own decryption.

Usage::

    python benchmarks/bench_committee.py            # 100 clients x 10,000 values, Paillier 3072
    python benchmarks/bench_committee.py --quick    # 10 clients x 2,000 values, Paillier 2048
    python benchmarks/bench_committee.py --save     # also write benchmarks/results/bench_committee.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from he_ml.bench.sysinfo import cpu_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAME = "bench_committee"




def _median(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _median_cpu(fn, repeats):
    cpus = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        cpus.append(time.process_time() - c0)
    return statistics.median(cpus)


def bench_scheme(scheme, clients, values, repeats, key_bits):
    from he_ml.aggregation import Committee, GradientAggregator, aggregation_context, combine, partial_decrypt

    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, size=(clients, values))
    kw = {"key_bits": key_bits} if scheme == "paillier" else {}
    t0 = time.perf_counter()
    committee = Committee.generate(scheme, 5, 3, max_clients=max(clients, 8), **kw)
    t_keygen = time.perf_counter() - t0
    pub = committee.public_context()
    agg = GradientAggregator(pub)
    t0 = time.perf_counter()
    total = agg.sum(agg.encrypt(row) for row in data)
    t_clients_server = time.perf_counter() - t0
    share = committee.shares[0]
    t_part, part = _median(lambda: partial_decrypt(share, total), repeats)
    parts = [part] + [partial_decrypt(s, total) for s in committee.shares[1:3]]
    t_comb, got = _median(lambda: combine(pub, total, parts), repeats)
    err = float(np.max(np.abs(got - data.sum(axis=0))))
    part_bytes = len(part.to_bytes())

    # Baseline: a single key holder, same parameters, same workload, same run.
    if scheme == "paillier":
        ctx = aggregation_context("paillier", max_clients=max(clients, 8), key_bits=key_bits)
        base_label = f"single-key Paillier CRT decrypt ({key_bits} bits)"
    else:
        from he_ml.schemes.seal_rns import multiparty_context

        plan = committee.plan
        ctx = multiparty_context(scheme, poly_modulus_degree=plan["poly_modulus_degree"],
                                 coeff_mod_bit_sizes=plan["coeff_mod_bit_sizes"], scale_bits=plan["scale_bits"],
                                 plain_modulus_bits=plan["plain_modulus_bits"])
        base_label = "single-key SEAL decrypt + decode (same parameters)"
    kh = GradientAggregator(ctx)
    cl_agg = GradientAggregator(ctx.public_context())
    base_total = cl_agg.sum(cl_agg.encrypt(row) for row in data)
    t_base, _ = _median(lambda: kh.decrypt(base_total), repeats)
    row = {"scheme": scheme, "clients": clients, "values": values, "keygen_s": t_keygen,
           "encrypt_and_sum_s": t_clients_server, "partial_per_member_s": t_part, "combine_s": t_comb,
           "committee_latency_s": t_part + t_comb, "baseline": base_label, "baseline_decrypt_s": t_base,
           "ratio_vs_baseline": (t_part + t_comb) / t_base, "partial_bytes_per_member": part_bytes,
           "max_abs_error": err, "ciphertexts": len(GradientAggregator(pub)._parse(total).vector.chunks),
           "plan": committee.plan}
    if scheme != "paillier":
        row.update(_native_vs_seal(scheme, ctx, base_total, share, repeats * 5))
    else:
        row["baseline_decrypt_cpu_s"] = _median_cpu(lambda: kh.decrypt(base_total), repeats)
        row["variants"] = _paillier_variants(share, total, max(1, repeats // 2 if repeats > 2 else repeats), t_base,
                                             row["baseline_decrypt_cpu_s"])
    return row


def _paillier_variants(share, total, repeats, t_base, t_base_cpu):
    """Times of the member's exponentiations alone, per backend and parallelism (same run)."""
    import gmpy2

    from he_ml.aggregation import committee_paillier as cp
    from he_ml.aggregation.committee import _paillier_total_chunks
    from he_ml.native import bigmod

    n = int(share._payload["n"])
    n2 = n * n
    chunks = [int(c) for c in _paillier_total_chunks(total, gmpy2.mpz(n))]
    e = 2 * cp.delta(share.members) * int(share._payload["s"])
    ebits = cp.partial_exponent_bits(n, share.members)
    cores = os.cpu_count() or 1
    want = [int(gmpy2.powmod(c, e, n2)) for c in chunks[:2]]
    variants = [("GMP serial (powmod, variable time)", lambda: [gmpy2.powmod(c, e, n2) for c in chunks]),
                ("GMP serial (powmod_sec, constant time)",
                 lambda: bigmod.powmod_many(chunks, e, n2, exponent_bits=ebits, backend="gmpy2")),
                (f"GMP parallel ({cores} processes, powmod_sec)",
                 lambda: bigmod.powmod_many(chunks, e, n2, exponent_bits=ebits, backend="gmpy2", processes=cores))]
    if "avx512ifma" in bigmod.backends():
        variants += [("IFMA (1 thread)",
                      lambda: bigmod.powmod_many(chunks, e, n2, exponent_bits=ebits, backend="avx512ifma", threads=1)),
                     (f"IFMA parallel ({cores} threads)",
                      lambda: bigmod.powmod_many(chunks, e, n2, exponent_bits=ebits, backend="avx512ifma",
                                                 threads=cores))]
    out = []
    for label, fn in variants:
        walls, cpus = [], []
        for _ in range(repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            res = fn()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        assert [int(x) for x in res[:2]] == want, label
        wall = statistics.median(walls)
        # process_time counts this process's threads, not the worker processes of the GMP pool
        cpu = statistics.median(cpus) if "processes" not in label else float("nan")
        out.append({"variant": label, "member_wall_s": wall, "member_cpu_s": cpu,
                    "per_ciphertext_ms": 1e3 * wall / len(chunks), "ratio_vs_single_key": wall / t_base,
                    "per_ciphertext_cpu_ms": 1e3 * cpu / len(chunks), "cpu_ratio_vs_single_key": cpu / t_base_cpu,
                    "ciphertexts": len(chunks), "exponent_bits": ebits, "repeats": repeats})
    return out


def _native_vs_seal(scheme, ctx, total, share, repeats):
    import tenseal.sealapi as sa

    from he_ml import native
    from he_ml.aggregation import GradientAggregator
    from he_ml.schemes.seal_rns import ciphertext_to_rns

    ct = GradientAggregator(ctx)._parse(total).vector.chunks[0]
    c = ciphertext_to_rns(ct)
    primes = share._payload["primes"][:c.shape[1]]
    r = next(iter(share._payload["subkeys"].values()))[0][:c.shape[1]]
    c1 = np.ascontiguousarray(c[1])
    noise = np.ascontiguousarray(c[0])  # any reduced polynomial: same cost as the noise NTT

    def native_subkey():
        if scheme == "bfv":
            return native.intt_rns(native.pointwise_mul_rns(native.ntt_rns(c1, primes), r, primes), primes)
        return native.pointwise_mul_rns(c1, r, primes), native.ntt_rns(noise, primes)

    def seal_decrypt():
        pt = sa.Plaintext()
        ctx._decryptor.decrypt(ct, pt)
        return pt

    t_nat, _ = _median(native_subkey, repeats)
    t_seal, _ = _median(seal_decrypt, repeats)
    t_export, _ = _median(lambda: ciphertext_to_rns(ct), repeats)
    return {"native_per_subkey_per_ct_ms": 1e3 * t_nat, "seal_decrypt_per_ct_ms": 1e3 * t_seal,
            "native_vs_seal": t_nat / t_seal, "rns_export_per_ct_ms": 1e3 * t_export,
            "native_backend": native.backend(primes[0])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 clients x 2,000 values, Paillier 2048 bits")
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/bench_committee.json")
    ap.add_argument("--clients", type=int, default=None)
    ap.add_argument("--values", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--schemes", default="bfv,ckks,paillier")
    args = ap.parse_args(argv)
    clients = args.clients or (10 if args.quick else 100)
    values = args.values or (2000 if args.quick else 10_000)
    repeats = args.repeats or (3 if args.quick else 5)
    key_bits = 2048 if args.quick else 3072
    load_before = os.getloadavg()
    rows = [bench_scheme(s, clients, values, repeats, key_bits) for s in args.schemes.split(",")]
    load_after = os.getloadavg()
    print(f"\ncommittee 3-of-5, {clients} clients x {values} values; CPU: {cpu_model()} ({os.cpu_count()} cores); "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    hdr = (f"{'scheme':9} {'keygen s':>9} {'partial s':>10} {'combine s':>10} {'baseline s':>11} "
           f"{'ratio':>7} {'part MB':>8} {'max err':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['scheme']:9} {r['keygen_s']:9.2f} {r['partial_per_member_s']:10.3f} {r['combine_s']:10.3f} "
              f"{r['baseline_decrypt_s']:11.3f} {r['ratio_vs_baseline']:7.1f} "
              f"{r['partial_bytes_per_member'] / 1e6:8.2f} {r['max_abs_error']:9.2e}")
    print("ratio = (partial + combine) / baseline single-key decrypt, same run")
    for r in rows:
        if "native_per_subkey_per_ct_ms" in r:
            print(f"{r['scheme']}: native core per sub-key and ciphertext {r['native_per_subkey_per_ct_ms']:.3f} ms "
                  f"vs SEAL decrypt {r['seal_decrypt_per_ct_ms']:.3f} ms (x{r['native_vs_seal']:.2f}, "
                  f"{r['native_backend']}); RNS export {r['rns_export_per_ct_ms']:.3f} ms")
    for r in rows:
        if "variants" in r:
            v0 = r["variants"][0]
            print(f"\npaillier {key_bits}: member share decryption = {v0['ciphertexts']} exponentiations mod n^2 "
                  f"({2 * key_bits} bits) with a {v0['exponent_bits']}-bit exponent; single-key CRT decrypt "
                  f"{r['baseline_decrypt_s']:.3f} s, {r['baseline_decrypt_cpu_s']:.3f} CPU-s (same run)")
            h = (f"{'variant':44} {'member s':>9} {'CPU s':>7} {'ms / ct':>8} {'CPU ms/ct':>10} {'vs 1-key':>9} "
                 f"{'CPU vs 1-key':>13}")
            print(h)
            print("-" * len(h))
            for v in r["variants"]:
                print(f"{v['variant']:44} {v['member_wall_s']:9.3f} {v['member_cpu_s']:7.2f} "
                      f"{v['per_ciphertext_ms']:8.2f} {v['per_ciphertext_cpu_ms']:10.2f} "
                      f"{v['ratio_vs_single_key']:9.1f} {v['cpu_ratio_vs_single_key']:13.1f}")
            print("CPU s: this process's CPU time (all its threads; the GMP pool's workers are not counted: nan). "
                  "vs 1-key: member time / single-key CRT decrypt time.")
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        out = {"benchmark": NAME, "cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
               "quick": args.quick, "note": "shared machine (2 cores, several concurrent jobs): timings are noisy",
               "load_average_before": load_before, "load_average_after": load_after,
               "rows": rows}
        (RESULTS / f"{NAME}.json").write_text(json.dumps(out, indent=2, default=float))
        print(f"wrote {RESULTS / (NAME + '.json')}")


if __name__ == "__main__":
    main()
