"""Ray backend: server-side sums and batch encrypted inference across a cluster.

Two jobs that outgrow one machine, run on an existing Ray cluster (``ray start``):

* :func:`tree_sum` -- the **server** sums encrypted aggregator blobs (client updates from
  :class:`he_ml.aggregation.GradientAggregator`) read from files, Ray object refs or a Ray
  Dataset, as a tree reduction: leaf tasks stream ``batch_size`` blobs each into a
  partial total (one blob in memory at a time), combine tasks add ``fan_in`` partials, until
  one total is left. Every task runs ``GradientAggregator(public_context)``; nothing on the
  cluster can decrypt.
* :func:`encrypt_dataset` / :func:`score_dataset` / :func:`decrypt_scores` -- batch encrypted
  inference over a large Ray Dataset: ``map_batches`` of :func:`he_ml.ml.encrypt_features`
  under the public key (client side), ``map_batches`` of an he_ml model's
  ``decision_function`` (server side), decryption by the key holder, rows back in id order.

Exactly-once accounting
-----------------------
Every input blob has an integer id (its position in a list of paths or refs, or the
``id_column`` of a Dataset). Every partial total carries the set of ids it summed (as
disjoint half-open ranges) and the number of client updates in it. Combining two partials
whose id sets overlap raises (a blob would be counted twice); the final total must cover
exactly the expected ids (none lost) and its blob's update count must equal the sum of the
counts of its inputs. Ray re-executes a task whose worker process or node died (up to
``max_retries`` times); a re-executed task recomputes its partial from its inputs, and only
one result per task is ever consumed, so a retry neither loses nor double-counts a blob --
and if anything ever did, the id check would refuse the total instead of returning a wrong
sum.

Memory per node
---------------
A leaf task holds its running total plus one blob (files and refs are read one at a time;
a Dataset block is read whole, so keep blocks moderate with ``ds.repartition``); a combine
task holds its ``fan_in`` input partials (Ray deserializes them before the task starts) plus
its running total. With blobs of ``B`` bytes, one task's private memory is at most about
``(fan_in + 6) B`` plus a small fixed cost: the ``fan_in`` inputs, the running total, the
first blob parsed (``GradientAggregator`` keeps it for layout checks), the blob being added
while it is parsed (2 B), and the result bytes with Ray's pickled copy of them (2 B) --
independent of the number of blobs. A node runs one task per CPU. The driver keeps at most ``max_in_flight`` task results and
partials in flight (so at most that many partials sit in the object stores) and never
fetches a blob except the final total. ``tests/integrations/test_ray.py`` measures the bound
on a two-node cluster for N and 4N blobs (figures in ``docs/distributed.md``).

Threat model
------------
The cluster is the (honest-but-curious) aggregation server: it sees the public context,
ciphertexts and the public blob metadata (shapes, counts, bounds, ids), never a plaintext
value or the secret key -- :func:`tree_sum` and :func:`score_dataset` refuse a context that
holds one. Malicious workers could drop or alter ciphertexts; the id accounting detects
lost or duplicated blobs but not a worker that substitutes a valid encryption of something
else (authenticity is out of scope, as for :class:`~he_ml.aggregation.GradientAggregator`).

Requires ``pip install '.[ray]'`` (``ray[data]``); only this module imports ``ray``.

Examples
--------
On the head node ``ray start --head --port=6379``, on every other node
``ray start --address=<head-ip>:6379``; then, in a script guarded by
``if __name__ == "__main__":``::

    import ray, he_ml
    from he_ml.integrations.ray import tree_sum
    ray.init(address="auto")
    result = tree_sum(public_ctx, ["updates/0.blob", "updates/1.blob", ...])
    mean = key_holder.decrypt(result.blob, count=result.count)
"""
from __future__ import annotations

import bisect
import hashlib
import math
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..aggregation import GradientAggregator
from ..errors import HEError, ParameterError, SecretKeyMissingError, ShapeMismatchError
from ..schemes import load_context
from ..schemes.base import SchemeContext

try:
    import ray
    from ray.exceptions import RayError, RayTaskError
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "he_ml.integrations.ray needs Ray, which is not installed. Install the extra with "
        "`pip install '.[ray]'` (ray[data]>=2.9,<3) from a clone of he_ml."
    ) from e

__all__ = ["IdRanges", "TreeSumResult", "ClusterError", "LocalCluster", "tree_sum", "encrypt_dataset", "score_dataset",
           "decrypt_scores", "DEFAULT_MAX_BLOB_BYTES"]

