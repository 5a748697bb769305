"""Measure one scheme/preset: every operation on one full ciphertext, plus sizes.

Each operation runs on a vector of exactly ``ctx.slot_count`` values, i.e. one
full ciphertext, so times are *per ciphertext*; dividing by the slot count
gives the time per value. Every timed result is also decrypted once and
compared with numpy, so a benchmark can never report the speed of a wrong
answer without saying so (``checks``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import HEError, UnsupportedOperationError
from .configs import BenchConfig, build_context
from .timing import Timing, time_each, time_op

__all__ = ["OpSpec", "OPERATIONS", "OP_NAMES", "BenchSettings", "Measurement", "measure"]


@dataclass(frozen=True)
class OpSpec:
    """An operation the benchmark times: key, human title, and what one call covers."""

    key: str
    title: str
    per: str  # "context" or "ciphertext"


OPERATIONS: tuple[OpSpec, ...] = (
    OpSpec("keygen", "key generation", "context"),
    OpSpec("encrypt", "encrypt", "ciphertext"),
    OpSpec("decrypt", "decrypt", "ciphertext"),
    OpSpec("add", "add (ct + ct)", "ciphertext"),
    OpSpec("mul_scalar", "multiply by plaintext scalar", "ciphertext"),
    OpSpec("mul_plain", "multiply by plaintext vector", "ciphertext"),
    OpSpec("mul", "multiply (ct × ct)", "ciphertext"),
    OpSpec("sum", "sum of all slots", "ciphertext"),
    OpSpec("dot", "dot with plaintext", "ciphertext"),
    OpSpec("serialize", "serialize", "ciphertext"),
    OpSpec("deserialize", "deserialize", "ciphertext"),
)
OP_NAMES: tuple[str, ...] = tuple(op.key for op in OPERATIONS)
_OP_BY_KEY = {op.key: op for op in OPERATIONS}

# Test data: small integers (quarters of them for schemes that encrypt reals), so that
# exact schemes (BFV) cannot overflow a plain modulus even in a full-slot dot product
# (|x|,|w| <= 7: |dot| <= 49 * slots), and approximate schemes are compared with a
# tolerance far above their noise.
_DATA_BOUND = 7
_DATA_SEED = 20240611  # fixed: test data, not key material


@dataclass(frozen=True)
class BenchSettings:
    """How hard to measure.

    Attributes
    ----------
    repeats : int
        Samples per operation (the median and quartiles are taken over them).
    min_sample_s : float
        Minimum duration of one sample (fast operations are looped inside a sample).
    op_budget_s : float
        Soft cap on the time spent sampling one operation.
    keygen_budget_s : float
        Soft cap on repeated key generations (the first one always runs).
    """

    repeats: int = 5
    min_sample_s: float = 0.02
    op_budget_s: float = 2.0
    keygen_budget_s: float = 3.0

    @classmethod
    def standard(cls, repeats: int | None = None) -> "BenchSettings":
        return cls(repeats=repeats or 5)

    @classmethod
    def quick(cls, repeats: int | None = None) -> "BenchSettings":
        return cls(repeats=repeats or 3, min_sample_s=0.005, op_budget_s=0.4, keygen_budget_s=0.5)

    def to_dict(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "min_sample_s": self.min_sample_s,
                "op_budget_s": self.op_budget_s, "keygen_budget_s": self.keygen_budget_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchSettings":
        return cls(**d)


@dataclass
class Measurement:
    """Everything measured for one `BenchConfig` (JSON round-trips with to_dict/from_dict).

    Attributes
    ----------
    timings : dict
        Operation key -> `Timing` in seconds per call (per context for keygen, per
        ciphertext for the rest). Missing key: not measured.
    unavailable : dict
        Operation key -> reason it could not run (capability missing, depth exhausted...).
    failures : dict
        Operation key -> error text of an unexpected failure.
    checks : dict
        Operation key -> True if the decrypted result matched numpy.
    """

    config: BenchConfig
    scheme_parameters: dict[str, Any] = field(default_factory=dict)
    security_level: int | None = None
    slot_count: int | None = None
    max_depth: int | None = None
    capabilities: list[str] = field(default_factory=list)
    encodes_reals: bool | None = None
    values_per_op: int | None = None
    timings: dict[str, Timing] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    ciphertext_bytes: int | None = None
    ciphertext_marginal_bytes: int | None = None
    public_context_bytes: int | None = None
    public_context_bytes_after_ops: int | None = None
    peak_memory_bytes: int | None = None
    error: str | None = None
    error_type: str | None = None  # exception class name, or "crash" for a dead subprocess

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def blob_overhead_bytes(self) -> int:
        """Bytes of a ciphertext blob that do not grow with its ciphertext count (header, checksum)."""
        if self.ciphertext_bytes is None or self.ciphertext_marginal_bytes is None:
            return 0
        return max(0, self.ciphertext_bytes - self.ciphertext_marginal_bytes)

    @property
    def ciphertext_bytes_per_value(self) -> float | None:
        """Bytes per value of a long vector: each further full ciphertext divided by its slots."""
        per_ct = self.ciphertext_marginal_bytes or self.ciphertext_bytes
        if per_ct is None or not self.values_per_op:
            return None
        return per_ct / self.values_per_op

    def blob_bytes(self, ciphertexts: int) -> int:
        """Size of one serialized vector spanning ``ciphertexts`` full ciphertexts."""
        per_ct = self.ciphertext_marginal_bytes or self.ciphertext_bytes or 0
        return self.blob_overhead_bytes + ciphertexts * int(per_ct)

    def per_value(self, op: str) -> Timing | None:
        """Timing of ``op`` divided by the values in one ciphertext (None for keygen)."""
        t = self.timings.get(op)
        if t is None or _OP_BY_KEY[op].per != "ciphertext" or not self.values_per_op:
            return None
        return t.scaled(1.0 / self.values_per_op)

    def to_dict(self) -> dict[str, Any]:
        ops: dict[str, Any] = {}
        for op in OPERATIONS:
            entry: dict[str, Any] = {"title": op.title, "per": op.per}
            t = self.timings.get(op.key)
            if t is not None:
                entry["seconds"] = t.to_dict()
                pv = self.per_value(op.key)
                if pv is not None:
                    entry["seconds_per_value"] = pv.median
                entry["verified"] = self.checks.get(op.key)
            elif op.key in self.unavailable:
                entry["unavailable"] = self.unavailable[op.key]
            elif op.key in self.failures:
                entry["failed"] = self.failures[op.key]
            else:
                entry["skipped"] = True
            ops[op.key] = entry
        return {
            "config": self.config.to_dict(),
            "scheme_parameters": self.scheme_parameters,
            "security_level": self.security_level,
            "slot_count": self.slot_count,
            "max_depth": self.max_depth,
            "capabilities": list(self.capabilities),
            "encodes_reals": self.encodes_reals,
            "values_per_op": self.values_per_op,
            "operations": ops,
            "sizes": {
                "ciphertext_bytes": self.ciphertext_bytes,
                "ciphertext_marginal_bytes": self.ciphertext_marginal_bytes,
                "blob_overhead_bytes": self.blob_overhead_bytes,
                "ciphertext_bytes_per_value": self.ciphertext_bytes_per_value,
                "public_context_bytes": self.public_context_bytes,
                "public_context_bytes_after_ops": self.public_context_bytes_after_ops,
            },
            "peak_memory_bytes": self.peak_memory_bytes,
            "error": self.error,
            "error_type": self.error_type,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        m = cls(BenchConfig.from_dict(d["config"]))
        for name in ("scheme_parameters", "security_level", "slot_count", "max_depth",
                     "encodes_reals", "values_per_op", "peak_memory_bytes", "error", "error_type"):
            setattr(m, name, d.get(name))
        m.capabilities = list(d.get("capabilities", []))
        for key, entry in d.get("operations", {}).items():
            if "seconds" in entry:
                m.timings[key] = Timing.from_dict(entry["seconds"])
                if entry.get("verified") is not None:
                    m.checks[key] = bool(entry["verified"])
            elif "unavailable" in entry:
                m.unavailable[key] = entry["unavailable"]
            elif "failed" in entry:
                m.failures[key] = entry["failed"]
        sizes = d.get("sizes", {})
        m.ciphertext_bytes = sizes.get("ciphertext_bytes")
        m.ciphertext_marginal_bytes = sizes.get("ciphertext_marginal_bytes")
        m.public_context_bytes = sizes.get("public_context_bytes")
        m.public_context_bytes_after_ops = sizes.get("public_context_bytes_after_ops")
        return m


def _close(got: np.ndarray, ref: np.ndarray, terms: float = 0.0) -> bool:
    """Sanity check of a decrypted result: 1 % of magnitude (plus 0.1 % of the summed terms)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if got.shape != ref.shape:
        return False
    tol = 1e-2 * (1.0 + np.abs(ref)) + 1e-3 * terms
    return bool(np.all(np.abs(got - ref) <= tol))


