"""Issue 10: a round survives one bad blob.

``add()`` validates each blob completely before absorbing it and refuses the bad blob itself
(with its 0-based position); ``on_invalid="skip"`` drops it, records it in ``.rejected`` and the
total stays exact for the accepted blobs (checked against numpy with the quantization tolerance:
Paillier/BFV round each value to a multiple of ``2**-p``, error <= ``2**-(p+1)`` per client).
Resource-bomb variants (800 integers of 4000 digits, counts of 10**400) are measured in a
subprocess in tests/schemes/test_limits.py; here they are checked for the error class.
"""
from __future__ import annotations

import numpy as np
import pytest

import he_ml
from he_ml.aggregation import GradientAggregator, aggregation_context
from he_ml.aggregation.aggregator import Rejection
from he_ml.errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
)
from he_ml.schemes._format import pack_blob, unpack_blob

MAX_CLIENTS = 16
MAX_VALUE = 4.0
P = 24  # Paillier precision bits
B = 20  # BFV precision bits


def repack(blob: bytes, *, meta=None, sections=None) -> bytes:
    """Rebuild a blob with edited fields and a valid checksum (what an attacker could send)."""
    b = unpack_blob(blob)
    return pack_blob(b.kind, b.scheme, b.fingerprint, b.metadata if meta is None else meta,
                     b.sections if sections is None else sections)


@pytest.fixture(scope="module")
def paillier():
    return he_ml.Paillier(1024, preset="sum", precision_bits=P, max_value=MAX_VALUE, max_additions=MAX_CLIENTS,
                          allow_insecure=True)


@pytest.fixture(scope="module")
def bfv():
    return aggregation_context("bfv", max_clients=MAX_CLIENTS, max_value=MAX_VALUE, precision_bits=B)


@pytest.fixture(scope="module")
def ckks():
    return aggregation_context("ckks", max_clients=MAX_CLIENTS, max_value=MAX_VALUE, precision_bits=20)


def updates(k: int, shape=(3, 5), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-MAX_VALUE, MAX_VALUE, shape) for _ in range(k)]


def tol(ctx, clients: int) -> float:
    if ctx.name == "paillier":
        return clients * 2.0 ** -(P + 1)
    if ctx.name == "bfv":
        return clients * 2.0 ** -(B + 1)
    # CKKS: per-client noise std n / 6 * 2**-scale_bits, bounded by 8 sigma per client
    return clients * 8 * ctx.poly_modulus_degree / 6 * 2.0 ** -ctx.scale_bits


def paillier_bad_blobs(ctx, client) -> dict[str, bytes]:
    """Forged Paillier blobs, each refused by add() itself (issue 10 findings)."""
    blob = client.encrypt(np.ones((3, 5)))
    w = ctx._width
    meta = unpack_blob(blob).metadata
    n = int(ctx.public_key.n)
    return {
        "zero": repack(blob, sections=[bytes(w)]),
        ">= n^2": repack(blob, sections=[(n * n).to_bytes(w, "big")]),
        "non-unit": repack(blob, sections=[n.to_bytes(w, "big")]),
        "bound=cap": repack(blob, meta=dict(meta, meta=dict(meta["meta"], bound=ctx.encoding.cap))),
        "terms": repack(blob, meta=dict(meta, meta=dict(meta["meta"], terms=2))),
        "count": repack(blob, meta=dict(meta, count=10 ** 400)),
        # issue 10: "a layout of 800 integers of 4000 digits kept add() busy 49 s"
        "layout bomb": repack(blob, meta=dict(meta, structure="dict",
                                              spec=[[f"k{i}", [10 ** 3999]] for i in range(800)])),
        "foreign": GradientAggregator(he_ml.Paillier(1024, allow_insecure=True, preset="sum")).encrypt(np.ones((3, 5))),
    }


