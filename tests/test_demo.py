"""The demo's client/server exchange on a small subset, per scheme, against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest

from he_ml.demo import DEMO_SCHEMES, DemoRow, _load_data, run_scheme


@pytest.fixture(scope="module")
def demo_data():
    return _load_data(0)


@pytest.mark.parametrize("name,params", [
    ("ckks", {"preset": "light"}),
    ("bfv", None),
    ("paillier", {"key_bits": 1024, "allow_insecure": True}),  # small key: test speed only
])
def test_run_scheme_on_a_subset_agrees_with_sklearn(demo_data, name, params):
    X_tr, X_te, _, y_te, clf = demo_data
    row = run_scheme(name, X_tr, X_te[:40], y_te[:40], clf, params=params)
    assert isinstance(row, DemoRow) and row.scheme == name
    assert row.agreement == 1.0
    assert row.encrypted_accuracy == pytest.approx(np.mean(clf.predict(X_te[:40]) == y_te[:40]))
    assert row.max_score_error < (0.1 if name == "bfv" else 1e-3)
    assert row.upload_bytes_per_sample > 0 and row.ms_per_sample > 0
    assert name in DEMO_SCHEMES
