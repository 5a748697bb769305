"""Run benchmarks: one fresh subprocess per scheme/preset, with progress events.

Why a subprocess per configuration
----------------------------------
Peak memory of SEAL (TenSEAL) and gmpy2 lives in native allocations that
:mod:`tracemalloc` does not see. The operating system does. After its imports
the child resets the kernel's resident-set high-water mark (writing ``5`` to
``/proc/self/clear_refs``, Linux >= 4.0), notes its current resident set, and at
the end reads the high-water mark (``VmHWM`` in ``/proc/self/status``): the
difference is the peak memory that keys, ciphertexts and temporaries added.
Where that interface is missing, ``getrusage(RUSAGE_SELF).ru_maxrss`` before and
after is used instead (it cannot be reset, so transient peaks during the
imports can hide a smaller peak of the benchmark). A fresh process per
configuration keeps one scheme's keys from inflating another's figure, and a
crash inside native code costs one row of the table instead of the whole run.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Sequence

from ..errors import HEError
from .configs import BenchConfig
from .measure import BenchSettings, Measurement, measure

__all__ = ["MEMORY_METHOD", "run_benchmarks", "ops_to_run", "ProgressCallback", "child_main",
           "PeakMemory"]

MEMORY_METHOD = ("peak resident memory added by key generation and the benchmark, in a fresh "
                 "process per scheme/preset: VmHWM (reset through /proc/self/clear_refs after "
                 "imports) minus VmRSS after imports; includes native SEAL/gmpy2 allocations")


class PeakMemory:
    """Peak resident-set growth of this process from `start` to `stop`, in bytes."""

    def __init__(self) -> None:
        self.method: str | None = None
        self._base: int | None = None

    @staticmethod
    def _status_kib(field: str) -> int | None:
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    @staticmethod
    def _maxrss_bytes() -> int | None:
        try:
            import resource
        except ImportError:  # Windows
            return None
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss) if sys.platform == "darwin" else int(rss) * 1024  # Linux reports KiB

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # reset VmHWM to the current resident set
            rss = self._status_kib("VmRSS")
            if rss is not None and self._status_kib("VmHWM") is not None:
                self.method, self._base = "vmhwm", rss * 1024
                return
        except OSError:
            pass
        self.method, self._base = "ru_maxrss", self._maxrss_bytes()

    def stop(self) -> int | None:
        if self._base is None:
            return None
        if self.method == "vmhwm":
            hwm = self._status_kib("VmHWM")
            peak = None if hwm is None else hwm * 1024
        else:
            peak = self._maxrss_bytes()
        return None if peak is None else max(0, peak - self._base)


#: progress(config index, operation key or "done")
ProgressCallback = Callable[[int, str], None]


def ops_to_run(ops: set[str] | None, measurement_ops: Sequence[str]) -> list[str]:
    """Operation keys that `measure` will announce, in order (for sizing a progress bar)."""
    return [k for k in measurement_ops if ops is None or k in ops or k in ("keygen", "encrypt")]


#: Prefix of protocol lines on the child's stdout (anything else a library prints is ignored).
_MARK = "@@he_ml.bench@@ "


def _emit(kind: str, *payload) -> None:
    sys.stdout.write(_MARK + json.dumps([kind, *payload]) + "\n")
    sys.stdout.flush()


def child_main() -> None:
    """Entry point of the benchmark subprocess.

    Reads ``{"config", "settings", "ops"}`` as JSON from stdin; writes protocol lines
    ``["op", key]``..., then ``["result", measurement]`` or ``["error", class, text]``.
    """
    try:
        job = json.loads(sys.stdin.read())
        from ..schemes import SCHEMES
        config = BenchConfig.from_dict(job["config"])
        # Import the backend (TenSEAL / phe / gmpy2) before the baseline reading, so the
        # memory figure counts keys and ciphertexts, not library code.
        importlib.import_module(SCHEMES[config.scheme][0])
        memory = PeakMemory()
        memory.start()
        ops = job.get("ops")
        m = measure(config, BenchSettings.from_dict(job["settings"]),
                    ops=None if ops is None else set(ops), progress=lambda key: _emit("op", key))
        m.peak_memory_bytes = memory.stop()
        _emit("result", m.to_dict())
    except HEError as e:
        _emit("error", type(e).__name__, str(e))
    except BaseException as e:  # report, never leave the parent guessing
        _emit("error", type(e).__name__, f"{e}\n{traceback.format_exc(limit=6)}")


def _child_env() -> dict[str, str]:
    """The parent's environment, with this he_ml's parent directory first on PYTHONPATH."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _run_isolated(index: int, config: BenchConfig, settings: BenchSettings, ops: set[str] | None,
                  progress: ProgressCallback | None) -> Measurement:
    job = {"config": config.to_dict(), "settings": settings.to_dict(),
           "ops": None if ops is None else sorted(ops)}
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as stderr:
        with subprocess.Popen(
            [sys.executable, "-c", "from he_ml.bench.runner import child_main; child_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=_child_env(), bufsize=1,
            cwd=tempfile.gettempdir(),  # `-c` puts the cwd first on sys.path; keep a source tree out
        ) as proc:  # the context manager closes the pipes and waits for the child
            outcome = None
            try:
                proc.stdin.write(json.dumps(job))
                proc.stdin.close()
                for line in proc.stdout:
                    at = line.find(_MARK)  # a library may have printed on the same line first
                    if at < 0:
                        continue
                    msg = json.loads(line[at + len(_MARK):])
                    if msg[0] == "op":
                        if progress:
                            progress(index, msg[1])
                    else:
                        outcome = msg
            except BaseException:
                proc.kill()
                raise
        code = proc.returncode
        m = Measurement(config)
        if outcome is None:
            stderr.seek(0)
            tail = "".join(stderr.readlines()[-5:]).strip()
            m.error = (f"benchmark process exited with code {code} before reporting (crash in native "
                       f"code or out of memory){': ' + tail if tail else ''}")
            m.error_type = "crash"
        elif outcome[0] == "result":
            m = Measurement.from_dict(outcome[1])
        else:
            m.error_type, m.error = outcome[1], outcome[2]
        return m


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