EXPECTED = {"zero": (InvalidCiphertextError, r"is zero, not an element of Z\*_\(n\^2\)"),
            ">= n^2": (InvalidCiphertextError, r">= n\^2"),
            "non-unit": (InvalidCiphertextError, "shares a factor with n"),
            "bound=cap": (EncodingOverflowError, "one client may send at most"),
            "terms": (InvalidCiphertextError, "not a sum of 1 fresh encryption"),
            "count": (InvalidCiphertextError, "count must be a positive int"),
            "layout bomb": (InvalidCiphertextError, "(integers beyond 19 digits|vector_values_max)"),
            "foreign": (ContextMismatchError, "another key")}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_each_bad_paillier_blob_is_refused_at_add_by_position(paillier, case):
    pub = paillier.public_context()
    client, server = GradientAggregator(pub), GradientAggregator(pub)
    bad = paillier_bad_blobs(paillier, client)[case]
    server.add(client.encrypt(np.ones((3, 5))))
    cls, msg = EXPECTED[case]
    with pytest.raises(cls, match=f"blob 1 of the stream: .*{msg}"):
        server.add(bad)
    assert server.count == 1  # the total was not touched
    # first position too: a bad first blob does not become the round's reference
    fresh = GradientAggregator(pub)
    with pytest.raises(cls, match=f"blob 0 of the stream: .*{msg}"):
        fresh.add(bad)
    assert fresh.add(client.encrypt(np.ones((3, 5)))) is True and fresh.count == 1


def test_skip_policy_drops_bad_blobs_and_keeps_totals_exact(paillier):
    pub = paillier.public_context()
    client = GradientAggregator(pub)
    data = updates(5)
    good = [client.encrypt(u) for u in data]
    bad = paillier_bad_blobs(paillier, client)
    stream = [good[0], bad["bound=cap"], good[1], bad["zero"], b"not a blob", good[2], bad["non-unit"],
              good[3], bad["layout bomb"], good[4]]
    server = GradientAggregator(pub, on_invalid="skip")
    total = server.sum(stream)
    assert [r.index for r in server.rejected] == [1, 3, 4, 6, 8]
    assert all(isinstance(r, Rejection) and r.reason.startswith(f"blob {r.index} of the stream")
               for r in server.rejected)
    assert [type(r.error).__name__ for r in server.rejected] == [
        "EncodingOverflowError", "InvalidCiphertextError", "InvalidCiphertextError", "InvalidCiphertextError",
        "InvalidCiphertextError"]
    assert GradientAggregator.count_of(total) == 5
    kh = GradientAggregator(paillier)
    np.testing.assert_allclose(kh.decrypt(total), np.sum(data, axis=0), atol=tol(paillier, 5))
    # add() under "skip": returns False for a dropped blob, True otherwise; reset() clears
    server.reset()
    assert server.add(bad["zero"]) is False and server.add(good[0]) is True
    assert [r.index for r in server.rejected] == [0] and server.count == 1
    server.reset()
    assert server.rejected == [] and server.count == 0
    # the same stream under "raise" stops at position 1 with the blob's own error
    with pytest.raises(EncodingOverflowError, match="blob 1 of the stream"):
        GradientAggregator(pub).sum(stream)
    # per-call override of the constructor's policy
    other = GradientAggregator(pub)
    other.sum(stream, on_invalid="skip")
    assert [r.index for r in other.rejected] == [1, 3, 4, 6, 8]
    with pytest.raises(InvalidCiphertextError, match="blob 1 of the stream"):
        server.sum([good[0], bad["zero"]], on_invalid="raise")


def test_raise_policy_leaves_the_total_usable(paillier):
    """A server that catches the error keeps going: nothing of the bad blob entered the total."""
    pub = paillier.public_context()
    client, server = GradientAggregator(pub), GradientAggregator(pub)
    data = updates(3, seed=1)
    bad = paillier_bad_blobs(paillier, client)
    server.add(client.encrypt(data[0]))
    for name in ("bound=cap", ">= n^2", "count"):
        with pytest.raises(he_ml.errors.HEError):
            server.add(bad[name])
    server.add(client.encrypt(data[1]))
    server.add(client.encrypt(data[2]))
    np.testing.assert_allclose(GradientAggregator(paillier).decrypt(server.result(), count=3),
                               np.mean(data, axis=0), atol=tol(paillier, 3) / 3)