#: Largest blob a leaf reads from a file or ref (bytes); larger inputs are refused before reading.
DEFAULT_MAX_BLOB_BYTES = 1 << 30


class ClusterError(HEError, RuntimeError):
    """The cluster could not finish a job (a task failed more than ``max_retries`` times)."""


# ---------------------------------------------------------------------------- id accounting
class IdRanges:
    """A set of non-negative integer ids stored as sorted, disjoint half-open ranges.

    Consecutive ids (the usual case: positions in a list) take one range whatever their
    number, so partials carry their accounting in a few bytes.

    Parameters
    ----------
    ranges : iterable of (start, stop) pairs, optional
        Must be sorted and pairwise disjoint; adjacent ranges are merged.

    Raises
    ------
    ParameterError
        If a range is empty, negative, unsorted or overlapping.
    """

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        merged: list[tuple[int, int]] = []
        for start, stop in ranges:
            start, stop = int(start), int(stop)
            if start < 0 or stop <= start:
                raise ParameterError(f"id range must satisfy 0 <= start < stop; got [{start}, {stop}).")
            if merged and start < merged[-1][1]:
                raise ParameterError(f"id ranges must be sorted and disjoint; [{start}, {stop}) overlaps "
                                     f"[{merged[-1][0]}, {merged[-1][1]}).")
            if merged and start == merged[-1][1]:
                merged[-1] = (merged[-1][0], stop)
            else:
                merged.append((start, stop))
        self.ranges = tuple(merged)

    @classmethod
    def from_ids(cls, ids: Iterable[int]) -> "IdRanges":
        """Ids in any order -> ranges.

        Raises
        ------
        ParameterError
            If an id repeats or is negative.
        """
        arr = np.sort(np.asarray(list(ids), dtype=np.int64))
        if arr.size == 0:
            return cls()
        dup = np.flatnonzero(np.diff(arr) == 0)
        if dup.size:
            raise ParameterError(f"blob id {int(arr[dup[0]])} appears more than once; every blob needs a "
                                 f"unique id (it would be summed twice).")
        breaks = np.flatnonzero(np.diff(arr) != 1) + 1
        starts = np.concatenate(([0], breaks))
        stops = np.concatenate((breaks, [arr.size]))
        return cls((int(arr[a]), int(arr[b - 1]) + 1) for a, b in zip(starts, stops))

    def __len__(self) -> int:
        return sum(b - a for a, b in self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdRanges) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __contains__(self, i: int) -> bool:
        k = bisect.bisect_right(self.ranges, (int(i), math.inf)) - 1
        return k >= 0 and self.ranges[k][0] <= i < self.ranges[k][1]

    def __repr__(self) -> str:
        shown = ", ".join(f"[{a}, {b})" for a, b in self.ranges[:4])
        more = f", ... ({len(self.ranges)} ranges)" if len(self.ranges) > 4 else ""
        return f"IdRanges({shown}{more}; {len(self)} ids)"

    def disjoint_union(self, other: "IdRanges") -> "IdRanges":
        """Union of two id sets that must not share an id.

        Raises
        ------
        ParameterError
            If an id is in both (that blob would be counted twice); the message names it.
        """
        both = sorted(self.ranges + other.ranges)
        for (a0, b0), (a1, b1) in zip(both, both[1:]):
            if a1 < b0:
                raise ParameterError(
                    f"blob id {a1} is in two partial totals; summing them would count it twice. This is "
                    f"an accounting bug or a duplicated input: give every blob one unique id.")
        return IdRanges(both)

    def missing_from(self, expected: "IdRanges") -> list[int]:
        """Up to 5 ids of ``expected`` that are not in this set."""
        out: list[int] = []
        for a, b in expected.ranges:
            for i in range(a, b):
                if i not in self:
                    out.append(i)
                    if len(out) == 5:
                        return out
        return out


@dataclass(frozen=True)
class TreeSumResult:
    """The total of a distributed sum and its accounting.

    Attributes
    ----------
    blob : bytes
        The total blob; decrypt it with the key holder's ``GradientAggregator.decrypt``.
    ids : IdRanges
        The ids of the input blobs summed into ``blob`` (each exactly once).
    count : int
        Client updates in ``blob`` (``GradientAggregator.count_of(blob)``).
    n_blobs : int
        Input blobs summed (``len(ids)``; larger than 1 per blob when inputs were partial totals
        is reflected in ``count``, not here).
    tasks : int
        Ray tasks submitted (leaves + combines), not counting Ray's own retries.
    nodes : int
        Distinct nodes on which leaf tasks ran.
    cpu_seconds : float
        CPU time the leaf and combine tasks spent summing (process time inside the tasks,
        excluding Ray's scheduling and transfers): the work a cluster must provide, whatever
        the wall-clock time on a loaded machine.
    """

    blob: bytes = field(repr=False)
    ids: IdRanges
    count: int
    n_blobs: int
    tasks: int
    nodes: int
    cpu_seconds: float = 0.0


