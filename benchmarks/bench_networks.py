"""Encrypted neural networks: he_ml (throughput and latency layouts) vs TenSEAL's per-image CNN.

Scenario (issue 8, section 4)
-----------------------------
* **CryptoNets network** (Dowlin et al. 2016; padding 0 as in TenSEAL's encrypted-CNN tutorial):
  ``Conv2d(1 -> 5, 5x5, stride 2) -> x^2 -> Flatten -> Linear(720 -> 100) -> x^2 ->
  Linear(100 -> 10)`` on 28x28 images: scikit-learn's 8x8 digits upsampled with
  ``scipy.ndimage.zoom`` (order 1) and scaled to [0, 1], trained in plaintext with torch
  (seeded, Adam, a few epochs).  Timing does not depend on the pixels.
* **TenSEAL baseline (same run)**: the tutorial's per-image CNN on the same weights:
  ``ts.im2col_encoding`` -> ``conv2d_im2col`` per output channel -> ``pack_vectors`` ->
  ``square_`` -> ``mm`` -> ``square_`` -> ``mm``; the tutorial's chain ``[31, 26 x 6, 31]``, scale
  2^26, its default Galois keys.  The tutorial's n = 8192 cannot hold this network's im2col matrix
  (144 windows x 25 taps pads to 256 x 32 = 8192 slots > 4096), so TenSEAL needs n = 16384 here.
* **he_ml latency layout** (``he_ml.ml.latency``, this branch): one image per ciphertext, BSGS
  diagonal method, planned context with only the model's rotation keys.
* **he_ml throughput layout** (``from_torch`` + ``encrypt_features`` + ``decision_function``): one
  ciphertext per pixel holding that pixel for a full ciphertext of images (slot_count images; the
  360 test images are tiled to fill it, accuracy is that of the distinct images).
* **MLP on digits 8x8** (``MLPClassifier(32)``, ReLU, converted with ``from_sklearn``) and a
  **multinomial logistic regression on wine** (raw features, ``Pipeline(StandardScaler,
  LogisticRegression)``): time and accuracy, both layouts.

Rows that need ``from_torch`` / ``from_sklearn`` run only when ``he_ml.ml`` provides them; the
TenSEAL baseline and the latency rows always run (the script then builds the IR records itself).

Timings: CPU seconds of this process (``time.process_time``, all threads; TenSEAL uses two
threads, he_ml one) and wall seconds; medians over repeats.  The machine is shared and noisy.

Usage::

    python benchmarks/bench_networks.py --quick          # 1 TenSEAL image, 2 latency images, 1 repeat
    python benchmarks/bench_networks.py --save           # full run, writes results/bench_networks.json/.png
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import Clock  # noqa: E402
from he_ml.bench.sysinfo import cpu_model

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAME = "bench_networks"
TARGET_THROUGHPUT = 100.0       # x the images/s of TenSEAL's per-image CNN
TARGET_ACCURACY_POINTS = 0.5    # |encrypted - plaintext| accuracy, points
TARGET_LATENCY = 2.0            # x faster than TenSEAL for one image
LITERATURE = {
    "CryptoNets (Dowlin et al. 2016), one PC": 59000 / 3600.0,      # images/s, ~59,000 images/h
    "nGraph-HE2 (Boemer et al. 2019), 56-core Xeon": 1998.0,         # images/s
}
NGRAPH_PER_CORE = 1998.0 / 56


# ----------------------------------------------------------------------------- data and training
def digits_28(seed: int = 0):
    """scikit-learn digits upsampled to 28x28 in [0, 1]; stratified 80/20 split."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    imgs = np.stack([zoom(x.reshape(8, 8) / 16.0, 3.5, order=1) for x in X])
    imgs = np.clip(imgs, 0.0, 1.0)[:, None]  # (n, 1, 28, 28)
    return train_test_split(imgs, y, test_size=0.2, random_state=seed, stratify=y)


