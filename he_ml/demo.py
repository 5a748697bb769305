"""``he-ml demo``: end-to-end encrypted inference on scikit-learn's breast-cancer data.

For each scheme the demo plays both parties in one process, but only through the
bytes they would exchange:

1. the **client** (key holder) encrypts the test set in the batched column layout
   and serializes it together with a public context (no secret key);
2. the **server** loads both from bytes and computes encrypted scores (and, on
   CKKS, encrypted probabilities with a polynomial sigmoid);
3. the client decrypts and compares with the plaintext scikit-learn model.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["DemoRow", "run_demo", "DEMO_SCHEMES"]

#: Scheme name -> constructor keyword arguments used by the demo.
DEMO_SCHEMES: dict[str, dict[str, Any]] = {
    # depth 3 = scores (1) + degree-3 polynomial sigmoid (2); 160-bit chain at n = 8192 is 128-bit secure
    "ckks": {"preset": None, "poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [42, 36, 36, 36, 42],
             "scale_bits": 36},
    "bfv": {"preset": "sum"},
    "paillier": {"key_bits": 3072},
}


@dataclass
class DemoRow:
    scheme: str
    parameters: str
    plaintext_accuracy: float
    encrypted_accuracy: float
    agreement: float
    max_score_error: float
    max_proba_error: float | None
    ms_per_sample: float
    upload_bytes_per_sample: float
    keygen_seconds: float
    security_bits: int


def _load_data(seed: int = 0):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    clf = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    return X_train, X_test, y_train, y_test, clf


def run_scheme(name: str, X_train, X_test, y_test, clf, params: dict[str, Any] | None = None,
               progress=None) -> DemoRow:
    """Run the client/server exchange for one scheme and measure it."""
    import he_ml
    from he_ml.ml import EncryptedFeatures, EncryptedLogisticRegression, encrypt_features

    params = dict(DEMO_SCHEMES[name] if params is None else params)
    step = progress or (lambda msg: None)
    step(f"{name}: key generation")
    t0 = time.perf_counter()
    ctx = he_ml.scheme(name, **params)
    keygen = time.perf_counter() - t0

    model = EncryptedLogisticRegression.from_sklearn(clf, X_calibration=X_train,
                                                     sigmoid_degree=3)
    # client: encrypt and serialize
    step(f"{name}: client encrypts {len(X_test)} samples")
    t1 = time.perf_counter()
    public_blob = ctx.public_context().to_bytes()
    upload = encrypt_features(ctx, X_test).to_bytes()
    t2 = time.perf_counter()
    # server: load from bytes, compute
    step(f"{name}: server computes on ciphertexts")
    # the opt-in for test-sized keys is the caller's (params), never the blob's
    server_ctx = he_ml.load_context(public_blob, allow_insecure=bool(params.get("allow_insecure", False)))
    enc = EncryptedFeatures.from_bytes(server_ctx, upload)
    scores_blob = model.decision_function(enc).to_bytes()
    proba_blob = None
    if name == "ckks" and model.predict_proba_depth <= (server_ctx.max_depth or 0):
        proba_blob = model.predict_proba(enc).to_bytes()
    t3 = time.perf_counter()
    # client: decrypt
    step(f"{name}: client decrypts")
    scores = ctx.decrypt(ctx.ciphertext_from_bytes(scores_blob))
    proba = None if proba_blob is None else ctx.decrypt(ctx.ciphertext_from_bytes(proba_blob))
    t4 = time.perf_counter()

    plain_scores = clf.decision_function(X_test)
    plain_pred = clf.predict(X_test)
    enc_pred = model.predict_from_scores(scores)
    max_proba_err = None
    if proba is not None:
        max_proba_err = float(np.max(np.abs(proba - clf.predict_proba(X_test))))
    ctx_params = ctx.parameters
    labels = {"preset": "preset", "poly_modulus_degree": "n", "coeff_mod_bit_sizes": "q bits",
              "key_bits": "key bits", "plain_modulus_bits": "t bits", "precision_bits": "fraction bits"}
    # ", " between primes so that a narrow table can wrap the chain instead of cutting it
    desc = "; ".join(f"{labels[k]}={', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                     for k, v in ctx_params.items() if v is not None and k in labels)
    n = len(X_test)
    return DemoRow(
        scheme=name,
        parameters=desc,
        plaintext_accuracy=float(np.mean(plain_pred == y_test)),
        encrypted_accuracy=float(np.mean(enc_pred == y_test)),
        agreement=float(np.mean(enc_pred == plain_pred)),
        max_score_error=float(np.max(np.abs(scores - plain_scores))),
        max_proba_error=max_proba_err,
        ms_per_sample=1e3 * ((t2 - t1) + (t3 - t2) + (t4 - t3)) / n,
        upload_bytes_per_sample=len(upload) / n,
        keygen_seconds=keygen,
        security_bits=int(ctx.security_level),
    )


def run_demo(schemes: list[str] | None = None, seed: int = 0, progress=None) -> list[DemoRow]:
    """Run the demo for ``schemes`` (default: all) and return one row per scheme."""
    X_train, X_test, y_train, y_test, clf = _load_data(seed)
    rows = []
    for name in schemes or list(DEMO_SCHEMES):
        rows.append(run_scheme(name, X_train, X_test, y_test, clf, progress=progress))
    return rows


def rows_as_dicts(rows: list[DemoRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
