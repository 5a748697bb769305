"""Encrypted MLP: a scikit-learn network classifies encrypted digits (8x8, 64 -> 32 -> 10).

The client encrypts RAW pixel values (0..16): the pipeline's MinMaxScaler is folded into the first
layer. The server holds only the public context (relinearization keys, no rotation keys) and runs
the network batched over samples: one ciphertext per pixel, ReLU as a degree-7 minimax polynomial on
the interval measured on the training data. The client decrypts (n, 10) logits and takes the argmax.
Runs in about a minute on a shared 2-core machine.

    python examples/encrypted_mlp_sklearn.py
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import he_ml
from he_ml.ml import EncryptedFeatures, encrypt_features, from_sklearn

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    est = make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0))
    est.fit(X_tr, y_tr)

# lower once; the training data calibrates the ReLU interval and the value ranges
model = from_sklearn(est, X_calibration=X_tr)
print(model.describe())

# client: keys planned for this model (smallest 128-bit parameters for depth and ranges)
t0 = time.perf_counter()
ctx = model.context()
public_blob = ctx.public_context().to_bytes()
upload = encrypt_features(ctx, X_te).to_bytes()  # raw pixels
t1 = time.perf_counter()
print(f"context {ctx.parameters['poly_modulus_degree']} / {ctx.parameters['coeff_mod_bit_sizes']}, "
      f"{ctx.security_level}-bit; public context {len(public_blob) / 1e6:.1f} MB; upload {len(upload) / 1e6:.1f} MB "
      f"for {len(X_te)} images")

# server: public material only
server = he_ml.load_context(public_blob)
enc = EncryptedFeatures.from_bytes(server, upload)
t2 = time.perf_counter()
scores_blob = model.decision_function(enc).to_bytes()
t3 = time.perf_counter()

# client: decrypt logits (n, 10), argmax -> labels
scores = ctx.decrypt(ctx.ciphertext_from_bytes(scores_blob))
pred = model.predict_from_scores(scores)
plain = est.predict(X_te)
print(f"keys + encryption {t1 - t0:.1f} s, server evaluation {t3 - t2:.1f} s "
      f"({len(X_te) / (t3 - t2):.0f} images/s at this batch; a ciphertext holds {ctx.slot_count} images)")
print(f"accuracy: plaintext {np.mean(plain == y_te):.4f}, encrypted {np.mean(pred == y_te):.4f}, "
      f"agreement with plaintext {np.mean(pred == plain):.4f}")
print(f"max |encrypted logit - float twin| {np.max(np.abs(scores - model.plain_scores(X_te))):.2e}")
print(model.error_report(X_te, encrypted=False))
