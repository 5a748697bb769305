"""Presenting benchmark results: rich tables, Markdown, JSON document and PNG plot."""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table
from rich.text import Text

from .measure import OPERATIONS, BenchSettings, Measurement
from .runner import MEMORY_METHOD
from .timing import Timing
from .workload import EXTRAPOLATION_NOTE, Estimate, Recommendation

__all__ = ["SCHEMA", "TIMING_METHOD", "format_seconds", "format_bytes", "format_count", "results_table",
           "recommendation_table", "markdown_table", "to_document", "write_json", "write_plot"]

SCHEMA = "he_ml.bench/1"
TIMING_METHOD = ("wall-clock time.perf_counter; one warm-up call, then `repeats` samples of a "
                 "calibrated number of back-to-back calls; median and interquartile range over the "
                 "samples; every operation on one full ciphertext (slot_count values) and checked "
                 "against numpy")


def format_seconds(s: float | None) -> str:
    """``0.00123`` -> ``"1.23 ms"`` (three significant digits, ns to s; min and h from 1000 s)."""
    if s is None or not math.isfinite(s):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            if unit == "s" and v >= 1000:  # long extrapolated jobs read better in min / h
                return f"{v / 3600:.3g} h" if v >= 7200 else f"{v / 60:.3g} min"
            return f"{v:.3g} {unit}"
    return f"{s:.3g} s"


def format_bytes(n: float | None) -> str:
    """Binary units: ``1536`` -> ``"1.5 KiB"``."""
    if n is None:
        return "—"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def _timing_text(m: Measurement, op: str, *, plain: bool = False) -> str | Text:
    if m.error:
        return "failed" if plain else Text("failed", style="red")
    t = m.timings.get(op)
    if t is None:
        if op in m.failures:
            return "failed" if plain else Text("failed", style="red")
        return "n/a" if op in m.unavailable else "—"
    main = format_seconds(t.median)
    spread = f" ±{t.spread * 100:.0f}%" if t.samples >= 3 else f" ({t.samples} run{'s' if t.samples > 1 else ''})"
    warn = "" if m.checks.get(op, True) else " ⚠"
    pv = m.per_value(op)
    if plain:
        return main + spread + warn + (f" ({format_seconds(pv.median)}/value)" if pv else "")
    text = Text(main, style="bold")
    text.append(spread, style="dim")
    if warn:
        text.append(warn, style="red")
    if pv is not None:
        text.append(f"\n{format_seconds(pv.median)}/value", style="dim")
    return text


def _facts(m: Measurement) -> list[tuple[str, str]]:
    after = m.public_context_bytes_after_ops
    rot = "—" if after is None or after == m.public_context_bytes else format_bytes(after)
    first_sum = m.timings.get("sum")
    return [
        ("first sum() call (lazy key setup)",
         "—" if first_sum is None or first_sum.first is None else format_seconds(first_sum.first)),
        ("security", "—" if m.security_level is None else f"{m.security_level}-bit"),
        ("slots per ciphertext", "—" if m.slot_count is None else f"{m.slot_count:,}"),
        ("max multiplicative depth", "—" if m.max_depth is None else str(m.max_depth)),
        ("ciphertext (one, full)", format_bytes(m.ciphertext_bytes)),
        ("ciphertext bytes / value", "—" if m.ciphertext_bytes_per_value is None
         else f"{m.ciphertext_bytes_per_value:,.1f}"),
        ("public context", format_bytes(m.public_context_bytes)),
        ("  with rotation keys", rot),
        ("peak memory", format_bytes(m.peak_memory_bytes)),
    ]


def _shown_ops(measurements: Sequence[Measurement]):
    """Operations measured (or found unavailable) for at least one configuration."""
    return [op for op in OPERATIONS
            if any(op.key in m.timings or op.key in m.unavailable or op.key in m.failures
                   for m in measurements)] or list(OPERATIONS)


#: Narrowest a configuration column may get: "195 ms (1 run)" / "10.3 µs/value" stay on one line.
CONFIG_COLUMN_WIDTH = 14
#: Width of the operation column on narrow terminals (longer labels fold onto two lines).
NARROW_LABEL_WIDTH = 22


