"""Structure-aware fuzzer for every he_ml byte parser, with a per-input time and memory budget.

Usage::

    python fuzz/fuzz_structured.py --iterations 300 --seed 1                  # CI's brief run
    python fuzz/fuzz_structured.py --iterations 1000000 --seed 1              # the long run
    python fuzz/fuzz_structured.py --parser paillier.context --iterations 5000
    python fuzz/fuzz_structured.py --replay ckks.context:1234 --seed 1       # one input, traceback

Where ``fuzz_blobs.py`` mostly flips bytes, this fuzzer starts from valid blobs and
goes *past* the container CRC: it decodes a blob, mutates what the parsers behind the
container read, and re-packs it with a valid checksum through the format's own layout
(``he_ml.schemes._format``), so every input reaches the scheme's loader. Mutations:

* **valid-CRC field edits of every metadata key**: each key path of the seed's JSON
  (nested ones included) is replaced by a hostile value of the same or another type;
* **hostile JSON values**: integers of 20, 400 and more than 4300 digits (written as raw
  JSON text, which Python's ``int()`` refuses to parse), ``Infinity`` / ``-Infinity`` /
  ``NaN``, long lists, deep nesting, huge strings, type swaps, duplicate and unknown keys;
* **resource bombs**: huge declared ring degrees and prime counts (real SEAL parameter
  sections for n = 32768 with 16 to 64 primes, marked ``allow_insecure`` in the blob's own
  JSON), huge Paillier moduli and key / multiplier / fixed-point bits, shape lists of
  hundreds of 4000-digit integers, counts like ``10**400``;
* **cross-scheme and cross-kind payloads**: a CKKS section under a BFV header, a context's
  sections in a ciphertext, a blob's header scheme or kind switched, another key's
  fingerprint; Paillier ciphertexts 0 and >= n^2;
* **section edits**: truncation, zero fill, random bytes, drops and duplicates.

Every input must parse or raise an ``he_ml.errors.HEError`` subclass, within a time budget
(``--time-budget`` CPU seconds) and a memory budget (``--memory-budget`` MiB of peak RSS
growth). Parsers run in a worker subprocess under ``RLIMIT_AS``; a native crash, a hang
(killed by the parent), an exception of another class or an input over either budget is a
failure, saved to ``fuzz/crashes/<parser>-s<seed>-i<index>.bin`` (with a ``.txt``
describing it) and reported by signature. Input ``i`` of parser ``p`` is generated from
``random.Random(f"{seed}:{p}:{i}")`` alone, so any single input is replayable with
``--replay p:i``. The exit code is 1 if any input failed.
"""
from __future__ import annotations

import argparse
import json
import math
import mmap
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
CRASH_DIR = HERE / "crashes"
MAX_SAVED_PER_SIGNATURE = 3

# ---------------------------------------------------------------------------
# Raw JSON: values the stdlib encoder cannot write (ints over 4300 digits, deep nesting)
# ---------------------------------------------------------------------------


class RawJSON(str):
    """JSON text inserted verbatim by :func:`to_json_text`."""


_SCALARS = frozenset((int, float, str, bool, type(None)))  # exact types: RawJSON (a str subclass) is not one


def to_json_text(obj: Any) -> str:
    """Compact, key-sorted JSON like ``pack_blob`` writes, plus :class:`RawJSON` pieces."""
    if type(obj) in (list, tuple, dict) and set(map(type, obj.values() if type(obj) is dict else obj)) <= _SCALARS:
        # no RawJSON and nothing nested: the stdlib writes the same bytes (NaN, Infinity included) in one call
        return json.dumps(obj, separators=(",", ":"), sort_keys=True)
    if isinstance(obj, RawJSON):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + to_json_text(v)
                              for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(to_json_text(v) for v in obj) + "]"
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
    return json.dumps(obj, separators=(",", ":"))


def pack_raw(kind: int, scheme_id: int, fingerprint: bytes, meta_text: bytes,
             sections: list[bytes]) -> bytes:
    """The container of ``he_ml.schemes._format`` with metadata given as raw JSON bytes.

    Uses the format's own header layout and constants; for metadata that the stdlib can
    encode the result is byte-identical to ``pack_blob`` (checked at start-up by
    :func:`_self_check_packer`). Only the CRC is recomputed — it is valid by construction.
    """
    from he_ml.schemes import _format as fmt

    parts = [fmt._HEAD.pack(fmt.MAGIC, fmt.FORMAT_VERSION, kind, scheme_id, fingerprint,
                            len(meta_text)), meta_text, fmt._U32.pack(len(sections))]
    for s in sections:
        parts.append(fmt._U64.pack(len(s)))
        parts.append(bytes(s))
    body = b"".join(parts)
    return body + fmt._U32.pack(zlib.crc32(body) & 0xFFFFFFFF)