# ---------------------------------------------------------------------------- worker side
_CONTEXTS: dict[bytes, SchemeContext] = {}


def _public_context_bytes(context: SchemeContext | bytes, what: str) -> bytes:
    """Public context bytes; refuses a context (or bytes) that holds a secret key."""
    ctx = load_context(bytes(context)) if isinstance(context, (bytes, bytearray, memoryview)) else context
    if not isinstance(ctx, SchemeContext):
        raise ParameterError(f"{what} must be an he_ml context or its bytes; got {type(context).__name__}.")
    if ctx.has_secret_key:
        raise ParameterError(
            f"{what} holds the secret key; the cluster is the untrusted server and must never get it. Pass "
            f"ctx.public_context() (the key holder keeps ctx).")
    return ctx.to_bytes(include_secret_key=False)


def _context(ctx_bytes: bytes) -> SchemeContext:
    """Load a public context once per worker process."""
    key = hashlib.sha256(ctx_bytes).digest()
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        if len(_CONTEXTS) > 8:
            _CONTEXTS.clear()
        ctx = _CONTEXTS[key] = load_context(ctx_bytes)
    return ctx


def _read_limited(path: str, limit: int) -> bytes:
    """A file's bytes, refusing files larger than ``limit`` before reading them whole."""
    import stat

    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode):
            too_big = st.st_size > limit  # refused below, before anything is read
            data = b"" if too_big else f.read()
        else:  # a pipe or device: read in chunks, never more than limit + 1 bytes
            parts, n = [], 0
            while n <= limit:
                chunk = f.read(min(1 << 20, limit + 1 - n))
                if not chunk:
                    break
                parts.append(chunk)
                n += len(chunk)
            data = b"".join(parts)
            too_big = n > limit
    if too_big:
        raise ParameterError(
            f"blob file {path!r} is larger than max_blob_bytes={limit}; raise max_blob_bytes if it is "
            f"a genuine blob, or remove the file.")
    return data


def _leaf(ctx_bytes: bytes, kind: str, items: list, options: dict) -> tuple[bytes, tuple, int, tuple, float]:
    """Sum one batch of inputs, one blob in memory at a time.

    Returns (partial blob, id ranges, update count, node ids, CPU seconds).
    """
    import time

    cpu0 = time.process_time()
    agg = GradientAggregator(_context(ctx_bytes), **options["aggregator"])
    limit = options["max_blob_bytes"]
    ids: list[int] = []
    for entry in items:
        if kind == "block":  # a Ray Dataset block (pyarrow table): rows of (id, blob)
            table = ray.get(entry)
            col_ids = table.column(options["id_column"]).to_pylist()
            col_blobs = table.column(options["column"])
            for j, i in enumerate(col_ids):
                _absorb(agg, col_blobs[j].as_py(), i, limit)
                ids.append(int(i))
            del table
            continue
        i, src = entry
        if kind == "path":
            blob = _read_limited(src, limit)
        else:  # "ref": a one-element list, so Ray does not resolve every ref of the batch up front
            blob = ray.get(src[0])
        _absorb(agg, blob, i, limit)
        ids.append(int(i))
        del blob
    node = ray.get_runtime_context().get_node_id()
    blob = agg.result()
    return blob, IdRanges.from_ids(ids).ranges, agg.count, (node,), time.process_time() - cpu0


def _absorb(agg: GradientAggregator, blob: Any, i: int, limit: int) -> None:
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ParameterError(f"blob {i} must be bytes (a GradientAggregator blob); got {type(blob).__name__}.")
    if len(blob) > limit:
        raise ParameterError(f"blob {i} has {len(blob)} bytes, more than max_blob_bytes={limit}.")
    try:
        agg.add(bytes(blob))
    except HEError as e:
        raise type(e)(f"blob id {i}: {e}") from None


