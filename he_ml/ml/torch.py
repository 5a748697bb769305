"""PyTorch front end: ``from_torch``, HE-friendly activation layers and ``make_he_friendly``.

This is the only module of :mod:`he_ml.ml` that imports torch (import it explicitly; ``he_ml.ml``
itself stays torch-free).

Supported layers (anything else raises `UnsupportedOperationError` naming the layer and this list):
``nn.Linear``, ``nn.Conv2d`` (any stride and zero padding, ``groups=1``, ``dilation=1``),
``nn.AvgPool2d`` (``ceil_mode=False``), ``nn.Flatten`` (``start_dim=1``), ``nn.BatchNorm1d/2d``
(eval-mode statistics folded into the previous linear layer), ``nn.ReLU``, ``nn.Sigmoid``,
``nn.Tanh``, ``nn.GELU`` (minimax polynomials on intervals calibrated from data),
:class:`PolyActivation`, :class:`Square`, and ``nn.Identity``/``nn.Dropout`` (no-ops in eval).
Models: ``nn.Sequential`` (nested ones are flattened) or any module whose ``forward`` is a straight
chain of such layers (traced with ``torch.fx``; the functional forms ``torch.relu``, ``F.relu``,
``torch.sigmoid``, ``torch.tanh``, ``F.gelu``, ``torch.flatten``, ``x.view(x.size(0), -1)``,
``x * x`` and ``x ** 2`` are recognised too).

HE-friendly training (CryptoNets [1]_, LoLa [2]_): :func:`make_he_friendly` replaces every
ReLU/Sigmoid/Tanh/GELU by a trainable quadratic (:class:`PolyActivation`, initialised to the
least-squares fit of the replaced function on the calibrated input range) or by :class:`Square`,
and fine-tunes the whole model a few epochs in plaintext, so accuracy survives the switch to a
polynomial network that runs encrypted at depth 1 per activation.

References
----------
.. [1] R. Gilad-Bachrach et al., "CryptoNets: Applying Neural Networks to Encrypted Data with High
   Throughput and Accuracy", ICML 2016 (square activations, scaled mean pooling, batching over
   slots).
.. [2] A. Brutzkus, O. Elisha, R. Gilad-Bachrach, "Low Latency Privacy Preserving Inference"
   (LoLa), ICML 2019.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError, ShapeMismatchError, UnsupportedOperationError
from .ir import Activation, AvgPool2d, Conv2d, Dense, Flatten, ModelIR, run_plain
from .model import INTERVAL_MARGIN, EncryptedModel, calibrate_layers

__all__ = ["PolyActivation", "Square", "from_torch", "make_he_friendly", "SUPPORTED_LAYERS"]

SUPPORTED_LAYERS = ("Linear", "Conv2d", "AvgPool2d", "Flatten", "BatchNorm1d", "BatchNorm2d", "ReLU",
                    "Sigmoid", "Tanh", "GELU", "PolyActivation", "Square", "Identity", "Dropout")
_APPROX = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.GELU: "gelu"}


class PolyActivation(nn.Module):
    """Trainable polynomial activation ``sum_k c_k x^k`` (one set of coefficients per layer).

    Parameters
    ----------
    coefficients : sequence of float, default (0, 0.5, 0.25)
        Lowest degree first. The default quadratic is close to ReLU on [-1, 1].
    trainable : bool, default True

    Notes
    -----
    Encrypted, a quadratic ``a x^2 + b x + c`` costs **one** level: the encrypted interpreter
    rewrites it as ``a (x + b/2a)^2 + (c - b^2/4a)`` and folds the shift into the previous layer
    and ``a`` and the constant into the next one. Higher degrees use the minimal-depth plan
    (``ceil(log2(degree + 1))`` levels).
    """

    def __init__(self, coefficients: Any = (0.0, 0.5, 0.25), trainable: bool = True) -> None:
        super().__init__()
        c = torch.as_tensor(np.asarray(coefficients, dtype=np.float64), dtype=torch.float32).reshape(-1)
        if c.numel() < 1 or not torch.all(torch.isfinite(c)):
            raise ParameterError(f"PolyActivation coefficients must be finite numbers; got {coefficients!r}.")
        self.coefficients = nn.Parameter(c, requires_grad=trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.coefficients
        out = torch.zeros_like(x) + c[-1]
        for k in range(c.numel() - 2, -1, -1):  # Horner
            out = out * x + c[k]
        return out

    def extra_repr(self) -> str:
        return "coefficients=" + ", ".join(f"{v:.4g}" for v in self.coefficients.detach().tolist())


class Square(nn.Module):
    """``x * x`` (CryptoNets' activation): one level encrypted, exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def _unsupported(what: str, why: str = "") -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"from_torch cannot convert {what}{': ' + why if why else ''}. Supported layers: "
        f"{', '.join(SUPPORTED_LAYERS)} in an nn.Sequential or a module whose forward is a straight chain "
        f"of them.")


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().to(torch.float64).numpy()


