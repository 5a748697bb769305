"""Workloads (``--workload``), their cost model, and the scheme recommendation.

A workload string names a job; the benchmark measures each candidate
scheme/preset on one full ciphertext per operation and this module
extrapolates to the whole job by counting ciphertexts and operations. The
extrapolation is linear: chunks of a long vector are independent ciphertexts,
so ten times the ciphertexts cost ten times the time and bytes.

Cost model per workload (``S`` = slots per ciphertext, ``⌈⌉`` = ceiling):

``sum:CxV``  C parties each encrypt and send a vector of V values; a server adds them:
    k = ⌈V/S⌉ ciphertexts per vector; C·k encrypt + serialize + deserialize, (C−1)·k
    additions, k result ciphertexts sent back and decrypted.
``dot:F`` / ``dot:FxN``  N samples of F features, each dotted with plaintext weights.
    *row* layout: one sample per vector, ⌈F/S⌉ ciphertexts, one ``dot`` each (rotations,
    so the public context carries Galois keys) and one result ciphertext per sample.
    *column* layout (N > 1): feature j of all samples in one vector, ⌈N/S⌉ ciphertexts;
    F multiplications by a plaintext scalar (the weight) and F−1 additions give all N
    scores at once.
``inference:FxN``  logistic-regression probabilities: column-layout scores, then the
    degree-3 sigmoid polynomial c0 + c1·t + c3·t³ evaluated as (c3·t)·t² — 2 ciphertext
    products, 2 plaintext products, 2 plaintext additions per result ciphertext, and
    multiplicative depth 3 (1 for the scores, 2 for the polynomial). Plaintext additions
    are costed as ciphertext additions (an upper bound).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ParameterError
from .measure import Measurement

__all__ = [
    "Workload",
    "WORKLOAD_FORMS",
    "EXTRAPOLATION_NOTE",
    "Estimate",
    "Recommendation",
    "parse_workload",
    "estimate",
    "recommend",
    "RECOMMENDED_MIN_SECURITY",
]

#: (form, example, meaning) — also the text of the parse error.
WORKLOAD_FORMS: tuple[tuple[str, str, str], ...] = (
    ("sum:CLIENTSxVALUES", "sum:100x1000000",
     "element-wise sum of CLIENTS encrypted vectors of VALUES numbers (gradient aggregation)"),
    ("dot:FEATURES", "dot:30", "one encrypted vector of FEATURES numbers · plaintext weights"),
    ("dot:FEATURESxSAMPLES", "dot:30x1000", "SAMPLES such dot products (linear-model scores)"),
    ("inference:FEATURESxSAMPLES", "inference:30x1000",
     "logistic-regression probabilities: scores + degree-3 polynomial sigmoid (depth 3)"),
)

EXTRAPOLATION_NOTE = (
    "Each candidate was measured on one full ciphertext per operation; job totals are "
    "extrapolated linearly by ciphertext and operation counts, and are single-core CPU time "
    "summed over all parties (clients encrypt in parallel in a real deployment). Sizes are "
    "measured blob sizes."
)

#: Candidates below this security level are only recommended when nothing else fits.
RECOMMENDED_MIN_SECURITY = 128
#: Upper bound on counts in a workload string (beyond it the extrapolation means nothing).
MAX_COUNT = 10**12
#: Multiplicative depth of ``inference``: 1 (plaintext weights) + 2 (degree-3 polynomial).
INFERENCE_DEPTH = 3

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_NUMBER = r"(\d+(?:\.\d+)?(?:e\d+)?[kmg]?)"


@dataclass(frozen=True)
class Workload:
    """A job to size: ``kind`` with ``vectors`` encrypted vectors of ``length`` values.

    For ``sum``: vectors = parties (clients), length = values per vector.
    For ``dot`` / ``inference``: vectors = samples, length = features per sample.
    """

    kind: str
    vectors: int
    length: int
    text: str = ""

    @property
    def total_values(self) -> int:
        return self.vectors * self.length

    def describe(self) -> str:
        if self.kind == "sum":
            return (f"element-wise sum of {self.vectors:,} encrypted vectors of {self.length:,} values "
                    f"({self.total_values:,} values encrypted)")
        if self.kind == "dot":
            n = "one dot product" if self.vectors == 1 else f"{self.vectors:,} dot products"
            return f"{n} of {self.length:,} encrypted features with plaintext weights"
        return (f"logistic-regression inference on {self.vectors:,} encrypted samples of "
                f"{self.length:,} features (degree-3 polynomial sigmoid, depth {INFERENCE_DEPTH})")

    def required_ops(self) -> set[str]:
        """Operations the cost model needs measured."""
        base = {"keygen", "encrypt", "decrypt", "add", "serialize", "deserialize"}
        if self.kind == "sum":
            return base
        if self.kind == "dot":
            return base | {"mul_scalar", "dot"}
        return base | {"mul_scalar", "mul"}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vectors": self.vectors, "length": self.length,
                "text": self.text, "description": self.describe()}


def _forms_text() -> str:
    return "; ".join(f"{form} (e.g. {ex}: {meaning})" for form, ex, meaning in WORKLOAD_FORMS)


def _bad(text: str, why: str) -> ParameterError:
    return ParameterError(f"--workload {text!r}: {why}. Valid forms: {_forms_text()}. "
                          f"Counts may use 1e6 or k/M/G suffixes (1M = 1000000).")


def _count(token: str, text: str, what: str) -> int:
    token = token.lower()
    suffix = token[-1] if token[-1] in "kmg" else ""
    body = token[:-1] if suffix else token
    try:
        value = float(body) * _SUFFIX[suffix]
    except ValueError:
        raise _bad(text, f"{what} {token!r} is not a number") from None
    if not value.is_integer():
        raise _bad(text, f"{what} must be a whole number; got {token!r}")
    n = int(value)
    if n < 1:
        raise _bad(text, f"{what} must be at least 1; got {token!r}")
    if n > MAX_COUNT:
        raise _bad(text, f"{what} must be at most {MAX_COUNT:.0e}; got {token!r}")
    return n


def parse_workload(text: str) -> Workload:
    """Parse a workload string such as ``"sum:100x1e6"`` or ``"dot:30"``.

    Raises
    ------
    ParameterError
        For anything else, with the list of valid forms.
    """
    raw = str(text).strip()
    s = raw.lower().replace(" ", "").replace("×", "x").replace("*", "x")
    m = re.fullmatch(r"(sum|dot|inference):" + _NUMBER + r"(?:x" + _NUMBER + r")?", s)
    if not m:
        if not s:
            raise _bad(raw, "the workload is empty")
        if ":" not in s:
            raise _bad(raw, "missing ':' between the kind and the counts")
        kind = s.split(":", 1)[0]
        if kind not in ("sum", "dot", "inference"):
            raise _bad(raw, f"unknown kind {kind!r} (expected sum, dot or inference before the colon)")
        raise _bad(raw, "counts must be positive numbers separated by 'x'")
    kind, first, second = m.group(1), m.group(2), m.group(3)
    if kind == "sum":
        if second is None:
            raise _bad(raw, "sum needs CLIENTSxVALUES (how many vectors, and how many values each)")
        return Workload("sum", _count(first, raw, "CLIENTS"), _count(second, raw, "VALUES"), raw)
    if kind == "inference" and second is None:
        raise _bad(raw, "inference needs FEATURESxSAMPLES")
    features = _count(first, raw, "FEATURES")
    samples = 1 if second is None else _count(second, raw, "SAMPLES")
    return Workload(kind, samples, features, raw)


@dataclass
class Estimate:
    """Extrapolated cost of a workload for one measured scheme/preset and data layout."""

    label: str
    scheme: str
    preset: str
    layout: str
    feasible: bool
    reason: str = ""
    security_level: int | None = None
    slot_count: int | None = None
    ciphertexts: int = 0
    op_counts: dict[str, int] = field(default_factory=dict)
    op_seconds: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = math.inf
    ciphertext_bytes: int = 0
    context_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Ciphertext traffic of the job plus one copy of the public context."""
        return self.ciphertext_bytes + self.context_bytes

    @property
    def name(self) -> str:
        return f"{self.label} [{self.layout}]" if self.layout else self.label

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "label", "scheme", "preset", "layout", "feasible", "reason", "security_level",
            "slot_count", "ciphertexts", "op_counts", "op_seconds", "seconds", "ciphertext_bytes",
            "context_bytes", "notes")}
        d["total_seconds"] = self.total_seconds if math.isfinite(self.total_seconds) else None
        d["total_bytes"] = self.total_bytes if self.feasible else None
        return d