def _self_check_packer(seeds: list[bytes]) -> None:
    from he_ml.schemes._format import SCHEME_IDS, pack_blob, unpack_blob

    for data in seeds:
        b = unpack_blob(data)
        ours = pack_raw(int(b.kind), SCHEME_IDS[b.scheme], b.fingerprint,
                        to_json_text(b.metadata).encode(), b.sections)
        if ours != pack_blob(b.kind, b.scheme, b.fingerprint, b.metadata, b.sections) or ours != data:
            raise SystemExit("fuzz_structured: pack_raw no longer matches he_ml's pack_blob; "
                             "update it to the container format in he_ml/schemes/_format.py")


# ---------------------------------------------------------------------------
# Hostile values
# ---------------------------------------------------------------------------
DIGITS_5000 = RawJSON("9" * 5000)            # > 4300 digits: int() refuses it
DIGITS_4000 = RawJSON("7" * 4000)            # parses, but products of many are huge
DIGITS_400 = 10 ** 400 - 7                   # 400 digits: parses; OverflowError as a float
LONG_LIST = RawJSON("[" + ",".join(["1099511627776"] * 100000) + "]")
HUGE_SHAPE = RawJSON("[" + ",".join([str(DIGITS_4000)] * 800) + "]")  # 3.2 MB of JSON
BIG_INTS = [2 ** 31, 2 ** 32 + 1, 2 ** 53 + 1, 2 ** 63, 2 ** 64 + 1, 2 ** 100, 10 ** 30, DIGITS_400,
            -1, -(2 ** 63), 0, 1, 2, 3]
SPECIAL_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324, -0.0, 0.5, 1e-9]
RESOURCE_INTS = [2 ** 15, 2 ** 16, 2 ** 17, 2 ** 20, 2 ** 24, 2 ** 31, 2 ** 33, 2 ** 40, 10 ** 9,
                 10 ** 12, 2 ** 62, 2 ** 64]
# metadata keys that size an allocation or a loop somewhere (resource-bomb targets)
SIZE_KEYS = {"poly_modulus_degree", "n", "key_bits", "multiplier_bits", "precision_bits",
             "fixed_point_bits", "bits", "n_samples", "n_features", "batch_size", "size", "count",
             "shape", "spec", "bound", "scale", "terms", "max_additions", "max_reduction_terms",
             "randomness_bits", "usable_bits", "slots", "galois_elts", "depth", "reduce",
             "aggregate", "plain_modulus_bits", "scale_bits", "max_value"}


def hostile_value(r: random.Random, current: Any) -> Any:
    """A value to put where ``current`` was: same type made extreme, or another type."""
    choice = r.randrange(12)
    if choice == 0:
        return DIGITS_5000
    if choice == 1:
        return r.choice(SPECIAL_FLOATS)
    if choice == 2:
        return r.choice(BIG_INTS)
    if choice == 3:  # long list
        return r.choice([LONG_LIST, [r.choice([0, 1, 2 ** 40, 10 ** 20]) for _ in range(1000)]])
    if choice == 4:  # deep nesting: 500 parses everywhere, 100000 hits the parser's limit
        depth = r.choice([64, 500, 100000])
        return RawJSON("[" * depth + "]" * depth)
    if choice == 5:  # huge or odd string
        return r.choice(["", "x" * 1000000, "\u0000", "ckks", "bfv", "paillier", "columns",
                         "blocks", "dict", "array", "fixed", "native", "product", "NaN"])
    if choice == 6:  # type swap
        return r.choice([None, True, False, {}, [], [[]], {"x": 1}, "1", 1.5, [current]])
    if choice == 7 and isinstance(current, bool):
        return not current
    if choice in (7, 8) and isinstance(current, (int, float)) and not isinstance(current, bool):
        return r.choice([current * 2, current + 1, current - 1, -current, current * 2 ** 20,
                         current * 10 ** 300 if isinstance(current, int) else current * 1e300,
                         r.choice(RESOURCE_INTS)])
    if choice in (7, 8) and isinstance(current, list):
        return r.choice([[], current * 2, current + [r.choice(BIG_INTS)], current[:-1],
                         [r.choice(RESOURCE_INTS) for _ in current] or [2 ** 40],
                         [hostile_value(r, v) for v in current]])
    if choice == 9:
        return r.choice(RESOURCE_INTS)
    if choice == 10:
        # many huge integers: the 'quadratic shape product' bomb of issue 10
        return r.choice([[DIGITS_4000] * 8, [DIGITS_4000] * 200, HUGE_SHAPE])
    return r.choice([None, -1, 0, 1.0, "x", [], {}])


def key_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON value, the root excluded."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out.extend(key_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:64]):
            out.append(prefix + (i,))
            out.extend(key_paths(v, prefix + (i,)))
    return out


