"""Encrypted inference: a scikit-learn logistic regression scores encrypted patients.

The client (key holder) encrypts the breast-cancer test set in the batched "columns"
layout and sends bytes plus a public context; the server computes encrypted scores and
probabilities (polynomial sigmoid, logit range calibrated on the training data); the
client decrypts. Runs in a few seconds.

    python examples/encrypted_inference.py
"""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import he_ml
from he_ml.ml import EncryptedFeatures, EncryptedLogisticRegression, encrypt_features

X, y = load_breast_cancer(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
clf = LogisticRegression(max_iter=5000).fit(X_tr, y_tr)

# client: keys with depth 3 = predict_proba_depth of a degree-3 sigmoid
model = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_tr, sigmoid_degree=3)
ctx = he_ml.CKKS(preset=None, poly_modulus_degree=8192, coeff_mod_bit_sizes=[42, 36, 36, 36, 42],
                 scale_bits=36)
print(f"logit range R = {model.logit_range_:.1f} (from the training data), predict_proba depth "
      f"{model.predict_proba_depth}, context depth {ctx.max_depth}")
upload = encrypt_features(ctx, X_te).to_bytes()
public = ctx.public_context().to_bytes()
print(f"client uploads {len(upload) / 1e6:.2f} MB for {len(X_te)} samples "
      f"({len(upload) / len(X_te) / 1e3:.1f} kB/sample; fills {len(X_te)}/{ctx.slot_count} slots)")

# server: public context only
server = he_ml.load_context(public)
enc = EncryptedFeatures.from_bytes(server, upload)
scores_blob = model.decision_function(enc).to_bytes()
proba_blob = model.predict_proba(enc).to_bytes()

# client: decrypt
scores = ctx.decrypt(ctx.ciphertext_from_bytes(scores_blob))
proba = ctx.decrypt(ctx.ciphertext_from_bytes(proba_blob))[:, 1]  # (n, 2) like scikit-learn
pred = model.predict_from_scores(scores)
print(f"max |encrypted score - sklearn score| = {np.max(np.abs(scores - clf.decision_function(X_te))):.2e}")
print(f"accuracy: plaintext {np.mean(clf.predict(X_te) == y_te):.4f}, encrypted {np.mean(pred == y_te):.4f}, "
      f"agreement {np.mean(pred == clf.predict(X_te)):.4f}")
print(f"predict_proba: agreement of (p > 0.5) with sklearn {np.mean((proba > 0.5) == clf.predict(X_te)):.4f}; "
      f"max |p - sigmoid| {np.max(np.abs(proba - clf.predict_proba(X_te)[:, 1])):.3f} "
      f"(degree-3 polynomial of sigmoid(R t): max error {model.sigmoid_.max_error:.3f})")
