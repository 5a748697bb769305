"""PyTorch bridge: gradients and state_dicts to numpy for encrypted aggregation, and back.

:class:`he_ml.aggregation.GradientAggregator` takes numpy arrays or dicts of
them; these helpers turn a model's gradients or a ``state_dict`` into such a
dict (float64, exact for float16/bfloat16/float32/float64) and put an
aggregated dict back into tensors of the original dtype, shape and device.

Non-floating tensors (for example BatchNorm's ``num_batches_tracked`` counter,
int64) are **skipped** by default: averaging a step counter or an index buffer
across clients is meaningless. When converting back, skipped entries are copied
unchanged from the ``like`` state_dict. Pass ``include_non_float=True`` to carry
them through as float64 (exact up to 2**53) and round them back on return.

PyTorch is an optional dependency: ``pip install 'he_ml[torch]'``. Only this
module imports it.

Examples
--------
>>> import torch
>>> from he_ml.integrations.torch import state_dict_to_numpy, numpy_to_state_dict
>>> model = torch.nn.Linear(3, 2)
>>> arrays = state_dict_to_numpy(model.state_dict())
>>> sorted(arrays), arrays["weight"].shape, arrays["weight"].dtype
(['bias', 'weight'], (2, 3), dtype('float64'))
>>> model.load_state_dict(numpy_to_state_dict(arrays, like=model.state_dict()))
<All keys matched successfully>
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, ShapeMismatchError

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised by a test that hides torch
    raise ImportError(
        "he_ml.integrations.torch needs PyTorch, which is not installed. Install the extra with "
        "`pip install 'he_ml[torch]'` (or a CPU/CUDA wheel from https://pytorch.org)."
    ) from e

__all__ = [
    "TensorSpec",
    "FlatSpec",
    "state_dict_to_numpy",
    "numpy_to_state_dict",
    "gradients_to_numpy",
    "numpy_to_gradients",
    "flatten_state_dict",
    "unflatten_state_dict",
    "flatten_gradients",
    "unflatten_gradients",
]


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one tensor in a flattened vector.

    Attributes
    ----------
    name : str
    shape : tuple of int
    dtype : torch.dtype
    offset : int
        Position of the tensor's first value in the flat vector.
    """

    name: str
    shape: tuple[int, ...]
    dtype: "torch.dtype"
    offset: int

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class FlatSpec:
    """Layout of a flat float64 vector made from named tensors.

    Attributes
    ----------
    entries : tuple of TensorSpec
        In order; ``entries[i].offset`` is where tensor ``i`` starts.
    skipped : tuple of str
        Names of non-floating tensors left out of the vector.
    size : int
        Length of the vector.
    """

    entries: tuple[TensorSpec, ...]
    skipped: tuple[str, ...]
    size: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)


def _is_float_dtype(dtype: "torch.dtype") -> bool:
    return dtype.is_floating_point


def _check_tensor(name: str, tensor, what: str) -> "torch.Tensor":
    if not isinstance(tensor, torch.Tensor):
        raise ParameterError(f"{what}[{name!r}] must be a torch.Tensor; got {type(tensor).__name__}")
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise ParameterError(f"{what}[{name!r}] has layout {tensor.layout}; convert it with .to_dense() first")
    if tensor.is_complex():
        raise ParameterError(
            f"{what}[{name!r}] has complex dtype {tensor.dtype}; split it into real and imaginary parts "
            f"(torch.view_as_real) before aggregation"
        )
    return tensor


def _to_float64(tensor: "torch.Tensor") -> np.ndarray:
    # Every float16/bfloat16/float32 value is exactly representable in float64.
    return tensor.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