def _combine(ctx_bytes: bytes, options: dict, *partials: tuple) -> tuple[bytes, tuple, int, tuple, float]:
    """Add partial totals whose id sets must be disjoint (same tuple layout as `_leaf`)."""
    import time

    cpu0 = time.process_time()
    cpu = 0.0
    agg = GradientAggregator(_context(ctx_bytes), **options["aggregator"])
    ids = IdRanges()
    count = 0
    nodes: set[str] = set()
    for blob, ranges, c, where, seconds in partials:
        ids = ids.disjoint_union(IdRanges(ranges))
        agg.add(blob)
        count += c
        nodes.update(where)
        cpu += seconds
    if agg.count != count:  # pragma: no cover - GradientAggregator keeps counts itself
        raise ParameterError(f"partial counts disagree: blobs hold {agg.count} updates, accounting says {count}.")
    blob = agg.result()
    return blob, ids.ranges, count, tuple(sorted(nodes)), cpu + time.process_time() - cpu0


_REMOTES: dict[str, Any] = {}


def _remote(name: str, max_retries: int) -> Any:
    key = f"{name}:{max_retries}"
    if key not in _REMOTES:
        fn = {"leaf": _leaf, "combine": _combine}[name]
        # retry_exceptions=False: an he_ml error (bad blob) is deterministic and must not be
        # retried; worker/node deaths are retried up to max_retries.
        _REMOTES[key] = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(fn)
    return _REMOTES[key]


# ---------------------------------------------------------------------------- driver side
def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} must be an int >= {low}; got {value!r}.")
    return int(value)


def _require_ray() -> None:
    if not ray.is_initialized():
        raise ParameterError(
            "Ray is not initialized; call ray.init(address='auto') (or ray.init() for a local cluster) "
            "before using he_ml.integrations.ray.")


def _get(refs: Any) -> Any:
    """ray.get that re-raises he_ml errors as themselves and cluster failures as ClusterError."""
    try:
        return ray.get(refs)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, HEError):
            raise cause from None
        if isinstance(cause, RayError) or "could not be computed" in str(e):
            # a task whose input task died for good (worker or node lost more than max_retries times)
            raise ClusterError(
                f"the cluster could not finish a task even after retries: {str(e).splitlines()[-1]} Check that "
                f"the nodes are up (ray status) and retry, or raise max_retries.") from e
        raise ClusterError(f"a Ray task failed: {e}. Check the cluster logs (ray status).") from e
    except RayError as e:
        raise ClusterError(
            f"the cluster could not finish a task even after retries ({type(e).__name__}: {e}). Check that "
            f"the nodes are up (ray status) and retry, or raise max_retries.") from e


def _sources(source: Any, column: str, id_column: str) -> tuple[str, list, IdRanges | None]:
    """Classify the input -> (kind, leaf items, expected ids or None when known only at the end)."""
    if hasattr(source, "to_arrow_refs") and hasattr(source, "schema"):  # ray.data.Dataset
        names = source.schema().names
        missing = [c for c in (column, id_column) if c not in names]
        if missing:
            raise ShapeMismatchError(
                f"the dataset needs columns {column!r} (blob bytes) and {id_column!r} (unique int ids); missing "
                f"{missing}, has {names}. Pass column=/id_column= or add them (ds.add_column).")
        return "block", list(source.to_arrow_refs()), None  # callers pass a materialized dataset
    if isinstance(source, (bytes, bytearray, str, os.PathLike)) or not isinstance(source, Sequence):
        raise ParameterError(
            f"source must be a list of blob file paths, a list of Ray ObjectRefs of blobs, or a ray.data.Dataset; "
            f"got {type(source).__name__}. Wrap a single item in a list.")
    if len(source) == 0:
        raise ParameterError("source is empty; pass at least one blob.")
    if all(isinstance(s, ray.ObjectRef) for s in source):
        return "ref", [(i, [r]) for i, r in enumerate(source)], IdRanges([(0, len(source))])
    if all(isinstance(s, (str, os.PathLike)) for s in source):
        return "path", [(i, os.fspath(p)) for i, p in enumerate(source)], IdRanges([(0, len(source))])
    kinds = sorted({type(s).__name__ for s in source})
    raise ParameterError(f"source must hold only paths or only ObjectRefs; got a mix of {kinds}.")


