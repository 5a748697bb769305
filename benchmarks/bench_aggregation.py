"""Encrypted gradient summation end to end, every scheme, against python-paillier.

Scenario (issue 5, section 4): ``--clients`` clients (100) each hold ``--values`` reals
(1000, uniform in [-1, 1]); every client encrypts its vector with
``GradientAggregator(public_ctx).encrypt`` (bytes), the server sums the blobs with
``GradientAggregator.sum`` (public context, from bytes), the key holder decrypts. Timed
end to end in one process (encrypt all + sum + decrypt); key generation is reported apart.

Schemes (all 128-bit security):

* the schemes' own ``"sum"`` presets: CKKS ``"sum"`` (n=8192, [60,40,60]), BFV ``"sum"``
  (n=8192, 30-bit plain modulus; it cannot hold 100 x 2**24, so 22 fractional bits) and
  Paillier ``preset="sum"`` at 3072 bits (24 fractional bits, |x| <= 1024, 1024 additions);
* :func:`he_ml.aggregation.aggregation_context` sets sized for the workload
  (100 clients, |x| <= 1, 24 fractional bits): CKKS/BFV at n=4096 with one 60-bit data
  prime, Paillier 3072 with 32-bit slots.

Baseline (same run, same 3072-bit key, gmpy2 in both): python-paillier with one
``EncryptedNumber`` per value -- ``encrypt`` per value and client, ``+`` per value and
client, ``decrypt`` per value of the sum. It is far too slow to run in full (hours), so
it is **measured on a subsample** of ``--phe-sample`` values (median of 3 batches) and
**extrapolated linearly**; the table says so. Bytes per value of the baseline: the
ciphertext integer alone (768 bytes at 3072 bits; phe's JSON form is larger).

Precision: ``-log2(max |decrypted sum - numpy sum|)`` for values in [-1, 1].

Vector sizes 10 / 1000 / 100k / 1M: **extrapolated** from each scheme's per-ciphertext
costs measured here (encryption time per ciphertext, bytes per ciphertext, slots), with
the baseline's per-value costs.

Usage::

    python benchmarks/bench_aggregation.py           # 100 x 1000 (a few minutes)
    python benchmarks/bench_aggregation.py --quick   # 20 x 1000, smaller baseline sample

With ``--save``, writes ``benchmarks/results/bench_aggregation.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAME = "bench_aggregation"
BASELINE = "python-paillier, 1 EncryptedNumber/value (extrapolated)"
TARGET_SPEED, TARGET_BYTES, TARGET_BITS = 300.0, 50.0, 20
SIZES = [10, 1000, 100_000, 1_000_000]


def measure_scheme(label, ctx, data, agg_kwargs, repeats=1):
    from he_ml.aggregation import GradientAggregator

    pub = ctx.public_context()
    client = GradientAggregator(pub, **agg_kwargs)
    server = GradientAggregator(pub, **agg_kwargs)
    key_holder = GradientAggregator(ctx, **agg_kwargs)
    client.encrypt(data[0][:8])  # lazy setup (Paillier fixed-base table) outside the timing
    t0 = time.process_time()
    blobs = [client.encrypt(row) for row in data]
    t_enc = time.process_time() - t0
    t0 = time.process_time()
    total = server.sum(blobs)
    t_sum = time.process_time() - t0
    t0 = time.process_time()
    got = key_holder.decrypt(total)
    t_dec = time.process_time() - t0
    err = float(np.max(np.abs(got - data.sum(axis=0))))
    slots = ctx.slot_count
    cts = math.ceil(data.shape[1] / slots)
    small = len(client.encrypt(np.zeros(10)))
    three = len(client.encrypt(np.zeros(3 * slots)))
    ct_bytes = (three - small) / 2
    return {
        "scheme": label, "parameters": {k: v for k, v in ctx.parameters.items()}, "slots": slots,
        "ciphertexts_per_blob": cts, "blob_bytes": len(blobs[0]),
        "bytes_per_value": len(blobs[0]) / data.shape[1], "bytes_per_ciphertext": ct_bytes,
        "blob_overhead_bytes": small - ct_bytes,
        "encrypt_s": t_enc, "sum_s": t_sum, "decrypt_s": t_dec, "end_to_end_s": t_enc + t_sum + t_dec,
        "encrypt_s_per_ciphertext": t_enc / (len(data) * cts), "precision_bits": -math.log2(max(err, 2**-60)),
        "max_abs_error": err, "count": GradientAggregator.count_of(total),
    }


def measure_phe(pk, sk, sample: int, clients: int, values: int):
    rng = np.random.default_rng(1)
    xs = rng.uniform(-1, 1, sample).tolist()
    enc, add, dec = [], [], []
    for _ in range(3):
        t0 = time.process_time()
        cs = [pk.encrypt(x) for x in xs]
        enc.append((time.process_time() - t0) / sample)
        t0 = time.process_time()
        ss = [a + b for a, b in zip(cs, cs[1:] + cs[:1])]
        add.append((time.process_time() - t0) / sample)
        t0 = time.process_time()
        ys = [sk.decrypt(c) for c in ss]
        dec.append((time.process_time() - t0) / sample)
    err = max(abs(y - (a + b)) for y, a, b in zip(ys, xs, xs[1:] + xs[:1]))
    te, ta, td = statistics.median(enc), statistics.median(add), statistics.median(dec)
    ct_bytes = 2 * ((pk.n.bit_length() + 7) // 8)
    return {
        "scheme": BASELINE, "sample_values": sample, "encrypt_s_per_value": te, "add_s_per_value": ta,
        "decrypt_s_per_value": td, "encrypt_s": te * clients * values, "sum_s": ta * (clients - 1) * values,
        "decrypt_s": td * values, "end_to_end_s": te * clients * values + ta * (clients - 1) * values + td * values,
        "bytes_per_value": ct_bytes, "precision_bits": -math.log2(max(err, 2**-60)), "extrapolated": True,
    }


def size_table(rows, phe):
    table = {}
    for size in SIZES:
        entry = {}
        for r in rows:
            cts = math.ceil(size / r["slots"])
            entry[r["scheme"]] = {"client_encrypt_s": cts * r["encrypt_s_per_ciphertext"],
                                  "blob_bytes": r["blob_overhead_bytes"] + cts * r["bytes_per_ciphertext"]}
        entry[BASELINE] = {"client_encrypt_s": size * phe["encrypt_s_per_value"],
                           "blob_bytes": size * phe["bytes_per_value"]}
        entry["fewest_bytes"] = min((k for k in entry), key=lambda k: entry[k]["blob_bytes"])
        entry["fastest_client"] = min((k for k in entry if k not in ("fewest_bytes",)),
                                      key=lambda k: entry[k]["client_encrypt_s"])
        table[str(size)] = entry
    return table


def plot(rows, phe, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["scheme"] for r in rows] + ["python-paillier\n(extrapolated)"]
    e2e = [r["end_to_end_s"] for r in rows] + [phe["end_to_end_s"]]
    bpv = [r["bytes_per_value"] for r in rows] + [phe["bytes_per_value"]]
    colors = ["#4477aa"] * len(rows) + ["#bb5566"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, vals, title in ((axes[0], e2e, "end to end CPU seconds (log)"),
                            (axes[1], bpv, "bytes per value (log)")):
        ax.barh(names, vals, color=colors)
        ax.set_xscale("log")
        ax.set_title(title)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
    fig.suptitle("Encrypted sum of 100 clients x 1000 values (he_ml GradientAggregator vs python-paillier)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--values", type=int, default=1000)
    ap.add_argument("--phe-sample", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="20 clients, 40-value baseline sample (not the target)")
    ap.add_argument("--save", action="store_true", help="write JSON (and PNG) to benchmarks/results/ (default: write nothing)")
    args = ap.parse_args(argv)
    if args.quick:
        args.clients, args.phe_sample = 20, 40
    sys.path.insert(0, str(HERE.parent))
    from phe import paillier as phe

    import he_ml
    from he_ml.aggregation import aggregation_context

    rng = np.random.default_rng(0)  # test data only
    data = rng.uniform(-1, 1, (args.clients, args.values))
    t0 = time.perf_counter()
    pk, sk = phe.generate_paillier_keypair(n_length=3072)
    keygen = {"paillier_3072": time.perf_counter() - t0}
    n = args.clients
    configs = [
        ("CKKS preset 'sum'", lambda: he_ml.CKKS("sum"), {"max_value": 1.0}),
        ("BFV preset 'sum' (22 frac. bits)", lambda: he_ml.BFV("sum"), {"max_value": 1.0, "precision_bits": 22}),
        ("Paillier preset 'sum' 3072", lambda: he_ml.Paillier.from_phe_keys(pk, sk, preset="sum"), {}),
        ("CKKS aggregation_context", lambda: aggregation_context("ckks", max_clients=n, max_value=1.0,
                                                                 precision_bits=24), {"max_value": 1.0}),
        ("BFV aggregation_context", lambda: aggregation_context("bfv", max_clients=n, max_value=1.0,
                                                                precision_bits=24),
         {"max_value": 1.0, "precision_bits": 24}),
        ("Paillier aggregation_context 3072", lambda: he_ml.Paillier.from_phe_keys(
            pk, sk, preset="sum", max_value=1.0, max_additions=n, precision_bits=24), {"max_clients": n}),
    ]
    rows = []
    for label, make, kw in configs:
        t0 = time.perf_counter()
        ctx = make()
        keygen[label] = time.perf_counter() - t0
        rows.append(measure_scheme(label, ctx, data, kw))
        print(f"measured {label}: {rows[-1]['end_to_end_s']:.2f} s", flush=True)
    phe_row = measure_phe(pk, sk, args.phe_sample, args.clients, args.values)
    for r in rows:
        r["speedup_vs_baseline"] = phe_row["end_to_end_s"] / r["end_to_end_s"]
        r["fewer_bytes_vs_baseline"] = phe_row["bytes_per_value"] / r["bytes_per_value"]
    eligible = [r for r in rows if r["precision_bits"] >= TARGET_BITS]
    best_speed = max(eligible, key=lambda r: r["speedup_vs_baseline"])
    best_bytes = max(eligible, key=lambda r: r["fewer_bytes_vs_baseline"])
    sizes = size_table(rows, phe_row)

    print(f"\n{args.clients} clients x {args.values} values, end to end (CPU s: all clients encrypt + server sum + "
          f"decrypt); baseline: {BASELINE}, sample of {args.phe_sample} values")
    head = f"{'scheme':<36}{'enc s':>9}{'sum s':>8}{'dec s':>8}{'e2e s':>9}{'B/value':>9}{'bits':>6}{'speedup':>10}{'bytes x':>9}"
    print(head)
    print("-" * len(head))
    for r in rows + [phe_row]:
        sp = f"{r.get('speedup_vs_baseline', 1.0):>9.0f}x"
        bx = f"{r.get('fewer_bytes_vs_baseline', 1.0):>8.1f}x"
        print(f"{r['scheme'][:35]:<36}{r['encrypt_s']:>9.2f}{r['sum_s']:>8.2f}{r['decrypt_s']:>8.2f}"
              f"{r['end_to_end_s']:>9.2f}{r['bytes_per_value']:>9.1f}{r['precision_bits']:>6.1f}{sp}{bx}")
    print(f"\nfastest at >= {TARGET_BITS} bits: {best_speed['scheme']} ({best_speed['speedup_vs_baseline']:.0f}x, "
          f"target {TARGET_SPEED:.0f}x); fewest bytes: {best_bytes['scheme']} "
          f"({best_bytes['fewer_bytes_vs_baseline']:.1f}x, target {TARGET_BYTES:.0f}x)")
    print("\nper client, by vector size (extrapolated from per-ciphertext costs):")
    print(f"{'values':>10}  {'fewest bytes (bytes)':<52}{'fastest encryption (ms)':<50}")
    for size, e in sizes.items():
        fb, fc = e["fewest_bytes"], e["fastest_client"]
        print(f"{int(size):>10}  {fb[:36] + ' (' + format(e[fb]['blob_bytes'], ',.0f') + ')':<52}"
              f"{fc[:36] + ' (' + format(e[fc]['client_encrypt_s'] * 1e3, '.2f') + ')':<50}")

    out = {
        "name": NAME, "quick": args.quick, "clients": args.clients, "values": args.values, "baseline": phe_row,
        "rows": rows, "keygen_s": keygen, "sizes": sizes,
        "best": {"speed": best_speed["scheme"], "speedup": best_speed["speedup_vs_baseline"],
                 "bytes": best_bytes["scheme"], "fewer_bytes": best_bytes["fewer_bytes_vs_baseline"]},
        "targets": {"speedup": TARGET_SPEED, "fewer_bytes": TARGET_BYTES, "precision_bits": TARGET_BITS},
        "versions": {p: version(p) for p in ("phe", "gmpy2", "tenseal", "numpy")},
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "command": "python benchmarks/bench_aggregation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if not args.save:
        return out
    RESULTS.mkdir(exist_ok=True)
    stem = NAME + ("_quick" if args.quick else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1, default=str))
    plot(rows, phe_row, RESULTS / f"{stem}.png")
    print(f"\nwrote {RESULTS / (stem + '.json')} and .png")
    return out


if __name__ == "__main__":
    main()
