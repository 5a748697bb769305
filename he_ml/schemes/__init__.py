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


def load_context(data: bytes, *, allow_insecure: bool = False, verify_key: Any = None,
                 fingerprint: bytes | None = None) -> SchemeContext:
    """Load any context written by ``ctx.to_bytes(...)``; the scheme is read from the blob.

    Parameters
    ----------
    data : bytes
        A public or secret context blob, or one signed with ``he_ml.sign_blob``.
    allow_insecure : bool, default False
        Your opt-in to load parameters below the security floor (a lattice modulus above the
        HE-standard 128-bit bound for its ring, a Paillier key below 2048 bits): for tests with
        small parameters. It is never read from the blob, and it does not lift the size limits
        of :mod:`he_ml.schemes.limits` (ring degree, primes, key bits, ...).
    verify_key : Ed25519 public key or 32 bytes, optional
        Pinned key of the key holder: the blob must be signed by it (a relay that swaps the
        context is detected).
    fingerprint : bytes, optional
        Pinned 16-byte fingerprint (``ctx.fingerprint`` of the key holder's context): the loaded
        context must have it. Evaluation keys added later keep the fingerprint and are checked
        against the key holder's certificate, so the pin stays valid.

    Raises
    ------
    InvalidCiphertextError
        Malformed bytes, declared sizes beyond the limits, a field edited (fingerprint
        mismatch), or a blob written by another SEAL serialization version.
    InsecureParametersError
        Parameters below the security floor without ``allow_insecure=True``.
    ContextMismatchError
        If the signature is missing or by another key, or the fingerprint differs from the pin,
        or the evaluation keys are not certified by the key holder of this public key.

    Examples
    --------
    >>> import he_ml
    >>> small = he_ml.Paillier(1024, allow_insecure=True)          # test-sized key
    >>> blob = small.to_bytes()
    >>> he_ml.load_context(blob, allow_insecure=True).key_bits      # the caller opts in
    1024
    """
    from .signing import open_blob

    if not isinstance(allow_insecure, bool):
        from ..errors import ParameterError

        raise ParameterError(f"allow_insecure must be True or False; got {allow_insecure!r}.")
    blob = unpack_blob(open_blob(data, verify_key))
    ctx = _scheme_class(blob.scheme)._from_unpacked(blob, allow_insecure=allow_insecure)
    if fingerprint is not None and ctx.fingerprint != bytes(fingerprint):
        from ..errors import ContextMismatchError

        raise ContextMismatchError(
            f"{blob.scheme}: the context's fingerprint {ctx.fingerprint.hex()} is not the pinned "
            f"{bytes(fingerprint).hex()}; it belongs to another key or was altered. Ask the key "
            f"holder for its public context."
        )
    return ctx


def __getattr__(name: str):
    if name in ("CKKS", "BFV", "Paillier"):
        return _scheme_class(name)
    if name == "plan":
        from .params import plan
        return plan
    raise AttributeError(f"module 'he_ml.schemes' has no attribute {name!r}")
