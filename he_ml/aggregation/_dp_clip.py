"""L2 clipping for :mod:`he_ml.aggregation.dp`.

One piece of :mod:`he_ml.aggregation.dp`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.dp`; import it from there.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Union

import numpy as np

from ..errors import ParameterError


Update = Union[np.ndarray, Mapping[str, np.ndarray]]


# ---------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------


def _named_arrays(update: Update, what: str = "update") -> tuple[bool, list[tuple[str, np.ndarray]]]:
    """Validate ``update`` and return (is_mapping, [(label, float64 array), ...])."""
    if isinstance(update, Mapping):
        if len(update) == 0:
            raise ParameterError(f"{what} is an empty dict; give at least one array")
        items = list(update.items())
        is_mapping = True
    else:
        items = [("<array>", update)]
        is_mapping = False
    out = []
    for key, value in items:
        label = f"{what}[{key!r}]" if is_mapping else what
        arr = np.asarray(value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ParameterError(
                f"{label} must be a real numeric array; got dtype {arr.dtype}. Convert it with "
                f"np.asarray(x, dtype=np.float64) (torch tensors: he_ml.integrations.torch)."
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ParameterError(
                f"{label} contains {bad} NaN/inf value(s) out of {arr.size}; a non-finite gradient "
                f"cannot be clipped. Fix the training step (lower the learning rate, check the loss) "
                f"or drop this update."
            )
        out.append((key, arr))
    return is_mapping, out


def _global_norm(arrays: list[np.ndarray]) -> float:
    """L2 norm of the concatenation, scaled so huge values cannot overflow."""
    peak = max((float(np.max(np.abs(a))) if a.size else 0.0) for a in arrays)
    if peak == 0.0:
        return 0.0
    return peak * math.sqrt(math.fsum(float(np.sum(np.square(a / peak))) for a in arrays))


def _validate_positive_float(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be finite and {bound}; got {value!r}")
    return value


def clip_l2(update: Update, clip_norm: float) -> tuple[Update, float]:
    """Scale an update so its global L2 norm is at most ``clip_norm``.

    Parameters
    ----------
    update : numpy.ndarray of any shape, or dict of str to numpy.ndarray
        One client's gradient or model delta. A dict is clipped by the norm of
        all its arrays concatenated (flat clipping, as in DP-SGD and DP-FedAvg),
        so the direction of the whole update is preserved.
    clip_norm : float
        Positive bound ``C`` on the L2 norm.

    Returns
    -------
    clipped : numpy.ndarray or dict
        Same structure and shapes as ``update``, dtype float64, multiplied by
        ``min(1, C / norm)``; guaranteed ``norm(clipped) <= C``.
    norm : float
        The L2 norm of ``update`` before clipping.

    Raises
    ------
    ParameterError
        If ``clip_norm`` is not finite and positive, an array is not real
        numeric, contains NaN or inf (the message names the key), or the dict is empty.

    Examples
    --------
    >>> clipped, norm = clip_l2(np.array([3.0, 4.0]), 1.0)
    >>> clipped, norm
    (array([0.6, 0.8]), 5.0)
    """
    clip_norm = _validate_positive_float("clip_norm", clip_norm)
    is_mapping, named = _named_arrays(update)
    arrays = [a for _, a in named]
    norm = _global_norm(arrays)
    if norm > clip_norm:
        factor = clip_norm / norm
        # Rounding can leave the scaled norm an ulp above C; shrink until it is not.
        while True:
            scaled = [a * factor for a in arrays]
            if _global_norm(scaled) <= clip_norm:
                break
            factor *= 1.0 - 2.0**-50
        arrays = scaled
    if is_mapping:
        return {key: a for (key, _), a in zip(named, arrays)}, norm
    return arrays[0], norm
