"""Feature names, the scikit-learn way: recorded when a DataFrame is encrypted, checked by models.

scikit-learn estimators fitted on a DataFrame keep ``feature_names_in_`` and refuse data
whose columns differ. he_ml does the same across the encryption boundary:

* :func:`record_feature_names` stores the column names of the DataFrame that
  :func:`he_ml.ml.encrypt_features` encrypted in ``EncryptedFeatures.meta["feature_names"]``
  (local to the client's object; the names are not part of ``to_bytes()``, so the server
  does not learn them unless the client sends them);
* :func:`check_feature_names` compares them with a model's ``feature_names_in_`` (copied from
  the scikit-learn estimator by ``from_sklearn``) and raises a named error naming the
  difference.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeMismatchError

__all__ = ["feature_names_of", "record_feature_names", "check_feature_names"]


def feature_names_of(X: Any) -> np.ndarray | None:
    """Column names of a DataFrame as an object array (like ``feature_names_in_``), else None.

    Only all-string column names count, as in scikit-learn (integer column labels are ignored).
    pandas is not imported: anything with a ``columns`` attribute of strings qualifies.
    """
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "iloc"):
        return None
    names = [c for c in columns]
    if not names or not all(isinstance(c, str) for c in names):
        return None
    return np.asarray(names, dtype=object)


def record_feature_names(enc: Any, X: Any) -> Any:
    """Store ``feature_names_of(X)`` in ``enc.meta["feature_names"]`` (when X has names); return enc."""
    names = feature_names_of(X)
    if names is not None:
        enc.meta["feature_names"] = names
    return enc


def check_feature_names(model: Any, enc: Any, op: str = "decision_function") -> None:
    """Raise if the encrypted features' names differ from the model's ``feature_names_in_``.

    Nothing is checked when either side has no names (numpy data, or an estimator fitted on
    arrays), as in scikit-learn.

    Raises
    ------
    ShapeMismatchError
        If both have names and they differ in content or order; the message lists the
        differences and says how to reorder.
    """
    expected = getattr(model, "feature_names_in_", None)
    got = getattr(enc, "meta", {}).get("feature_names")
    if expected is None or got is None:
        return
    expected, got = list(expected), list(got)
    if expected == got:
        return
    unseen = [n for n in got if n not in expected]
    missing = [n for n in expected if n not in got]
    parts = []
    if unseen:
        parts.append(f"names unseen at fit time: {unseen[:5]}")
    if missing:
        parts.append(f"names seen at fit time, yet now missing: {missing[:5]}")
    if not parts:
        parts.append("the same names in another order")
    raise ShapeMismatchError(
        f"{type(model).__name__}.{op}: the encrypted feature names should match those that were passed "
        f"during fit; {'; '.join(parts)}. Encrypt X[model.feature_names_in_] (the columns in the "
        f"model's order).")