def state_dict_to_numpy(
    state_dict: Mapping[str, "torch.Tensor"], *, include_non_float: bool = False
) -> dict[str, np.ndarray]:
    """Convert a ``state_dict`` (or any mapping of names to tensors) to float64 numpy arrays.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        E.g. ``model.state_dict()``; tensors may live on any device.
    include_non_float : bool, default False
        Also convert integer/bool tensors (to float64). By default they are
        skipped (see the module docstring).

    Returns
    -------
    dict of str to numpy.ndarray
        In the mapping's order, float64, same shapes; fresh copies.

    Raises
    ------
    ParameterError
        If a value is not a dense real tensor (the message names the key), or
        an integer tensor holds values beyond 2**53 with ``include_non_float``.
    """
    if not isinstance(state_dict, Mapping):
        raise ParameterError(f"state_dict must be a mapping of names to tensors; got {type(state_dict).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, tensor in state_dict.items():
        tensor = _check_tensor(name, tensor, "state_dict")
        if _is_float_dtype(tensor.dtype):
            out[name] = _to_float64(tensor)
        elif include_non_float:
            if tensor.dtype != torch.bool and tensor.numel() and int(tensor.abs().max()) > 2**53:
                raise ParameterError(
                    f"state_dict[{name!r}] holds integers beyond 2**53, which float64 cannot carry exactly; "
                    f"leave include_non_float=False to skip it"
                )
            out[name] = _to_float64(tensor)
    return out


def _from_float64(name: str, array: np.ndarray, like: "torch.Tensor", what: str) -> "torch.Tensor":
    array = np.asarray(array)
    if tuple(array.shape) != tuple(like.shape):
        raise ShapeMismatchError(
            f"{what}[{name!r}] has shape {tuple(array.shape)} but the model expects {tuple(like.shape)}"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ParameterError(f"{what}[{name!r}] must be a real numeric array; got dtype {array.dtype}")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))
    if not _is_float_dtype(like.dtype):
        # Integer/bool buffers that went through aggregation: round to the nearest value.
        if not np.all(np.isfinite(array)):
            raise ParameterError(f"{what}[{name!r}] has NaN/inf values; it cannot go back to {like.dtype}")
        tensor = torch.round(tensor)
        if like.dtype == torch.bool:
            tensor = tensor != 0
    return tensor.to(device=like.device, dtype=like.dtype)


def _check_names(given, expected, what: str) -> None:
    given, expected = list(given), list(expected)
    missing = [n for n in expected if n not in set(given)]
    extra = [n for n in given if n not in set(expected)]
    if missing or extra:
        raise ShapeMismatchError(
            f"{what} names do not match the model: missing {missing}, unexpected {extra}. "
            f"Convert with the same model architecture (and the same include_non_float) on every client."
        )


def numpy_to_state_dict(
    arrays: Mapping[str, np.ndarray], *, like: Mapping[str, "torch.Tensor"]
) -> "OrderedDict[str, torch.Tensor]":
    """Build a ``state_dict`` from numpy arrays, with the dtypes, shapes and devices of ``like``.

    Parameters
    ----------
    arrays : mapping of str to numpy.ndarray
        As returned by :func:`state_dict_to_numpy` (possibly aggregated). Must
        hold every floating entry of ``like``; non-floating entries are optional
        (copied from ``like`` when absent, rounded to the nearest integer when given).
    like : mapping of str to torch.Tensor
        The reference ``state_dict`` (e.g. the current ``model.state_dict()``).

    Returns
    -------
    collections.OrderedDict of str to torch.Tensor
        In ``like``'s order, ready for ``model.load_state_dict``.

    Raises
    ------
    ShapeMismatchError
        If names are missing or unexpected, or a shape differs (the message names the key).
    ParameterError
        If an array is not real numeric, or non-finite for an integer entry.
    """
    if not isinstance(arrays, Mapping) or not isinstance(like, Mapping):
        raise ParameterError("arrays and like must both be mappings of names to arrays/tensors")
    required = [n for n, t in like.items() if _is_float_dtype(_check_tensor(n, t, "like").dtype)]
    optional = [n for n in like if n not in set(required)]
    _check_names([n for n in arrays if n not in set(optional)], required, "arrays")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, ref in like.items():
        if name in arrays:
            out[name] = _from_float64(name, arrays[name], ref, "arrays")
        else:
            out[name] = ref.detach().clone()
    return out


def _trainable(model) -> list[tuple[str, "torch.nn.Parameter"]]:
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def gradients_to_numpy(model, *, missing_as_zero: bool = True) -> dict[str, np.ndarray]:
    """The ``.grad`` of every trainable parameter as float64 numpy arrays.

    Parameters
    ----------
    model : torch.nn.Module
        After ``loss.backward()``.
    missing_as_zero : bool, default True
        A trainable parameter whose ``.grad`` is None (unused in this forward
        pass) contributes zeros, so every client sends the same structure.
        With False, such a parameter raises.

    Returns
    -------
    dict of str to numpy.ndarray
        Keyed by ``named_parameters()`` names (trainable parameters only), float64.

    Raises
    ------
    ParameterError
        If ``model`` is not a Module, or a gradient is missing with ``missing_as_zero=False``.
    """
    out: dict[str, np.ndarray] = {}
    for name, param in _trainable(model):
        if param.grad is None:
            if not missing_as_zero:
                raise ParameterError(
                    f"parameter {name!r} has no gradient; call loss.backward() first, or pass "
                    f"missing_as_zero=True to send zeros for unused parameters"
                )
            out[name] = np.zeros(tuple(param.shape), dtype=np.float64)
        else:
            out[name] = _to_float64(_check_tensor(name, param.grad, "grad"))
    return out