def get_path(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def set_path(obj: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    """Copy of ``obj`` with ``path`` replaced (or deleted)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        new = dict(obj)
        if rest:
            new[head] = set_path(obj[head], rest, value, delete)
        elif delete:
            new.pop(head, None)
        else:
            new[head] = value
        return new
    new = list(obj)
    if rest:
        new[head] = set_path(obj[head], rest, value, delete)
    elif delete:
        del new[head]
    else:
        new[head] = value
    return new


# ---------------------------------------------------------------------------
# The mutator
# ---------------------------------------------------------------------------
class Mutator:
    """Builds input ``index`` of a parser from its seeds and every other parser's seeds."""

    def __init__(self, parser: str, seeds: list[bytes], all_seeds: dict[str, list[bytes]]) -> None:
        from he_ml.schemes._format import SCHEME_IDS, unpack_blob

        self.parser = parser
        self.scheme_ids = SCHEME_IDS
        self.seeds = [unpack_blob(s) for s in seeds]
        self.others = [unpack_blob(s) for name, ss in sorted(all_seeds.items()) for s in ss
                       if name != "container"]
        self._seal_bombs: list[tuple[str, bytes]] | None = None

    # -- SEAL parameter sections for huge rings (real, valid SEAL serializations) --
    def seal_bombs(self) -> list[tuple[str, bytes]]:
        if self._seal_bombs is None:
            self._seal_bombs = _seal_parameter_bombs()
        return self._seal_bombs

    def make(self, index: int, seed: int) -> bytes:
        r = random.Random(f"{seed}:{self.parser}:{index}")
        blob = r.choice(self.seeds)
        kind, scheme_id, fp = int(blob.kind), self.scheme_ids[blob.scheme], blob.fingerprint
        meta: Any = json.loads(json.dumps(blob.metadata))
        sections = list(blob.sections)
        extra_text: str | None = None
        ops: list[str] = []  # what was done, for the crash report
        self.last_ops = ops
        for _ in range(1 if r.random() < 0.6 else r.randint(2, 3)):
            op = r.randrange(100)
            if op < 30:  # valid-CRC edit of one metadata key (every key path is a target)
                paths = key_paths(meta)
                if paths:
                    path = r.choice(paths)
                    value = hostile_value(r, get_path(meta, path))
                    meta = set_path(meta, path, value)
                    ops.append(f"edit {'/'.join(map(str, path))} = {_short(value)}")
            elif op < 40:  # resource bomb on a size-like key, wherever it is
                paths = [p for p in key_paths(meta) if isinstance(p[-1], str) and p[-1] in SIZE_KEYS]
                if paths:
                    path = r.choice(paths)
                    cur = get_path(meta, path)
                    if isinstance(cur, list):
                        bomb = r.choice([[r.choice(RESOURCE_INTS)] * len(cur) or [2 ** 40],
                                         HUGE_SHAPE, [DIGITS_4000] * 8,
                                         [["w", [r.choice(RESOURCE_INTS)] * 4]] * 50])
                    else:
                        bomb = r.choice(RESOURCE_INTS + [DIGITS_400, DIGITS_5000, float("inf")])
                    meta = set_path(meta, path, bomb)
                    ops.append(f"bomb {'/'.join(map(str, path))} = {_short(bomb)}")
            elif op < 45:  # delete a key / add unknown keys / duplicate a key (raw text)
                paths = key_paths(meta)
                sub = r.randrange(3)
                if sub == 0 and paths:
                    path = r.choice(paths)
                    meta = set_path(meta, path, None, delete=True)
                    ops.append(f"delete {'/'.join(map(str, path))}")
                elif sub == 1 and isinstance(meta, dict):
                    meta = dict(meta)
                    value = hostile_value(r, 1)  # drawn before the key (replay order)
                    key = r.choice(["allow_insecure", "x", "shape", "meta", "encoding", "preset",
                                    "features", "spec", "count"])
                    meta[key] = value
                    ops.append(f"add {key} = {_short(meta[key])}")
                elif isinstance(meta, dict) and meta:
                    k = r.choice(list(meta))
                    extra_text = json.dumps(k) + ":" + to_json_text(hostile_value(r, meta[k]))
                    ops.append(f"duplicate key {k} = {_short(extra_text)}")
            elif op < 50:  # the blob opts itself into insecure parameters
                if isinstance(meta, dict):
                    meta = dict(meta)
                    meta["allow_insecure"] = r.choice([True, 1, "yes"])
                    ops.append(f"allow_insecure = {meta['allow_insecure']!r}")
            elif op < 58 and sections:  # section edits
                i = r.randrange(len(sections))
                s = sections[i]
                sub = r.randrange(6)
                ops.append(f"section {i}: " + ["truncate", "zero fill", "0xff fill", "random prefix",
                                               "duplicate", "remove"][sub])
                if sub == 0:
                    sections[i] = s[: r.randrange(len(s) + 1)]
                elif sub == 1:
                    sections[i] = bytes(len(s))
                elif sub == 2:
                    sections[i] = b"\xff" * len(s)
                elif sub == 3:
                    sections[i] = r.randbytes(min(len(s), 4096)) + s[4096:]
                elif sub == 4:
                    sections.insert(i, s)
                else:
                    sections.pop(i)
            elif op < 68:  # cross-scheme / cross-kind payloads
                other = r.choice(self.others)
                sub = r.randrange(4)
                ops.append(["sections of", "one section of", "payload under the scheme of",
                            "metadata of"][sub] + f" a {other.scheme} {other.kind.name.lower()} blob")
                if sub == 0:  # another blob's sections under this header
                    sections = list(other.sections)
                elif sub == 1 and sections and other.sections:  # one section swapped in
                    i = r.randrange(len(sections))
                    sections[i] = r.choice(other.sections)
                elif sub == 2:  # this payload under another scheme's header
                    scheme_id = self.scheme_ids[other.scheme]
                else:  # another blob's metadata with this payload
                    meta = json.loads(json.dumps(other.metadata))
            elif op < 74:  # header fields
                sub = r.randrange(3)
                ops.append(["header kind", "header fingerprint", "header scheme"][sub] + " changed")
                if sub == 0:
                    kind = r.choice([1, 2, 3, 4])
                elif sub == 1:
                    fp = r.choice(self.others).fingerprint
                else:
                    scheme_id = r.choice([1, 2, 3])
            elif op < 84:  # SEAL parameter bombs (lattice contexts and anything with sections)
                if sections and blob.scheme in ("ckks", "bfv"):
                    name, parms = r.choice(self.seal_bombs())
                    sections[0] = parms
                    ops.append(f"SEAL parameters {name}")
                    if r.random() < 0.8 and isinstance(meta, dict):
                        meta = dict(meta)
                        meta["allow_insecure"] = True
                    if name.startswith("bfv") != (blob.scheme == "bfv") and r.random() < 0.5:
                        scheme_id = self.scheme_ids["bfv" if name.startswith("bfv") else "ckks"]
            elif op < 94:  # Paillier integers: huge / even / square moduli, c = 0 or >= n^2
                if sections and blob.scheme == "paillier":
                    i = r.randrange(len(sections))
                    width = len(sections[i])
                    sub = r.randrange(5)
                    ops.append(f"section {i}: " + ["16384-bit odd integer", "zeros", "all ones",
                                                   "even or square", "width change"][sub])
                    if sub == 0:  # a random odd 16384-bit "modulus"
                        v = r.getrandbits(16384) | (1 << 16383) | 1
                        sections[i] = v.to_bytes(2048, "big")
                    elif sub == 1:
                        sections[i] = bytes(width)
                    elif sub == 2:
                        sections[i] = b"\xff" * width
                    elif sub == 3:  # an even value / a perfect square
                        v = int.from_bytes(sections[i], "big")
                        v = (v | 1) ** 2 if r.random() < 0.5 else v & ~1
                        sections[i] = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
                    else:  # width change (declared sizes no longer match)
                        sections[i] = sections[i] + bytes(r.choice([1, 8, width]))
            else:  # structure: drop everything / many sections
                sub = r.randrange(3)
                ops.append(["empty metadata", "many empty sections", "metadata replaced"][sub])
                if sub == 0:
                    meta = {}
                elif sub == 1:
                    sections = sections + [b""] * r.choice([10, 1000])
                else:
                    meta = hostile_value(r, meta) if r.random() < 0.3 else meta
        if not isinstance(meta, dict):
            meta = {"x": meta} if r.random() < 0.5 else meta
        text = to_json_text(meta)
        if extra_text is not None and text.startswith("{") and len(text) > 2:
            text = "{" + extra_text + "," + text[1:]
        return pack_raw(kind, scheme_id, fp, text.encode("utf-8"), sections)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else to_json_text(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} chars)"


def _seal_parameter_bombs() -> list[tuple[str, bytes]]:
    """Serialized SEAL EncryptionParameters declaring huge rings and prime counts.

    Built with tenseal.sealapi (this is test tooling, outside the he_ml package and its
    layering rules); each is a few hundred bytes and would make SEAL precompute tables for
    every prime if a loader built a context from it before checking sizes.
    """
    import tenseal.sealapi as sa

    out = []
    for scheme, stype in (("ckks", sa.SCHEME_TYPE.CKKS), ("bfv", sa.SCHEME_TYPE.BFV)):
        for n, k in ((16384, 16), (32768, 16), (32768, 32), (32768, 64)):
            parms = sa.EncryptionParameters(stype)
            parms.set_poly_modulus_degree(n)
            parms.set_coeff_modulus(sa.CoeffModulus.Create(n, [60] * k))
            if scheme == "bfv":
                parms.set_plain_modulus(sa.PlainModulus.Batching(n, 20))
            with tempfile.NamedTemporaryFile(suffix=".seal") as f:
                parms.save(f.name)
                out.append((f"{scheme}-n{n}-k{k}", Path(f.name).read_bytes()))
    return out


# ---------------------------------------------------------------------------
# Worker: runs one parser over a range of inputs, one JSON line per input
# ---------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # pragma: no cover - only on slow inputs
    raise _Timeout()


def _rss_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_pair() -> tuple[int, int]:
    """(VmHWM, VmRSS) in KiB from one read of /proc/self/status."""
    hwm = rss = 0
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                    break
    except OSError:
        rss = hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return hwm, rss


def _reset_peak() -> bool:
    """Reset VmHWM (peak RSS) so the next reading is this input's own peak (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _corpus_dir() -> Path:
    """Where the seed corpus of the he_ml under test lives (one per source tree and format)."""
    import hashlib

    import he_ml
    from he_ml.schemes import _format

    key = f"{Path(he_ml.__file__).resolve().parent}|{_format.FORMAT_VERSION}"
    return CRASH_DIR / f"seeds-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _load_targets():
    """Parsers and their seed blobs, from the saved corpus (created on first use).

    The seeds hold fresh keys and encryption randomness, so they are generated once and
    saved (with the secret contexts that made them) under fuzz/crashes/seeds-*/: every
    worker, and any later --replay, then mutates exactly the same bytes, and the inputs
    saved for failures are the ones the workers ran.
    """
    sys.path.insert(0, str(HERE))
    import fuzz_blobs

    import he_ml

    corpus = _corpus_dir()
    index_path = corpus / "index.json"
    if not index_path.exists():
        contexts = fuzz_blobs._contexts()
        targets = fuzz_blobs.build_targets(None, contexts)
        tmp = corpus.with_name(corpus.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        index: dict[str, Any] = {"contexts": {}, "seeds": {}}
        for scheme, ctx in contexts.items():
            (tmp / f"ctx-{scheme}.bin").write_bytes(ctx.to_bytes(include_secret_key=True))
            index["contexts"][scheme] = f"ctx-{scheme}.bin"
        for name, (_, seeds) in targets.items():
            index["seeds"][name] = []
            for j, blob in enumerate(seeds):
                (tmp / f"{name}-{j}.bin").write_bytes(blob)
                index["seeds"][name].append(f"{name}-{j}.bin")
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        try:
            tmp.rename(corpus)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    index = json.loads(index_path.read_text())
    contexts = {}
    for scheme, fname in index["contexts"].items():
        loader = fuzz_blobs._context_loader(scheme)
        contexts[scheme] = loader((corpus / fname).read_bytes())
    del he_ml
    targets = fuzz_blobs.build_targets(None, contexts)
    targets = {name: (parse, [(corpus / f).read_bytes() for f in index["seeds"][name]])
               for name, (parse, _) in targets.items()}
    all_seeds = {name: seeds for name, (_, seeds) in targets.items()}
    return targets, all_seeds


# The input a worker is on, in a 16-byte file the parent maps too: parser position in the
# worker's list, input index, state (-1 before the first input, 1 running, 0 finished). A
# crash or hang is blamed on it without a per-input "started" message on the pipe.
_MARK = struct.Struct("<iqi")


def worker(parsers: list[str], start: int, seed: int, stop: int, time_budget: float,
           memory_budget_mib: int, marker: str) -> int:
    """Runs inputs [start, stop) of parsers[0], then [0, stop) of each following parser."""
    from he_ml.errors import HEError

    with open(marker, "r+b") as f:
        mark = mmap.mmap(f.fileno(), _MARK.size)

    targets, all_seeds = _load_targets()
    mutators = {}
    for name in parsers:
        parse, seeds = targets[name]
        for s in seeds:
            parse(s)
        _self_check_packer(seeds)
        mutators[name] = Mutator(name, seeds, all_seeds)
    next(iter(mutators.values())).seal_bombs()  # built before the limit and the clock
    for m in mutators.values():
        m._seal_bombs = next(iter(mutators.values()))._seal_bombs
    # The protocol gets its own copy of stdout (one unbuffered write per input, so nothing
    # is lost if the next input crashes); anything the parsers print goes to stderr.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Hard cap on address space: what the process maps now plus the memory budget and a
    # margin for the interpreter's own churn; past it allocations fail (MemoryError or
    # std::bad_alloc), which is a failure, instead of the machine swapping.
    vm_now = _rss_kib("VmSize") * 1024
    limit = vm_now + (memory_budget_mib + 1024) * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    rss_start = _rss_kib("VmRSS")
    for k, name in enumerate(parsers):
        parse = targets[name][0]
        mutator = mutators[name]
        for i in range(start if k == 0 else 0, stop):
            data = mutator.make(i, seed)
            _MARK.pack_into(mark, 0, k, i, 1)
            base = _rss_pair()[1]  # after make(): the input's own bytes are not the parser's growth
            peak_ok = _reset_peak()
            signal.setitimer(signal.ITIMER_REAL, max(time_budget * 5, 5.0))
            c0, w0 = time.process_time(), time.perf_counter()
            err = ""
            try:
                parse(data)
                outcome = "accepted"
            except HEError as e:
                outcome = type(e).__name__
            except _Timeout:
                outcome = "BUG:Timeout"
                err = "interrupted after 5x the time budget"
            except RecursionError as e:  # before Exception: keep the traceback short
                outcome = "BUG:RecursionError"
                err = repr(e)[:300]
            except BaseException as e:  # noqa: BLE001 - anything not ours is a finding
                outcome = f"BUG:{type(e).__name__}"
                err = "".join(traceback.format_exception_only(type(e), e)).strip()[:500]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            _MARK.pack_into(mark, 0, k, i, 0)
            hwm, rss = _rss_pair()
            peak = hwm if peak_ok else rss
            grown_mib = max(0, peak - base) / 1024
            os.write(proto_fd, (json.dumps({"p": name, "i": i, "o": outcome, "cpu": round(cpu, 4),
                                            "wall": round(wall, 4), "mib": round(grown_mib, 1),
                                            "peak_mib": round(peak / 1024, 1), "err": err})
                                + "\n").encode())
            # Memory an input left behind (e.g. in a cache) would shrink the next inputs'
            # headroom under RLIMIT_AS: past half the budget, exit and let a fresh worker
            # continue with the next input.
            if (rss - rss_start) / 1024 > memory_budget_mib / 2:
                return 0
    return 0


# ---------------------------------------------------------------------------
# Parent: drives workers, watches for hangs and crashes, aggregates
# ---------------------------------------------------------------------------
def _signature(parser: str, outcome: str, err: str) -> str:
    msg = err.splitlines()[-1] if err else ""
    msg = re.sub(r"^[A-Za-z_.]*(Error|Exception|Interrupt|Exit)\b:?\s*", "", msg)
    msg = re.sub(r"0x[0-9a-f]+", "0x…", msg)
    msg = re.sub(r"\d+", "N", msg)
    return f"{parser}: {outcome[4:] if outcome.startswith('BUG:') else outcome}: {msg[:120]}"


class ParserReport:
    def __init__(self, parser: str) -> None:
        self.parser = parser
        self.outcomes: Counter = Counter()
        self.failures: dict[str, dict[str, Any]] = {}
        self.slowest = (0.0, -1)
        self.peak_mib = (0.0, -1)
        self.max_growth_mib = (0.0, -1)
        self.inputs = 0
        self.seconds = 0.0

    def fail(self, sig: str, index: int, detail: str, mutator: Mutator, seed: int) -> None:
        entry = self.failures.setdefault(sig, {"count": 0, "first": index, "detail": detail,
                                               "saved": []})
        entry["count"] += 1
        if len(entry["saved"]) < MAX_SAVED_PER_SIGNATURE:
            CRASH_DIR.mkdir(exist_ok=True)
            path = CRASH_DIR / f"{self.parser}-s{seed}-i{index}.bin"
            path.write_bytes(mutator.make(index, seed))
            entry.setdefault("mutations", "; ".join(mutator.last_ops))
            path.with_suffix(".txt").write_text(
                f"parser: {self.parser}\nseed: {seed}\nindex: {index}\nsignature: {sig}\n"
                f"mutations: {'; '.join(mutator.last_ops)}\n"
                f"detail: {detail}\nreplay: python fuzz/fuzz_structured.py --seed {seed} "
                f"--replay {self.parser}:{index}\n")
            entry["saved"].append(str(path.relative_to(HERE.parent)))

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "seconds": round(self.seconds, 1),
                "outcomes": dict(self.outcomes),
                "failures": sum(f["count"] for f in self.failures.values()),
                "signatures": self.failures,
                "slowest": {"cpu_s": self.slowest[0], "index": self.slowest[1]},
                "peak_rss_mib": {"mib": self.peak_mib[0], "index": self.peak_mib[1]},
                "max_growth_mib": {"mib": self.max_growth_mib[0], "index": self.max_growth_mib[1]}}


class _LineReader:
    """Lines from a pipe with a timeout (select on the fd, no hidden buffering)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def readline(self, timeout: float) -> str | None:
        """The next line ('' at EOF), or None if nothing complete arrived in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode() + "\n"


def run_all(names: list[str], args, mutators: dict[str, Mutator],
            advance: Callable[[str, int], None]) -> dict[str, ParserReport]:
    """Feeds every parser its inputs through worker processes; a worker that crashes or
    hangs is replaced and the run resumes after the input it was working on."""
    reports = {name: ParserReport(name) for name in names}
    hang_after = args.hang_timeout
    env = dict(os.environ)
    # he_ml is imported from PYTHONPATH when set (e.g. another worktree to test), else
    # from this checkout
    env["PYTHONPATH"] = env.get("PYTHONPATH") or str(HERE.parent)
    pos, start = 0, 0  # next parser (index into names) and input
    while pos < len(names):
        if start >= args.iterations:
            pos, start = pos + 1, 0
            continue
        marker = tempfile.NamedTemporaryFile(prefix="fuzz-mark-")
        marker.write(_MARK.pack(0, 0, -1))
        marker.flush()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--marker", marker.name,
               "--seed", str(args.seed), "--start", str(start), "--stop", str(args.iterations),
               "--time-budget", str(args.time_budget), "--memory-budget", str(args.memory_budget)]
        worker_names = names[pos:]
        for name in worker_names:
            cmd += ["--parser", name]
        errfile = tempfile.TemporaryFile("w+")  # the worker's stderr (tail shown on a crash)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile, env=env)
        reader = _LineReader(proc.stdout.fileno())
        mark = mmap.mmap(marker.fileno(), _MARK.size)
        last_done: tuple[str, int] | None = None
        pending: dict[str, int] = {}
        t_parser = time.perf_counter()
        while True:
            k, idx, state = _MARK.unpack_from(mark, 0)
            timeout = 300.0 if state < 0 else hang_after  # start-up: imports, contexts
            line = reader.readline(timeout)
            if line is None or not line:
                k, idx, state = _MARK.unpack_from(mark, 0)
                if line is None and state == 0:  # between inputs, e.g. a busy machine: wait on
                    continue
                if line is None:  # hang: kill the worker, blame the input in flight
                    proc.kill()
                rc = proc.wait()
                # lines written just before the exit
                rest = b""
                while True:
                    chunk = os.read(proc.stdout.fileno(), 1 << 16)
                    if not chunk:
                        break
                    rest += chunk
                reader.buf += rest
                for extra in reader.buf.decode().splitlines():
                    last_done = _record(json.loads(extra), reports, args, mutators, pending)
                reader.buf = b""
                for pname, n in pending.items():
                    advance(pname, n)
                pending.clear()
                errfile.seek(0)
                err = errfile.read()[-3000:]
                k, idx, state = _MARK.unpack_from(mark, 0)
                if state != 1:
                    if line == "" and rc == 0 and last_done is not None:
                        # finished, or left to shed memory: continue after the last input
                        pos, start = names.index(last_done[0]), last_done[1] + 1
                        break
                    raise SystemExit(f"the fuzz worker failed before its first input (exit {rc}):"
                                     f"\n{err}")
                name = worker_names[k]
                rep = reports[name]
                rep.inputs += 1
                rep.seconds += time.perf_counter() - t_parser
                if line is None:
                    rep.outcomes["HANG"] += 1
                    rep.fail(f"{name}: Hang (no answer in {hang_after:.0f} s)", idx,
                             f"killed after {hang_after:.0f} s without an answer",
                             mutators[name], args.seed)
                else:
                    rep.outcomes["CRASH"] += 1
                    what = f"signal {-rc}" if rc < 0 else f"exit {rc}"
                    last = err.strip().splitlines()[-1] if err.strip() else ""
                    rep.fail(_signature(name, f"BUG:Crash({what})", last), idx, err,
                             mutators[name], args.seed)
                advance(name, 1)
                pos, start = names.index(name), idx + 1
                break
            res = json.loads(line)
            rep = reports[res["p"]]
            rep.seconds += time.perf_counter() - t_parser
            t_parser = time.perf_counter()
            last_done = _record(res, reports, args, mutators, pending)
            if pending[res["p"]] >= 64:
                advance(res["p"], pending.pop(res["p"]))
        for pname, n in pending.items():
            advance(pname, n)
        mark.close()
        marker.close()
        proc.stdout.close()
        errfile.close()
    return reports


def _record(res: dict, reports: dict[str, ParserReport], args, mutators: dict[str, Mutator],
            pending: dict[str, int]) -> tuple[str, int]:
    """Account one worker result line; returns (parser, index)."""
    name, idx = res["p"], res["i"]
    rep = reports[name]
    rep.inputs += 1
    outcome = res["o"]
    over = []
    if res["cpu"] > args.time_budget:
        over.append(f"over time budget: {res['cpu']:.2f} s CPU > {args.time_budget} s")
    if res["mib"] > args.memory_budget:
        over.append(f"over memory budget: RSS grew {res['mib']:.0f} MiB > "
                    f"{args.memory_budget} MiB")
    if res["cpu"] > rep.slowest[0]:
        rep.slowest = (res["cpu"], idx)
    if res["peak_mib"] > rep.peak_mib[0]:
        rep.peak_mib = (res["peak_mib"], idx)
    if res["mib"] > rep.max_growth_mib[0]:
        rep.max_growth_mib = (res["mib"], idx)
    if outcome.startswith("BUG:"):
        rep.outcomes[outcome] += 1
        rep.fail(_signature(name, outcome, res["err"]), idx, res["err"], mutators[name],
                 args.seed)
    elif over:
        rep.outcomes["OVER_BUDGET"] += 1
        kind = "OverTime" if "time" in over[0] else "OverMemory"
        rep.fail(f"{name}: {kind} (then {outcome})", idx, "; ".join(over),
                 mutators[name], args.seed)
    else:
        rep.outcomes[outcome] += 1
    pending[name] = pending.get(name, 0) + 1
    return name, idx


def replay(spec: str, seed: int) -> int:
    parser, _, index = spec.partition(":")
    targets, all_seeds = _load_targets()
    parse, seeds = targets[parser]
    mutator = Mutator(parser, seeds, all_seeds)
    data = mutator.make(int(index), seed)
    print(f"{parser} input {index} (seed {seed}): {len(data)} bytes; {'; '.join(mutator.last_ops)}")
    t0 = time.process_time()
    try:
        parse(data)
        print("accepted")
    finally:
        print(f"{time.process_time() - t0:.3f} s CPU, peak RSS {_rss_kib('VmHWM') / 1024:.0f} MiB")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=1000, help="inputs per parser (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="the same seed replays the same inputs")
    ap.add_argument("--parser", action="append", dest="parsers",
                    help="parser name (repeatable; default: all)")
    ap.add_argument("--time-budget", type=float, default=2.0,
                    help="CPU seconds allowed per input (default 2)")
    ap.add_argument("--memory-budget", type=int, default=512,
                    help="MiB of peak-RSS growth allowed per input (default 512)")
    ap.add_argument("--hang-timeout", type=float, default=20.0,
                    help="wall seconds without an answer before the worker is killed and the "
                         "input counted as a hang (default 20)")
    ap.add_argument("--fresh-seeds", action="store_true",
                    help="regenerate the saved seed corpus (new keys) before fuzzing")
    ap.add_argument("--json", help="write the report to this file")
    ap.add_argument("--replay", metavar="PARSER:INDEX", help="run one input in-process, with traceback")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--marker", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        return worker(args.parsers, args.start, args.seed, args.stop, args.time_budget,
                      args.memory_budget, args.marker)
    if args.replay:
        return replay(args.replay, args.seed)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if args.fresh_seeds:
        shutil.rmtree(_corpus_dir(), ignore_errors=True)
    try:
        targets, all_seeds = _load_targets()
        for name, (parse, seeds) in targets.items():
            for blob in seeds:  # the seeds themselves must parse
                parse(blob)
    except Exception as e:  # noqa: BLE001 - a corpus saved by older code: make a new one
        print(f"fuzz_structured: the saved seed corpus no longer loads ({type(e).__name__}: "
              f"{str(e)[:120]}); generating a new one", file=sys.stderr)
        shutil.rmtree(_corpus_dir(), ignore_errors=True)
        targets, all_seeds = _load_targets()
        for name, (parse, seeds) in targets.items():
            for blob in seeds:
                parse(blob)
    names = sorted(targets)
    if args.parsers:
        unknown = sorted(set(args.parsers) - set(names))
        if unknown:
            raise SystemExit(f"unknown parsers {unknown}; choose from {names}")
        names = [n for n in names if n in args.parsers]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    mutators = {name: Mutator(name, all_seeds[name], all_seeds) for name in names}
    with Progress(*columns, transient=not sys.stdout.isatty()) as prog:
        tasks = {name: prog.add_task(f"fuzz {name}", total=args.iterations) for name in names}
        reports = run_all(names, args, mutators, lambda name, k: prog.advance(tasks[name], k))
    failed = False
    for name, rep in reports.items():
        d = rep.as_dict()
        failed |= d["failures"] > 0
        status = "FAIL" if d["failures"] else "ok"
        print(f"{status:4} {name:20} {d['inputs']:>8} inputs {d['seconds']:>7.1f} s  "
              f"slowest {d['slowest']['cpu_s']:.3f} s (#{d['slowest']['index']})  "
              f"peak RSS {d['peak_rss_mib']['mib']:.0f} MiB  max growth "
              f"{d['max_growth_mib']['mib']:.0f} MiB (#{d['max_growth_mib']['index']})")
        print(f"     outcomes: {dict(sorted(d['outcomes'].items()))}")
        for sig, f in sorted(rep.failures.items(), key=lambda kv: -kv[1]["count"]):
            print(f"     FAILURE x{f['count']} (first #{f['first']}): {sig}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"seed": args.seed, "iterations": args.iterations, "time_budget_s": args.time_budget,
             "memory_budget_mib": args.memory_budget,
             "parsers": {n: r.as_dict() for n, r in reports.items()}}, indent=1) + "\n")
    total = sum(r.inputs for r in reports.values())
    nfail = sum(sum(f["count"] for f in r.failures.values()) for r in reports.values())
    nsig = sum(len(r.failures) for r in reports.values())
    print(f"fuzz_structured: {total} inputs, {nfail} failures, {nsig} distinct signatures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