def train_cryptonets(X_tr, y_tr, epochs: int, seed: int = 0):
    import torch
    from torch import nn

    try:
        from he_ml.ml.torch import Square
    except ImportError:  # converters not merged yet: an equivalent module (x * x)
        class Square(nn.Module):
            def forward(self, x):
                return x * x

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 5, 5, stride=2, padding=0), Square(), nn.Flatten(),
                        nn.Linear(720, 100), Square(), nn.Linear(100, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    X = torch.tensor(X_tr, dtype=torch.float32)
    y = torch.tensor(y_tr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(X[idx]), y[idx])
            loss.backward()
            opt.step()
    return net.eval().double()


def torch_logits(net, X) -> np.ndarray:
    import torch
    with torch.no_grad():
        return net(torch.tensor(X, dtype=torch.float64)).numpy()


# IR records when he_ml.ml.ir is not available (same fields, recognised by name by the latency layout)
@dataclass(frozen=True, eq=False)
class Dense:
    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True, eq=False)
class Conv2d:
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple
    padding: tuple
    input_shape: tuple


@dataclass(frozen=True, eq=False)
class Flatten:
    input_shape: tuple


@dataclass(frozen=True, eq=False)
class Activation:
    kind: str
    name: str
    poly: Any = None


def cryptonets_layers(net) -> list[Any]:
    """The IR of the trained network (he_ml.ml.ir records when available)."""
    try:
        from he_ml.ml import ir
        D, C, F, A = ir.Dense, ir.Conv2d, ir.Flatten, ir.Activation
    except ImportError:
        D, C, F, A = Dense, Conv2d, Flatten, Activation
    t = lambda p: p.detach().numpy().astype(np.float64)  # noqa: E731
    return [C(t(net[0].weight), t(net[0].bias), (2, 2), (0, 0), (1, 28, 28)), A("square", "square"),
            F((5, 12, 12)), D(t(net[3].weight), t(net[3].bias)), A("square", "square"),
            D(t(net[5].weight), t(net[5].bias))]


def have_converters() -> bool:
    try:
        from he_ml.ml import from_sklearn, from_torch  # noqa: F401
        return True
    except ImportError:
        return False


# ----------------------------------------------------------------------------- TenSEAL baseline
def bench_tenseal(net, X, count: int) -> dict[str, Any]:
    import tenseal as ts

    with Clock() as kg:
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, 16384, -1, [31, 26, 26, 26, 26, 26, 26, 31])
        ctx.global_scale = 2 ** 26
        ctx.generate_galois_keys()
    pub_bytes = len(ctx.serialize(save_secret_key=False))
    t = lambda p: p.detach().numpy().astype(np.float64)  # noqa: E731
    kernels, conv_b = t(net[0].weight)[:, 0], t(net[0].bias)
    fc1_w, fc1_b = t(net[3].weight).T.tolist(), t(net[3].bias).tolist()
    fc2_w, fc2_b = t(net[5].weight).T.tolist(), t(net[5].bias).tolist()
    times, enc_times, outs, up = [], [], [], 0
    for img in X[:count]:
        with Clock() as c:
            with Clock() as ce:
                enc_x, windows = ts.im2col_encoding(ctx, img[0].tolist(), 5, 5, 2)
            up = len(enc_x.serialize())
            chans = [enc_x.conv2d_im2col(k.tolist(), windows) + float(b) for k, b in zip(kernels, conv_b)]
            e = ts.CKKSVector.pack_vectors(chans)
            e.square_()
            e = e.mm(fc1_w) + fc1_b
            e.square_()
            e = e.mm(fc2_w) + fc2_b
            outs.append(np.array(e.decrypt()))
        times.append(c)
        enc_times.append(ce)
    return {"implementation": "TenSEAL tutorial CNN (1 image / ciphertext)", "images": count,
            "parameters": {"poly_modulus_degree": 16384, "coeff_mod_bit_sizes": [31] + [26] * 6 + [31],
                           "scale_bits": 26},
            "keygen_cpu_s": kg.cpu, "public_context_bytes": pub_bytes, "upload_bytes_per_image": up,
            "cpu_s_per_image": statistics.median(c.cpu for c in times),
            "wall_s_per_image": statistics.median(c.wall for c in times),
            "encrypt_cpu_s_per_image": statistics.median(c.cpu for c in enc_times),
            "logits": np.array(outs)}


