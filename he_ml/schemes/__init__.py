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


def load_context(data: bytes, *, allow_insecure: bool = False) -> SchemeContext:
    """Load any context written by ``ctx.to_bytes(...)``; the scheme is read from the blob.

    Parameters
    ----------
    data : bytes
        A public or secret context blob.
    allow_insecure : bool, default False
        Your opt-in to load parameters below the security floor (a lattice modulus above the
        HE-standard 128-bit bound for its ring, a Paillier key below 2048 bits): for tests with
        small parameters. It is never read from the blob, and it does not lift the size limits
        of :mod:`he_ml.schemes.limits` (ring degree, primes, key bits, ...).

    Raises
    ------
    InvalidCiphertextError
        Malformed bytes, declared sizes beyond the limits, or a blob written by another SEAL
        serialization version.
    InsecureParametersError
        Parameters below the security floor without ``allow_insecure=True``.

    Examples
    --------
    >>> import he_ml
    >>> small = he_ml.Paillier(1024, allow_insecure=True)          # test-sized key
    >>> blob = small.to_bytes()
    >>> he_ml.load_context(blob, allow_insecure=True).key_bits      # the caller opts in
    1024
    """
    blob = unpack_blob(data)
    return _scheme_class(blob.scheme).from_bytes(data, allow_insecure=allow_insecure)


def __getattr__(name: str):
    if name in ("CKKS", "BFV", "Paillier"):
        return _scheme_class(name)
    if name == "plan":
        from .params import plan
        return plan
    raise AttributeError(f"module 'he_ml.schemes' has no attribute {name!r}")
