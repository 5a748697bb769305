"""Schemes behind one interface: CKKS and BFV (TenSEAL), packed Paillier (python-paillier).

Backends are imported lazily: using Paillier never imports TenSEAL and vice versa.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import ParameterError
from ._format import unpack_blob
from .base import EncryptedVector, SchemeContext

__all__ = ["CKKS", "BFV", "Paillier", "scheme", "load_context", "plan", "EncryptedVector",
           "SchemeContext", "SCHEMES"]

#: scheme name -> (module, class name)
SCHEMES = {
    "ckks": ("he_ml.schemes.ckks", "CKKS"),
    "bfv": ("he_ml.schemes.bfv", "BFV"),
    "paillier": ("he_ml.schemes.paillier", "Paillier"),
}


def _scheme_class(name: str) -> type[SchemeContext]:
    key = str(name).lower()
    if key not in SCHEMES:
        raise ParameterError(f"scheme must be one of {sorted(SCHEMES)}; got {name!r}.")
    module, cls = SCHEMES[key]
    return getattr(importlib.import_module(module), cls)


def scheme(name: str, **params: Any) -> SchemeContext:
    """Create a context by name: ``he_ml.scheme("ckks", preset="inference")``."""
    return _scheme_class(name)(**params)


def load_context(data: bytes) -> SchemeContext:
    """Load any context written by ``ctx.to_bytes(...)``; the scheme is read from the blob."""
    blob = unpack_blob(data)
    return _scheme_class(blob.scheme).from_bytes(data)


def __getattr__(name: str):
    if name in ("CKKS", "BFV", "Paillier"):
        return _scheme_class(name)
    if name == "plan":
        from .params import plan
        return plan
    raise AttributeError(f"module 'he_ml.schemes' has no attribute {name!r}")