# ---------------------------------------------------------------------------- module -> op list
def _flatten_sequential(module: nn.Module) -> list[Any]:
    out: list[Any] = []
    for child in module.children():
        if isinstance(child, nn.Sequential):
            out.extend(_flatten_sequential(child))
        else:
            out.append(child)
    return out


def _ops_from_module(module: nn.Module) -> list[Any]:
    """A straight list of modules / functional markers the model applies, in order."""
    if isinstance(module, nn.Sequential):
        return _flatten_sequential(module)
    if isinstance(module, tuple(_APPROX)) or isinstance(module, (nn.Linear, nn.Conv2d, nn.AvgPool2d,
                                                                  nn.Flatten, PolyActivation, Square)):
        return [module]
    import torch.fx as fx
    try:
        gm = fx.symbolic_trace(module)
    except Exception as e:  # data-dependent control flow and the like
        raise _unsupported(f"{type(module).__name__}",
                           f"its forward could not be traced as a straight chain ({type(e).__name__}: {e})") from None
    ops: list[Any] = []
    prev = None
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                raise _unsupported(f"{type(module).__name__}", "forward takes more than one input")
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise _unsupported(f"{type(module).__name__}", "forward does not return the end of its chain")
            break
        inputs = [a for a in node.all_input_nodes]
        if node.op == "call_function" and node.target in (getattr, ) or (
                node.op == "call_method" and node.target == "size"):
            continue  # x.size(0) feeding a view: checked through the view below
        if not inputs or inputs[0] is not prev or any(
                a is not prev and not _is_size_node(a) for a in inputs):
            raise _unsupported(f"{type(module).__name__}",
                               f"forward is not a straight chain (node {node.name!r} uses other values)")
        if node.op == "call_module":
            ops.append(modules[node.target])
        elif node.op in ("call_function", "call_method"):
            ops.append(_functional_op(node))
        else:
            raise _unsupported(f"{type(module).__name__}", f"unsupported graph node {node.op} {node.target}")
        prev = node
    return ops


def _is_size_node(node: Any) -> bool:
    return (node.op == "call_method" and node.target == "size") or (
        node.op == "call_function" and getattr(node.target, "__name__", "") == "getattr")


def _functional_op(node: Any) -> Any:
    import torch.nn.functional as F
    t, args, kw = node.target, node.args, node.kwargs
    name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    if t in (torch.relu, F.relu) or name == "relu":
        return ("approximate", "relu")
    if t in (torch.sigmoid, F.sigmoid) or name == "sigmoid":
        return ("approximate", "sigmoid")
    if t in (torch.tanh, F.tanh) or name == "tanh":
        return ("approximate", "tanh")
    if t is F.gelu:
        return ("approximate", "gelu")
    if t is torch.flatten or name == "flatten":
        start = args[1] if len(args) > 1 else kw.get("start_dim", 0 if t is torch.flatten else 0)
        end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
        if start != 1 or end != -1:
            raise _unsupported(f"flatten(start_dim={start}, end_dim={end})", "only start_dim=1 flattens per sample")
        return ("flatten",)
    if name in ("view", "reshape") and len(args) == 3 and args[2] == -1:
        return ("flatten",)  # x.view(x.size(0), -1); checked against the module by from_torch(check=True)
    import operator
    if t is operator.mul and len(args) == 2 and args[0] is args[1]:
        return ("square",)
    if t in (operator.pow, torch.pow) or name == "pow":
        if len(args) == 2 and args[1] == 2:
            return ("square",)
    raise _unsupported(f"the operation {name!r} in forward")