def tree_sum(public_context: SchemeContext | bytes, source: Any, *, batch_size: int = 64, fan_in: int = 8,
             max_in_flight: int | None = None, max_retries: int = 3, column: str = "blob",
             id_column: str = "id", max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
             **aggregator_options: Any) -> TreeSumResult:
    """Sum encrypted aggregator blobs on a Ray cluster as a streaming tree reduction.

    Parameters
    ----------
    public_context : SchemeContext or bytes
        The public context the blobs were encrypted under (no secret key: refused otherwise).
    source : list of str/PathLike, list of ray.ObjectRef, or ray.data.Dataset
        Blob files (every node must see the paths, e.g. shared storage), refs of blob bytes,
        or a Dataset with a binary ``column`` and a unique integer ``id_column`` (one Ray task per
        block). List inputs get the ids ``0..len-1``.
    batch_size : int, default 64
        Files or refs per leaf task (leaf memory: the running total plus one blob).
    fan_in : int, default 8
        Partials added per combine task (tree depth ``ceil(log_fan_in(leaves))``).
    max_in_flight : int, optional
        Tasks submitted but not yet combined; default ``2 * cluster CPUs + fan_in``. Bounds the
        driver's and the object store's memory.
    max_retries : int, default 3
        Times Ray re-executes a task whose worker process or node died.
    column, id_column : str
        Dataset columns holding the blob bytes and their ids.
    max_blob_bytes : int
        Largest blob accepted (checked before a file is read whole).
    **aggregator_options
        ``max_clients``, ``max_value``, ``precision_bits``, ``dp``: as for
        :class:`~he_ml.aggregation.GradientAggregator` on the server.

    Returns
    -------
    TreeSumResult
        ``.blob`` (the total), ``.ids``, ``.count``; the key holder runs
        ``GradientAggregator(ctx).decrypt(result.blob, count=result.count)``.

    Raises
    ------
    ParameterError
        If Ray is not initialized, the context holds a secret key, an option is out of range, the
        source is empty or of the wrong type, ids repeat, or a blob is too large.
    ShapeMismatchError, ContextMismatchError, InvalidCiphertextError, EncodingOverflowError
        As for ``GradientAggregator.add``; the message names the blob id.
    ClusterError
        If a task still failed after ``max_retries`` re-executions, or accounting found a lost blob.

    Notes
    -----
    Exactly-once: see the module docstring. The result's ids equal the expected ids
    (``0..len(source)-1``, or the dataset's ids), checked before returning.
    """
    _require_ray()
    ctx_bytes = _public_context_bytes(public_context, "public_context")
    batch_size = _check_int(batch_size, "batch_size", 1)
    fan_in = _check_int(fan_in, "fan_in", 2)
    max_retries = _check_int(max_retries, "max_retries", 0)
    max_blob_bytes = _check_int(max_blob_bytes, "max_blob_bytes", 1)
    unknown = set(aggregator_options) - {"max_clients", "max_value", "precision_bits", "dp"}
    if unknown:
        raise ParameterError(f"unknown option(s) {sorted(unknown)}; tree_sum accepts max_clients, max_value, "
                             f"precision_bits and dp for the server's GradientAggregator.")
    # Validate the aggregator options once, on the driver, with the real context.
    GradientAggregator(_context(ctx_bytes), **aggregator_options)
    if max_in_flight is None:
        max_in_flight = 2 * max(1, int(ray.cluster_resources().get("CPU", 1))) + fan_in
    max_in_flight = _check_int(max_in_flight, "max_in_flight", fan_in)

    if hasattr(source, "to_arrow_refs") and hasattr(source, "materialize"):
        source = source.materialize()  # run the pipeline once: blocks and row count from the same run
    kind, items, expected = _sources(source, column, id_column)
    options = {"aggregator": aggregator_options, "max_blob_bytes": max_blob_bytes, "column": column,
               "id_column": id_column}
    ctx_ref = ray.put(ctx_bytes)
    leaf, combine = _remote("leaf", max_retries), _remote("combine", max_retries)
    per_leaf = 1 if kind == "block" else batch_size
    batches = (items[k:k + per_leaf] for k in range(0, len(items), per_leaf))

    in_flight: list = []  # submitted, not finished
    ready: deque = deque()  # finished refs waiting to be combined
    tasks = 0
    exhausted = False
    while True:
        while not exhausted and len(in_flight) + len(ready) < max_in_flight:
            batch = next(batches, None)
            if batch is None:
                exhausted = True
                break
            in_flight.append(leaf.remote(ctx_ref, kind, batch, options))
            tasks += 1
        if not in_flight and exhausted and len(ready) <= 1:
            break
        if in_flight:
            done, in_flight = ray.wait(in_flight, num_returns=1)
            ready.extend(done)
        # Combine as soon as fan_in partials are ready -- or, at the end, whatever is left.
        while len(ready) >= fan_in or (exhausted and not in_flight and len(ready) > 1):
            group = [ready.popleft() for _ in range(min(fan_in, len(ready)))]
            in_flight.append(combine.remote(ctx_ref, options, *group))
            tasks += 1
    blob, ranges, count, nodes, cpu_seconds = _get(ready.popleft())
    ids = IdRanges(ranges)
    if expected is None:
        expected_n = source.count()
        if len(ids) != expected_n:
            raise ClusterError(f"the total covers {len(ids)} blob ids but the dataset has {expected_n} rows; "
                               f"a block was lost. Retry the sum.")
    elif ids != expected:
        raise ClusterError(f"the total is missing blob ids {ids.missing_from(expected)} (of {len(expected)}); "
                           f"retry the sum.")
    if GradientAggregator.count_of(blob) != count:
        raise ClusterError(f"the total blob holds {GradientAggregator.count_of(blob)} updates but the partials "
                           f"account for {count}; retry the sum.")
    return TreeSumResult(blob=blob, ids=ids, count=count, n_blobs=len(ids), tasks=tasks, nodes=len(nodes),
                         cpu_seconds=cpu_seconds)



