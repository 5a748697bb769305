"""Encrypted CNN: a CryptoNets-style PyTorch network classifies encrypted 28x28 digits in one batch.

scikit-learn's 8x8 digits are upsampled to 28x28 (MNIST's size). A small CNN is trained with ReLU,
then `make_he_friendly` swaps every ReLU for x^2 and fine-tunes a few epochs (the CryptoNets / LoLa
recipe), and `from_torch` lowers it: conv 5x5 stride 2 (5 maps) -> square -> dense 32 -> square ->
dense 10, depth 5. The client encrypts the test images (n, 1, 28, 28) -- one ciphertext per pixel,
each holding every image of the batch -- and the server, holding only public keys, runs the whole
network; the client decrypts (n, 10) logits. Runs in 1-3 minutes on a 2-core machine (depending on load).

    python examples/encrypted_cnn.py
"""
from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import he_ml
from he_ml.ml import encrypt_features, from_torch
from he_ml.ml.torch import make_he_friendly

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = torch.nn.functional.interpolate(torch.tensor(X / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8),
                                    size=(28, 28), mode="bilinear", align_corners=False).numpy()
idx = np.random.default_rng(0).permutation(len(X))
tr, te = idx[:1400], idx[1400:]

net = nn.Sequential(nn.Conv2d(1, 5, 5, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                    nn.Linear(5 * 13 * 13, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
Xt, yt = torch.tensor(X[tr]), torch.tensor(y[tr])
for epoch in range(8):
    for i in range(0, len(tr), 64):
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xt[i:i + 64]), yt[i:i + 64]).backward()
        opt.step()


def accuracy(model: nn.Module) -> float:
    with torch.no_grad():
        return float((model.eval()(torch.tensor(X[te])).argmax(1).numpy() == y[te]).mean())


print(f"ReLU network: test accuracy {accuracy(net):.4f}")
friendly = make_he_friendly(net, X[tr], y[tr], epochs=5, activation="square", lr=1e-3)
print(f"after make_he_friendly (x^2 activations, 5 epochs): test accuracy {accuracy(friendly):.4f}")

model = from_torch(friendly, X_calibration=X[tr])
print(model.describe())

# client: the smallest 128-bit parameters for depth 5 and the value ranges of the calibration data
# (logits of an x^2 network reach several hundred on data, and CKKS's public magnitude bound -- the
# worst case over the input box, squared twice -- about 5e5, so q0 holds ~21 bits above the scale).
t0 = time.perf_counter()
ctx = model.context()
public_blob = ctx.public_context().to_bytes()
server = he_ml.load_context(public_blob)
# Clients only need the public context to encrypt. One ciphertext per pixel (784), each holding every
# image of the batch; in deployment they travel as enc.to_bytes() (size printed below).
enc = encrypt_features(server, X[te])  # images (n, 1, 28, 28)
t1 = time.perf_counter()
upload_bytes = len(enc.vectors[0].to_bytes()) * len(enc.vectors)
t2 = time.perf_counter()
logits_blob = model.decision_function(enc).to_bytes()
t3 = time.perf_counter()
del enc
logits = ctx.decrypt(ctx.ciphertext_from_bytes(logits_blob))
pred = model.predict_from_scores(logits)
with torch.no_grad():
    plain = friendly(torch.tensor(X[te])).argmax(1).numpy()
print(f"context n={ctx.poly_modulus_degree}, chain {ctx.coeff_mod_bit_sizes}, {ctx.security_level}-bit; "
      f"public context {len(public_blob) / 1e6:.1f} MB, upload {upload_bytes / 1e6:.0f} MB")
print(f"keys + encryption {t1 - t0:.1f} s; server evaluation {t3 - t2:.1f} s for {len(te)} images "
      f"(one batch; a batch of up to {ctx.slot_count} images costs the same)")
print(f"accuracy: plaintext {np.mean(plain == y[te]):.4f}, encrypted {np.mean(pred == y[te]):.4f}, "
      f"agreement {np.mean(pred == plain):.4f}; max |logit - float twin| "
      f"{np.max(np.abs(logits - model.plain_scores(X[te]))):.2e}")
