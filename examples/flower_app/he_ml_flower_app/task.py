"""Data, local training and the plaintext FedAvg reference (shared by the apps and the test).

Breast-cancer data (scikit-learn's bundled copy, no download), standardized, split into
``num_partitions`` equal training partitions (one per SuperNode) and a test set. Local training
is deterministic (full-batch gradient descent from the global model), so encrypted FedAvg and
plaintext FedAvg over the same partitions can be compared round for round.
"""
from __future__ import annotations

import numpy as np

LOCAL_STEPS = 20
LEARNING_RATE = 0.5
#: Public bound on |weight| declared to he_ml (logistic weights on standardized data stay far below).
MAX_VALUE = 64.0
#: Fractional bits of the fixed-point encoding (Paillier/BFV); the sum is exact on those integers.
PRECISION_BITS = 24


def load_partitions(num_partitions: int):
    """``num_partitions`` training partitions and the test set, standardized."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    parts = np.array_split(np.arange(len(y_tr)), num_partitions)
    return [(x_tr[p], y_tr[p]) for p in parts], (x_te, y_te)


def local_train(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """LOCAL_STEPS full-batch gradient steps of the logistic loss, from (w, b)."""
    for _ in range(LOCAL_STEPS):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w = w - LEARNING_RATE * x.T @ (p - y) / len(y)
        b = b - LEARNING_RATE * float(np.mean(p - y))
    return w, b


def accuracy(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(((x @ w + b) > 0) == y))


def plain_fedavg(partitions, rounds: int) -> tuple[np.ndarray, float]:
    """The reference: the same rounds with plaintext (unweighted) averaging."""
    w, b = np.zeros(partitions[0][0].shape[1]), 0.0
    for _ in range(rounds):
        local = [local_train(w, b, x, y) for x, y in partitions]
        w = np.mean([lw for lw, _ in local], axis=0)
        b = float(np.mean([lb for _, lb in local]))
    return w, b
