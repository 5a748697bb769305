"""Encrypted training: logistic regression trained on encrypted breast-cancer data.

The key holder builds a CKKS context sized for training (depth and rotation keys declared
up front), encrypts the training set in the "blocks" layout and the server runs mini-batch
gradient descent on ciphertexts; the weights are refreshed by the key holder when they run
out of levels (client-aided refresh). Prints the loss curve. About a minute.

    python examples/encrypted_training.py
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from he_ml.ml import EncryptedLogisticRegression, encrypt_features

X, y = load_breast_cancer(return_X_y=True)
idx = np.random.default_rng(0).permutation(len(y))
X, y = X[idx], y[idx].astype(float)
n_train = 256
scaler = StandardScaler().fit(X[:n_train])
X_tr, X_te, y_tr, y_te = scaler.transform(X[:n_train]), scaler.transform(X[n_train:]), y[:n_train], y[n_train:]

t0 = time.perf_counter()
ctx = EncryptedLogisticRegression.training_context(X_tr.shape[1], n_train)
print(f"training context: n = {ctx.poly_modulus_degree}, chain {ctx.coeff_mod_bit_sizes}, depth "
      f"{ctx.max_depth}, {len(ctx.rotation_steps_available)} rotation keys ({time.perf_counter() - t0:.1f} s)")
eX = encrypt_features(ctx, X_tr, layout="blocks")
ey = encrypt_features(ctx, y_tr, layout="blocks", batch_size=eX.batch_size)
print(f"{n_train} samples in {len(eX.vectors)} ciphertext(s) of {eX.batch_size} samples x {eX.n_blocks} blocks")

model = EncryptedLogisticRegression(epochs=8, learning_rate=0.3)


def show(rec):
    bar = "#" * int(60 * rec["loss"])
    print(f"epoch {rec['epoch']:2d}  loss {rec['loss']:.4f}  train acc {rec['accuracy']:.3f}  "
          f"refreshes {rec['refreshes']:2d}  {rec['seconds']:5.1f} s  {bar}")


model.fit(eX, ey, eval_set=(X_tr, y_tr), callback=show)
twin = model.plain_fit(X_tr, y_tr, batch_size=eX.batch_size)
exact = model.plain_fit(X_tr, y_tr, batch_size=eX.batch_size, exact_link=True)
acc = lambda w: np.mean(((X_te @ w[:-1] + w[-1]) > 0) == (y_te > 0.5))  # noqa: E731
w = np.r_[model.coef_, model.intercept_]
print(f"test accuracy: encrypted training {acc(w):.4f}, plaintext (same algorithm, exact sigmoid) "
      f"{acc(exact):.4f}; max |w - plaintext polynomial twin| {np.max(np.abs(w - twin)):.1e}")