# ----------------------------------------------------------------------------- he_ml latency
def bench_latency(layers, input_shape, X_cal, X, count: int, name: str, keys: str = "exact") -> dict[str, Any]:
    import he_ml
    from he_ml.ml.latency import LatencyModel

    model = LatencyModel(layers, input_shape)
    with Clock() as kg:
        ctx = model.context(X_cal, rotation_keys=keys)
        pub_blob = ctx.public_context().to_bytes()
    server = he_ml.load_context(pub_blob)
    client = ctx.public_context()
    times, enc_times, eval_times, outs, up = [], [], [], [], 0
    for x in X[:count]:
        with Clock() as c:
            with Clock() as ce:
                blob = model.encrypt(client, x).to_bytes()
            up = len(blob)
            with Clock() as cv:
                res = model.decision_function(server.ciphertext_from_bytes(blob)).to_bytes()
            outs.append(ctx.decrypt(ctx.ciphertext_from_bytes(res)))
        times.append(c)
        enc_times.append(ce)
        eval_times.append(cv)
    return {"implementation": f"he_ml latency layout ({name})", "images": count,
            "parameters": ctx.parameters, "depth": model.depth, "rotation_steps": len(model.rotation_steps),
            "rotation_keys": len(ctx.rotation_steps_available), "key_mode": keys,
            "plan": model.stages, "keygen_cpu_s": kg.cpu, "public_context_bytes": len(pub_blob),
            "upload_bytes_per_image": up,
            "cpu_s_per_image": statistics.median(c.cpu for c in times),
            "wall_s_per_image": statistics.median(c.wall for c in times),
            "encrypt_cpu_s_per_image": statistics.median(c.cpu for c in enc_times),
            "eval_cpu_s_per_image": statistics.median(c.cpu for c in eval_times),
            "logits": np.array(outs), "twin": model.plain(X[:count])}


# ----------------------------------------------------------------------------- he_ml throughput
def bench_throughput(model, X, repeats: int, name: str, batch: int | None = None) -> dict[str, Any]:
    """model: an EncryptedModel (from_torch / from_sklearn). X: distinct samples, tiled to the batch."""
    import he_ml
    from he_ml.ml import EncryptedFeatures, encrypt_features

    with Clock() as kg:
        ctx = model.context("ckks")
        pub_blob = ctx.public_context().to_bytes()
    server = he_ml.load_context(pub_blob)
    client = ctx.public_context()
    n = batch or ctx.slot_count
    idx = np.resize(np.arange(len(X)), n)
    Xb = X[idx]
    runs = []
    for _ in range(repeats):
        with Clock() as ce:
            up = encrypt_features(client, Xb).to_bytes()
        with Clock() as cv:
            enc = EncryptedFeatures.from_bytes(server, up)
            res = model.decision_function(enc).to_bytes()
        with Clock() as cd:
            scores = ctx.decrypt(ctx.ciphertext_from_bytes(res))
        runs.append((ce, cv, cd))
    med = lambda k, attr: statistics.median(getattr(r[k], attr) for r in runs)  # noqa: E731
    batch_cpu = med(0, "cpu") + med(1, "cpu") + med(2, "cpu")
    batch_wall = med(0, "wall") + med(1, "wall") + med(2, "wall")
    return {"implementation": f"he_ml throughput layout ({name})", "batch": n, "distinct": int(len(X)),
            "parameters": ctx.parameters, "depth": model.depth, "keygen_cpu_s": kg.cpu,
            "public_context_bytes": len(pub_blob), "upload_bytes_per_image": len(up) / n,
            "encrypt_cpu_s": med(0, "cpu"), "eval_cpu_s": med(1, "cpu"), "decrypt_cpu_s": med(2, "cpu"),
            "batch_cpu_s": batch_cpu, "batch_wall_s": batch_wall,
            "cpu_s_per_image": batch_cpu / n, "wall_s_per_image": batch_wall / n,
            "images_per_s_cpu": n / batch_cpu, "images_per_s_wall": n / batch_wall,
            "scores": np.asarray(scores)[: len(X)].reshape(len(X), -1)}


