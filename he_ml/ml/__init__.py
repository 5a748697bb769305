"""Encrypted machine learning: polynomial activations, linear and logistic regression."""
from __future__ import annotations

from .layout import EncryptedFeatures, encrypt_features
from .linear import ClientAidedRefresh, EncryptedLinearRegression, EncryptedLogisticRegression
from .polynomial import PolynomialApproximation, approximate

__all__ = [
    "approximate",
    "PolynomialApproximation",
    "encrypt_features",
    "EncryptedFeatures",
    "EncryptedLinearRegression",
    "EncryptedLogisticRegression",
    "ClientAidedRefresh",
]
