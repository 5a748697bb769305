"""Error classes of he_ml.

Every class derives from :class:`HEError` *and* from the built-in exception it
refines, so code that already catches ``ValueError`` or ``TypeError`` keeps
working. Messages state what was wrong, what was given and what to do instead.
"""
from __future__ import annotations

__all__ = [
    "HEError",
    "LabelMismatchError",
    "ParameterError",
    "InsecureParametersError",
    "UnsupportedOperationError",
    "ContextMismatchError",
    "SecretKeyMissingError",
    "EncodingOverflowError",
    "DepthExhaustedError",
    "InvalidCiphertextError",
    "ShapeMismatchError",
    "NotFittedError",
]


class HEError(Exception):
    """Base class of every error raised on purpose by he_ml."""


class ParameterError(HEError, ValueError):
    """A parameter or input value is invalid (range, dtype, primality, ...)."""


class InsecureParametersError(ParameterError):
    """Parameters give less than 128-bit security and no explicit opt-in was given."""


class UnsupportedOperationError(HEError, NotImplementedError):
    """The scheme cannot perform this operation (e.g. Paillier ciphertext x ciphertext)."""


class ContextMismatchError(HEError, ValueError):
    """Operands or blobs come from different keys or parameters."""


class SecretKeyMissingError(HEError, PermissionError):
    """Decryption was asked of a context that holds no secret key."""


class EncodingOverflowError(HEError, OverflowError):
    """A value does not fit a slot, the plain modulus or the declared headroom."""


class DepthExhaustedError(HEError, ArithmeticError):
    """No multiplicative levels are left for the requested operation."""


class InvalidCiphertextError(HEError, ValueError):
    """Bytes are malformed, truncated or not an he_ml blob."""


class ShapeMismatchError(HEError, ValueError):
    """Operand shapes or lengths do not agree."""


class LabelMismatchError(ShapeMismatchError):
    """Two labelled operands (an encrypted DataFrame/Series and a pandas object or another labelled
    encrypted vector) whose index, columns or kind differ. pandas would align them by label; an
    encrypted vector cannot reorder its slots for free, so he_ml refuses instead of pairing the
    wrong rows. Also a ValueError (through ShapeMismatchError)."""


class NotFittedError(HEError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (or ``from_sklearn``)."""