def numpy_to_gradients(model, arrays: Mapping[str, np.ndarray]) -> None:
    """Set ``param.grad`` of every trainable parameter from numpy arrays (e.g. the aggregated mean).

    Parameters
    ----------
    model : torch.nn.Module
    arrays : mapping of str to numpy.ndarray
        One array per trainable parameter, as from :func:`gradients_to_numpy`.

    Raises
    ------
    ShapeMismatchError
        If names are missing or unexpected, or a shape differs (the message names the key).
    ParameterError
        If ``model`` is not a Module or an array is not real numeric.

    Notes
    -----
    Gradients are cast to each parameter's dtype and device, replacing any
    existing ``.grad``; an optimizer ``step()`` can follow directly.
    """
    params = _trainable(model)
    if not isinstance(arrays, Mapping):
        raise ParameterError(f"arrays must be a mapping of parameter names to arrays; got {type(arrays).__name__}")
    _check_names(arrays, [n for n, _ in params], "gradient")
    converted = [(p, _from_float64(n, arrays[n], p, "gradient")) for n, p in params]
    for param, grad in converted:  # assign only after every entry validated
        param.grad = grad


def _flatten(named: list[tuple[str, np.ndarray, "torch.dtype"]], skipped: list[str]) -> tuple[np.ndarray, FlatSpec]:
    entries, offset = [], 0
    for name, array, dtype in named:
        entries.append(TensorSpec(name, tuple(array.shape), dtype, offset))
        offset += array.size
    vector = np.concatenate([a.ravel() for _, a, _ in named]) if named else np.zeros(0)
    return vector.astype(np.float64, copy=False), FlatSpec(tuple(entries), tuple(skipped), offset)


def flatten_state_dict(
    state_dict: Mapping[str, "torch.Tensor"], *, include_non_float: bool = False
) -> tuple[np.ndarray, FlatSpec]:
    """One float64 vector of all (floating) entries of a ``state_dict``, plus its layout.

    Returns
    -------
    vector : numpy.ndarray, shape (spec.size,)
    spec : FlatSpec
        Names, shapes, dtypes and offsets; ``spec.skipped`` lists non-float entries left out.

    Raises
    ------
    ParameterError
        As :func:`state_dict_to_numpy`.
    """
    arrays = state_dict_to_numpy(state_dict, include_non_float=include_non_float)
    named = [(n, arrays[n], state_dict[n].dtype) for n in arrays]
    skipped = [n for n in state_dict if n not in arrays]
    return _flatten(named, skipped)


def _split(vector, spec: FlatSpec) -> dict[str, np.ndarray]:
    if not isinstance(spec, FlatSpec):
        raise ParameterError(f"spec must be the FlatSpec returned by a flatten_* call; got {type(spec).__name__}")
    vector = np.asarray(vector)
    if vector.ndim != 1 or vector.size != spec.size:
        raise ShapeMismatchError(
            f"flat vector has shape {vector.shape} but the spec describes {spec.size} values in one dimension"
        )
    return {e.name: vector[e.offset : e.offset + e.size].reshape(e.shape) for e in spec.entries}


def unflatten_state_dict(
    vector: np.ndarray, spec: FlatSpec, *, like: Mapping[str, "torch.Tensor"]
) -> "OrderedDict[str, torch.Tensor]":
    """Inverse of :func:`flatten_state_dict`: tensors of ``like``'s dtypes, shapes and devices.

    Raises
    ------
    ShapeMismatchError
        If the vector length differs from ``spec.size`` or ``spec`` does not fit ``like``.
    """
    return numpy_to_state_dict(_split(vector, spec), like=like)


def flatten_gradients(model, *, missing_as_zero: bool = True) -> tuple[np.ndarray, FlatSpec]:
    """One float64 vector of all trainable parameters' gradients, plus its layout.

    Raises
    ------
    ParameterError
        As :func:`gradients_to_numpy`.
    """
    arrays = gradients_to_numpy(model, missing_as_zero=missing_as_zero)
    dtypes = dict(_trainable(model))
    return _flatten([(n, a, dtypes[n].dtype) for n, a in arrays.items()], [])


def unflatten_gradients(model, vector: np.ndarray, spec: FlatSpec) -> None:
    """Inverse of :func:`flatten_gradients`: set every trainable parameter's ``.grad``.

    Raises
    ------
    ShapeMismatchError
        If the vector length differs from ``spec.size`` or ``spec`` does not fit the model.
    """
    numpy_to_gradients(model, _split(vector, spec))
