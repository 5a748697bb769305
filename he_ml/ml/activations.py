"""Reference (plaintext) activation functions and their registry.

These are the exact functions that :func:`he_ml.ml.approximate` approximates by
polynomials. They are vectorised over numpy arrays, return float64 and are
written to be numerically stable over the whole float64 range: no overflow
warning from ``exp`` in the sigmoid, no cancellation in GELU for large negative
inputs. ``exp`` itself overflows above ``x = 709.78``; that is a property of the
function, not of the implementation, and :func:`he_ml.ml.approximate` reports it
as a :class:`~he_ml.errors.ParameterError` on the interval.

Example
-------
>>> import numpy as np
>>> from he_ml.ml.activations import ACTIVATIONS, get_activation
>>> sorted(ACTIVATIONS)
['exp', 'gelu', 'relu', 'sigmoid', 'tanh']
>>> float(get_activation("sigmoid")(np.array([0.0]))[0])
0.5
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
from scipy import special

from he_ml.errors import ParameterError

__all__ = [
    "sigmoid",
    "tanh",
    "relu",
    "gelu",
    "exp",
    "ACTIVATIONS",
    "get_activation",
]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _as_float_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def sigmoid(x) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    Uses :func:`scipy.special.expit`, which evaluates ``exp`` only on the side
    where it cannot overflow, so ``sigmoid(-1000.0)`` is ``0.0`` without a warning.

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    numpy.ndarray of float64, same shape as ``x``, values in [0, 1].
    """
    return special.expit(_as_float_array(x))


def tanh(x) -> np.ndarray:
    """Hyperbolic tangent (stable everywhere; saturates to +/-1)."""
    return np.tanh(_as_float_array(x))


def relu(x) -> np.ndarray:
    """Rectified linear unit ``max(x, 0)``.

    Not differentiable at 0: polynomial approximations converge only like
    ``O(1/degree)`` there, which is the slowest column of the approximation table.
    """
    return np.maximum(_as_float_array(x), 0.0)


def gelu(x) -> np.ndarray:
    """Gaussian error linear unit, exact form ``x * Phi(x)``.

    ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` is computed as ``erfc(-x / sqrt 2) / 2``:
    for large negative ``x`` the sum ``1 + erf`` cancels catastrophically while
    ``erfc`` keeps full relative precision (the tanh approximation of GELU is *not*
    used).
    """
    x = _as_float_array(x)
    return 0.5 * x * special.erfc(-x * _INV_SQRT2)


def exp(x) -> np.ndarray:
    """Exponential. Overflows to ``inf`` above ``x = 709.78`` (float64 limit)."""
    with np.errstate(over="ignore"):
        return np.exp(_as_float_array(x))


ACTIVATIONS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = MappingProxyType(
    {
        "sigmoid": sigmoid,
        "tanh": tanh,
        "relu": relu,
        "gelu": gelu,
        "exp": exp,
    }
)
"""Read-only registry ``name -> reference function`` used by ``approximate``."""


def get_activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return the reference function registered under ``name``.

    Parameters
    ----------
    name : str
        One of ``sorted(ACTIVATIONS)``; matching ignores case and surrounding spaces.

    Raises
    ------
    ParameterError
        If ``name`` is not a registered activation (the message lists the valid names).
    """
    if not isinstance(name, str):
        raise ParameterError(
            f"activation name must be a str; got {type(name).__name__}. "
            f"Valid names: {', '.join(sorted(ACTIVATIONS))}, or pass a vectorised callable."
        )
    key = name.strip().lower()
    try:
        return ACTIVATIONS[key]
    except KeyError:
        raise ParameterError(
            f"unknown activation {name!r}; valid names are {', '.join(sorted(ACTIVATIONS))}. "
            "To approximate another function pass a vectorised callable f(numpy_array) -> numpy_array."
        ) from None