def test_all_rejected_and_bad_policy(paillier):
    pub = paillier.public_context()
    server = GradientAggregator(pub, on_invalid="skip")
    with pytest.raises(ParameterError, match="all 2 were rejected"):
        server.sum([b"x", b"y"])
    assert [r.index for r in server.rejected] == [0, 1]
    with pytest.raises(ParameterError, match="on_invalid must be one of"):
        GradientAggregator(pub, on_invalid="ignore")
    with pytest.raises(ParameterError, match="on_invalid must be one of"):
        server.add(b"x", on_invalid=True)
    agg = GradientAggregator(pub, on_invalid="skip")
    assert agg.add(b"junk") is False
    with pytest.raises(ParameterError, match=r"1 blob\(s\) were rejected; see \.rejected"):
        agg.result()


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_lattice_blob_claiming_the_whole_headroom_is_refused(request, scheme):
    """Finding: a declared bound=cap aborted sum() for everyone; now the claim itself is refused."""
    ctx = request.getfixturevalue(scheme)
    pub = ctx.public_context()
    client = GradientAggregator(pub, max_value=MAX_VALUE)
    data = updates(3, seed=2)
    good = [client.encrypt(u) for u in data]
    meta = unpack_blob(good[0]).metadata
    if scheme == "bfv":
        greedy = repack(good[0], meta=dict(meta, meta=dict(meta["meta"], bound=ctx.max_value)))
    else:
        greedy = repack(good[0], meta=dict(meta, encoding=dict(meta["encoding"], bound=ctx.value_bound * 0.99)))
    for server in (GradientAggregator(pub, max_value=MAX_VALUE),                 # declared per-client bound
                   GradientAggregator(pub, max_clients=MAX_CLIENTS)):           # or a declared client count
        with pytest.raises(EncodingOverflowError, match="blob 0 of the stream: .*one client may send at most"):
            server.add(greedy)
        for g in good:
            server.add(g)
        kh = GradientAggregator(ctx, max_value=MAX_VALUE)
        np.testing.assert_allclose(kh.decrypt(server.result()), np.sum(data, axis=0), atol=tol(ctx, 3))
    skip = GradientAggregator(pub, max_value=MAX_VALUE, on_invalid="skip")
    total = skip.sum([greedy, *good])
    assert [r.index for r in skip.rejected] == [0] and GradientAggregator.count_of(total) == 3
    if scheme == "ckks":  # a CKKS blob hiding its bound (null) is refused when a bound is declared
        hidden = repack(good[0], meta=dict(meta, encoding=dict(meta["encoding"], bound=None)))
        with pytest.raises(InvalidCiphertextError, match="declares no value bound"):
            GradientAggregator(pub, max_value=MAX_VALUE).add(hidden)


def test_bfv_metadata_limits(bfv):
    pub = bfv.public_context()
    client, server = GradientAggregator(pub, max_value=MAX_VALUE), GradientAggregator(pub, max_value=MAX_VALUE)
    blob = client.encrypt(np.ones(4))
    meta = unpack_blob(blob).metadata
    for bad_meta, cls, msg in (
            (dict(meta, encoding={"kind": "fixed", "bits": 10 ** 9}), InvalidCiphertextError, r"\[0, 52\]"),
            (dict(meta, encoding={"kind": "fixed", "bits": 10 ** 4000}), InvalidCiphertextError, "bits"),
            (dict(meta, meta=dict(meta["meta"], depth=3)), InvalidCiphertextError, "products"),
            (dict(meta, count=MAX_CLIENTS + 1), EncodingOverflowError, "max_clients"),
            (dict(meta, size=2 ** 41, spec=[[None, [2 ** 41]]]), InvalidCiphertextError, "vector_values_max"),
            (dict(meta, spec=[[None, [4]]] * 70000, structure="dict"), InvalidCiphertextError, "spec entries")):
        with pytest.raises(cls, match=msg):
            GradientAggregator(pub, max_value=MAX_VALUE, max_clients=MAX_CLIENTS).add(repack(blob, meta=bad_meta))
    server.add(blob)
    assert server.count == 1


def test_decrypt_count_limits_and_hint(paillier):
    """Finding: decrypt(count=10**400) raised OverflowError."""
    pub = paillier.public_context()
    client = GradientAggregator(pub)
    total = GradientAggregator(pub).sum([client.encrypt(np.full(3, 2.0)) for _ in range(2)])
    kh = GradientAggregator(paillier)
    for count in (10 ** 400, 0, -1, 2.0, True):
        with pytest.raises(ParameterError, match=r"count must be a positive int.*count_of\(total\)"):
            kh.decrypt(total, count=count)
    # following the hint works
    np.testing.assert_allclose(kh.decrypt(total, count=GradientAggregator.count_of(total)), np.full(3, 2.0),
                               atol=tol(paillier, 2))
    with pytest.raises(InvalidCiphertextError, match="count"):
        GradientAggregator.count_of(repack(total, meta=dict(unpack_blob(total).metadata, count=10 ** 400)))
    for spec in ([[None, [10 ** 3999] * 800]], [[None, [10 ** 3999]]]):
        with pytest.raises(InvalidCiphertextError, match="shape_dims_max|vector_values_max|integers beyond 19 digits"):
            GradientAggregator.layout_of(repack(total, meta=dict(unpack_blob(total).metadata, spec=spec)))


