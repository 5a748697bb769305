"""Resumable long run of the structure-aware fuzzer: one million inputs per parser, in chunks.

Usage::

    python fuzz/long_run.py                      # run (or resume) until every parser has 1M inputs
    python fuzz/long_run.py --target 200000      # a smaller goal
    python fuzz/long_run.py --summary            # totals so far, as a markdown table

A million inputs per parser is hours of CPU (about 1-8 ms per input, 13 parsers), more than one
sitting. This driver runs ``fuzz_structured.py`` in chunks of ``--chunk`` inputs per parser,
breadth-first (every parser gets its next chunk before any gets a second one), each chunk with
its own seed (``1001 + k`` for the k-th chunk), so the inputs of different chunks differ and any
input stays replayable with ``fuzz_structured.py --seed S --replay PARSER:INDEX``. A finished
chunk leaves its JSON report in ``fuzz/long/`` (``PARSER-sSEED.json``, with the commit it ran on);
an interrupted chunk leaves nothing and is rerun, so the run can be stopped (Ctrl-C, end of a
session) and resumed at any time. Start one process per core: each claims the chunk it runs
(``PARSER-sSEED.claim`` holds its pid; a dead claimant's chunk is taken over), so they share the
work. The exit code is 1 if any chunk reported a failure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "long"
FIRST_SEED = 1001


def _parsers() -> list[str]:
    sys.path.insert(0, str(HERE))
    import fuzz_structured

    targets, _ = fuzz_structured._load_targets()
    return sorted(targets)


def _claim(path: Path) -> bool:
    """Claim a chunk for this process (a file holding its pid, created exclusively), so several
    long_run processes -- one per core -- share the chunks. A claim whose process is gone (killed)
    is taken over."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or "0")
                os.kill(pid, 0)
                return False  # alive: its chunk
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # stale: the claimant died
                continue
            except PermissionError:
                return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _commit() -> str:
    """The checkout's commit, with "+dirty" when tracked files under he_ml/ differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=HERE.parent, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "he_ml"], cwd=HERE.parent).returncode != 0
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _done() -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for f in sorted(OUT.glob("*-s*.json")):
        name, _, seed = f.stem.rpartition("-s")
        try:
            out.setdefault(name, {})[int(seed)] = json.loads(f.read_text())
        except (ValueError, OSError):
            continue
    return out


def _descends(code: str | None, since: str) -> bool:
    """Whether a chunk's recorded commit contains ``since`` (chunks without a record: no)."""
    if not code or code == "unknown":
        return False
    return subprocess.run(["git", "merge-base", "--is-ancestor", since, code.split("+")[0]], cwd=HERE.parent,
                          capture_output=True).returncode == 0


def summary(since: str | None = None) -> tuple[str, bool]:
    rows, failed = [], False
    for name, chunks in sorted(_done().items()):
        inputs = sum(c["parsers"][name]["inputs"] for c in chunks.values())
        recent = sum(c["parsers"][name]["inputs"] for c in chunks.values()
                     if since and _descends(c.get("code"), since))
        fails = sum(c["parsers"][name]["failures"] for c in chunks.values())
        cpu = sum(c["parsers"][name]["seconds"] for c in chunks.values())
        slowest = max(c["parsers"][name]["slowest"]["cpu_s"] for c in chunks.values())
        growth = max(c["parsers"][name]["max_growth_mib"]["mib"] for c in chunks.values())
        failed |= fails > 0
        rows.append(f"| {name} | {inputs:,} |" + (f" {recent:,} |" if since else "")
                    + f" {len(chunks)} | {fails} | {slowest:.3f} | {growth:.0f} | {1000 * cpu / max(inputs, 1):.2f} |")
    head = ("| parser | inputs |" + (f" of them on {since} or later |" if since else "")
            + " chunks (seeds) | failures | slowest input (CPU s) | max RSS growth (MiB) | wall ms / input |\n"
            + "|---|---:|" + ("---:|" if since else "") + "---:|---:|---:|---:|---:|")
    return head + "\n" + "\n".join(rows), failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=int, default=1_000_000, help="inputs per parser (default 1,000,000)")
    ap.add_argument("--chunk", type=int, default=50_000, help="inputs per chunk (default 50,000)")
    ap.add_argument("--parser", action="append", dest="parsers", help="only these parsers (repeatable)")
    ap.add_argument("--summary", action="store_true", help="print the totals so far and exit")
    ap.add_argument("--since", metavar="COMMIT",
                    help="with --summary: also count the inputs of chunks run on COMMIT or a later commit")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    if args.summary:
        table, failed = summary(args.since)
        print(table)
        return 1 if failed else 0
    names = args.parsers or _parsers()
    rounds = -(-args.target // args.chunk)
    failed = False
    for k in range(rounds):
        seed = FIRST_SEED + k
        for name in names:
            out = OUT / f"{name}-s{seed}.json"
            if out.exists():
                continue
            part = out.with_suffix(".part")
            claim = out.with_suffix(".claim")
            if not _claim(claim):
                continue  # another long_run process is running this chunk
            t0 = time.time()
            code = _commit()
            try:
                part.unlink(missing_ok=True)
                rc = subprocess.call([sys.executable, str(HERE / "fuzz_structured.py"), "--parser", name,
                                      "--iterations", str(args.chunk), "--seed", str(seed), "--json", str(part)],
                                     env=dict(os.environ))
                if not part.exists():  # interrupted before the report: rerun this chunk next time
                    print(f"long_run: {name} seed {seed} ended without a report (rc {rc}); stopping",
                          file=sys.stderr)
                    return 2
            finally:
                claim.unlink(missing_ok=True)
            report = json.loads(part.read_text())
            report["code"] = code  # the commit the chunk ran on (he_ml is imported at its start)
            part.write_text(json.dumps(report, indent=1) + "\n")
            part.rename(out)
            failed |= rc != 0
            print(f"long_run: {name} seed {seed}: {args.chunk} inputs in {time.time() - t0:.0f} s, rc {rc}",
                  flush=True)
    table, any_failed = summary()
    print(table)
    return 1 if failed or any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