def results_table(measurements: Sequence[Measurement], title: str = "he-ml bench") -> Table:
    """Rows = operations and sizes, columns = scheme/preset. Operations nobody measured are left out."""
    table = Table(title=title, title_style="bold", show_lines=False, header_style="bold cyan",
                  caption="median per ciphertext ±½ IQR, then per value · n/a: unsupported · "
                          "⚠: wrong result",
                  caption_style="dim")
    table.add_column("operation", style="bold", overflow="fold")
    for m in measurements:
        table.add_column(m.label.replace(" (", "\n("), justify="right", min_width=CONFIG_COLUMN_WIDTH,
                         overflow="fold", style="red" if m.config.insecure else None)
    for op in _shown_ops(measurements):
        unit = "per context" if op.per == "context" else "per ciphertext"
        table.add_row(f"{op.title}\n[dim]{unit}[/dim]", *[_timing_text(m, op.key) for m in measurements])
    table.add_section()
    facts = [_facts(m) for m in measurements]
    for i, (name, _) in enumerate(facts[0] if facts else []):
        table.add_row(name, *[f[i][1] for f in facts])
    return table


def results_tables(measurements: Sequence[Measurement], title: str = "he-ml bench",
                   width: int | None = None) -> list[Table]:
    """`results_table`, split into several tables when the terminal is too narrow for all columns.

    Parameters
    ----------
    width : int, optional
        Terminal width in columns; ``None`` gives one table. Each table holds as many
        configurations as fit with columns of at least ``CONFIG_COLUMN_WIDTH`` characters,
        so no cell is truncated at 80 columns.
    """
    if width is None or not measurements:
        return [results_table(measurements, title)]
    # one table: | label | c1 | c2 | ... | -> 1 + (label + 3) + k * (column + 3)
    per_table = max(1, (width - 1 - (NARROW_LABEL_WIDTH + 3)) // (CONFIG_COLUMN_WIDTH + 3))
    if per_table >= len(measurements):
        return [results_table(measurements, title)]
    chunks = [list(measurements[i:i + per_table]) for i in range(0, len(measurements), per_table)]
    tables = []
    for k, chunk in enumerate(chunks, 1):
        t = results_table(chunk, f"{title} ({k}/{len(chunks)})")
        t.columns[0].max_width = NARROW_LABEL_WIDTH
        tables.append(t)
    return tables


def markdown_table(measurements: Sequence[Measurement]) -> str:
    """The results table as GitHub Markdown (for the README)."""
    head = "| operation | " + " | ".join(m.label for m in measurements) + " |"
    sep = "|---|" + "---:|" * len(measurements)
    lines = [head, sep]
    for op in _shown_ops(measurements):
        unit = "per context" if op.per == "context" else "per ciphertext"
        lines.append(f"| {op.title} ({unit}) | "
                     + " | ".join(str(_timing_text(m, op.key, plain=True)) for m in measurements) + " |")
    facts = [_facts(m) for m in measurements]
    for i, (name, _) in enumerate(facts[0] if facts else []):
        lines.append(f"| {name.strip()} | " + " | ".join(f[i][1] for f in facts) + " |")
    return "\n".join(lines) + "\n"


def format_count(n: int) -> str:
    """``1515200`` -> ``"1.52M"``, ``12300`` -> ``"12.3k"``, small counts as they are."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e4)):
        if n >= scale:
            return f"{n / (1e3 if suffix == 'k' else scale):.3g}{suffix}"
    return f"{n:,}"


def _cost_lines(e: Estimate, top: int = 3) -> str:
    """The largest terms of the estimate: ``encrypt 12.3k × 40.2 ms = 494 s``."""
    terms = sorted(e.seconds.items(), key=lambda kv: -kv[1])
    lines = [f"{op} {format_count(e.op_counts[op])} × {format_seconds(e.op_seconds[op])} = "
             f"{format_seconds(sec)}" for op, sec in terms[:top]]
    if len(terms) > top:
        rest = sum(sec for _, sec in terms[top:])
        lines.append(f"{len(terms) - top} more: {format_seconds(rest)}")
    return "\n".join(lines)


def _first_sentence(text: str) -> str:
    """The first sentence, whole (the table folds long text rather than cutting it)."""
    return text.split(". ")[0].rstrip(".")


def _candidate_name(rec: Recommendation, e: Estimate) -> Text:
    tags = []
    if rec.fastest is e:
        tags.append("fastest")
    if rec.smallest is e:
        tags.append("smallest")
    name = Text(e.name, style="bold green" if tags else None)
    if tags:
        name.append(f"\n← {' & '.join(tags)}", style="green")
    return name


def _notes(e: Estimate) -> list[str]:
    notes = list(e.notes)
    if (e.security_level or 0) < 128:
        notes.insert(0, f"only {e.security_level}-bit security")
    return notes


#: Below this terminal width the recommendation is shown as one block per candidate.
WIDE_RECOMMENDATION = 140


def recommendation_table(rec: Recommendation, width: int | None = None) -> Table:
    """One row per candidate (and layout) with the numbers behind the recommendation.

    Parameters
    ----------
    width : int, optional
        Terminal width; below ``WIDE_RECOMMENDATION`` columns each candidate's figures are
        stacked in one cell (two columns in all) so that nothing is cut at 80 columns.
    """
    estimates = sorted(rec.estimates, key=lambda e: (not e.feasible, e.total_seconds))
    if width is not None and width < WIDE_RECOMMENDATION:
        table = Table(title=f"Workload: {rec.workload.describe()}", title_style="bold",
                      header_style="bold cyan", caption=EXTRAPOLATION_NOTE, caption_style="dim",
                      show_lines=True)
        table.add_column("candidate", overflow="fold", max_width=24)
        table.add_column("estimate (largest costs: count × measured time per op)", overflow="fold")
        for e in estimates:
            if not e.feasible:
                table.add_row(_candidate_name(rec, e),
                              Text(f"cannot run: {_first_sentence(e.reason)}", style="yellow"))
                continue
            body = Text(f"{format_seconds(e.total_seconds)}", style="bold")
            body.append(f" · {format_bytes(e.total_bytes)}", style="bold")
            body.append(f" = {format_bytes(e.ciphertext_bytes)} traffic + {format_bytes(e.context_bytes)} "
                        f"context · {format_count(e.ciphertexts)} ciphertexts\n")
            body.append(_cost_lines(e), style="dim")
            notes = _notes(e)
            if notes:
                body.append("\n" + "\n".join(notes))
            table.add_row(_candidate_name(rec, e), body)
        return table
    table = Table(title=f"Workload: {rec.workload.describe()}", title_style="bold",
                  header_style="bold cyan", caption=EXTRAPOLATION_NOTE, caption_style="dim")
    table.add_column("candidate", no_wrap=True)
    table.add_column("cipher-\ntexts", justify="right")
    table.add_column("est. total\ntime", justify="right")
    table.add_column("bytes: total\n= traffic + context", justify="right", no_wrap=True)
    table.add_column("largest costs\n(count × measured time per op)", no_wrap=True)
    table.add_column("notes", min_width=24, overflow="fold")
    for e in estimates:
        name = _candidate_name(rec, e)
        if not e.feasible:
            table.add_row(name, "—", "—", "—", "—",
                          Text(f"cannot run: {_first_sentence(e.reason)}", style="yellow"))
            continue
        size = Text(format_bytes(e.total_bytes), style="bold")
        size.append(f"\n{format_bytes(e.ciphertext_bytes)} + {format_bytes(e.context_bytes)}", style="dim")
        table.add_row(name, format_count(e.ciphertexts), Text(format_seconds(e.total_seconds), style="bold"),
                      size, _cost_lines(e), Text("\n".join(_notes(e))))
    return table


def machine_description() -> dict[str, Any]:
    from .sysinfo import cpu_info
    cpu = cpu_info()
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu["model"], "logical_cpus": cpu["logical_cpus"]}


def to_document(measurements: Sequence[Measurement], settings: BenchSettings, *, quick: bool,
                isolated: bool, recommendation: Recommendation | None = None) -> dict[str, Any]:
    """The JSON document written by ``--json`` (schema ``he_ml.bench/1``)."""
    from .. import __version__
    return {
        "schema": SCHEMA,
        "he_ml_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "settings": {**settings.to_dict(), "quick": quick, "isolated": isolated,
                     "timing_method": TIMING_METHOD,
                     "memory_method": MEMORY_METHOD if isolated else "not measured (--in-process)"},
        "results": [m.to_dict() for m in measurements],
        "recommendation": None if recommendation is None else recommendation.to_dict(),
    }


def write_json(path: str | Path, document: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _bar_labels(ax, bars, texts: list[str]) -> None:
    for bar, txt in zip(bars, texts, strict=True):
        if txt and bar.get_height() > 0:
            ax.annotate(txt, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")


def write_plot(path: str | Path, measurements: Sequence[Measurement], title: str = "he-ml bench") -> Path:
    """Grouped bars, log scale: time per value of each operation (top), key generation,
    ciphertext bytes per value and public-context size (bottom). Error bars: IQR."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    ms = [m for m in measurements if not m.error]
    ops = [op for op in OPERATIONS if op.per == "ciphertext"]
    width = min(17.0, max(11.0, 4.0 + 0.25 * len(ops) * max(1, len(ms))))
    fig = plt.figure(figsize=(width, 9.0), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1.6, 1.0])
    ax = fig.add_subplot(grid[0, :])
    colors = plt.get_cmap("tab10").colors
    width = 0.8 / max(1, len(ms))
    x = np.arange(len(ops))
    for i, m in enumerate(ms):
        vals, lo, hi = [], [], []
        for op in ops:
            t: Timing | None = m.per_value(op.key)
            vals.append(t.median if t else 0.0)
            lo.append(t.median - t.q1 if t else 0.0)
            hi.append(t.q3 - t.median if t else 0.0)
        bars = ax.bar(x - 0.4 + width * (i + 0.5), vals, width, yerr=[lo, hi], capsize=2,
                      label=m.label, color=colors[i % len(colors)],
                      hatch="//" if m.config.insecure else None)
        for xi, op in zip(x, ops, strict=True):
            if m.timings.get(op.key) is None:
                ax.annotate("n/a", (xi - 0.4 + width * (i + 0.5), 0), xycoords=("data", "axes fraction"),
                            ha="center", va="bottom", fontsize=7, rotation=90, xytext=(0, 3),
                            textcoords="offset points")
    ax.set_yscale("log")
    lo_y, hi_y = ax.get_ylim()
    ax.set_ylim(lo_y, hi_y * 20)  # headroom for the legend above the tallest bars
    ax.set_ylabel("seconds per value (log)\n= time per full ciphertext ÷ slots")
    ax.set_title(f"{title}: time per value (median, IQR bars; lower is better)")
    ax.set_xticks(x, [op.title for op in ops], rotation=15)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(5, max(1, len(ms))), loc="upper center")

    panels = (
        ("key generation (s)", [m.timings["keygen"].median if "keygen" in m.timings else 0 for m in ms],
         format_seconds),
        ("ciphertext bytes per value", [m.ciphertext_bytes_per_value or 0 for m in ms],
         lambda v: f"{v:,.1f}"),
        ("public context (bytes)", [m.public_context_bytes or 0 for m in ms], format_bytes),
    )
    for j, (name, vals, fmt) in enumerate(panels):
        pax = fig.add_subplot(grid[1, j])
        bars = pax.bar(range(len(ms)), vals, color=[colors[i % len(colors)] for i in range(len(ms))])
        _bar_labels(pax, bars, [fmt(v) if v else "" for v in vals])
        pax.set_yscale("log")
        pax.set_title(name, fontsize=10)
        pax.set_xticks(range(len(ms)), [m.label.split(" (")[0] for m in ms], rotation=30, ha="right",
                       fontsize=8)
        pax.grid(axis="y", alpha=0.3)
        if any(vals):
            lo, hi = min(v for v in vals if v > 0), max(vals)
            pax.set_ylim(lo / 3, hi * 6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
