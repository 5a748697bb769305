"""Encrypted machine learning: polynomial activations, linear models, networks from scikit-learn and PyTorch."""
from __future__ import annotations

from typing import Any

from .latency import LatencyModel
from .layout import EncryptedFeatures, encrypt_features
from .linear import ClientAidedRefresh, EncryptedLinearRegression, EncryptedLogisticRegression
from .model import EncryptedModel, ErrorReport
from .polynomial import PolynomialApproximation, approximate
from .sklearn import from_sklearn

__all__ = [
    "approximate",
    "PolynomialApproximation",
    "encrypt_features",
    "EncryptedFeatures",
    "EncryptedLinearRegression",
    "EncryptedLogisticRegression",
    "ClientAidedRefresh",
    "EncryptedModel",
    "ErrorReport",
    "LatencyModel",
    "from_sklearn",
    "from_torch",
]


def from_torch(module: Any, X_calibration: Any = None, **kwargs: Any) -> EncryptedModel:
    """Lower a PyTorch model to an `EncryptedModel` (see :func:`he_ml.ml.torch.from_torch`; imports torch)."""
    try:
        from .torch import from_torch as _from_torch
    except ImportError as e:
        from ..errors import UnsupportedOperationError
        raise UnsupportedOperationError(
            f"from_torch needs PyTorch, which is not importable ({e}); install it with "
            f"pip install 'he-ml[torch]'.") from e
    return _from_torch(module, X_calibration, **kwargs)