# ---------------------------------------------------------------------------- batch encrypted inference
def _encrypt_batch(batch: dict, ctx_bytes: bytes, feature_columns: list[str], id_column: str) -> dict:
    from ..ml import encrypt_features

    ctx = _context(ctx_bytes)
    X = np.column_stack([np.asarray(batch[c], dtype=np.float64) for c in feature_columns])
    ids = np.asarray(batch[id_column], dtype=np.int64)
    enc = encrypt_features(ctx, X)
    return {"ids": np.array([ids.tobytes()], dtype=object), "features": np.array([enc.to_bytes()], dtype=object)}


def _score_batch(batch: dict, ctx_bytes: bytes, model: Any, method: str) -> dict:
    from ..ml import EncryptedFeatures

    ctx = _context(ctx_bytes)
    scores = [getattr(model, method)(EncryptedFeatures.from_bytes(ctx, bytes(b))).to_bytes()
              for b in batch["features"]]
    return {"ids": batch["ids"], "scores": np.array(scores, dtype=object)}


def encrypt_dataset(dataset: Any, public_context: SchemeContext | bytes, feature_columns: Sequence[str], *,
                    id_column: str = "id", batch_size: int | None = None) -> Any:
    """Client side: encrypt a Ray Dataset's feature columns batch by batch (``map_batches``).

    Parameters
    ----------
    dataset : ray.data.Dataset
        Rows with the numeric ``feature_columns`` and a unique integer ``id_column``.
    public_context : SchemeContext or bytes
        Encryption needs only the public key (a secret-key context is refused: the workers
        that encrypt need not be able to decrypt).
    feature_columns : sequence of str
        Columns in the model's feature order.
    id_column : str, default "id"
    batch_size : int, optional
        Rows per encrypted batch; default: the context's slot count (one ciphertext per feature
        per batch, every slot used).

    Returns
    -------
    ray.data.Dataset
        Lazy; one row per batch with ``ids`` (int64 bytes) and ``features``
        (:meth:`he_ml.ml.EncryptedFeatures.to_bytes`).

    Raises
    ------
    ParameterError
        Secret-key context, empty ``feature_columns`` or bad ``batch_size``.
    ShapeMismatchError
        If a column is missing from the dataset.
    """
    ctx_bytes = _public_context_bytes(public_context, "public_context")
    cols = [str(c) for c in feature_columns]
    if not cols:
        raise ParameterError("feature_columns is empty; name the columns to encrypt, in the model's order.")
    names = dataset.schema().names
    missing = [c for c in [*cols, id_column] if c not in names]
    if missing:
        raise ShapeMismatchError(f"the dataset has no column(s) {missing}; it has {names}.")
    if batch_size is None:
        batch_size = int(_context(ctx_bytes).slot_count)
    batch_size = _check_int(batch_size, "batch_size", 1)
    return dataset.map_batches(_encrypt_batch, batch_size=batch_size, batch_format="numpy",
                               fn_kwargs={"ctx_bytes": ctx_bytes, "feature_columns": cols,
                                          "id_column": id_column})


