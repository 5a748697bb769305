"""numpy and pandas conventions of `EncryptedVector`: indexing, axis sums, DataFrame labels.

Kept apart from :mod:`he_ml.schemes.base` so that the core vector type stays small; the
public methods (``__getitem__``, ``sum(axis=...)``, ``from_pandas``, ``to_pandas``) live on
`EncryptedVector` and call these functions. Values are packed row-major, ``slot_count`` to a
ciphertext: a selection of whole ciphertexts is free on every scheme; anything else needs
slot rotations (CKKS).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LabelMismatchError, ParameterError, ShapeMismatchError, UnsupportedOperationError

__all__ = ["MAX_INDEX_VALUES", "MAX_GATHER_SHIFTS", "NUMPY_HINTS", "NoEncryptedAttributeError", "LabelMismatchError",
           "positions", "select", "sum_axis0_rotations", "pandas_kind", "labels_of", "combine_labels",
           "select_labels", "to_pandas"]

#: Largest vector `EncryptedVector.__getitem__` indexes (it builds an int64 index of every value: 128 MiB).
MAX_INDEX_VALUES = 1 << 24
#: Most rotations one CKKS selection may use (one per distinct shift; each costs a key switch).
MAX_GATHER_SHIFTS = 256

class NoEncryptedAttributeError(UnsupportedOperationError, AttributeError):
    """A numpy attribute with no encrypted counterpart (also an AttributeError, so that
    ``hasattr`` / ``getattr(obj, name, default)`` in other libraries keep working)."""


_COMPARE = ("comparisons are not defined on ciphertexts (the server would learn the order); decrypt "
            "first, or approximate the function with a polynomial (he_ml.ml.approximate)")
#: numpy attributes an encrypted array does not have -> what to do instead.
NUMPY_HINTS = {
    "T": "transpose the data before encrypting (values are packed row-major), or select columns with e[:, j]",
    "transpose": "transpose the data before encrypting (values are packed row-major), or select columns "
                 "with e[:, j]",
    "max": _COMPARE, "min": _COMPARE, "argmax": _COMPARE, "argmin": _COMPARE, "sort": _COMPARE,
    "argsort": _COMPARE, "clip": _COMPARE,
    "std": "compute sum(x) and sum(x * x) encrypted (CKKS/BFV) and finish on the key holder",
    "var": "compute sum(x) and sum(x * x) encrypted (CKKS/BFV) and finish on the key holder",
    "astype": "the scheme fixes the encoding: CKKS encrypts floats, BFV integers, Paillier fixed point",
    "tolist": "decrypt first: ctx.decrypt(e).tolist()",
    "item": "decrypt first: ctx.decrypt(e).item()",
}


def positions(vec: Any, key: Any) -> np.ndarray:
    """Flat positions ``vec[key]`` selects, shaped like the result."""
    if vec.size > MAX_INDEX_VALUES:
        raise ParameterError(
            f"{vec.scheme}: indexing builds an index of every value; this vector has {vec.size} "
            f"(limit {MAX_INDEX_VALUES}). Encrypt the parts you need as separate vectors.")
    grid = np.arange(vec.size, dtype=np.int64).reshape(vec.shape)
    try:
        sel = np.asarray(grid[key])
    except IndexError as e:
        if "out of bounds" in str(e) or "too many indices" in str(e):
            raise ShapeMismatchError(f"{vec.scheme}: index {key!r} does not fit an encrypted array of "
                                     f"shape {vec.shape}: {e}.") from e
        raise ParameterError(f"{vec.scheme}: cannot index an encrypted array with {key!r} ({e}).") from e
    except (TypeError, ValueError) as e:
        raise ParameterError(f"{vec.scheme}: cannot index an encrypted array with {key!r} ({e}); use "
                             f"ints, slices, lists of ints or boolean masks, as with numpy.") from e
    if sel.size == 0:
        raise ShapeMismatchError(f"{vec.scheme}: index {key!r} selects no value of shape {vec.shape}; "
                                 f"an encrypted vector holds at least one value.")
    return sel


def whole_chunks(vec: Any, positions: np.ndarray) -> list[Any] | None:
    """The chunks that hold exactly ``positions`` in order, or None if they are not whole chunks."""
    s = int(vec.context.slot_count)
    if s < 1 or len(vec.chunks) != -(-vec.size // s):
        return None  # not the plain row-major packing (e.g. a reduced Paillier sum)
    last = len(vec.chunks) - 1
    last_len = vec.size - last * s
    out = []
    for start in range(0, positions.size, s):
        seg = positions[start:start + s]
        first = int(seg[0])
        c = first // s
        if first % s or seg.size != (s if c < last else last_len):
            return None
        if seg[-1] - first != seg.size - 1 or not np.array_equal(seg, np.arange(first, first + seg.size)):
            return None
        out.append(vec.chunks[c])
    return out


def select(vec: Any, positions: np.ndarray, shape: tuple[int, ...]) -> Any:
    """The vector of the values at flat ``positions`` (whole chunks, else CKKS rotations)."""
    if positions.size == vec.size and np.array_equal(positions, np.arange(vec.size)):
        return type(vec)(vec.context, vec.chunks, shape, vec.meta)
    if vec.meta.get("columns"):
        return select_column(vec, positions, shape)
    chunks = whole_chunks(vec, positions)
    if chunks is not None:
        return type(vec)(vec.context, chunks, shape, vec.meta)
    if "rotate" in vec.context.capabilities and not vec.meta.get("columns"):
        return gather(vec, positions, shape)
    s = vec.context.slot_count
    raise vec.context._unsupported(
        f"this selection ({positions.size} of {vec.size} values, not whole ciphertexts)",
        f"It packs {s} values per ciphertext and cannot move values between slots, so it can select "
        f"whole ciphertexts only: flat ranges that start at a multiple of {s} and end at one or at the "
        f"end, e.g. e.reshape(-1)[{s}:{min(2 * s, vec.size)}]. Otherwise decrypt and re-encrypt the "
        f"part you need, encrypt columns as separate vectors (he_ml.ml.encrypt_features), or use "
        f"CKKS, which selects anything with rotations.")


def select_column(vec: Any, positions: np.ndarray, shape: tuple[int, ...]) -> Any:
    """A whole column of a column-stacked vector (``meta["columns"] = k``, shape ``(n, k)``).

    Such a vector (e.g. per-class scores of a batched model) keeps each column in its own block
    of ciphertexts, so ``e[:, j]`` is free: the block of column j, an ordinary vector of ``n``
    values. Other selections raise.
    """
    k = int(vec.meta["columns"])
    n = vec.shape[0]
    per = len(vec.chunks) // k
    col = int(positions[0] % k)
    if positions.size == n and np.array_equal(positions, np.arange(n) * k + col):
        meta = {key: v for key, v in vec.meta.items() if key != "columns"}
        return type(vec)(vec.context, vec.chunks[col * per:(col + 1) * per], shape, meta)
    raise vec.context._unsupported(
        "this selection of a column-stacked vector",
        f"Its {k} columns live in separate ciphertexts: select one whole column (e[:, j]) and work on "
        f"that vector.")


def gather(vec: Any, positions: np.ndarray, shape: tuple[int, ...]) -> Any:
    """CKKS: move each selected value to its slot with one rotation per distinct shift, then mask."""
    ctx = vec.context
    s = int(ctx.slot_count)
    k = np.arange(positions.size, dtype=np.int64)
    src_chunk, src_slot = positions // s, positions % s
    dst_chunk, dst_slot = k // s, k % s
    shift = (src_slot - dst_slot) % s  # rotating left by `shift` moves src_slot to dst_slot
    keys = np.stack([dst_chunk, src_chunk, shift], axis=1)
    groups = np.unique(keys, axis=0)
    if len(groups) > MAX_GATHER_SHIFTS:
        raise ctx._unsupported(
            f"this selection: it needs {len(groups)} rotations (one per distinct shift; limit "
            f"{MAX_GATHER_SHIFTS})",
            "Select contiguous ranges (e[i], e[a:b]) or fewer rows, or lay the data out so that the "
            "values you select together are contiguous (e.g. encrypt the transpose, or encrypt each "
            "column separately with he_ml.ml.encrypt_features).")
    out_chunks: list[Any] = []
    meta: dict[str, Any] = dict(vec.meta)
    for o in range(int(dst_chunk[-1]) + 1):
        acc = None
        for _, c, r in groups[groups[:, 0] == o]:
            hit = (dst_chunk == o) & (src_chunk == c) & (shift == r)
            part = type(vec)(ctx, [vec.chunks[int(c)]], (s,), dict(vec.meta))
            if r:
                part = ctx._op_rotate(part, int(r))
            mask = np.zeros(s)
            mask[dst_slot[hit]] = 1.0
            part = ctx._op_mul_plain(part, mask)
            acc = part if acc is None else ctx._op_add(acc, part)
        out_chunks.append(acc.chunks[0])
        meta = acc.meta
    return type(vec)(ctx, out_chunks, shape, meta)


def sum_axis0_rotations(vec: Any) -> Any:
    """CKKS fast path of ``sum(axis=0)`` in one ciphertext: log2(rows) rotate-and-add steps.

    Rows are blocks of ``inner`` consecutive slots and the slots past ``size`` are zero, so
    after adding the vector rotated by ``inner``, ``2 inner``, ``4 inner``, ... the first
    ``inner`` slots hold the column sums as long as no rotation wraps a row back in
    (``next_pow2(rows) * inner <= slot_count``); a mask keeps those slots (one level).
    Returns None when it does not apply.
    """
    ctx = vec.context
    s = int(ctx.slot_count)
    rows = vec.shape[0]
    inner = vec.size // rows
    if ("rotate" not in ctx.capabilities or vec.meta.get("columns") or len(vec.chunks) != 1
            or (1 << max(rows - 1, 0).bit_length()) * inner > s):
        return None
    acc = type(vec)(ctx, vec.chunks, (s,), dict(vec.meta))
    step = inner
    while step < rows * inner:
        acc = ctx._op_add(acc, ctx._op_rotate(acc, step))
        step *= 2
    mask = np.zeros(s)
    mask[:inner] = 1.0
    acc = ctx._op_mul_plain(acc, mask)
    return type(vec)(ctx, acc.chunks, vec.shape[1:], acc.meta)


def to_pandas(vec: Any, context: Any, like: Any = None) -> Any:
    """Implementation of `EncryptedVector.to_pandas`."""
    import pandas as pd

    labels = vec.labels
    if like is not None:
        kind = pandas_kind(like)
        if kind is None:
            raise ParameterError(f"like must be a pandas DataFrame or Series; got {type(like).__name__}.")
        labels = ({"kind": "frame", "index": like.index, "columns": like.columns} if kind == "frame"
                  else {"kind": "series", "index": like.index, "name": like.name})
    if labels is None:
        raise ParameterError(
            "this encrypted vector has no pandas labels (it was not made by EncryptedVector.from_pandas, "
            "or a reshape or a whole-array sum() dropped them); pass like=<a DataFrame/Series with the "
            "labels>, or use "
            "ctx.decrypt(vector) for a numpy array.")
    values = context.decrypt(vec)
    if labels["kind"] == "frame":
        want = (len(labels["index"]), len(labels["columns"]))
        if values.shape != want:
            raise ShapeMismatchError(f"the labels describe a {want} frame but the vector decrypts to shape "
                                     f"{values.shape}; pass like= with matching labels.")
        return pd.DataFrame(values, index=labels["index"], columns=labels["columns"])
    if values.shape == () and labels["kind"] == "scalar":  # pragma: no cover - not produced
        return values
    flat = values.reshape(-1)
    if flat.size != len(labels["index"]):
        raise ShapeMismatchError(f"the labels describe {len(labels['index'])} values but the vector decrypts "
                                 f"to shape {values.shape}; pass like= with matching labels.")
    return pd.Series(flat, index=labels["index"], name=labels["name"])


def pandas_kind(obj: Any) -> str | None:
    """"frame", "series" or None, without importing pandas unless it is already loaded."""
    import sys

    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if isinstance(obj, pd.DataFrame):
        return "frame"
    if isinstance(obj, pd.Series):
        return "series"
    return None


def labels_of(obj: Any) -> dict[str, Any] | None:
    """The labels of a pandas DataFrame/Series (as `EncryptedVector.labels` stores them), else None."""
    kind = pandas_kind(obj)
    if kind == "frame":
        return {"kind": "frame", "index": obj.index, "columns": obj.columns}
    if kind == "series":
        return {"kind": "series", "index": obj.index, "name": obj.name}
    return None


def labels_fit(labels: dict[str, Any], shape: tuple[int, ...]) -> bool:
    """Whether ``labels`` describe an array of ``shape`` (a frame (n, k), a series (n,))."""
    if labels["kind"] == "frame":
        return tuple(shape) == (len(labels["index"]), len(labels["columns"]))
    return tuple(shape) == (len(labels["index"]),)


def _same_name(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 - names pandas cannot compare are different names
        return False


def _describe(index: Any) -> str:
    items = list(index[:4])
    return f"{items}{' ...' if len(index) > 4 else ''} ({len(index)} labels)"


def combine_labels(left: dict[str, Any] | None, right: dict[str, Any] | None, shape: tuple[int, ...], *,
                   scheme: str, op: str) -> dict[str, Any] | None:
    """Labels of an element-wise result of shape ``shape`` (the encrypted operand's shape), as pandas gives them.

    An unlabelled operand (numpy array, scalar, plain vector) takes the other side's labels;
    two labelled operands must agree exactly -- same kind, the same index (and columns) in
    the same order -- and a Series result keeps its name only when both names agree (pandas'
    rule). pandas would *align* differing labels; he_ml raises `LabelMismatchError` instead,
    because the ciphertext slots are in a fixed order.

    Raises
    ------
    LabelMismatchError
        The labels differ (kind, index, columns), or the labelled operand's labels do not
        describe ``shape``.
    """
    if left is None and right is None:
        return None
    align = ("Align them first on the plaintext side, e.g. `other = other.reindex_like(df)` or "
             "`df, other = df.align(other, join=\"inner\")` before encrypting, or pass other.to_numpy() "
             "to combine by position")
    if left is None or right is None:
        labels = left if right is None else right
        if not labels_fit(labels, shape):
            what = "DataFrame" if labels["kind"] == "frame" else "Series"
            described = ((len(labels["index"]), len(labels["columns"])) if labels["kind"] == "frame"
                         else (len(labels["index"]),))
            raise LabelMismatchError(
                f"{scheme}: {op} of an encrypted array of shape {tuple(shape)} with a {what} whose labels "
                f"describe shape {described}; "
                f"pandas would refuse to combine them. Reshape the encrypted vector to the {what}'s shape "
                f"(e.reshape(...)), or pass the plaintext operand as .to_numpy().")
        return labels
    if left["kind"] != right["kind"]:
        raise LabelMismatchError(
            f"{scheme}: {op} of a {left['kind']} and a {right['kind']}: pandas would broadcast the Series "
            f"along the DataFrame's columns, aligning labels; encrypted vectors do not broadcast. Build "
            f"operands of the same kind and labels, or pass the plaintext operand as .to_numpy().")
    axes = ("index", "columns") if left["kind"] == "frame" else ("index",)
    for axis in axes:
        a, b = left[axis], right[axis]
        if not a.equals(b):
            raise LabelMismatchError(
                f"{scheme}: {op} of operands whose {axis} labels differ: {_describe(a)} vs {_describe(b)}. "
                f"pandas would align them by label; he_ml combines ciphertext slots by position and refuses "
                f"rather than pair the wrong values. {align}.")
    if left["kind"] == "frame":
        return dict(left)
    return {"kind": "series", "index": left["index"],
            "name": left["name"] if _same_name(left["name"], right["name"]) else None}


def _is_basic(key: Any) -> bool:
    return isinstance(key, (int, np.integer, slice)) and not isinstance(key, (bool, np.bool_))


def select_labels(labels: dict[str, Any], key: Any) -> dict[str, Any] | None:
    """The labels of ``vector[key]`` (positional, like ``DataFrame.iloc``); None when they do not apply.

    Rows and columns are selected with ints, slices, lists of ints or boolean masks. Keys
    numpy and ``iloc`` read differently (two arrays, which numpy pairs up element by element
    while ``iloc`` takes the outer product), ``Ellipsis``, ``None`` and 2-D masks give an
    unlabelled result (``to_pandas(like=...)`` labels it).
    """
    parts = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis or k is None for k in parts):
        return None
    frame = labels["kind"] == "frame"
    if len(parts) > (2 if frame else 1):
        return None
    row_key = parts[0]
    col_key = parts[1] if len(parts) == 2 else slice(None)
    if frame and not (_is_basic(row_key) or _is_basic(col_key)):
        return None
    try:
        rows = labels["index"][row_key]
        cols = labels["columns"][col_key] if frame else None
    except Exception:  # noqa: BLE001 - any key pandas cannot apply: drop the labels
        return None
    row_one = isinstance(row_key, (int, np.integer))
    if not frame:
        return None if row_one else {"kind": "series", "index": rows, "name": labels["name"]}
    col_one = isinstance(col_key, (int, np.integer))
    if row_one and col_one:
        return None
    if row_one:  # one row -> a Series over the columns, named by the row
        return {"kind": "series", "index": cols, "name": rows}
    if col_one:  # one column -> a Series over the rows, named by the column
        return {"kind": "series", "index": rows, "name": cols}
    return {"kind": "frame", "index": rows, "columns": cols}
