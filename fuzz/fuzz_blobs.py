"""Repeatable mutation fuzzer for every he_ml byte parser.

Usage::

    python fuzz/fuzz_blobs.py --iterations 1000000 --seed 1          # the long run
    python fuzz/fuzz_blobs.py --iterations 3000 --seed 1             # the CI smoke run
    python fuzz/fuzz_blobs.py --parsers paillier.ciphertext --iterations 100000

For each parser a few valid seed blobs are built, then each iteration applies one
of several mutations with a seeded PRNG (test data, not key material):

* raw mutations — bit flips, byte overwrites, truncation, extension, splices of two
  seeds, random bytes (these mostly die at the container checksum);
* structure-aware mutations — the container is parsed, its JSON metadata or one
  payload section is mutated or truncated, and the container is re-packed with a
  *valid* checksum, so the bytes reach the scheme's own parser and TenSEAL/SEAL or
  gmpy2 behind it.

Every input must either parse or raise an ``he_ml.errors.HEError``; anything
else (another exception type, a native crash, or one input taking longer than
``--timeout`` seconds) is a failure: the input is written to ``fuzz/crashes/``
and the exit code is 1. The process running the parser is this one, so a
native crash aborts the run with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

import he_ml
from he_ml.errors import HEError
from he_ml.schemes._format import Kind, pack_blob, unpack_blob

CRASH_DIR = Path(__file__).resolve().parent / "crashes"


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # pragma: no cover - only on hangs
    raise _Timeout()


def _contexts():
    """Small contexts: the smallest 128-bit lattice rings (n = 4096) keep SEAL's parsers fast;
    Paillier uses an insecure 1024-bit test key (the parser code paths do not depend on the size)."""
    ctxs = {}
    ctxs["ckks"] = he_ml.CKKS(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40],
                              scale_bits=20)
    ctxs["bfv"] = he_ml.BFV(preset=None, poly_modulus_degree=4096, plain_modulus_bits=20,
                            coeff_mod_bit_sizes=[36, 36, 37])
    ctxs["paillier"] = he_ml.Paillier(key_bits=1024, allow_insecure=True)
    return ctxs


def _context_loader(scheme: str):
    """load_context for the fuzz seeds. The Paillier seed key (1024 bits) is below the
    security floor on purpose (fast); the caller's opt-in (``allow_insecure=``, never read
    from the blob) is given for Paillier only, which
    lowers the security floor but none of the size limits under test. The lattice seeds are
    secure, so their contexts load without it and a blob's own "allow_insecure" is tested."""
    if scheme == "paillier":
        return lambda data: he_ml.load_context(data, allow_insecure=True)
    return he_ml.load_context


def build_targets(names: list[str] | None, contexts: dict | None = None):
    """parser name -> (parse function, list of valid seed blobs).

    ``contexts`` (scheme name -> context with its secret key) defaults to fresh small
    contexts; fuzz_structured.py passes contexts loaded from its saved seed corpus.
    """
    from he_ml.aggregation import GradientAggregator
    from he_ml.ml import EncryptedFeatures, encrypt_features

    rng = np.random.default_rng(0)
    targets = {}
    targets["container"] = (unpack_blob, [pack_blob(Kind.CIPHERTEXT, "ckks", b"\x01" * 16,
                                                    {"shape": [3], "meta": {}}, [b"abc", b""])])
    for name, ctx in (contexts if contexts is not None else _contexts()).items():
        values = rng.integers(-50, 50, size=37) if name == "bfv" else rng.normal(size=37)
        vec = ctx.encrypt(values)
        pub = ctx.public_context()
        targets[f"{name}.context"] = (_context_loader(name), [ctx.to_bytes(),
                                                             ctx.to_bytes(include_secret_key=True)])
        targets[f"{name}.ciphertext"] = (pub.ciphertext_from_bytes, [vec.to_bytes(), vec.sum().to_bytes()])
        opts = {"max_value": 10.0, "precision_bits": 8} if name == "bfv" else {}
        update = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=2)}
        blob = GradientAggregator(pub, **opts).encrypt(update)

        def add(data, _pub=pub, _opts=opts):
            GradientAggregator(_pub, **_opts).add(data)

        targets[f"{name}.aggregate"] = (add, [blob])
        feats = encrypt_features(ctx, rng.normal(size=(5, 3)) if name != "bfv" else rng.normal(size=(5, 3)))
        targets[f"{name}.features"] = (lambda data, _pub=pub: EncryptedFeatures.from_bytes(_pub, data),
                                       [feats.to_bytes()])
    if names:
        unknown = set(names) - set(targets)
        if unknown:
            raise SystemExit(f"unknown parsers {sorted(unknown)}; choose from {sorted(targets)}")
        targets = {k: v for k, v in targets.items() if k in names}
    return targets


def _mutate_raw(r: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    op = r.randrange(7)
    if op == 0 and b:
        for _ in range(r.randint(1, 8)):
            i = r.randrange(len(b))
            b[i] ^= 1 << r.randrange(8)
    elif op == 1 and b:
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] = r.randrange(256)
    elif op == 2:
        b = b[: r.randrange(len(b) + 1)]
    elif op == 3:
        b += os.urandom(0) + bytes(r.randrange(256) for _ in range(r.randint(1, 64)))
    elif op == 4:
        other = r.choice(seeds)
        cut = r.randrange(len(b) + 1)
        b = b[:cut] + other[r.randrange(len(other) + 1):]
    elif op == 5:
        b = bytearray(r.getrandbits(8) for _ in range(r.randint(0, 96)))
    else:
        b = bytearray(b"HEML") + b[4:]
    return bytes(b)