def score_dataset(encrypted: Any, public_context: SchemeContext | bytes, model: Any, *,
                  method: str = "decision_function") -> Any:
    """Server side: run an he_ml model on every encrypted batch (``map_batches``).

    Parameters
    ----------
    encrypted : ray.data.Dataset
        The output of :func:`encrypt_dataset`.
    public_context : SchemeContext or bytes
        The public context the features were encrypted under (the server cannot decrypt).
    model : he_ml.ml model
        E.g. ``EncryptedLogisticRegression.from_sklearn(est)``; pickled to the workers.
    method : str, default "decision_function"
        The model method to call (``"predict_proba"`` on CKKS, ``"predict"`` for regression).

    Returns
    -------
    ray.data.Dataset
        Lazy; one row per batch with ``ids`` and ``scores`` (encrypted vector bytes).

    Raises
    ------
    ParameterError
        Secret-key context, or a model without ``method``.
    """
    ctx_bytes = _public_context_bytes(public_context, "public_context")
    if not callable(getattr(model, method, None)):
        raise ParameterError(f"model {type(model).__name__} has no method {method!r}; pass an he_ml.ml model "
                             f"and one of decision_function, predict_proba, predict.")
    return encrypted.map_batches(_score_batch, batch_size=1, batch_format="numpy",
                                 fn_kwargs={"ctx_bytes": ctx_bytes, "model": model, "method": method})


