"""Multi-process ``sum`` for :mod:`he_ml.aggregation.aggregator`.

One piece of :mod:`he_ml.aggregation.aggregator`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.aggregator`; import it from there.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import HEError, ParameterError
from ._aggregate_validate import Rejection, _at_position

if TYPE_CHECKING:  # pragma: no cover
    from .aggregator import GradientAggregator


# ---------------------------------------------------------------------------- multi-process sum
_WORKER: GradientAggregator | None = None


def _worker_init(context_bytes: bytes, max_clients, max_value, precision_bits, dp=None,
                 allow_insecure: bool = False, on_invalid: str = "raise", layout: Any = None) -> None:
    global _WORKER
    from ..schemes import load_context
    from .aggregator import GradientAggregator

    # allow_insecure: the server process's own opt-in (its context was created or loaded with
    # it), passed to its workers; never read from a blob.
    _WORKER = GradientAggregator(load_context(context_bytes, allow_insecure=allow_insecure),
                                 max_clients=max_clients, max_value=max_value,
                                 precision_bits=precision_bits, dp=dp, on_invalid=on_invalid,
                                 layout=None if layout is None else
                                 (dict(layout) if layout and isinstance(layout[0], tuple) else layout))


def _worker_sum(start: int, blobs: list[bytes], policy: str = "raise") -> tuple[bytes | None, list[Rejection]]:
    agg = _WORKER._fresh()
    for i, blob in enumerate(blobs):
        try:
            agg._absorb(agg._parse(blob))
        except HEError as e:
            err = _at_position(e, start + i)
            if policy == "raise":
                raise err from None
            agg.rejected.append(Rejection(start + i, str(err), err))
    return (agg.result() if agg.count else None), agg.rejected


def _batches(it: Iterator[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    start = 0
    while True:
        batch = []
        for blob in it:
            batch.append(blob)
            if len(batch) == size:
                break
        if not batch:
            return
        yield start, batch
        start += len(batch)


def _parallel_sum(owner: GradientAggregator, acc: GradientAggregator, it: Iterator[bytes], processes: int,
                  batch_size: int, mp_context: str, policy: str = "raise") -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    try:
        ctx = mp.get_context(mp_context)
    except ValueError as e:
        raise ParameterError(f"mp_context must be 'spawn', 'forkserver' or 'fork'; got {mp_context!r}.") from e
    public = owner.context.to_bytes(include_secret_key=False)
    pending: deque = deque()
    with cf.ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_worker_init,
                                initargs=(public, owner.max_clients, owner.max_value,
                                          owner.precision_bits, owner.dp,
                                          bool(getattr(owner.context, "_allow_insecure", False)), "raise",
                                          owner.layout)) as pool:

        def collect(future) -> None:
            partial, rejected = future.result()
            acc.rejected.extend(rejected)
            if partial is not None:
                acc.add(partial, on_invalid="raise")  # our own workers' totals

        try:
            for start, batch in _batches(it, batch_size):
                pending.append(pool.submit(_worker_sum, start, batch, policy))
                while len(pending) >= 2 * processes:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        except BaseException:
            for f in pending:
                f.cancel()
            raise