@dataclass
class Recommendation:
    """Estimates for every candidate and the picks: fastest and smallest."""

    workload: Workload
    estimates: list[Estimate]
    fastest: Estimate | None
    smallest: Estimate | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload.to_dict(),
            "method": EXTRAPOLATION_NOTE,
            "estimates": [e.to_dict() for e in self.estimates],
            "fastest": None if self.fastest is None else self.fastest.name,
            "smallest": None if self.smallest is None else self.smallest.name,
            "notes": list(self.notes),
        }


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _base(m: Measurement, layout: str) -> Estimate:
    return Estimate(label=m.label, scheme=m.config.scheme, preset=m.config.preset, layout=layout,
                    feasible=True, security_level=m.security_level, slot_count=m.slot_count)


def _infeasible(m: Measurement, layout: str, reason: str) -> Estimate:
    e = _base(m, layout)
    e.feasible = False
    e.reason = reason
    return e


_MAX_ADDITIONS_KEYS = ("max_additions", "max_summands", "max_terms")


def _fill(m: Measurement, e: Estimate, counts: dict[str, int], ciphertexts: int,
          blobs: list[tuple[int, int]], context_bytes: int | None) -> Estimate:
    """Price ``counts`` with the measured medians; missing timings make the estimate infeasible.

    ``blobs`` lists the serialized vectors that travel: (how many, ciphertexts in each).
    """
    for op, n in counts.items():
        if n == 0:
            continue
        t = m.timings.get(op)
        if t is None:
            why = m.unavailable.get(op) or m.failures.get(op) or "not measured"
            e.feasible = False
            e.reason = f"needs {op}: {why}"
            return e
        e.op_seconds[op] = t.median
        e.seconds[op] = n * t.median
    e.op_counts = {op: n for op, n in counts.items() if n}
    e.total_seconds = sum(e.seconds.values())
    e.ciphertexts = ciphertexts
    e.ciphertext_bytes = sum(n * m.blob_bytes(cts) for n, cts in blobs)
    e.context_bytes = int(context_bytes or 0)
    return e


