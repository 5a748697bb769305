"""The ``he-ml`` command line: ``info``, ``bench`` (and ``demo``, registered the same way).

Adding a command
----------------
Write a function and register it with :func:`command`, which wires it into
:data:`app` and turns ``he_ml.errors`` exceptions into a short red message and
exit code 2 (no traceback)::

    @command("demo", help="...", epilog="...")
    def demo(scheme: str = typer.Option("ckks", help="...")) -> None:
        ...

Heavy modules (TenSEAL, matplotlib, the benchmark) are imported inside the
commands so that ``he-ml --help`` answers instantly.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from . import __version__
from .errors import HEError

__all__ = ["app", "command", "console", "err_console"]

app = typer.Typer(
    name="he-ml",
    help="Machine learning and gradient summation on encrypted data (CKKS, BFV, packed Paillier).",
    epilog="Start with [bold]he-ml info[/bold], then [bold]he-ml bench --quick[/bold]. "
           "Each command has its own --help.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

#: Exit code for errors the user can fix (bad option values, insecure parameters...).
EXIT_USER_ERROR = 2
#: Exit code when a benchmark failed for another reason (e.g. a crash inside native code).
EXIT_FAILURE = 1


def _fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    err_console.print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", highlight=False)
    return typer.Exit(code)


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as sub-command ``name`` of `app`; he_ml errors exit 2 with a red message."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except HEError as e:
                raise _fail(f"{type(e).__name__}: {e}") from None
        app.command(name, **kwargs)(run)
        return fn
    return register


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"he-ml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", help="Print the he_ml version and exit.",
                                 callback=_version_callback, is_eager=True),
) -> None:
    """Machine learning and gradient summation on encrypted data (CKKS, BFV, packed Paillier)."""


# --------------------------------------------------------------------------- info
def _epilog(*lines: str) -> str:
    """Help epilog whose lines survive every typer version.

    Older typer releases (< 0.21, which Flower pins) join single line breaks of an
    epilog into one paragraph, so each line is made a paragraph of its own.
    """
    return "\n\n".join(lines)


INFO_EPILOG = _epilog(
    "Examples:  [bold]he-ml info[/bold]   ·   [bold]he-ml info --json > info.json[/bold]",
    "The NTT tier is what he_ml.native dispatches to for a modulus q of each width: avx512ifma needs "
    "q < 2^50, avx512 covers q < 2^62, scalar runs everywhere, numba when the C++ core is not built.",
    "Environment: HE_ML_DISABLE_AVX512IFMA=1 / HE_ML_DISABLE_AVX512=1 turn a tier off; "
    "HE_ML_NATIVE_BACKEND=numba forces the fallback.",
)


def _info_tables(info: dict[str, Any]) -> list[Table]:
    general = Table(title="he_ml", show_header=False, title_style="bold")
    general.add_column(style="bold")
    general.add_column()
    general.add_row("he_ml", info["he_ml"])
    general.add_row("Python", f"{info['python']['version']} ({info['python']['implementation']}) "
                              f"{info['python']['executable']}")
    general.add_row("platform", info["platform"])

    deps = Table(title="dependencies", title_style="bold", header_style="bold cyan")
    deps.add_column("package")
    deps.add_column("version")
    deps.add_column("used for", style="dim")
    for row in info["dependencies"]:
        missing = row["version"] == "not installed"
        deps.add_row(row["package"], f"[yellow]{row['version']}[/yellow]" if missing else row["version"],
                     row["role"])

    cpu = info["cpu"]
    cpu_t = Table(title="CPU", show_header=False, title_style="bold")
    cpu_t.add_column(style="bold")
    cpu_t.add_column()
    cpu_t.add_row("model", str(cpu["model"]))
    cpu_t.add_row("logical CPUs", str(cpu["logical_cpus"]))
    feats = cpu["features"]
    cpu_t.add_row("features", " ".join(f"[green]{k}[/green]" if v else f"[dim strike]{k}[/dim strike]"
                                       for k, v in feats.items()) or "unknown")
    cpu_t.add_row("detected by", cpu["features_source"])

    nat = info["native"]
    impl = nat.get("implementation")
    impl_text = {"cpp": "C++ core (he_ml._native)",
                 "numba": "numba fallback (compiled he_ml._native not available)"}.get(impl, str(impl))
    nat_t = Table(title="native NTT core (he_ml.native)", title_style="bold", header_style="bold cyan",
                  caption=f"implementation: {impl_text}", caption_style="")
    nat_t.add_column("modulus width")
    nat_t.add_column("tier that runs")
    nat_t.add_column("tiers available", style="dim")
    if not nat["available"]:
        nat_t.add_row("—", f"[red]unavailable: {nat['error']}[/red]", "—")
    else:
        for row in nat["tiers"]:
            nat_t.add_row(f"{row['bits']}-bit q", f"[bold]{row['tier']}[/bold]",
                          ", ".join(row["available"]) if row["available"] else "—")
    if nat.get("environment"):
        nat_t.caption += "\nenvironment: " + ", ".join(f"{k}={v}" for k, v in nat["environment"].items())
    return [general, deps, cpu_t, nat_t]


@command("info", help="Show versions, CPU features and the native backend (which NTT tier will run).",
         epilog=INFO_EPILOG)
def info(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    from .bench.sysinfo import collect_info
    data = collect_info()
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for table in _info_tables(data):
        console.print(table)


# --------------------------------------------------------------------------- bench
BENCH_HELP = """Measure the speed and size of each encryption scheme.