# ----------------------------------------------------------------------------- tabular models
def tabular_models(seed: int = 0):
    from sklearn.datasets import load_digits, load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xd_tr, Xd_te, yd_tr, yd_te = train_test_split(X / 16.0, y, test_size=0.2, random_state=seed, stratify=y)
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=seed).fit(Xd_tr, yd_tr)
    X, y = load_wine(return_X_y=True)
    Xw_tr, Xw_te, yw_tr, yw_te = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    wine = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(Xw_tr, yw_tr)
    return [("MLP digits 8x8 (64-32-10, ReLU)", mlp, Xd_tr, Xd_te, yd_te),
            ("logistic regression wine (13 raw features, 3 classes)", wine, Xw_tr, Xw_te, yw_te)]


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 epochs, 1 TenSEAL image, 2 latency images, 1 repeat")
    ap.add_argument("--save", action="store_true", help="write results/bench_networks(.json/.png)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--baseline-images", type=int, default=None, help="TenSEAL images (median)")
    ap.add_argument("--latency-images", type=int, default=None, help="latency-layout images (median)")
    ap.add_argument("--batch", type=int, default=None, help="throughput batch (default: slot count)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. the code revision)")
    args = ap.parse_args()
    q = args.quick
    epochs = args.epochs or (3 if q else 10)
    nb = args.baseline_images or (1 if q else 3)
    nl = args.latency_images or (2 if q else 10)
    reps = args.repeats or (1 if q else 3)
    batch = args.batch  # default: a full ciphertext of images (the cost per batch is the same below it)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    X_tr, X_te, y_tr, y_te = digits_28()
    net = train_cryptonets(X_tr, y_tr, epochs)
    plain_logits = torch_logits(net, X_te)
    plain_acc = float(np.mean(plain_logits.argmax(1) == y_te))
    console.print(f"[bold]{NAME}[/]: CryptoNets on digits upsampled to 28x28 ({len(X_tr)} train / {len(X_te)} "
                  f"test), {epochs} epochs: plaintext accuracy {plain_acc:.4f}; CPU {cpu_model()}")
    conv = have_converters()
    rows: dict[str, Any] = {}

    with console.status("TenSEAL per-image CNN..."):
        base = bench_tenseal(net, X_te, nb)
    base["agreement_with_plaintext"] = float(np.mean(base["logits"][:, :10].argmax(1) == plain_logits[:nb].argmax(1)))
    base["max_abs_error"] = float(np.max(np.abs(base["logits"][:, :10] - plain_logits[:nb])))
    rows["tenseal"] = base

    if conv:
        from he_ml.ml import from_torch
        with console.status("he_ml from_torch..."):
            tmodel = from_torch(net, X_calibration=X_tr)
        layers, lat_name = tmodel.ir, "from_torch IR"
    else:
        tmodel, layers, lat_name = None, cryptonets_layers(net), "IR records built by the script"
    with console.status("he_ml latency layout..."):
        lat = bench_latency(layers if not conv else layers.layers, (1, 28, 28), X_tr, X_te, nl, lat_name)
    lat["max_abs_error"] = float(np.max(np.abs(lat["logits"] - plain_logits[:nl])))
    lat["agreement_with_plaintext"] = float(np.mean(lat["logits"].argmax(1) == plain_logits[:nl].argmax(1)))
    rows["latency"] = lat
    with console.status("he_ml latency layout, power-of-two rotation keys only..."):
        lat2 = bench_latency(layers if not conv else layers.layers, (1, 28, 28), X_tr, X_te, nl,
                             lat_name + ", +-2^k keys", keys="pow2")
    lat2["max_abs_error"] = float(np.max(np.abs(lat2["logits"] - plain_logits[:nl])))
    lat2["agreement_with_plaintext"] = float(np.mean(lat2["logits"].argmax(1) == plain_logits[:nl].argmax(1)))
    rows["latency_pow2"] = lat2

    if conv:
        with console.status("he_ml throughput layout (a full ciphertext of images)..."):
            thr = bench_throughput(tmodel, X_te, reps, "CryptoNets", batch)
        thr["accuracy"] = float(np.mean(thr["scores"].argmax(1) == y_te))
        thr["agreement_with_plaintext"] = float(np.mean(thr["scores"].argmax(1) == plain_logits.argmax(1)))
        thr["max_abs_error"] = float(np.max(np.abs(thr["scores"] - plain_logits)))
        rows["throughput"] = thr

    tab_rows = []
    if conv:
        from he_ml.ml import from_sklearn
        for title, est, Xc, Xt, yt in tabular_models():
            with console.status(f"{title}..."):
                m = from_sklearn(est, X_calibration=Xc)
                r = bench_throughput(m, Xt, reps, title, batch)
                r["accuracy"] = float(np.mean(m.predict_from_scores(r["scores"]) == yt))
                r["plaintext_accuracy"] = float(est.score(Xt, yt))
                r["agreement_with_plaintext"] = float(np.mean(m.predict_from_scores(r["scores"]) == est.predict(Xt)))
                lr = bench_latency(m.ir.layers, m.ir.input_shape, Xc, Xt, min(nl, len(Xt)), title)
                lpred = m.predict_from_scores(lr["logits"])
                lr["agreement_with_plaintext"] = float(np.mean(lpred == est.predict(Xt[: len(lpred)])))
                lr["max_abs_error"] = float(np.max(np.abs(lr["logits"] - lr["twin"])))
            tab_rows.append((title, r, lr))

    # ------------------------------------------------------------------ tables
    def fmt_rate(s):
        return f"{1.0 / s:,.2f}" if s > 0 else "-"

    t = Table(title=f"{NAME}: CryptoNets on 28x28 (same run; CPU seconds, medians)")
    for col in ("implementation", "images", "s/image (CPU)", "images/s (CPU)", "s/image (wall)",
                "upload B/image", "public ctx MB", "agree w/ plain", "max |err|"):
        t.add_column(col, justify="left" if col == "implementation" else "right")
    for key in ("tenseal", "latency", "latency_pow2", "throughput"):
        if key not in rows:
            continue
        r = rows[key]
        n_img = r.get("batch", r.get("images"))
        t.add_row(r["implementation"], str(n_img), f"{r['cpu_s_per_image']:.4g}", fmt_rate(r["cpu_s_per_image"]),
                  f"{r['wall_s_per_image']:.4g}", f"{r['upload_bytes_per_image']:,.0f}",
                  f"{r['public_context_bytes'] / 1e6:.1f}", f"{r['agreement_with_plaintext']:.3f}",
                  f"{r['max_abs_error']:.2e}")
    console.print(t)

    checks = []
    lat_x = base["cpu_s_per_image"] / lat["cpu_s_per_image"]
    checks.append(("latency layout vs TenSEAL, one image (CPU)", f"{lat_x:.1f}x", f">= {TARGET_LATENCY:g}x",
                   lat_x >= TARGET_LATENCY))
    lat_w = base["wall_s_per_image"] / lat["wall_s_per_image"]
    checks.append(("latency layout vs TenSEAL, one image (wall)", f"{lat_w:.1f}x", "(info)", None))
    lat2_x = base["cpu_s_per_image"] / rows["latency_pow2"]["cpu_s_per_image"]
    checks.append(("latency layout, +-2^k keys only, vs TenSEAL (CPU)", f"{lat2_x:.1f}x", f">= {TARGET_LATENCY:g}x",
                   lat2_x >= TARGET_LATENCY))
    if "throughput" in rows:
        thr = rows["throughput"]
        thr_x = base["cpu_s_per_image"] / thr["cpu_s_per_image"]
        gap = 100 * abs(thr["accuracy"] - plain_acc)
        per_core = thr["images_per_s_cpu"]  # CPU seconds: images per second per busy core
        checks += [("throughput images/s vs TenSEAL (CPU)", f"{thr_x:,.0f}x", f">= {TARGET_THROUGHPUT:g}x",
                    thr_x >= TARGET_THROUGHPUT),
                   ("throughput images/s vs TenSEAL (wall)",
                    f"{base['wall_s_per_image'] / thr['wall_s_per_image']:,.0f}x", "(info)", None),
                   ("accuracy gap vs plaintext (points)", f"{gap:.2f}", f"<= {TARGET_ACCURACY_POINTS}",
                    gap <= TARGET_ACCURACY_POINTS),
                   ("images/s per core (CPU)", f"{per_core:,.1f}", f"> {NGRAPH_PER_CORE:.1f} (nGraph-HE2)",
                    per_core > NGRAPH_PER_CORE),
                   ("latency per batch (wall s)", f"{thr['batch_wall_s']:.1f} for {thr['batch']}", "(info)", None)]
    t2 = Table(title="targets (issue 8)")
    for col in ("metric", "measured", "target", "result"):
        t2.add_column(col)
    for name, val, target, ok in checks:
        t2.add_row(name, val, target, "-" if ok is None else ("[green]PASS[/]" if ok else "[red]MISS[/]"))
    console.print(t2)
    if "throughput" in rows:
        t3 = Table(title="literature (images/s; he_ml on this machine, one core)")
        t3.add_column("system")
        t3.add_column("images/s", justify="right")
        t3.add_column("images/s per core", justify="right")
        for k, v in LITERATURE.items():
            t3.add_row(k, f"{v:,.1f}", f"{v / (56 if 'nGraph' in k else 1):,.1f}")
        t3.add_row("he_ml throughput layout (this run)", f"{rows['throughput']['images_per_s_wall']:,.1f} (wall)",
                   f"{rows['throughput']['images_per_s_cpu']:,.1f}")
        console.print(t3)
    if tab_rows:
        t4 = Table(title="tabular models (throughput: full batch; latency: one sample)")
        for col in ("model", "layout", "samples", "s/sample (CPU)", "samples/s (CPU)", "accuracy enc / plain",
                    "agree", "public ctx MB"):
            t4.add_column(col)
        for title, r, lr in tab_rows:
            t4.add_row(title, "throughput", str(r["batch"]), f"{r['cpu_s_per_image']:.3g}",
                       fmt_rate(r["cpu_s_per_image"]), f"{r['accuracy']:.4f} / {r['plaintext_accuracy']:.4f}",
                       f"{r['agreement_with_plaintext']:.3f}", f"{r['public_context_bytes'] / 1e6:.1f}")
            t4.add_row("", "latency", str(lr["images"]), f"{lr['cpu_s_per_image']:.3g}",
                       fmt_rate(lr["cpu_s_per_image"]), "-", f"{lr['agreement_with_plaintext']:.3f}",
                       f"{lr['public_context_bytes'] / 1e6:.1f}")
        console.print(t4)
    if not conv:
        console.print("[yellow]he_ml.ml.from_torch/from_sklearn not available: throughput, MLP and wine rows "
                      "skipped (they need the converters branch).[/]")
    console.print(f"latency plan: depth {lat['depth']}, {lat['rotation_keys']} rotation keys "
                  f"({rows['latency_pow2']['rotation_keys']} in the +-2^k mode), parameters "
                  f"{lat['parameters']}; the machine is shared (2 cores, other jobs running): timings are noisy.")

    if args.save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        strip = lambda r: {k: v for k, v in r.items() if k not in ("logits", "scores", "twin")}  # noqa: E731
        out = {"benchmark": NAME, "quick": bool(q), "timing": "CPU seconds (process_time, all threads); wall too",
               "scenario": {"epochs": epochs, "train": int(len(X_tr)), "test": int(len(X_te)),
                            "plaintext_accuracy": plain_acc, "tenseal_images": nb, "latency_images": nl,
                            "repeats": reps, "converters_available": conv},
               "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform(), "tenseal": version("tenseal"),
                           "note": "shared machine (2 cores, other jobs running): timings are noisy",
                           "run_note": args.note,
                           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
               "rows": {k: strip(v) for k, v in rows.items()},
               "tabular": [{"model": t_, "throughput": strip(r), "latency": strip(lr)} for t_, r, lr in tab_rows],
               "literature_images_per_s": LITERATURE,
               "checks": [{"metric": c[0], "value": c[1], "target": c[2], "pass": c[3]} for c in checks]}
        stem = NAME + ("_quick" if q else "")
        (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(out, indent=2, default=_json_default))
        plot(out, RESULTS_DIR / f"{stem}.png")
        console.print(f"wrote {RESULTS_DIR / (stem + '.json')} and .png")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["rows"]
    names = {"tenseal": "TenSEAL\nper image", "latency": "he_ml latency\n(1 image)",
             "latency_pow2": "he_ml latency\n(+-2^k keys)", "throughput": "he_ml throughput\n(batched)"}
    keys = [k for k in ("tenseal", "latency", "latency_pow2", "throughput") if k in rows]
    fig, ax = plt.subplots(1, 2, figsize=(14, 4.5))
    colors = {"tenseal": "#999", "latency": "#ff7f0e", "latency_pow2": "#ffbb78", "throughput": "#1f77b4"}
    ax[0].bar([names[k] for k in keys], [1.0 / rows[k]["cpu_s_per_image"] for k in keys],
              color=[colors[k] for k in keys])
    ax[0].axhline(NGRAPH_PER_CORE, ls="--", c="k", lw=1)
    ax[0].text(0, NGRAPH_PER_CORE * 1.1, "nGraph-HE2 per core", fontsize=8)
    ax[0].set_yscale("log")
    ax[0].set_ylabel("images per CPU-second (log)")
    ax[1].bar([names[k] for k in keys], [rows[k]["wall_s_per_image"] for k in keys], color=[colors[k] for k in keys])
    ax[1].set_yscale("log")
    ax[1].set_ylabel("wall seconds per image (log; batch amortized)")
    fig.suptitle(f"CryptoNets, 28x28 digits — {out['machine']['cpu']} (shared)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