def estimate(workload: Workload, m: Measurement) -> list[Estimate]:
    """Cost of ``workload`` with measured scheme ``m``: one `Estimate` per applicable layout.

    Pure function of its inputs (no timing happens here), so it is tested with
    synthetic measurements whose answer is known.
    """
    if m.error or not m.slot_count:
        return [_infeasible(m, "", m.error or "no measurement")]
    S = int(m.slot_count)
    W, N = workload, workload.vectors
    out: list[Estimate] = []
    if W.kind == "sum":
        e = _base(m, "")
        limit = next((m.scheme_parameters.get(k) for k in _MAX_ADDITIONS_KEYS
                      if isinstance(m.scheme_parameters.get(k), int)), None)
        if limit is not None and N > limit:
            return [_infeasible(m, "", f"{N:,} summands exceed this parameter set's declared "
                                       f"maximum of {limit:,} additions; a context created with "
                                       f"max_additions={N} fits (fewer values per ciphertext)")]
        k = _ceil_div(W.length, S)
        counts = {"encrypt": N * k, "serialize": N * k + k, "deserialize": N * k + k,
                  "add": (N - 1) * k, "decrypt": k}
        _fill(m, e, counts, N * k, [(N, k), (1, k)], m.public_context_bytes)
        if e.feasible and m.encodes_reals is False:
            e.notes.append("integers only: scale and round real values (fixed point) before encrypting")
        return [e]
    if W.kind == "dot":
        k = _ceil_div(W.length, S)
        row = _base(m, "row")
        counts = {"encrypt": N * k, "dot": N * k, "add": N * (k - 1), "serialize": N * (k + 1),
                  "deserialize": N * (k + 1), "decrypt": N}
        ctx_bytes = m.public_context_bytes_after_ops or m.public_context_bytes
        _fill(m, row, counts, N * k, [(N, k), (N, 1)], ctx_bytes)
        if row.feasible and (m.public_context_bytes_after_ops or 0) > (m.public_context_bytes or 0):
            row.notes.append("the public context carries the rotation keys dot needs")
        out.append(row)
        if N > 1:
            out.append(_column(W, m, with_sigmoid=False))
        return out
    # inference
    if "mul" not in m.capabilities or "mul" in m.unavailable:
        return [_infeasible(m, "column", "needs ciphertext × ciphertext multiplication "
                                         "for the sigmoid polynomial")]
    if m.encodes_reals is False:
        return [_infeasible(m, "column", "encrypts integers only; the sigmoid polynomial "
                                         "has real coefficients")]
    if m.max_depth is not None and m.max_depth < INFERENCE_DEPTH:
        return [_infeasible(m, "column", f"needs multiplicative depth {INFERENCE_DEPTH}; this "
                                         f"preset has {m.max_depth} (use preset 'inference')")]
    return [_column(W, m, with_sigmoid=True)]