For every scheme and preset: key generation, encrypt, decrypt, add, multiply by a plaintext,
multiply two ciphertexts (CKKS/BFV), sum, dot product, (de)serialization, ciphertext bytes per
value, public-context size and peak memory. Every operation runs on one full ciphertext and is
checked against numpy; times are medians over repeats (± half the interquartile range).

With --workload it also answers "which scheme should I use for this job?": it extrapolates the
measurements to the whole job and recommends the fastest and the smallest choice."""

BENCH_EPILOG = _epilog(
    "[bold]Examples[/bold]",
    "  he-ml bench --quick                          # the 'sum' preset of each scheme, about 15 s",
    "  he-ml bench                                  # default presets, about 1 minute on 2 cores",
    "  he-ml bench --scheme ckks --preset sum --preset inference --repeats 9",
    "  he-ml bench --workload sum:100x1M            # 100 clients each send 1,000,000 values: which scheme?",
    "  he-ml bench --workload dot:30x1000 --scheme ckks,paillier",
    "  he-ml bench --json results.json --plot bench.png --markdown bench.md",
    "[bold]Presets[/bold]: ckks: sum, light, inference, deep; bfv: sum, inference, deep; paillier: general, "
    "sum (3072-bit keys, 128-bit security), general-2048, sum-2048 (112-bit), insecure-1024 (smoke tests "
    "only). Default: ckks sum + inference, bfv sum, paillier general + sum.",
    "[bold]Workloads[/bold]: sum:CLIENTSxVALUES, dot:FEATURES, dot:FEATURESxSAMPLES, "
    "inference:FEATURESxSAMPLES (counts accept 1e6, 10k, 1M). The job is extrapolated from "
    "one-ciphertext measurements.",
    "[bold]Peak memory[/bold] is the growth of the resident set of a fresh process per scheme/preset "
    "(VmHWM, or getrusage ru_maxrss where unavailable), so it includes native SEAL and gmpy2 memory.",
)


def _split(values: Optional[List[str]]) -> Optional[List[str]]:
    """Accept both ``--scheme ckks --scheme bfv`` and ``--scheme ckks,bfv``."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _progress_runner(configs, settings, ops, isolate):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)
    from .bench.measure import OPERATIONS, OP_NAMES
    from .bench.runner import ops_to_run, run_benchmarks

    titles = {op.key: op.title for op in OPERATIONS}
    plans = [ops_to_run(ops, OP_NAMES) for _ in configs]
    offsets = [sum(len(p) for p in plans[:i]) for i in range(len(plans))]
    total = sum(len(p) for p in plans)
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description:<44}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
                  console=err_console, transient=False) as progress:
        task = progress.add_task("starting", total=total)

        def on_event(i: int, key: str) -> None:
            if key == "done":
                progress.update(task, completed=offsets[i] + len(plans[i]),
                                description=f"{configs[i].label}: done")
            else:
                done = offsets[i] + (plans[i].index(key) if key in plans[i] else 0)
                progress.update(task, completed=done, description=f"{configs[i].label}: {titles[key]}")

        results = run_benchmarks(configs, settings, ops=ops, isolate=isolate, progress=on_event)
        progress.update(task, completed=total, description="finished")
    return results


