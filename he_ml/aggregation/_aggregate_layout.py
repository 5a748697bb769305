"""Updates as flat vectors for :mod:`he_ml.aggregation.aggregator`: flattening and layouts.

One piece of :mod:`he_ml.aggregation.aggregator`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.aggregator`; import it from there.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ParameterError, ShapeMismatchError
from ..schemes.limits import limit


#: Version of the aggregate blob's metadata layout (independent of the container version).
AGGREGATE_LAYOUT_VERSION = 1


_MAX_SPEC_ENTRIES = limit("spec_entries_max")


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Array-like (numpy, list, or a torch tensor via duck typing) -> float64 numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"update {name} must be a numeric array; got {type(value).__name__} ({e}). "
            f"Pass numpy arrays (or a dict of them; torch: he_ml.integrations.torch.state_dict_to_numpy)."
        ) from e
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ParameterError(
            f"update {name} contains {bad} NaN/inf value(s); clip or fix the gradients before encrypting "
            f"(e.g. torch.nn.utils.clip_grad_norm_ or np.nan_to_num)."
        )
    return arr


def flatten_update(update: Any) -> tuple[np.ndarray, list[list[Any]], str]:
    """Flatten an array or a dict of arrays into one float64 vector.

    Parameters
    ----------
    update : array-like of any shape, or dict of str to array-like

    Returns
    -------
    flat : ndarray of shape (total,)
    spec : list of [key, shape] in order (key is None for a bare array)
    structure : {"array", "dict"}

    Raises
    ------
    ParameterError
        If a value is not numeric or not finite, a dict key is not a str, or the dict is empty.
    ShapeMismatchError
        If the update holds no values at all.
    """
    if isinstance(update, Mapping):
        if not update:
            raise ParameterError("update dict is empty; pass at least one array.")
        spec, parts = [], []
        for key, value in update.items():
            if not isinstance(key, str):
                raise ParameterError(f"update dict keys must be str; got {type(key).__name__} {key!r}.")
            arr = _to_numpy(value, repr(key))
            spec.append([key, list(arr.shape)])
            parts.append(arr.reshape(-1))
        flat = np.concatenate(parts)
        structure = "dict"
    else:
        arr = _to_numpy(update, "array")
        spec = [[None, list(arr.shape)]]
        flat = arr.reshape(-1)
        structure = "array"
    if flat.size == 0:
        raise ShapeMismatchError("update has no values; got only empty arrays. Send at least one value.")
    return flat, spec, structure


def unflatten_update(flat: np.ndarray, spec: list[list[Any]], structure: str) -> Any:
    """Inverse of `flatten_update`: a flat vector back to an array or a dict of arrays.

    Raises
    ------
    ShapeMismatchError
        If ``flat`` does not hold exactly the number of values ``spec`` describes.
    """
    sizes = [math.prod(shape) for _, shape in spec]
    if sum(sizes) != flat.size:
        raise ShapeMismatchError(
            f"the layout describes {sum(sizes)} values but the vector holds {flat.size}; pass the spec "
            f"returned by flatten_update for this vector."
        )
    out: dict[Any, np.ndarray] = {}
    pos = 0
    for (key, shape), size in zip(spec, sizes):
        out[key] = flat[pos:pos + size].reshape(shape)
        pos += size
    if structure == "array":
        return out[None]
    return out


def _describe(structure: str, spec: list[list[Any]]) -> str:
    if structure == "array":
        return f"array of shape {tuple(spec[0][1])}"
    items = [f"{k!r}: {tuple(s)}" for k, s in spec[:6]]
    more = f", ... ({len(spec)} arrays)" if len(spec) > 6 else ""
    return "dict {" + ", ".join(items) + more + "}"


def _normalize_layout(layout: Any) -> Any:
    """A caller's layout (shape, or mapping key -> shape) as tuples, validated; None stays None."""
    if layout is None:
        return None
    if isinstance(layout, tuple) and layout and all(
            isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in layout):
        layout = dict(layout)  # our own normalized form
    try:
        if isinstance(layout, Mapping):
            if not layout or len(layout) > _MAX_SPEC_ENTRIES or not all(isinstance(k, str) for k in layout):
                raise ValueError("a non-empty mapping of str keys")
            out = tuple((k, tuple(int(d) for d in v)) for k, v in layout.items())
            dims = [d for _, shape in out for d in shape]
        else:
            out = tuple(int(d) for d in layout)
            dims = list(out)
        if any(d < 0 for d in dims):
            raise ValueError("non-negative dimensions")
        return out
    except (TypeError, ValueError) as e:
        raise ParameterError(f"layout must be a shape tuple or a dict of str -> shape (what layout_of returns); "
                             f"got {layout!r:.80} ({e}).") from None


def _layout_from_spec(structure: str, spec: list[list[Any]]) -> Any:
    if structure == "array":
        return tuple(spec[0][1])
    return tuple((k, tuple(s)) for k, s in spec)


def _describe_layout(layout: Any) -> str:
    if layout and isinstance(layout[0], tuple):
        return _describe("dict", [[k, list(s)] for k, s in layout])
    return _describe("array", [[None, list(layout)]])