# ---------------------------------------------------------------------------- ops -> IR layers
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _bn_affine(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    if bn.running_mean is None or bn.running_var is None:
        raise _unsupported(f"{type(bn).__name__}(track_running_stats=False)",
                           "batch statistics are data-dependent; train with running statistics")
    scale = 1.0 / np.sqrt(_np(bn.running_var) + bn.eps)
    if bn.affine:
        scale = scale * _np(bn.weight)
    shift = -_np(bn.running_mean) * scale + (_np(bn.bias) if bn.affine else 0.0)
    return scale, shift


def _to_layers(ops: list[Any], input_shape: tuple[int, ...]) -> list[Any]:
    layers: list[Any] = []
    shape = tuple(input_shape)
    for op in ops:
        if isinstance(op, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(op, nn.Linear):
            if len(shape) != 1:
                raise _unsupported(f"nn.Linear on a per-sample tensor of shape {shape}",
                                   "add nn.Flatten() before it (Linear on the last axis only is not supported)")
            b = _np(op.bias) if op.bias is not None else np.zeros(op.out_features)
            layers.append(Dense(_np(op.weight), b))
            shape = (op.out_features,)
        elif isinstance(op, nn.Conv2d):
            if op.groups != 1 or _pair(op.dilation) != (1, 1) or op.padding_mode != "zeros" or isinstance(op.padding, str) \
                    and op.padding != "valid":
                raise _unsupported(f"{op!r}", "only groups=1, dilation=1 and numeric zero padding are supported")
            if len(shape) != 3:
                raise _unsupported(f"nn.Conv2d on a per-sample tensor of shape {shape}",
                                   "inputs must be images (n, c, h, w)")
            pad = (0, 0) if isinstance(op.padding, str) else _pair(op.padding)
            b = _np(op.bias) if op.bias is not None else np.zeros(op.out_channels)
            layer = Conv2d(_np(op.weight), b, _pair(op.stride), pad, shape)
            layers.append(layer)
            shape = layer.output_shape
        elif isinstance(op, nn.AvgPool2d):
            if op.ceil_mode or op.divisor_override is not None or len(shape) != 3:
                raise _unsupported(f"{op!r}", "only ceil_mode=False, no divisor_override, on images")
            layer = AvgPool2d(_pair(op.kernel_size), _pair(op.stride if op.stride is not None else op.kernel_size),
                              _pair(op.padding), shape, bool(op.count_include_pad))
            layers.append(layer)
            shape = layer.output_shape
        elif isinstance(op, nn.Flatten) or op == ("flatten",):
            if isinstance(op, nn.Flatten) and (op.start_dim != 1 or op.end_dim != -1):
                raise _unsupported(f"{op!r}", "only Flatten(start_dim=1, end_dim=-1)")
            if len(shape) > 1:
                layers.append(Flatten(shape))
                shape = (int(np.prod(shape)),)
        elif isinstance(op, (nn.BatchNorm1d, nn.BatchNorm2d)):
            s, o = _bn_affine(op)
            layers.append(_fold_bn(layers, s, o, shape, type(op).__name__))
            layers = [l for l in layers if l is not None]
        elif isinstance(op, tuple(_APPROX)):
            layers.append(("approximate", _APPROX[type(op)]))
        elif isinstance(op, tuple) and op[0] == "approximate":
            layers.append(op)
        elif isinstance(op, Square) or op == ("square",):
            layers.append(Activation.square())
        elif isinstance(op, PolyActivation):
            layers.append(("polynomial", _np(op.coefficients)))
        else:
            name = type(op).__name__ if not isinstance(op, tuple) else op[0]
            raise _unsupported(f"the layer {name}")
    return layers


def _fold_bn(layers: list[Any], s: np.ndarray, o: np.ndarray, shape: tuple[int, ...], name: str) -> Any:
    """Fold y = x * s + o (per channel) into the previous Dense/Conv2d, else emit a diagonal layer."""
    prev = layers[-1] if layers else None
    if isinstance(prev, Dense) and len(shape) == 1 and s.shape[0] == prev.out_features:
        layers[-1] = Dense(prev.weight * s[:, None], prev.bias * s + o)
        return None
    if isinstance(prev, Conv2d) and len(shape) == 3 and s.shape[0] == prev.weight.shape[0]:
        layers[-1] = Conv2d(prev.weight * s[:, None, None, None], prev.bias * s + o, prev.stride, prev.padding,
                            prev.input_shape)
        return None
    # not after a linear layer: a diagonal affine layer, which the interpreter fuses with its neighbours
    if len(shape) == 1 and s.shape[0] == shape[0]:
        return Dense(np.diag(s), o)
    if len(shape) == 3 and s.shape[0] == shape[0]:
        c = shape[0]
        return Conv2d(np.diag(s).reshape(c, c, 1, 1), o, 1, 0, shape)
    raise _unsupported(f"{name} on a tensor of shape {shape}")


def from_torch(module: nn.Module, X_calibration: Any = None, *, input_shape: tuple[int, ...] | None = None,
               degree: int | dict | None = None, task: str | None = None, classes: Any = None,
               check: bool = True) -> EncryptedModel:
    """Lower a PyTorch model to an :class:`EncryptedModel`.

    Parameters
    ----------
    module : nn.Module
        ``nn.Sequential`` or a module whose forward is a straight chain (see the module docstring).
        It is evaluated in eval mode (batch-norm running statistics, no dropout).
    X_calibration : array (n, *input_shape), optional
        Plaintext samples (images as (n, c, h, w)): sets the per-sample input shape, the
        polynomial intervals of ReLU/Sigmoid/Tanh/GELU (required for them) and the value ranges
        that ``model.context()`` plans for.
    input_shape : tuple, optional
        Per-sample input shape when no calibration data is given.
    degree : int or dict, optional
        Polynomial degree of approximated activations (default 7, depth 3).
    task : {"binary", "multiclass", "regression"}, optional
        A final ``nn.Softmax``/``nn.LogSoftmax`` (or ``nn.Sigmoid`` of a binary classifier: pass
        ``task="binary"`` or ``classes``) is dropped: `decision_function` returns the logits and
        the client applies it exactly with `EncryptedModel.proba_from_scores`.
        Default: "multiclass" when the model has more than one output; with one output "binary" if
        ``classes`` is given, else "regression" (pass ``task="binary"`` for a one-logit classifier).
    classes : sequence, optional
        Labels of the outputs (default ``0..n_outputs-1`` for multiclass, ``[0, 1]`` for binary).
    check : bool, default True
        Verify that the IR reproduces ``module(X)`` on up to 64 calibration samples.

    Raises
    ------
    UnsupportedOperationError
        A layer, option or forward structure that cannot run encrypted (names it and lists the
        supported layers).
    ParameterError
        Missing calibration data for approximated activations, or the conversion check failed.
    """
    if not isinstance(module, nn.Module):
        raise ParameterError(f"from_torch expects a torch.nn.Module; got {type(module).__name__}.")
    was_training = module.training
    module.eval()
    try:
        ops = _ops_from_module(module)
        X = None
        if X_calibration is not None:
            X = np.asarray(X_calibration.detach().cpu().numpy() if isinstance(X_calibration, torch.Tensor)
                           else X_calibration, dtype=np.float64)
            if X.ndim < 2:
                raise ShapeMismatchError(f"X_calibration must have shape (n, ...); got {X.shape}.")
            shape = tuple(X.shape[1:])
            if input_shape is not None and tuple(input_shape) != shape:
                raise ShapeMismatchError(f"input_shape {tuple(input_shape)} disagrees with X_calibration {shape}.")
        elif input_shape is not None:
            shape = tuple(int(s) for s in input_shape)
        else:
            first = next((op for op in ops if isinstance(op, (nn.Linear, nn.Conv2d))), None)
            if isinstance(first, nn.Linear) and ops and ops[0] is first:
                shape = (first.in_features,)
            else:
                raise ParameterError("from_torch needs the per-sample input shape: pass X_calibration=X "
                                     "(images as (n, c, h, w)) or input_shape=(c, h, w).")
        # A classifier's final Softmax / LogSoftmax / Sigmoid is not evaluated encrypted: the scores
        # are the logits, and the client turns them into probabilities exactly (proba_from_scores).
        while ops and isinstance(ops[-1], (nn.Identity, nn.Dropout)):
            ops = ops[:-1]
        final = None
        if ops and isinstance(ops[-1], (nn.Softmax, nn.LogSoftmax)):
            final = ops[-1]
            ops = ops[:-1]
            task = task or "multiclass"
        elif ops and isinstance(ops[-1], nn.Sigmoid) and task in (None, "binary") and classes is not None \
                or (ops and isinstance(ops[-1], nn.Sigmoid) and task == "binary"):
            final = ops[-1]
            ops = ops[:-1]
            task = "binary"
        layers = _to_layers(ops, shape)
        if not layers:
            raise _unsupported("an empty model (no layer left after dropping Identity/Dropout)")
        layers = calibrate_layers(layers, shape, X, degree)
        from .ir import layer_shapes
        out_n = int(np.prod(layer_shapes(ModelIR(layers, shape, "regression"))[-1][1]))
        if task is None:
            task = ("multiclass" if out_n > 1 else "binary") if classes is not None or out_n > 1 else "regression"
        cls = None
        if task == "multiclass":
            cls = np.arange(out_n) if classes is None else np.asarray(classes)
        elif task == "binary":
            cls = np.array([0, 1]) if classes is None else np.asarray(classes)
        proba = {"multiclass": "softmax", "binary": "sigmoid"}.get(task)
        ir = ModelIR(layers=tuple(layers), input_shape=shape, task=task, classes_=cls,
                     source=f"torch {type(module).__name__}", proba=proba)
        if check and X is not None:
            _check_conversion(module, ir, X[:64], final)
        return EncryptedModel(ir, X)
    finally:
        module.train(was_training)


def _check_conversion(module: nn.Module, ir: ModelIR, X: np.ndarray, final: nn.Module | None = None) -> None:
    """The IR with exact activations (and the dropped final softmax/sigmoid) must reproduce the module."""
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    with torch.no_grad():
        ref = module(torch.as_tensor(X, dtype=dtype)).detach().cpu().to(torch.float64).numpy().reshape(len(X), -1)
    got = run_plain(ir, X, exact=True)
    if final is not None:
        with torch.no_grad():
            got = final(torch.as_tensor(got)).numpy()
    # float32 forward: relative rounding ~1e-7 per operation; 1e-3 of the output scale is far above that
    tol = 1e-3 * max(1.0, float(np.max(np.abs(ref))))
    if got.shape != ref.shape or float(np.max(np.abs(got - ref))) > tol:
        raise ParameterError(
            f"from_torch: the converted model does not reproduce {type(module).__name__} on calibration data "
            f"(max difference {float(np.max(np.abs(got - ref))) if got.shape == ref.shape else 'shape ' + str(got.shape)}"
            f" vs tolerance {tol:.3g}); its forward probably does more than the chain of layers it declares. "
            f"Write it as an nn.Sequential of supported layers.")


# ---------------------------------------------------------------------------- HE-friendly training
def make_he_friendly(model: nn.Module, X: Any, y: Any, *, epochs: int = 5, activation: str = "quadratic",
                     lr: float = 1e-3, batch_size: int = 64, loss: Any = None, seed: int = 0,
                     verbose: bool = False) -> nn.Module:
    """Swap ReLU/Sigmoid/Tanh/GELU for polynomial layers and fine-tune in plaintext (CryptoNets/LoLa).

    Parameters
    ----------
    model : nn.Module
        A trained model (it is not modified: a deep copy is returned).
    X, y : arrays
        Plaintext training data (images as (n, c, h, w)); ``y`` class indices (classification,
        cross-entropy) or targets (pass ``loss=nn.MSELoss()``).
    epochs : int, default 5
        Fine-tuning epochs (Adam).
    activation : {"quadratic", "square"}, default "quadratic"
        "quadratic": :class:`PolyActivation` of degree 2 initialised to the least-squares fit of
        the replaced activation on ``[-R, R]`` (``R`` = 1.2 x the largest input it saw on ``X``),
        coefficients trained too; "square": :class:`Square` (``x^2``, CryptoNets). Both cost one
        level encrypted.
    lr, batch_size, seed : fine-tuning settings (``seed`` seeds the data order).
    loss : callable, optional
        Default ``nn.CrossEntropyLoss()``.

    Returns
    -------
    nn.Module
        The fine-tuned copy, in eval mode, ready for :func:`from_torch`.
    """
    if activation not in ("quadratic", "square"):
        raise ParameterError(f"activation must be 'quadratic' or 'square'; got {activation!r}.")
    if not isinstance(epochs, int) or epochs < 0:
        raise ParameterError(f"epochs must be an integer >= 0; got {epochs!r}.")
    new = copy.deepcopy(model)
    dtype = next((p.dtype for p in new.parameters()), torch.float32)
    Xt = torch.as_tensor(np.asarray(X), dtype=dtype)
    yt = torch.as_tensor(np.asarray(y))
    if len(Xt) != len(yt) or len(Xt) == 0:
        raise ShapeMismatchError(f"X and y must have the same non-zero length; got {len(Xt)} and {len(yt)}.")
    # measure each activation's input range on X
    ranges: dict[int, float] = {}
    hooks = []
    targets = [(parent, name, child) for parent in new.modules() for name, child in parent.named_children()
               if isinstance(child, tuple(_APPROX))]
    if not targets:
        raise ParameterError("make_he_friendly found no ReLU/Sigmoid/Tanh/GELU module to replace (functional "
                             "activations in forward cannot be swapped: use nn modules).")
    for _, _, child in targets:
        hooks.append(child.register_forward_hook(
            lambda m, inp, out: ranges.__setitem__(id(m), max(ranges.get(id(m), 0.0),
                                                              float(inp[0].detach().abs().max())))))
    new.eval()
    with torch.no_grad():
        for i in range(0, len(Xt), 512):
            new(Xt[i:i + 512])
    for h in hooks:
        h.remove()
    from .activations import get_activation
    for parent, name, child in targets:
        if activation == "square":
            setattr(parent, name, Square())
            continue
        R = max(INTERVAL_MARGIN * ranges.get(id(child), 1.0), 1e-3)
        grid = np.linspace(-R, R, 2001)
        coef = np.polynomial.polynomial.polyfit(grid, get_activation(_APPROX[type(child)])(grid), 2)
        setattr(parent, name, PolyActivation(coef))
    loss_fn = loss if loss is not None else nn.CrossEntropyLoss()
    opt = torch.optim.Adam(new.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    new.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for i in range(0, len(Xt), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            out = new(Xt[idx])
            l = loss_fn(out, yt[idx])
            value = float(l.detach())
            if not math.isfinite(value):
                raise ParameterError(
                    f"make_he_friendly: the loss became {value} in epoch {epoch + 1}; polynomial activations "
                    f"can explode during training. Lower lr (got {lr}) or use activation='quadratic'.")
            l.backward()
            opt.step()
            total += value * len(idx)
        if verbose:
            print(f"make_he_friendly epoch {epoch + 1}/{epochs}: loss {total / len(Xt):.4f}")
    new.eval()
    return new