def _column(W: Workload, m: Measurement, *, with_sigmoid: bool) -> Estimate:
    S = int(m.slot_count)
    F, N = W.length, W.vectors
    k = _ceil_div(N, S)
    e = _base(m, "column")
    counts = {"encrypt": F * k, "mul_scalar": F * k, "add": (F - 1) * k,
              "serialize": F * k + k, "deserialize": F * k + k, "decrypt": k}
    if with_sigmoid:
        counts["mul"] = 2 * k
        counts["mul_scalar"] += 2 * k
        counts["add"] += 2 * k
    _fill(m, e, counts, F * k, [(F, k), (1, k)], m.public_context_bytes)
    if e.feasible:
        e.notes.append("one vector per feature across samples; no rotations needed")
    return e


def recommend(workload: Workload, measurements: Sequence[Measurement], *,
              min_security: int = RECOMMENDED_MIN_SECURITY) -> Recommendation:
    """Estimate ``workload`` for every measurement and pick the fastest and the smallest.

    Candidates below ``min_security`` bits are only picked when no other fits (a
    note then says so). Ties on time are broken by bytes and vice versa.
    """
    estimates = [e for m in measurements for e in estimate(workload, m)]
    feasible = [e for e in estimates if e.feasible]
    notes: list[str] = []
    pool = [e for e in feasible if (e.security_level or 0) >= min_security]
    if feasible and not pool:
        pool = feasible
        notes.append(f"no candidate reaches {min_security}-bit security; the picks below are "
                     f"for comparison only")
    fastest = min(pool, key=lambda e: (e.total_seconds, e.total_bytes), default=None)
    smallest = min(pool, key=lambda e: (e.total_bytes, e.total_seconds), default=None)
    if not feasible:
        notes.append("no measured scheme/preset can run this workload; see the reasons per candidate")
    else:
        for pick, what, key, unit in ((fastest, "fastest", lambda e: e.total_seconds, "faster"),
                                      (smallest, "smallest", lambda e: e.total_bytes, "smaller")):
            others = [e for e in pool if e.label != pick.label]
            if others:
                runner_up = min(others, key=key)
                ratio = key(runner_up) / key(pick) if key(pick) > 0 else math.inf
                notes.append(f"{what}: {pick.name} is {ratio:.1f}× {unit} than the next scheme/preset, "
                             f"{runner_up.name}")
    return Recommendation(workload, estimates, fastest, smallest, notes)
