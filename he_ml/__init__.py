"""he_ml: compute on encrypted data without becoming a cryptographer.

One interface over CKKS and BFV (TenSEAL / Microsoft SEAL) and packed Paillier
(python-paillier), encrypted linear/logistic regression, encrypted gradient
summation, and a C++ NTT core.

Heavy submodules are imported lazily so ``import he_ml`` stays fast.
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version as _dist_version

from . import errors

try:
    __version__ = _dist_version("he_ml")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "errors",
    "CKKS",
    "BFV",
    "Paillier",
    "scheme",
    "load_context",
    "plan",
    "sign_blob",
    "verify_blob",
    "generate_signing_key",
    "EncryptedVector",
    "ml",
    "aggregation",
    "native",
    "integrations",
]

_LAZY_ATTRS = {
    "CKKS": ("he_ml.schemes", "CKKS"),
    "BFV": ("he_ml.schemes", "BFV"),
    "Paillier": ("he_ml.schemes", "Paillier"),
    "scheme": ("he_ml.schemes", "scheme"),
    "load_context": ("he_ml.schemes", "load_context"),
    "plan": ("he_ml.schemes", "plan"),
    "sign_blob": ("he_ml.schemes.signing", "sign_blob"),
    "verify_blob": ("he_ml.schemes.signing", "verify_blob"),
    "generate_signing_key": ("he_ml.schemes.signing", "generate_signing_key"),
    "EncryptedVector": ("he_ml.schemes", "EncryptedVector"),
}
_LAZY_MODULES = {"ml", "aggregation", "native", "integrations", "schemes", "encoding"}


def __getattr__(name: str):
    if name in _LAZY_ATTRS:
        module_name, attr = _LAZY_ATTRS[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        module = importlib.import_module(f"he_ml.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'he_ml' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