def test_parallel_sum_skip_reports_positions(paillier):
    pub = paillier.public_context()
    client = GradientAggregator(pub)
    data = updates(4, seed=3)
    good = [client.encrypt(u) for u in data]
    bad = paillier_bad_blobs(paillier, client)
    stream = [good[0], bad["zero"], good[1], good[2], bad["bound=cap"], good[3]]
    server = GradientAggregator(pub, on_invalid="skip")
    total = server.sum(iter(stream), processes=2, batch_size=2)
    assert sorted(r.index for r in server.rejected) == [1, 4]
    np.testing.assert_allclose(GradientAggregator(paillier).decrypt(total), np.sum(data, axis=0),
                               atol=tol(paillier, 4))
    with pytest.raises(InvalidCiphertextError, match="blob 1 of the stream"):
        GradientAggregator(pub).sum(iter(stream), processes=2, batch_size=2)


def test_pinned_layout_protects_the_round_from_an_odd_first_blob(bfv):
    """Without layout=, the first accepted blob sets the round's layout; with it, an odd first blob
    is refused and the honest blobs after it are summed."""
    pub = bfv.public_context()
    client = GradientAggregator(pub, max_value=MAX_VALUE)
    data = updates(3, shape=(2, 3), seed=4)
    good = [client.encrypt({"w": u, "b": u[0]}) for u in data]
    odd = client.encrypt({"w": np.ones((3, 2)), "b": np.ones(3)})
    layout = GradientAggregator.layout_of(good[0])
    assert layout == {"w": (2, 3), "b": (3,)}
    unpinned = GradientAggregator(pub, max_value=MAX_VALUE, on_invalid="skip")
    unpinned.sum([odd, *good])
    assert [r.index for r in unpinned.rejected] == [1, 2, 3]  # the odd blob won the round
    server = GradientAggregator(pub, max_value=MAX_VALUE, on_invalid="skip", layout=layout)
    total = server.sum([odd, *good])
    assert [r.index for r in server.rejected] == [0]
    assert "expects dict {'w': (2, 3), 'b': (3,)}" in server.rejected[0].reason
    out = GradientAggregator(bfv, max_value=MAX_VALUE).decrypt(total)
    np.testing.assert_allclose(out["w"], np.sum(data, axis=0), atol=tol(bfv, 3))
    np.testing.assert_allclose(out["b"], np.sum([u[0] for u in data], axis=0), atol=tol(bfv, 3))
    # array layouts, and the errors of a bad layout option
    arr = GradientAggregator(pub, max_value=MAX_VALUE, layout=(4,))
    with pytest.raises(ShapeMismatchError, match=r"expects array of shape \(4,\)"):
        arr.add(client.encrypt(np.ones(5)))
    arr.add(client.encrypt(np.ones(4)))
    for bad in ({"w": "x"}, {1: (2,)}, (-1,), "abc", {}):
        with pytest.raises(ParameterError, match="layout must be"):
            GradientAggregator(pub, layout=bad)


def test_ckks_blob_declaring_a_bound_near_the_double_limit_is_refused(ckks):
    """Fuzz finding (ckks.aggregate, seed 1012 #27088): bound = 1e308 with count = 65536 made the
    overflow hint compute log2(65536 * 1e308) = log2(inf) and raise OverflowError from add()."""
    pub = ckks.public_context()
    blob = GradientAggregator(pub, max_value=MAX_VALUE).encrypt(updates(1, seed=3)[0])
    meta = unpack_blob(blob).metadata
    hostile = repack(blob, meta=dict(meta, count=65536, encoding=dict(meta["encoding"], bound=1e308)))
    for server in (GradientAggregator(pub), GradientAggregator(pub, max_value=MAX_VALUE)):
        with pytest.raises(he_ml.errors.HEError):
            server.add(hostile)
    # the refusal's hint no longer suggests a context that cannot be built (a Paillier one with
    # max_value * 2**24 beyond a double raised OverflowError when followed)
    from he_ml.aggregation._aggregate_params import aggregation_hint

    assert aggregation_hint("ckks", max_clients=65536, max_value=1e308).startswith("fewer clients per total")
    with pytest.raises(ParameterError):
        aggregation_context("paillier", max_clients=65536, max_value=1e308, precision_bits=24)
