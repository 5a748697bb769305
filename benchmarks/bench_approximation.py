"""Approximation table: max error and depth per function x degree x method, plus encrypted timings.

Baselines measured in the same run:
* error: least squares (uniform weight) vs minimax at the same degree (ratio LS / minimax);
* depth and time: TenSEAL's own ``CKKSVector.polyval`` on the same polynomial, written directly
  against TenSEAL here (not through he_ml), at the tutorial parameters (n = 8192,
  [60, 40, 40, 60], scale 2^40) and with as many levels as it needs.

Usage::

    python benchmarks/bench_approximation.py [--quick]

With --save, writes benchmarks/results/bench_approximation.json and bench_approximation.png.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from he_ml.ml.activations import ACTIVATIONS
from he_ml.ml.polynomial import approximate

INTERVALS = {  # default intervals: where the activations are usually evaluated
    "sigmoid": (-8.0, 8.0),
    "tanh": (-4.0, 4.0),
    "relu": (-1.0, 1.0),
    "gelu": (-4.0, 4.0),
    "exp": (-1.0, 1.0),
}
METHODS = ("least_squares", "chebyshev", "minimax")
RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=160)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def approximation_table(degrees):
    rows = []
    for name, interval in INTERVALS.items():
        for d in degrees:
            fits = {m: approximate(name, d, interval, m) for m in METHODS}
            fold = approximate(name, d, interval, "minimax", input_scaling="fold")
            mm, ls = fits["minimax"], fits["least_squares"]
            rows.append({
                "function": name, "interval": list(interval), "degree": d,
                **{f"max_error_{m}": fits[m].max_error for m in METHODS},
                "ratio_ls_over_minimax": (ls.max_error / mm.max_error) if mm.max_error > 1e-13 else None,
                "depth": mm.depth, "depth_folded": fold.depth,
                "folded": mm.plan.folded_input_scale,
                "noise_gain": mm.noise_gain, "noise_gain_folded": fold.noise_gain,
                "ct_ct_mults": mm.plan.ciphertext_multiplications,
                "ct_scalar_mults": mm.plan.plaintext_multiplications,
                "minimax_converged": mm.converged,
            })
    return rows


def print_table(rows):
    t = Table(title="Polynomial approximations: max error measured on 100 001 points (+ extrema)")
    for col in ("function", "interval", "deg", "least sq.", "Chebyshev", "minimax", "LS/minimax",
                "depth", "depth (fold)", "ct*ct", "noise gain"):
        t.add_column(col, justify="right")
    for r in rows:
        ratio = r["ratio_ls_over_minimax"]
        t.add_row(r["function"], f"[{r['interval'][0]:g}, {r['interval'][1]:g}]", str(r["degree"]),
                  f"{r['max_error_least_squares']:.2e}", f"{r['max_error_chebyshev']:.2e}",
                  f"{r['max_error_minimax']:.2e}", "-" if ratio is None else f"{ratio:.2f}",
                  str(r["depth"]), str(r["depth_folded"]), str(r["ct_ct_mults"]),
                  f"{r['noise_gain']:.3g}")
    console.print(t)


def tenseal_cross_check(repeats, values):
    """TenSEAL polyval vs he_ml evaluate on the degree-7 minimax sigmoid on [-8, 8]."""
    import tenseal as ts

    import he_ml
    from he_ml.errors import DepthExhaustedError

    out = {}
    p_fold = approximate("sigmoid", 7, (-8, 8), input_scaling="fold")
    p_auto = approximate("sigmoid", 7, (-8, 8))
    coeffs = p_fold.coefficients.tolist()  # power basis in x, what polyval takes
    x = np.linspace(-8, 8, values)

    def ts_ctx(n, bits):
        c = ts.context(ts.SCHEME_TYPE.CKKS, n, coeff_mod_bit_sizes=bits)
        c.global_scale = 2 ** 40
        c.generate_relin_keys()
        return c

    # 1. The tutorial parameters.
    c = ts_ctx(8192, [60, 40, 40, 60])
    try:
        ts.ckks_vector(c, x.tolist()).polyval(coeffs)
        out["tenseal_polyval_n8192_2levels"] = "ok"
    except ValueError as e:
        out["tenseal_polyval_n8192_2levels"] = f"{type(e).__name__}: {e}"
    ours = he_ml.CKKS(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60], scale_bits=40)
    try:
        p_fold.evaluate(ours.encrypt(x))
    except DepthExhaustedError as e:
        out["he_ml_n8192_2levels"] = f"DepthExhaustedError: {e}"
    out["he_ml_depth_folded"] = p_fold.depth
    out["he_ml_depth_auto"] = p_auto.depth

    # 2. How many levels does TenSEAL's polyval need? (n = 16384 holds up to 9 levels of 40 bits.)
    needed = None
    for levels in range(3, 7):
        bits = [60] + [40] * levels + [60]
        c = ts_ctx(16384, bits)
        try:
            v = ts.ckks_vector(c, x.tolist())
            r = np.array(v.polyval(coeffs).decrypt())
        except ValueError:
            continue
        needed = levels
        ts_err = float(np.max(np.abs(r - p_fold(x))))
        ts_time = median_time(lambda: v.polyval(coeffs), repeats)
        break
    out["tenseal_polyval_levels_needed"] = needed
    if needed is None:
        return out
    out["tenseal_polyval_error_vs_plain"] = ts_err
    out["tenseal_polyval_seconds"] = ts_time

    # 3. he_ml on its own minimal parameters, and on TenSEAL's (same n, same chain).
    for label, p in (("fold", p_fold), ("auto", p_auto)):
        for lv in sorted({p.depth, max(needed, p.depth)}):
            ctx = he_ml.CKKS(poly_modulus_degree=16384, coeff_mod_bit_sizes=[60] + [40] * lv + [60],
                             scale_bits=40)
            enc = ctx.encrypt(x)
            res = ctx.decrypt(p.evaluate(enc))
            out[f"he_ml_{label}_levels{lv}_error_vs_plain"] = float(np.max(np.abs(res - p(x))))
            out[f"he_ml_{label}_levels{lv}_error_vs_sigmoid"] = float(
                np.max(np.abs(res - ACTIVATIONS["sigmoid"](x))))
            out[f"he_ml_{label}_levels{lv}_seconds"] = median_time(lambda: p.evaluate(enc), repeats)
    return out


def encrypted_timings(degrees, repeats, values):
    """Time of p.evaluate on he_ml CKKS (n = 16384, just enough 40-bit levels)."""
    import he_ml

    rows, contexts = [], {}
    for name, interval in INTERVALS.items():
        for d in degrees:
            p = approximate(name, d, interval)
            lv = p.depth
            if lv not in contexts:
                contexts[lv] = he_ml.CKKS(poly_modulus_degree=16384,
                                          coeff_mod_bit_sizes=[60] + [40] * lv + [60], scale_bits=40)
            ctx = contexts[lv]
            x = np.linspace(*interval, values)
            enc = ctx.encrypt(x)
            got = ctx.decrypt(p.evaluate(enc))
            rows.append({"function": name, "degree": d, "depth": lv, "values": values,
                         "seconds": median_time(lambda: p.evaluate(enc), repeats),
                         "error_vs_plain": float(np.max(np.abs(got - p(x)))),
                         "predicted_noise": p.noise_gain * 2.0 ** -27})
    return rows


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(INTERVALS), figsize=(4 * len(INTERVALS), 3.6), sharey=False)
    for ax, name in zip(axes, INTERVALS):
        sub = [r for r in rows if r["function"] == name]
        deg = [r["degree"] for r in sub]
        for m, style in zip(METHODS, ("o--", "s:", "^-")):
            ax.semilogy(deg, [max(r[f"max_error_{m}"], 1e-16) for r in sub], style, label=m)
        ax.set_title(f"{name} on [{INTERVALS[name][0]:g}, {INTERVALS[name][1]:g}]")
        ax.set_xlabel("degree")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("max |p - f| (measured)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer degrees, repeats and values")
    ap.add_argument("--save", action="store_true", help="write JSON (and PNG) to benchmarks/results/ (default: write nothing)")
    args = ap.parse_args()
    degrees = (3, 7, 15) if args.quick else (3, 5, 7, 9, 15)
    repeats = 3 if args.quick else 7
    values = 1024 if args.quick else 8192

    rows = approximation_table(degrees)
    print_table(rows)
    result = {"platform": platform.platform(), "quick": args.quick, "approximations": rows}

    try:
        import he_ml  # noqa: F401
        from he_ml.schemes import CKKS  # noqa: F401
        have_ckks = True
    except ImportError as e:
        console.print(f"[yellow]he_ml CKKS not available ({e}); skipping encrypted timings[/]")
        have_ckks = False
    if have_ckks:
        timing = encrypted_timings((3, 7) if args.quick else (3, 7, 15), repeats, values)
        t = Table(title=f"he_ml CKKS evaluate, n = 16384, scale 2^40, {values} values (median of {repeats})")
        for col in ("function", "degree", "depth", "ms", "max |dec - p(x)|", "predicted (gain*2^-27)"):
            t.add_column(col, justify="right")
        for r in timing:
            t.add_row(r["function"], str(r["degree"]), str(r["depth"]), f"{1e3 * r['seconds']:.1f}",
                      f"{r['error_vs_plain']:.2e}", f"{r['predicted_noise']:.2e}")
        console.print(t)
        result["encrypted"] = timing
        cross = tenseal_cross_check(repeats, values)
        result["tenseal_cross_check"] = cross
        t = Table(title="Degree-7 minimax sigmoid on [-8, 8]: TenSEAL polyval vs he_ml evaluate")
        t.add_column("measurement")
        t.add_column("value")
        for k, v in cross.items():
            t.add_row(k, f"{v:.3e}" if isinstance(v, float) else str(v))
        console.print(t)
        if "tenseal_polyval_seconds" in cross:
            for label in ("fold", "auto"):
                key = f"he_ml_{label}_levels{cross['tenseal_polyval_levels_needed']}_seconds"
                if key in cross:
                    console.print(f"speed-up he_ml ({label}) vs TenSEAL polyval at the same parameters: "
                                  f"{cross['tenseal_polyval_seconds'] / cross[key]:.2f}x")

    if not args.save:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_approximation.json").write_text(json.dumps(result, indent=2))
    plot(rows, RESULTS / "bench_approximation.png")
    console.print(f"wrote {RESULTS / 'bench_approximation.json'} and bench_approximation.png")


if __name__ == "__main__":
    main()