def decrypt_scores(context: SchemeContext, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Key holder: decrypt :func:`score_dataset`'s output, streaming, rows sorted by id.

    Parameters
    ----------
    context : SchemeContext
        The key holder's context (with the secret key).
    scores : ray.data.Dataset

    Returns
    -------
    ids : ndarray of int64, shape (n,)
        Sorted.
    values : ndarray of float64, shape (n,) or (n, k)
        The decrypted model outputs, row ``i`` belonging to ``ids[i]``.

    Raises
    ------
    SecretKeyMissingError
        If ``context`` holds no secret key.
    ShapeMismatchError
        If a batch's scores and ids disagree in length.
    """
    if not isinstance(context, SchemeContext) or not context.has_secret_key:
        raise SecretKeyMissingError(
            "decrypt_scores needs the key holder's context (with the secret key); got "
            f"{type(context).__name__ if not isinstance(context, SchemeContext) else 'a public context'}.")
    all_ids, all_vals = [], []
    for row in scores.iter_rows():
        ids = np.frombuffer(bytes(row["ids"]), dtype=np.int64)
        vals = np.asarray(context.decrypt(context.ciphertext_from_bytes(bytes(row["scores"]))), dtype=np.float64)
        if vals.shape[0] != ids.size:
            raise ShapeMismatchError(f"a batch holds {ids.size} ids but {vals.shape[0]} scores; re-run score_dataset.")
        all_ids.append(ids)
        all_vals.append(vals)
    if not all_ids:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ids = np.concatenate(all_ids)
    vals = np.concatenate(all_vals)
    order = np.argsort(ids, kind="stable")
    return ids[order], vals[order]

# ---------------------------------------------------------------------------- a cluster on one machine
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A real multi-node Ray cluster on this machine: one ``ray start`` process per node.

    For tests, benchmarks and trying the recipe before a real cluster. Each node is started as
    its own process group (``ray start --block``) on 127.0.0.1 with unique free ports and a
    private temp dir; :meth:`stop` ends exactly those process groups (never ``ray stop``, which
    would stop every Ray on the machine). Use it as a context manager so the nodes stop even
    when the body raises.

    Parameters
    ----------
    nodes : int, default 2
        Nodes to start (the head plus ``nodes - 1`` workers).
    cpus_per_node : int, default 1
    object_store_bytes : int, default 100_000_000
        Object store per node (Ray's minimum is about 75 MB); objects beyond it spill to disk.
    ray_bin : str, optional
        The ``ray`` executable; default: the one next to the running Python, else ``PATH``.
    timeout : float, default 90
        Seconds to wait for every node to join.

    Attributes
    ----------
    address : str
        ``"127.0.0.1:<port>"``, for ``ray.init(address=...)`` (done by :meth:`start` unless
        ``connect=False``).

    Raises
    ------
    ClusterError
        If a node does not come up within ``timeout`` (the message holds the tail of its log).

    Examples
    --------
    ::

        with LocalCluster(nodes=2) as cluster:   # ray.init(address=cluster.address) done
            result = tree_sum(public_ctx, paths)
    """

    def __init__(self, nodes: int = 2, *, cpus_per_node: int = 1, object_store_bytes: int = 100_000_000,
                 ray_bin: str | None = None, timeout: float = 90.0, connect: bool = True) -> None:
        self.nodes = _check_int(nodes, "nodes", 1)
        self.cpus_per_node = _check_int(cpus_per_node, "cpus_per_node", 1)
        self.object_store_bytes = _check_int(object_store_bytes, "object_store_bytes", 80_000_000)
        self.ray_bin = ray_bin or self._find_ray()
        self.timeout = float(timeout)
        self.connect = connect
        self.address = ""
        self.processes: list[Any] = []
        self.temp_dir = ""

    @staticmethod
    def _find_ray() -> str:
        import shutil
        import sys

        here = os.path.join(os.path.dirname(sys.executable), "ray")
        found = here if os.path.exists(here) else shutil.which("ray")
        if not found:
            raise ClusterError("the `ray` command was not found next to this Python or on PATH; install the "
                               "extra with pip install '.[ray]'.")
        return found

    def _ports(self) -> list[str]:
        return ["--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
                "--dashboard-agent-listen-port", str(_free_port()),
                "--dashboard-agent-grpc-port", str(_free_port()),
                "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port())]

    def _spawn(self, args: list[str], name: str) -> None:
        import subprocess

        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO="0")
        log = open(os.path.join(self.temp_dir, f"{name}.log"), "wb")
        try:
            proc = subprocess.Popen([self.ray_bin, "start", "--block", "--disable-usage-stats",
                                     "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus_per_node}",
                                     f"--object-store-memory={self.object_store_bytes}", *self._ports(), *args],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            log.close()
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.processes.append(proc)

    def _log_tail(self) -> str:
        tails = []
        for p in self.processes:
            try:
                with open(p.log_path, "rb") as f:
                    tails.append(f.read()[-1500:].decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(tails)

    def start(self) -> "LocalCluster":
        """Start the head, then the workers, and wait until all nodes are alive."""
        import socket
        import tempfile
        import time

        # Ray's socket paths must stay short (AF_UNIX limit), so the temp dir lives under /tmp.
        self.temp_dir = tempfile.mkdtemp(prefix="he_ml_ray_", dir="/tmp" if os.path.isdir("/tmp") else None)
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        try:
            self._spawn(["--head", f"--port={port}", f"--temp-dir={self.temp_dir}",
                         "--include-dashboard=false", f"--dashboard-port={_free_port()}",
                         f"--ray-client-server-port={_free_port()}"], "head")
            deadline = time.monotonic() + self.timeout
            while True:  # the GCS port accepts connections once the head is up
                if self.processes[0].poll() is not None:
                    raise ClusterError(f"the Ray head exited with code {self.processes[0].returncode}:\n"
                                       f"{self._log_tail()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise ClusterError(f"the Ray head did not listen on {self.address} within "
                                           f"{self.timeout:g} s:\n{self._log_tail()}") from None
                    time.sleep(0.3)
            for k in range(1, self.nodes):
                self._spawn([f"--address={self.address}"], f"worker{k}")
            if self.connect:
                # Opt in to Ray's future default now; otherwise ray.init warns (FutureWarning).
                os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
                ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
                while sum(1 for n in ray.nodes() if n.get("Alive")) < self.nodes:
                    dead = [p for p in self.processes if p.poll() is not None]
                    if dead or time.monotonic() > deadline:
                        raise ClusterError(f"only {sum(1 for n in ray.nodes() if n.get('Alive'))} of "
                                           f"{self.nodes} Ray nodes came up within {self.timeout:g} s:\n"
                                           f"{self._log_tail()}")
                    time.sleep(0.3)
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self) -> None:
        """Start one more worker node and wait until it is alive (for 1-vs-N comparisons)."""
        import time

        self.nodes += 1
        self._spawn([f"--address={self.address}"], f"worker{self.nodes - 1}")
        deadline = time.monotonic() + self.timeout
        while ray.is_initialized() and sum(1 for n in ray.nodes() if n.get("Alive")) < self.nodes:
            if time.monotonic() > deadline:
                raise ClusterError(f"the new Ray node did not join within {self.timeout:g} s:\n{self._log_tail()}")
            time.sleep(0.3)

    def pids(self) -> set[int]:
        """Process ids of every process of this cluster's nodes (their process groups)."""
        groups = {p.pid for p in self.processes}
        out = set()
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if entry.isdigit():
                try:
                    if os.getpgid(int(entry)) in groups:
                        out.add(int(entry))
                except OSError:
                    continue
        return out

    def stop(self) -> None:
        """Disconnect and end this cluster's process groups (SIGTERM, then SIGKILL after 10 s)."""
        import shutil
        import signal
        import time

        if self.connect and ray.is_initialized():
            try:
                ray.shutdown()
            except Exception:  # pragma: no cover - best effort during teardown
                pass
        for proc in reversed(self.processes):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 10
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                pass
        time.sleep(0.5)
        for proc in self.processes:
            try:  # whatever the launcher did not stop: raylet, workers, agents of this node only
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=5)
            except Exception:
                pass
        self.processes = []
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