@command("bench", help=BENCH_HELP, epilog=BENCH_EPILOG)
def bench(
    scheme: Optional[List[str]] = typer.Option(
        None, "--scheme", "-s", help="Scheme(s) to measure: ckks, bfv, paillier (repeat or comma-separate). "
                                     "Default: all three."),
    preset: Optional[List[str]] = typer.Option(
        None, "--preset", "-p", help="Preset(s) to measure (repeat or comma-separate), see below. "
                                     "Default: each scheme's main presets."),
    repeats: Optional[int] = typer.Option(
        None, "--repeats", "-r", min=1, max=1000, help="Samples per operation for the median (default 5, "
                                                       "3 with --quick)."),
    quick: bool = typer.Option(False, "--quick", "-q",
                               help="Short run: each scheme's sum preset, 3 repeats, shorter samples."),
    workload: Optional[str] = typer.Option(
        None, "--workload", "-w", help="Describe a job, e.g. sum:100x1000000 or dot:30; prints the "
                                       "fastest and the smallest scheme for it."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write all results as JSON to this file.",
                                             dir_okay=False),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG chart (grouped bars, log scale).",
                                        dir_okay=False),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the table as Markdown.",
                                            dir_okay=False),
    in_process: bool = typer.Option(
        False, "--in-process", help="Measure in this process instead of a fresh one per scheme/preset "
                                    "(faster start, but no peak-memory figure)."),
) -> None:
    from .bench import report
    from .bench.configs import resolve_configs
    from .bench.measure import BenchSettings
    from .bench.workload import parse_workload, recommend

    job = parse_workload(workload) if workload else None  # fail on a bad string before measuring
    # A workload needs candidates that can run it (e.g. a deep enough CKKS preset for
    # inference): it always starts from the default presets; --quick only shortens sampling.
    configs = resolve_configs(_split(scheme), _split(preset), quick=quick and job is None)
    settings = BenchSettings.quick(repeats) if quick else BenchSettings.standard(repeats)
    ops = job.required_ops() if job else None
    insecure = [c.label for c in configs if c.insecure]
    if insecure:
        err_console.print(f"[bold red]warning:[/bold red] {', '.join(insecure)} use insecure test-only "
                          f"keys; their figures are for smoke tests, never for deployment.")

    results = _progress_runner(configs, settings, ops, not in_process)
    ok = [m for m in results if not m.error]
    if ok:
        title = "he-ml bench --quick" if quick else "he-ml bench"
        for table in report.results_tables(ok, title=title, width=console.width):
            console.print(table)
        problems = [(m.label, op, msg) for m in ok for op, msg in m.failures.items()]
        problems += [(m.label, op, "result did not match numpy") for m in ok
                     for op, good in m.checks.items() if not good]
        for label, op, msg in problems:
            err_console.print(f"[red]{escape(f'{label} {op}: {msg}')}[/red]", highlight=False)

    rec = recommend(job, ok) if job else None
    if rec is not None:
        console.print(report.recommendation_table(rec, width=console.width))
        lines = []
        for what, pick in (("Fastest", rec.fastest), ("Smallest", rec.smallest)):
            if pick is not None:
                caveat = f" — note: {pick.notes[0]}" if pick.notes and "integers only" in pick.notes[0] else ""
                lines.append(f"[bold green]{what}:[/bold green] [bold]{escape(pick.name)}[/bold] — est. "
                             f"{report.format_seconds(pick.total_seconds)}, "
                             f"{report.format_bytes(pick.total_bytes)} "
                             f"({pick.ciphertexts:,} ciphertexts of {pick.slot_count:,} slots){escape(caveat)}")
        lines += [f"[dim]{escape(n)}[/dim]" for n in rec.notes]
        console.print(Panel("\n".join(lines) or "nothing fits", title="recommendation", expand=False))

    if json_path:
        doc = report.to_document(results, settings, quick=quick, isolated=not in_process, recommendation=rec)
        console.print(f"JSON written to {report.write_json(json_path, doc)}")
    if plot and ok:
        console.print(f"plot written to {report.write_plot(plot, ok, title='he-ml bench')}")
    if markdown and ok:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report.markdown_table(ok), encoding="utf-8")
        console.print(f"Markdown written to {markdown}")

    failed = [m for m in results if m.error]
    if failed:
        from . import errors as _errors
        for m in failed:
            text = escape(f"{m.label}: {m.error_type}: {m.error}")
            err_console.print(f"[bold red]error:[/bold red] [red]{text}[/red]", highlight=False)
        ours = all(m.error_type in _errors.__all__ for m in failed)
        raise typer.Exit(EXIT_USER_ERROR if ours else EXIT_FAILURE)


