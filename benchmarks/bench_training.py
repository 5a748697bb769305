"""Encrypted logistic-regression training: he_ml blocks layout vs the TenSEAL tutorial recipe.

Scenario (issue 4, section 4): 100 standardized breast-cancer training samples (30
features), full-batch gradient descent, evaluated on the remaining 469 samples.

* **he_ml**: ``EncryptedLogisticRegression.training_context(30, 100)`` (planner: depth 5,
  n = 16384, scale 2^38, exactly the 19 rotation keys the blocks layout needs, generated
  once -- reported as setup), ``encrypt_features(..., layout="blocks")`` (one ciphertext
  holds all 100 samples x 32 feature blocks), ``fit`` with a degree-3 minimax sigmoid of
  ``sigmoid(8 t)`` on [-1, 1] and a client-aided refresh of the weights after each batch.
* **TenSEAL tutorial recipe** (baseline, written here with TenSEAL, same run): one
  ``ckks_vector`` per sample, encrypted weights and bias, ``enc_x.dot(w) + b``,
  ``polyval([0.5, 0.197, 0, -0.004])`` sigmoid, gradient accumulated over the samples,
  update ``w -= dw / m + 0.05 w``, refresh by decrypt/re-encrypt every epoch; n = 16384,
  scale 2^40, chain [60, 40 x 7, 60]. One epoch is measured (it is slow); with ``--quick``
  on 20 samples, scaled linearly to 100 (said in the output).
* **plaintext**: the same algorithm as he_ml with the exact sigmoid (``plain_fit(exact_link=True)``).

Targets: >= 20x faster per epoch (CPU), final accuracy within 1 point of plaintext training.

Usage::

    python benchmarks/bench_training.py            # 10 he_ml epochs, 1 full TenSEAL epoch
    python benchmarks/bench_training.py --quick    # 5 epochs, TenSEAL epoch on 20 samples

With ``--save``, writes ``benchmarks/results/bench_training.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from _timing import Clock

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAME = "bench_training"
TARGET_SPEEDUP = 20.0
TARGET_ACCURACY_POINTS = 1.0




def load(n_train: int):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    X, y = X[idx], y[idx].astype(float)
    sc = StandardScaler().fit(X[:n_train])
    return sc.transform(X[:n_train]), y[:n_train], sc.transform(X[n_train:]), y[n_train:]


def accuracy(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(((X @ w[:-1] + w[-1]) > 0) == (y > 0.5)))


def bench_he_ml(X, y, X_te, y_te, epochs: int, lr: float) -> dict[str, Any]:
    from he_ml.ml import EncryptedLogisticRegression, encrypt_features

    n, d = X.shape
    with Clock() as setup:
        ctx = EncryptedLogisticRegression.training_context(d, n)
    model = EncryptedLogisticRegression(epochs=epochs, learning_rate=lr)
    with Clock() as enc_t:
        eX = encrypt_features(ctx, X, layout="blocks")
        ey = encrypt_features(ctx, y, layout="blocks", batch_size=eX.batch_size)
        upload = eX.nbytes + ey.nbytes
    epoch_times: list[tuple[float, float]] = []
    last = [time.process_time(), time.perf_counter()]

    def on_epoch(rec):
        now = [time.process_time(), time.perf_counter()]
        epoch_times.append((now[0] - last[0], now[1] - last[1]))
        last[:] = [time.process_time(), time.perf_counter()]

    with Clock() as fit_t:
        model.fit(eX, ey, callback=on_epoch, eval_set=(X, y))
    w = np.r_[model.coef_, model.intercept_]
    twin = model.plain_fit(X, y, batch_size=eX.batch_size)
    exact = model.plain_fit(X, y, batch_size=eX.batch_size, exact_link=True)
    return {
        "implementation": "he_ml blocks layout (1 ciphertext per batch)",
        "parameters": ctx.parameters | {"sigmoid_degree": 3, "learning_rate": lr, "epochs": epochs,
                                        "batch_size": eX.batch_size,
                                        "rotation_keys": len(ctx.rotation_steps_available)},
        "setup_cpu_s": setup.cpu, "setup_wall_s": setup.wall, "encrypt_cpu_s": enc_t.cpu,
        "upload_bytes": upload,
        # the per-epoch callback decrypts the weights for the history (one small decryption)
        "epoch_cpu_s": statistics.median(t[0] for t in epoch_times),
        "epoch_wall_s": statistics.median(t[1] for t in epoch_times),
        "fit_cpu_s": fit_t.cpu, "refreshes": model.n_refreshes_,
        "loss_curve": [r["loss"] for r in model.history_],
        "accuracy": accuracy(w, X_te, y_te),
        "plaintext_twin_accuracy": accuracy(twin, X_te, y_te),
        "plaintext_exact_sigmoid_accuracy": accuracy(exact, X_te, y_te),
        "max_weight_difference_vs_twin": float(np.max(np.abs(w - twin))),
    }


def bench_tenseal(X, y, X_te, y_te, count: int) -> dict[str, Any]:
    import tenseal as ts

    with Clock() as setup:
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, 16384, -1, [60] + [40] * 7 + [60])
        ctx.global_scale = 2 ** 40
        ctx.generate_galois_keys()
        ctx.generate_relin_keys()
    Xs, ys = X[:count], y[:count]
    with Clock() as enc_t:
        enc_x = [ts.ckks_vector(ctx, x.tolist()) for x in Xs]
        enc_y = [ts.ckks_vector(ctx, [float(v)]) for v in ys]
    d = X.shape[1]
    w0 = np.zeros(d)
    b0 = 0.0
    weight = ts.ckks_vector(ctx, w0.tolist())
    bias = ts.ckks_vector(ctx, [b0])
    with Clock() as epoch:
        dw, db = 0, 0
        for ex, ey in zip(enc_x, enc_y):
            out = ex.dot(weight) + bias
            out = out.polyval([0.5, 0.197, 0, -0.004])
            diff = out - ey
            dw = ex * diff + dw if not isinstance(dw, int) else ex * diff
            db = diff + db if not isinstance(db, int) else diff
        weight = weight - (dw * (1 / count) + weight * 0.05)
        bias = bias - db * (1 / count)
        # refresh: the key holder decrypts and re-encrypts (every epoch, as in the tutorial)
        weight = ts.ckks_vector(ctx, weight.decrypt())
        bias = ts.ckks_vector(ctx, bias.decrypt())
    w = np.r_[weight.decrypt(), bias.decrypt()]
    return {
        "implementation": "TenSEAL tutorial recipe (1 ckks_vector per sample)",
        "parameters": {"poly_modulus_degree": 16384, "coeff_mod_bit_sizes": [60] + [40] * 7 + [60],
                       "scale_bits": 40},
        "setup_cpu_s": setup.cpu, "encrypt_cpu_s": enc_t.cpu, "measured_samples": count,
        "epoch_cpu_s_measured": epoch.cpu, "epoch_wall_s_measured": epoch.wall,
        "epoch_cpu_s": epoch.cpu * X.shape[0] / count, "epoch_wall_s": epoch.wall * X.shape[0] / count,
        "extrapolated": count != X.shape[0],
        "accuracy_after_1_epoch": accuracy(w, X_te, y_te),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 epochs; TenSEAL epoch on 20 samples")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--learning-rate", type=float, default=0.3)
    ap.add_argument("--save", action="store_true", help="write JSON (and PNG) to benchmarks/results/ (default: write nothing)")
    args = ap.parse_args()
    epochs = args.epochs or (5 if args.quick else 10)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=130)
    X, y, X_te, y_te = load(100)
    with console.status("he_ml encrypted training..."):
        he = bench_he_ml(X, y, X_te, y_te, epochs, args.learning_rate)
    with console.status("TenSEAL tutorial recipe, one epoch (slow)..."):
        base = bench_tenseal(X, y, X_te, y_te, 20 if args.quick else 100)
    speed = base["epoch_cpu_s"] / he["epoch_cpu_s"]
    gap = 100 * abs(he["accuracy"] - he["plaintext_exact_sigmoid_accuracy"])
    checks = [("per-epoch speed-up (CPU)", speed, f">= {TARGET_SPEEDUP:g}x", speed >= TARGET_SPEEDUP),
              ("accuracy gap vs plaintext (points)", gap, f"<= {TARGET_ACCURACY_POINTS:g}",
               gap <= TARGET_ACCURACY_POINTS)]
    t = Table(title=f"{NAME}: encrypted LR training, 100 samples x 30 features (same run)")
    for col in ("implementation", "setup s (CPU)", "s/epoch (CPU)", "s/epoch (wall)", "test accuracy"):
        t.add_column(col)
    t.add_row(base["implementation"] + (" [extrapolated from 20]" if base["extrapolated"] else ""),
              f"{base['setup_cpu_s']:.2f}", f"{base['epoch_cpu_s']:.2f}", f"{base['epoch_wall_s']:.2f}",
              f"{base['accuracy_after_1_epoch']:.4f} (1 epoch)")
    t.add_row(he["implementation"], f"{he['setup_cpu_s']:.2f}", f"{he['epoch_cpu_s']:.3f}",
              f"{he['epoch_wall_s']:.3f}", f"{he['accuracy']:.4f} ({epochs} epochs)")
    t.add_row("plaintext, same algorithm, exact sigmoid", "-", "-", "-",
              f"{he['plaintext_exact_sigmoid_accuracy']:.4f}")
    console.print(t)
    t2 = Table(title="targets")
    for col in ("metric", "measured", "target", "result"):
        t2.add_column(col)
    for name, val, target, ok in checks:
        t2.add_row(name, f"{val:.1f}", target, "[green]PASS[/]" if ok else "[red]MISS[/]")
    console.print(t2)
    console.print("loss per epoch: " + ", ".join(f"{v:.4f}" for v in he["loss_curve"]))
    console.print(f"max |w - plaintext polynomial twin| = {he['max_weight_difference_vs_twin']:.2e}; "
                  f"{he['refreshes']} client-aided refreshes")
    out = {"benchmark": NAME, "quick": bool(args.quick), "timing": "CPU seconds (process_time)",
           "machine": {"python": platform.python_version(), "platform": platform.platform(),
                       "tenseal": version("tenseal"), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
           "he_ml": he, "tenseal": base,
           "checks": [{"metric": c[0], "value": c[1], "target": c[2], "pass": c[3]} for c in checks]}
    if not args.save:
        return
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{NAME}.json").write_text(json.dumps(out, indent=2, default=float))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].bar(["TenSEAL recipe", "he_ml"], [base["epoch_cpu_s"], he["epoch_cpu_s"]], color=["#999", "#1f77b4"])
    ax[0].set_yscale("log")
    ax[0].set_ylabel("seconds per epoch (CPU, log)")
    ax[1].plot(range(1, len(he["loss_curve"]) + 1), he["loss_curve"], marker="o")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("training log loss (he_ml)")
    fig.tight_layout()
    fig.savefig(RESULTS_DIR / f"{NAME}.png", dpi=120)
    plt.close(fig)
    console.print(f"wrote {RESULTS_DIR / (NAME + '.json')} and .png")


if __name__ == "__main__":
    main()