def _mutate_json(r: random.Random, obj):
    """Replace one random leaf or key of a JSON value with a hostile value."""
    hostile = [None, -1, 0, 2 ** 63, -2 ** 63, 1e308, "x", "", [], {}, [[]], True, 3.5, "ckks",
               [2 ** 40, 2 ** 40], [-3], [0], "blocks", "columns", "dict", "array"]
    if isinstance(obj, dict) and obj:
        k = r.choice(list(obj))
        if r.random() < 0.15:
            obj = dict(obj)
            del obj[k]
            return obj
        obj = dict(obj)
        obj[k] = _mutate_json(r, obj[k]) if r.random() < 0.6 else r.choice(hostile)
        return obj
    if isinstance(obj, list) and obj:
        obj = list(obj)
        i = r.randrange(len(obj))
        obj[i] = _mutate_json(r, obj[i]) if r.random() < 0.6 else r.choice(hostile)
        if r.random() < 0.2:
            obj.append(r.choice(hostile))
        return obj
    return r.choice(hostile)


def _mutate_structured(r: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    blob = unpack_blob(data)
    meta, sections = blob.metadata, list(blob.sections)
    kind, fp = blob.kind, blob.fingerprint
    op = r.randrange(6)
    if op == 0:
        meta = _mutate_json(r, json.loads(json.dumps(meta)))
        if not isinstance(meta, dict):
            meta = {"x": meta}
    elif op == 1 and sections:
        i = r.randrange(len(sections))
        s = bytearray(sections[i])
        if s:
            for _ in range(r.randint(1, 16)):
                s[r.randrange(len(s))] = r.randrange(256)
        sections[i] = bytes(s)
    elif op == 2 and sections:
        i = r.randrange(len(sections))
        sections[i] = sections[i][: r.randrange(len(sections[i]) + 1)]
    elif op == 3:
        if sections and r.random() < 0.5:
            sections.pop(r.randrange(len(sections)))
        else:
            sections.append(bytes(r.getrandbits(8) for _ in range(r.randint(0, 64))))
    elif op == 4:
        kind = Kind(r.choice([k.value for k in Kind]))
    else:
        fp = bytes(r.getrandbits(8) for _ in range(16))
    return pack_blob(kind, blob.scheme, fp, meta, sections)


def fuzz(parse, seeds: list[bytes], iterations: int, r: random.Random, timeout: float, name: str,
         progress=None) -> Counter:
    outcomes: Counter = Counter()
    signal.signal(signal.SIGALRM, _alarm)
    for it in range(iterations):
        seed = r.choice(seeds)
        data = _mutate_structured(r, seed, seeds) if r.random() < 0.35 else _mutate_raw(r, seed, seeds)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            parse(data)
            outcomes["accepted"] += 1
        except HEError as e:
            outcomes[type(e).__name__] += 1
        except _Timeout:
            outcomes["TIMEOUT"] += 1
            _save(name, it, data, "timeout")
        except Exception as e:  # anything not ours is a bug
            outcomes[f"BUG:{type(e).__name__}"] += 1
            _save(name, it, data, repr(e))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if progress is not None:
            progress(1)
    return outcomes


def _save(name: str, it: int, data: bytes, why: str) -> None:
    CRASH_DIR.mkdir(exist_ok=True)
    path = CRASH_DIR / f"{name}-{it}.bin"
    path.write_bytes(data)
    print(f"  failure in {name} at iteration {it}: {why[:200]} -> {path}", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=10000, help="inputs per parser (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="PRNG seed: the same seed replays the same inputs")
    ap.add_argument("--parsers", nargs="*", help="subset of parser names (default: all)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per input")
    ap.add_argument("--json", help="write the outcome counts to this file")
    args = ap.parse_args(argv)
    from rich.progress import Progress

    targets = build_targets(args.parsers)
    report, failed = {}, False
    with Progress(transient=not sys.stdout.isatty()) as prog:
        for i, (name, (parse, seeds)) in enumerate(sorted(targets.items())):
            for s in seeds:  # the seeds themselves must parse
                parse(s)
            r = random.Random(f"{args.seed}:{name}")
            task = prog.add_task(f"fuzz {name}", total=args.iterations)
            t0 = time.perf_counter()
            out = fuzz(parse, seeds, args.iterations, r, args.timeout, name,
                       progress=lambda k, _t=task: prog.advance(_t, k))
            dt = time.perf_counter() - t0
            bad = sum(v for k, v in out.items() if k.startswith("BUG") or k == "TIMEOUT")
            failed |= bad > 0
            report[name] = {"iterations": args.iterations, "seconds": round(dt, 2), "failures": bad,
                            "outcomes": dict(out)}
    for name, rep in report.items():
        status = "FAIL" if rep["failures"] else "ok"
        print(f"{status:4} {name:22} {rep['iterations']:>9} inputs {rep['seconds']:>8.1f} s  {rep['outcomes']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seed": args.seed, "parsers": report}, indent=2))
    total = sum(r["iterations"] for r in report.values())
    nfail = sum(r["failures"] for r in report.values())
    print(f"fuzz: {total - nfail} passed, {nfail} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
