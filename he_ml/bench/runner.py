"""Run benchmarks: one fresh subprocess per scheme/preset, with progress events.

Why a subprocess per configuration
----------------------------------
Peak memory of SEAL (TenSEAL) and gmpy2 lives in native allocations that
:mod:`tracemalloc` does not see. The operating system does: the child records
``getrusage(RUSAGE_SELF).ru_maxrss`` (the resident-set high-water mark) after
its imports and again at the end, and the difference is the peak memory the
scheme's keys and ciphertexts added. A fresh process per configuration keeps
one scheme's keys from inflating another's figure, and a crash inside native
code costs one row of the table instead of the whole run.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import sys
import traceback
from typing import Callable, Sequence

from ..errors import HEError
from .configs import BenchConfig
from .measure import BenchSettings, Measurement, measure

__all__ = ["MEMORY_METHOD", "run_benchmarks", "ops_to_run", "ProgressCallback"]

MEMORY_METHOD = ("peak resident memory added by key generation and the benchmark, measured in a "
                 "fresh process per scheme/preset as getrusage(RUSAGE_SELF).ru_maxrss at the end "
                 "minus its value after imports (sees native SEAL/gmpy2 allocations)")

#: progress(config index, operation key or "done")
ProgressCallback = Callable[[int, str], None]


def ops_to_run(ops: set[str] | None, measurement_ops: Sequence[str]) -> list[str]:
    """Operation keys that `measure` will announce, in order (for sizing a progress bar)."""
    return [k for k in measurement_ops if ops is None or k in ops or k in ("keygen", "encrypt")]


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024  # Linux reports KiB


def _child_main(conn, config_dict: dict, settings_dict: dict, ops: list[str] | None) -> None:
    """Entry point of the benchmark subprocess: send ("op", key)*, then ("result", dict) or ("error", ...)."""
    try:
        from ..schemes import SCHEMES
        config = BenchConfig.from_dict(config_dict)
        # Import the backend (TenSEAL / phe / gmpy2) before the baseline reading, so the
        # memory figure counts keys and ciphertexts, not library code.
        importlib.import_module(SCHEMES[config.scheme][0])
        baseline = _maxrss_bytes()
        m = measure(config, BenchSettings.from_dict(settings_dict),
                    ops=None if ops is None else set(ops),
                    progress=lambda key: conn.send(("op", key)))
        peak = _maxrss_bytes()
        if baseline is not None and peak is not None:
            m.peak_memory_bytes = max(0, peak - baseline)
        conn.send(("result", m.to_dict()))
    except HEError as e:
        conn.send(("error", type(e).__name__, str(e), True))
    except BaseException as e:  # report, never hang the parent
        conn.send(("error", type(e).__name__, f"{e}\n{traceback.format_exc(limit=6)}", False))
    finally:
        conn.close()


def _run_isolated(index: int, config: BenchConfig, settings: BenchSettings, ops: set[str] | None,
                  progress: ProgressCallback | None) -> Measurement:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, name=f"he-ml-bench-{config.scheme}-{config.preset}",
                       args=(send, config.to_dict(), settings.to_dict(),
                             None if ops is None else sorted(ops)), daemon=True)
    proc.start()
    send.close()  # the parent keeps only the reading end, so EOF means the child is gone
    try:
        while True:
            try:
                msg = recv.recv()
            except EOFError:
                proc.join(5)
                m = Measurement(config)
                m.error = (f"benchmark process exited with code {proc.exitcode} before reporting "
                           f"(crash in native code or out of memory)")
                m.error_type = "crash"
                return m
            if msg[0] == "op":
                if progress:
                    progress(index, msg[1])
            elif msg[0] == "result":
                return Measurement.from_dict(msg[1])
            else:
                _, name, text, _ours = msg
                m = Measurement(config)
                m.error = text
                m.error_type = name
                return m
    finally:
        recv.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _run_inline(index: int, config: BenchConfig, settings: BenchSettings, ops: set[str] | None,
                progress: ProgressCallback | None) -> Measurement:
    try:
        return measure(config, settings, ops=ops,
                       progress=None if progress is None else (lambda key: progress(index, key)))
    except HEError as e:
        m = Measurement(config)
        m.error = str(e)
        m.error_type = type(e).__name__
        return m


def run_benchmarks(configs: Sequence[BenchConfig], settings: BenchSettings, *,
                   ops: set[str] | None = None, isolate: bool = True,
                   progress: ProgressCallback | None = None) -> list[Measurement]:
    """Measure every configuration, one after the other (never in parallel: that would skew timings).

    Parameters
    ----------
    configs : sequence of BenchConfig
    settings : BenchSettings
    ops : set of str, optional
        Operations to time; default all.
    isolate : bool
        Run each configuration in a fresh subprocess (default). Required for the
        peak-memory figure; ``False`` runs in this process and reports no memory.
    progress : callable, optional
        ``progress(config_index, op_key)`` as each operation starts, ``"done"`` at the end.

    Returns
    -------
    list of Measurement
        One per configuration, in order. A configuration that failed as a whole
        (bad parameters, crashed subprocess) has ``error`` set and no timings.
    """
    run = _run_isolated if isolate else _run_inline
    results = []
    for i, config in enumerate(configs):
        m = run(i, config, settings, ops, progress)
        if progress and m.error:
            progress(i, "done")
        results.append(m)
    return results
