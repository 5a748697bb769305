"""The classic encrypted XOR: a random ReLU reservoir with a readout trained on encrypted data.

XOR is not linearly separable, but a fixed random projection of the 2 inputs to 256
features followed by ReLU (computed by the client in plaintext) makes it so. The client
encrypts those features and the noisy labels (+-1); the server trains a linear readout
(EncryptedLinearRegression.fit, least squares on the "blocks" layout, client-aided refresh)
without seeing them. Prints the loss curve and the accuracy on the 4 XOR points.

    python examples/encrypted_xor.py
"""
from __future__ import annotations

import numpy as np

import he_ml
from he_ml.ml import EncryptedLinearRegression, encrypt_features

rng = np.random.default_rng(0)        # test data and the public random projection, not keys
n, width = 96, 256
corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
labels = np.array([-1.0, 1.0, 1.0, -1.0])
pick = rng.integers(0, 4, n)
inputs = corners[pick] + rng.normal(scale=0.1, size=(n, 2))     # noisy XOR
y = labels[pick]

W_in = rng.normal(size=(2, width))
b_in = rng.uniform(-1.0, 1.0, size=width)


def relu_features(x):
    return np.maximum(x @ W_in + b_in, 0.0)


# client-side standardization: ReLU features are all >= 0, and their common mean makes plain
# gradient descent diverge (one huge Hessian eigenvalue); centred and scaled it converges
mu, sd = relu_features(inputs).mean(axis=0), relu_features(inputs).std(axis=0) + 1e-9


def reservoir(x):
    """Client-side random ReLU features (fixed projection), standardized."""
    return (relu_features(x) - mu) / sd


F = reservoir(inputs)
model = EncryptedLinearRegression(epochs=6, learning_rate=0.01)
# depth 3 per batch; 256 feature blocks + intercept -> 512 blocks; n = 16384 gives 16 samples per block
ctx = he_ml.CKKS(preset=None, poly_modulus_degree=16384, coeff_mod_bit_sizes=[50, 40, 40, 40, 50],
                 scale_bits=40)
eX = encrypt_features(ctx, F, layout="blocks", batch_size=16)
ey = encrypt_features(ctx, y, layout="blocks", batch_size=16)
print(f"{n} noisy XOR samples -> {width} ReLU features; {len(eX.vectors)} encrypted mini-batches of "
      f"{eX.batch_size}")
model.fit(eX, ey, eval_set=(F, y), callback=lambda r: print(
    f"epoch {r['epoch']:2d}  mse {r['loss']:.4f}  " + "#" * int(40 * r["loss"])))
pred = reservoir(corners) @ model.coef_ + model.intercept_
print("XOR corners:", corners.astype(int).tolist())
print("readout    :", np.round(pred, 3).tolist())
print(f"accuracy on the 4 XOR points: {np.mean(np.sign(pred) == labels):.2f}; "
      f"{model.n_refreshes_} client-aided refreshes")