def _probe_reals(ctx) -> bool:
    """Whether the scheme encrypts real numbers: 0.5 must come back as 0.5."""
    try:
        back = ctx.decrypt(ctx.encrypt(np.array([0.5, -1.25])))
    except HEError:
        return False
    return bool(np.allclose(back, [0.5, -1.25], atol=1e-3))


def measure(config: BenchConfig, settings: BenchSettings, *, ops: set[str] | None = None,
            progress: Callable[[str], None] | None = None) -> Measurement:
    """Benchmark one configuration in this process.

    Parameters
    ----------
    config : BenchConfig
        Scheme and parameters.
    settings : BenchSettings
        Repeats and time budgets.
    ops : set of str, optional
        Operations to time (keys of `OPERATIONS`); default all. Key generation and
        encryption always run (everything else needs a context and a ciphertext).
    progress : callable, optional
        Called with each operation key when it starts, and with ``"done"`` at the end.

    Returns
    -------
    Measurement
        Also when an operation fails: the failure is recorded, not raised. Errors of
        key generation (bad parameters) propagate.
    """
    wanted = set(OP_NAMES) if ops is None else (set(ops) | {"keygen", "encrypt"})
    unknown = wanted - set(OP_NAMES)
    if unknown:
        raise ValueError(f"unknown operations {sorted(unknown)}; valid: {', '.join(OP_NAMES)}")
    notify = progress or (lambda _op: None)
    m = Measurement(config)

    notify("keygen")
    keygen, ctx = time_each(lambda: build_context(config), repeats=settings.repeats,
                            budget_s=settings.keygen_budget_s)
    m.timings["keygen"] = keygen
    m.scheme_parameters = _jsonable(ctx.parameters)
    m.security_level = ctx.security_level
    m.slot_count = int(ctx.slot_count)
    m.max_depth = ctx.max_depth
    m.capabilities = sorted(ctx.capabilities)
    m.public_context_bytes = len(ctx.public_context().to_bytes())
    m.encodes_reals = _probe_reals(ctx)

    size = m.slot_count
    m.values_per_op = size
    rng = np.random.default_rng(_DATA_SEED)

    def draw() -> np.ndarray:
        ints = rng.integers(-_DATA_BOUND, _DATA_BOUND + 1, size)
        # Real-valued schemes get fractional data and weights (quarters: exact in binary
        # fixed point), as real models have; integer schemes get the integers.
        return ints / 4.0 if m.encodes_reals else ints.astype(np.int64)

    xv, yv, wv = draw(), draw(), draw()
    scalar = 0.75 if m.encodes_reals else 3

    def timed(key: str, fn: Callable[[], Any]) -> Any:
        notify(key)
        t, result = time_op(fn, repeats=settings.repeats, min_sample_s=settings.min_sample_s,
                            budget_s=settings.op_budget_s)
        m.timings[key] = t
        return result

    x = timed("encrypt", lambda: ctx.encrypt(xv))
    y = ctx.encrypt(yv)
    blob = x.to_bytes()
    m.ciphertext_bytes = len(blob)
    # A two-ciphertext vector gives the marginal size of one more ciphertext; the rest of
    # the one-ciphertext blob is per-blob overhead (header, metadata, checksum).
    m.ciphertext_marginal_bytes = len(ctx.encrypt(np.concatenate([xv, yv])).to_bytes()) - len(blob)

    # (key, function to time, numpy reference of the decrypted result, summed magnitude of the terms)
    plan: list[tuple[str, Callable[[], Any], np.ndarray, float]] = [
        ("decrypt", lambda: ctx.decrypt(x), xv, 0.0),
        ("add", lambda: x + y, xv + yv, 0.0),
        ("mul_scalar", lambda: x * scalar, xv * scalar, 0.0),
        ("mul_plain", lambda: x * wv, xv * wv, 0.0),
        ("mul", lambda: x * y, xv * yv, 0.0),
        ("sum", lambda: x.sum(), np.array([xv.sum()]), float(np.abs(xv).sum())),
        ("dot", lambda: x.dot(wv), np.array([xv @ wv]), float(np.abs(xv * wv).sum())),
        ("serialize", lambda: x.to_bytes(), xv, 0.0),
        ("deserialize", lambda: ctx.ciphertext_from_bytes(blob), xv, 0.0),
    ]
    m.checks["encrypt"] = _close(ctx.decrypt(x), xv)
    for key, fn, ref, terms in plan:
        if key not in wanted:
            continue
        if key == "mul" and "mul" not in m.capabilities:
            m.unavailable[key] = f"{config.scheme} has no ciphertext × ciphertext multiplication"
            continue
        try:
            result = timed(key, fn)
        except UnsupportedOperationError as e:
            m.unavailable[key] = str(e)
            continue
        except HEError as e:
            m.unavailable[key] = f"{type(e).__name__}: {e}"
            continue
        except Exception as e:  # a benchmark reports a broken operation instead of dying
            m.failures[key] = f"{type(e).__name__}: {e}"
            continue
        try:
            if key == "decrypt":
                m.checks[key] = _close(result, ref)
            elif key == "serialize":  # bytes need not be identical (randomised padding is allowed)
                m.checks[key] = _close(ctx.decrypt(ctx.ciphertext_from_bytes(bytes(result))), xv)
            else:
                m.checks[key] = _close(ctx.decrypt(result), ref, terms)
        except HEError as e:
            m.failures[key] = f"result could not be decrypted: {type(e).__name__}: {e}"
    m.public_context_bytes_after_ops = len(ctx.public_context().to_bytes())
    notify("done")
    return m


def _jsonable(value: Any) -> Any:
    """Best-effort conversion of ``ctx.parameters`` to JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        f = float(value)
        return f if math.isfinite(f) else str(f)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