_DEMO_EPILOG = (
    "Examples:\n\n"
    "  he-ml demo                       # all three schemes\n\n"
    "  he-ml demo --scheme ckks         # one scheme\n\n"
    "  he-ml demo --json demo.json      # also write the table as JSON"
)


@command("demo", help="End-to-end encrypted inference on scikit-learn's breast-cancer data with each "
                      "scheme: the client encrypts the test set, the server scores it with only a public "
                      "context, the client decrypts. Shows plaintext vs encrypted accuracy, agreement, "
                      "time per sample and bytes uploaded.", epilog=_DEMO_EPILOG)
def demo(
    scheme: Optional[List[str]] = typer.Option(
        None, "--scheme", "-s", help="Scheme(s) to run: ckks, bfv, paillier (repeat or comma-separate). "
                                     "Default: all three."),
    seed: int = typer.Option(0, help="Seed of the train/test split."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results table to this JSON file."),
) -> None:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    from .demo import DEMO_SCHEMES, rows_as_dicts, run_demo
    from .errors import ParameterError

    names = _split(scheme) or list(DEMO_SCHEMES)
    unknown = [n for n in names if n not in DEMO_SCHEMES]
    if unknown:
        raise ParameterError(f"--scheme must be among {sorted(DEMO_SCHEMES)}; got {unknown}.")
    steps_per_scheme = 4
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description:<48}"), BarColumn(),
                  console=err_console, transient=False) as progress:
        task = progress.add_task("loading the breast-cancer data", total=steps_per_scheme * len(names))

        def on_step(message: str) -> None:
            progress.update(task, description=message, advance=1)

        rows = run_demo(names, seed=seed, progress=on_step)
        progress.update(task, description="finished", completed=steps_per_scheme * len(names))

    console.print(demo_table(rows))
    console.print("[dim]time per sample = client encryption + server scoring (+ polynomial sigmoid on CKKS) + "
                  "client decryption, divided by the number of samples; the server works from bytes only "
                  "(public context + uploaded ciphertexts). The 171 test samples fill only a few percent of "
                  "each ciphertext's slots; at full batches (benchmarks/bench_inference.py, 8192 samples) CKKS "
                  "needs ~0.1 ms and ~2.7 KB per sample.[/dim]")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows_as_dicts(rows), indent=2), encoding="utf-8")
        console.print(f"JSON written to {json_path}")


def demo_table(rows: List[Any]) -> Table:
    """The demo's results (rows: `he_ml.demo.DemoRow`), one column per scheme.

    Cells wrap at spaces and fold long tokens, so nothing is cut at 80 columns.
    """
    table = Table(title="Encrypted inference, breast cancer (30 % test split)")
    table.add_column("", overflow="fold")
    for r in rows:
        table.add_column(r.scheme, justify="right", overflow="fold")
    metrics = [
        ("parameters", lambda r: r.parameters.replace("; ", "\n")),
        ("security", lambda r: f"{r.security_bits}-bit"),
        ("plaintext accuracy", lambda r: f"{r.plaintext_accuracy:.1%}"),
        ("encrypted accuracy", lambda r: f"{r.encrypted_accuracy:.1%}"),
        ("agreement with plaintext", lambda r: f"{r.agreement:.1%}"),
        ("max |score error|", lambda r: f"{r.max_score_error:.2e}"),
        ("max |probability error|", lambda r: "n/a" if r.max_proba_error is None else f"{r.max_proba_error:.3f}"),
        ("time per sample", lambda r: f"{r.ms_per_sample:.2f} ms"),
        ("upload per sample", lambda r: f"{r.upload_bytes_per_sample / 1024:.1f} KiB"),
        ("key generation", lambda r: f"{r.keygen_seconds:.2f} s"),
    ]
    for label, fmt in metrics:
        table.add_row(label, *[fmt(r) for r in rows])
    return table


if __name__ == "__main__":  # python -m he_ml.cli
    app()
