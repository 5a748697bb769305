"""GradientAggregator: encrypted sums against numpy for every scheme and structure, averaging,
streaming, DP wiring and every error path.

Tolerances come from the parameters: Paillier and BFV quantize each value with step
``2**-p`` (error <= ``2**-(p+1)`` per client), CKKS adds per-client noise of standard
deviation ``n / 6 * 2**-scale_bits`` (see ``he_ml.CKKS``), bounded here by 8 sigma per client.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_ml
from he_ml.aggregation import (
    AGGREGATE_LAYOUT_VERSION,
    DPConfig,
    GradientAggregator,
    aggregation_context,
    flatten_update,
    unflatten_update,
)
from he_ml.errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
)
from he_ml.schemes._format import Kind, pack_blob, unpack_blob

MAX_CLIENTS = 64
MAX_VALUE = 16.0


def insecure_tiny_paillier(**kw):
    """1024-bit Paillier (test-only: below the 112-bit minimum) with the aggregation "sum" layout."""
    params = dict(preset="sum", precision_bits=24, max_value=MAX_VALUE, max_additions=MAX_CLIENTS)
    params.update(kw)
    return he_ml.Paillier(1024, allow_insecure=True, **params)


@pytest.fixture(scope="module")
def contexts():
    return {
        "paillier": insecure_tiny_paillier(),
        "bfv": aggregation_context("bfv", max_clients=MAX_CLIENTS, max_value=MAX_VALUE, precision_bits=20),
        "ckks": aggregation_context("ckks", max_clients=MAX_CLIENTS, max_value=MAX_VALUE, precision_bits=20),
    }


SCHEMES = ["paillier", "bfv", "ckks"]


def tolerance(ctx, clients: int, precision_bits: int = 20) -> float:
    """Largest error of a sum of `clients` updates, derived from the parameters."""
    if ctx.name == "paillier":
        return clients * 2.0 ** -(ctx.precision_bits + 1)
    if ctx.name == "bfv":
        return clients * 2.0 ** -(precision_bits + 1)
    sigma = ctx.poly_modulus_degree / 6 * 2.0 ** -ctx.scale_bits
    return clients * 8 * sigma + 1e-12


def roles(ctx, **kw):
    """(key holder, client, server) aggregators; client and server hold only the public context."""
    pub = ctx.public_context()
    return GradientAggregator(ctx, **kw), GradientAggregator(pub, **kw), GradientAggregator(pub, **kw)


def repack(blob: bytes, *, meta=None, sections=None, fingerprint=None, kind=None) -> bytes:
    """Rebuild a blob with altered fields and a valid checksum (what an attacker could send)."""
    b = unpack_blob(blob)
    return pack_blob(kind or b.kind, b.scheme, fingerprint or b.fingerprint,
                     b.metadata if meta is None else meta, b.sections if sections is None else sections)


# ---------------------------------------------------------------------------- sums vs numpy
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (), (1, 300)])
def test_sum_of_arrays_matches_numpy(contexts, scheme, shape):
    ctx = contexts[scheme]
    kh, client, server = roles(ctx, max_value=MAX_VALUE)
    rng = np.random.default_rng(1)
    updates = [rng.uniform(-1, 1, shape) * 4 for _ in range(5)]
    total = server.sum(client.encrypt(u) for u in updates)
    got = kh.decrypt(total)
    assert isinstance(got, np.ndarray) and got.shape == shape
    np.testing.assert_allclose(got, np.sum(updates, axis=0), rtol=0, atol=tolerance(ctx, 5))
    assert GradientAggregator.count_of(total) == 5
    assert GradientAggregator.layout_of(total) == shape


@pytest.mark.parametrize("scheme", SCHEMES)
def test_sum_of_dicts_and_average(contexts, scheme):
    ctx = contexts[scheme]
    kh, client, server = roles(ctx, max_value=MAX_VALUE)
    rng = np.random.default_rng(2)
    updates = [{"layer.weight": rng.normal(0, 1, (4, 3)), "layer.bias": rng.normal(0, 1, 4),
                "scalar": np.float64(rng.normal())} for _ in range(6)]
    for u in updates:
        server.add(client.encrypt(u))
    assert server.count == 6
    mean = kh.decrypt(server.result(), count=server.count)
    assert list(mean) == ["layer.weight", "layer.bias", "scalar"]
    for key in mean:
        expected = np.mean([u[key] for u in updates], axis=0)
        assert mean[key].shape == np.shape(expected)
        np.testing.assert_allclose(mean[key], expected, rtol=0, atol=tolerance(ctx, 6) / 6)


@pytest.mark.parametrize("preset_ctx", ["ckks_sum", "bfv_sum"])
def test_scheme_sum_presets_work(preset_ctx):
    ctx = he_ml.CKKS("sum") if preset_ctx == "ckks_sum" else he_ml.BFV("sum")
    kh, client, server = roles(ctx, max_value=1.0, precision_bits=16)
    data = np.random.default_rng(3).uniform(-1, 1, (4, 50))
    got = kh.decrypt(server.sum([client.encrypt(d) for d in data]), count=4)
    atol = 4 * 2.0 ** -17 if ctx.name == "bfv" else 4 * 8 * 8192 / 6 * 2.0 ** -40
    np.testing.assert_allclose(got, data.mean(0), rtol=0, atol=atol)


def test_torch_state_dict_round_trip(contexts):
    torch = pytest.importorskip("torch")
    from he_ml.integrations.torch import numpy_to_state_dict, state_dict_to_numpy

    ctx = contexts["paillier"]
    kh, client, server = roles(ctx)
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3)) for _ in range(3)]
    blobs = [client.encrypt(state_dict_to_numpy(m.state_dict())) for m in models]
    mean = kh.decrypt(server.sum(blobs), count=3)
    averaged = numpy_to_state_dict(mean, like=models[0].state_dict())
    for name, tensor in averaged.items():
        if not torch.is_floating_point(tensor):
            continue  # num_batches_tracked: copied from `like`, not averaged
        expected = torch.stack([m.state_dict()[name].double() for m in models]).mean(0)
        assert tensor.dtype == models[0].state_dict()[name].dtype
        np.testing.assert_allclose(tensor.double().numpy(), expected.numpy(), rtol=0,
                                   atol=2.0 ** -24 + 1e-7)  # fixed point + float32 rounding


def test_add_and_sum_agree_and_partial_totals_add(contexts):
    ctx = contexts["bfv"]
    kh, client, server = roles(ctx, max_value=MAX_VALUE)
    data = np.random.default_rng(4).uniform(-2, 2, (6, 10))
    blobs = [client.encrypt(d) for d in data]
    # two partial totals (e.g. two server shards) summed again: counts add up
    partial = [server.sum(blobs[:2]), server.sum(blobs[2:])]
    total = server.sum(partial)
    assert GradientAggregator.count_of(total) == 6
    np.testing.assert_allclose(kh.decrypt(total), data.sum(0), rtol=0, atol=tolerance(ctx, 6))
    server.reset()
    assert server.count == 0
    with pytest.raises(ParameterError, match="no update was added yet"):
        server.result()


def test_flatten_unflatten_round_trip_and_errors():
    update = {"a": np.arange(6.0).reshape(2, 3), "b": np.ones(2)}
    flat, spec, structure = flatten_update(update)
    assert structure == "dict" and flat.tolist() == [0, 1, 2, 3, 4, 5, 1, 1]
    back = unflatten_update(flat, spec, structure)
    assert back["a"].shape == (2, 3) and back["b"].tolist() == [1, 1]
    with pytest.raises(ShapeMismatchError, match="describes 8 values but the vector holds 7"):
        unflatten_update(flat[:7], spec, structure)
    with pytest.raises(ParameterError, match="keys must be str"):
        flatten_update({1: np.ones(2)})
    with pytest.raises(ParameterError, match="dict is empty"):
        flatten_update({})
    with pytest.raises(ShapeMismatchError, match="no values"):
        flatten_update(np.zeros((0, 3)))


# ---------------------------------------------------------------------------- streaming
class _RecordingAggregator(GradientAggregator):
    """Records, at each add, how many blobs the source generator had produced so far."""

    produced = 0
    seen: list

    def _fresh(self):
        fresh = _RecordingAggregator(self.context, max_value=self.max_value)
        fresh.seen = self.seen
        return fresh

    def add(self, blob):
        self.seen.append(type(self).produced)
        super().add(blob)


def test_sum_consumes_a_generator_lazily(contexts):
    ctx = contexts["paillier"]
    client = GradientAggregator(ctx.public_context())
    data = np.random.default_rng(5).uniform(-1, 1, (8, 20))
    blobs = [client.encrypt(d) for d in data]
    server = _RecordingAggregator(ctx.public_context())
    server.seen = []
    _RecordingAggregator.produced = 0

    def stream():
        for blob in blobs:
            _RecordingAggregator.produced += 1
            yield blob

    total = server.sum(stream())
    # blob i was added right after the generator produced it: at most one blob was pending
    assert server.seen == list(range(1, 9))
    np.testing.assert_allclose(GradientAggregator(ctx).decrypt(total), data.sum(0), atol=tolerance(ctx, 8))


def test_parallel_sum_matches_serial_sum(contexts):
    ctx = contexts["paillier"]
    kh, client, server = roles(ctx)
    data = np.random.default_rng(6).uniform(-1, 1, (9, 30))
    produced = []

    def stream():
        for i, d in enumerate(data):
            produced.append(i)
            yield client.encrypt(d)

    total = server.sum(stream(), processes=2, batch_size=2, mp_context="spawn")
    assert GradientAggregator.count_of(total) == 9 and len(produced) == 9
    np.testing.assert_allclose(kh.decrypt(total), data.sum(0), rtol=0, atol=tolerance(ctx, 9))


def test_parallel_sum_reports_the_position_of_a_bad_blob(contexts):
    ctx = contexts["paillier"]
    _, client, server = roles(ctx)
    blobs = [client.encrypt(np.ones(5)) for _ in range(5)]
    blobs[3] = blobs[3][:-10]
    with pytest.raises(InvalidCiphertextError, match="blob 3 of the stream"):
        server.sum(blobs, processes=2, batch_size=2, mp_context="spawn")
    with pytest.raises(InvalidCiphertextError, match="blob 3 of the stream"):
        server.sum(blobs)


# ---------------------------------------------------------------------------- DP wiring
def test_distributed_dp_noises_every_client_contribution():
    """Each client's blob already carries a discrete-Gaussian share of the right variance."""
    ctx = aggregation_context("bfv", max_clients=4, max_value=1.0, precision_bits=20)
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="distributed", num_clients=4)
    client = GradientAggregator(ctx.public_context(), dp=cfg)
    plain_key_holder = GradientAggregator(ctx)  # no dp: shows exactly what was encrypted
    update = np.full(4000, 1e-3)  # norm 0.063: below the clip, so the signal is known exactly
    got = plain_key_holder.decrypt(client.encrypt(update))
    noise = got - update
    # values sit on the DP grid (BFV encodes the grid integers exactly)
    grid = got / cfg.resolution
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-6)
    std = cfg.client_noise_std  # 0.5 = sqrt(1 / 4)
    # sample mean and variance of 4000 draws: 5-sigma bands
    assert abs(noise.mean()) < 5 * std / math.sqrt(noise.size)
    assert abs(noise.var() / std**2 - 1) < 5 * math.sqrt(2 / noise.size)


def test_distributed_dp_warns_when_fewer_clients_reported():
    ctx = aggregation_context("bfv", max_clients=4, max_value=1.0, precision_bits=20)
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="distributed", num_clients=4)
    kh, client, server = roles(ctx, dp=cfg)
    total = server.sum([client.encrypt(np.zeros(3)) for _ in range(2)])
    with pytest.warns(UserWarning, match="2/4 of the intended noise variance"):
        kh.decrypt(total)


def test_central_dp_clients_only_clip_and_key_holder_adds_noise():
    ctx = aggregation_context("bfv", max_clients=8, max_value=1.0, precision_bits=20)
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=2.0, mode="central")
    kh, client, server = roles(ctx, dp=cfg)
    big = np.full(2000, 1.0)  # norm 44.7 -> clipped to norm 1
    blob = client.encrypt(big)
    exact = GradientAggregator(ctx).decrypt(blob)  # no noise from the client
    assert np.linalg.norm(exact) <= 1.0 + 1e-12
    np.testing.assert_allclose(exact, big / np.linalg.norm(big), atol=cfg.resolution)
    total = server.sum([blob, client.encrypt(big)])
    noisy = kh.decrypt(total)
    noise = noisy - 2 * exact
    std = cfg.noise_std(noise.size)
    assert abs(noise.mean()) < 5 * std / math.sqrt(noise.size)
    assert abs(noise.var() / std**2 - 1) < 5 * math.sqrt(2 / noise.size)
    mean = kh.decrypt(total, count=2)  # fresh noise, then averaged
    assert abs(np.std(mean - exact) / (std / 2) - 1) < 0.2


def test_dp_with_ckks_and_paillier_keeps_updates_clipped(contexts):
    cfg = DPConfig(clip_norm=2.0, noise_multiplier=1.0, mode="central")
    for scheme in ("ckks", "paillier"):
        ctx = contexts[scheme]
        client = GradientAggregator(ctx.public_context(), dp=cfg)
        got = GradientAggregator(ctx).decrypt(client.encrypt({"w": np.full((3, 3), 5.0)}))
        assert np.linalg.norm(got["w"]) <= 2.0 + 1e-5


# ---------------------------------------------------------------------------- error paths
def test_blob_from_another_key_is_rejected(contexts):
    ctx = contexts["paillier"]
    other = insecure_tiny_paillier()
    blob = GradientAggregator(other.public_context()).encrypt(np.ones(3))
    with pytest.raises(ContextMismatchError, match="belongs to another key"):
        GradientAggregator(ctx.public_context()).add(blob)
    ckks_blob = GradientAggregator(contexts["ckks"].public_context()).encrypt(np.ones(3))
    with pytest.raises(ContextMismatchError, match="'ckks' scheme but this context is 'paillier'"):
        GradientAggregator(ctx).decrypt(ckks_blob)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_truncated_or_corrupted_blobs_are_rejected(contexts, scheme):
    ctx = contexts[scheme]
    _, client, server = roles(ctx, max_value=MAX_VALUE)
    blob = client.encrypt(np.ones(10))
    for bad in (blob[:-1], blob[: len(blob) // 2], blob[:10], b"", blob[:40] + bytes([blob[40] ^ 1]) + blob[41:]):
        with pytest.raises(InvalidCiphertextError):
            server.add(bad)
    with pytest.raises(InvalidCiphertextError, match="expected bytes"):
        server.add("not bytes")
    assert server.count == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_tampered_metadata_and_payload_are_rejected(contexts, scheme):
    ctx = contexts[scheme]
    _, client, server = roles(ctx, max_value=MAX_VALUE)
    blob = client.encrypt(np.ones((2, 5)))
    meta = unpack_blob(blob).metadata
    cases = {
        "version": (dict(meta, aggregate=AGGREGATE_LAYOUT_VERSION + 1), "layout version"),
        "count": (dict(meta, count=0), "count must be a positive int"),
        "size": (dict(meta, size=11), "layout describes 10 values"),
        "spec": (dict(meta, spec=[[None, [2, 6]]]), "layout describes 12 values"),
        "structure": (dict(meta, structure="tree"), "structure must be"),
        "missing": ({k: v for k, v in meta.items() if k != "encoding"}, "malformed"),
    }
    for name, (bad_meta, message) in cases.items():
        with pytest.raises(InvalidCiphertextError, match=message):
            server.add(repack(blob, meta=bad_meta))
    sections = unpack_blob(blob).sections
    with pytest.raises(InvalidCiphertextError):
        server.add(repack(blob, sections=[s[: len(s) // 2] for s in sections]))
    with pytest.raises(InvalidCiphertextError, match="must be a aggregate blob"):
        server.add(repack(blob, kind=Kind.CIPHERTEXT))
    ciphertext_blob = ctx.encrypt(np.ones(3) if scheme != "bfv" else np.ones(3, dtype=np.int64)).to_bytes()
    with pytest.raises(InvalidCiphertextError, match="must be a aggregate blob"):
        server.add(ciphertext_blob)
    assert server.count == 0


def test_forged_paillier_non_unit_is_refused_at_add(contexts):
    """Issue 10: a non-unit ciphertext used to pass add() and fail only result(), for everyone."""
    ctx = contexts["paillier"]
    kh, client, server = roles(ctx)
    blob = client.encrypt(np.ones(3))
    width = ctx._width
    forged = repack(blob, sections=[int(ctx.public_key.n).to_bytes(width, "big")])  # c = n: gcd(c, n) = n
    server.add(client.encrypt(np.ones(3)))
    with pytest.raises(InvalidCiphertextError, match="blob 1 of the stream: .*shares a factor with n"):
        server.add(forged)
    zero = repack(blob, sections=[bytes(width)])
    with pytest.raises(InvalidCiphertextError, match="blob 2 of the stream: .*is zero, not an element of Z\\*_\\(n\\^2\\)"):
        server.add(zero)
    # the running total is untouched by the refused blobs
    assert server.count == 1
    np.testing.assert_allclose(kh.decrypt(server.result()), np.ones(3), atol=2.0 ** -24)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mismatched_shapes_are_rejected(contexts, scheme):
    ctx = contexts[scheme]
    _, client, server = roles(ctx, max_value=MAX_VALUE)
    server.add(client.encrypt(np.ones((2, 3))))
    with pytest.raises(ShapeMismatchError, match=r"array of shape \(3, 2\).*differs from the first update's array of shape \(2, 3\)"):
        server.add(client.encrypt(np.ones((3, 2))))
    with pytest.raises(ShapeMismatchError, match="dict"):
        server.add(client.encrypt({"w": np.ones((2, 3))}))
    assert server.count == 1
    server.reset()
    server.add(client.encrypt({"w": np.ones(2), "b": np.ones(1)}))
    with pytest.raises(ShapeMismatchError, match="'b'"):
        server.add(client.encrypt({"b": np.ones(1), "w": np.ones(2)}))


def test_bfv_precision_mismatch_is_refused(contexts):
    """The server's precision is the context's encoding; a client quantizing otherwise is refused."""
    ctx = contexts["bfv"]
    server = GradientAggregator(ctx.public_context())
    assert server.precision_bits == ctx.fixed_point_bits
    server.add(GradientAggregator(ctx.public_context(), max_value=1.0).encrypt(np.ones(3)))
    other = ctx.fixed_point_bits - 4
    with pytest.raises(ContextMismatchError, match="encoding"):
        server.add(GradientAggregator(ctx.public_context(), max_value=1.0, precision_bits=other).encrypt(np.ones(3)))
    # two servers that both override the precision still catch a mix of client settings
    lenient = GradientAggregator(ctx.public_context(), precision_bits=other)
    with pytest.raises(ContextMismatchError, match="encoding"):
        lenient.add(GradientAggregator(ctx.public_context(), max_value=1.0).encrypt(np.ones(3)))


def test_max_clients_overflow(contexts):
    ctx = contexts["paillier"]
    _, client, server = roles(ctx, max_clients=3)
    blobs = [client.encrypt(np.ones(4)) for _ in range(4)]
    with pytest.raises(EncodingOverflowError, match="blob 3 of the stream: this total would hold 4 updates but max_clients=3"):
        server.sum(blobs)


def test_paillier_headroom_overflow_without_max_clients():
    ctx = insecure_tiny_paillier(max_additions=3)
    _, client, server = roles(ctx)
    blobs = [client.encrypt(np.ones(4)) for _ in range(4)]
    for b in blobs[:3]:
        server.add(b)
    with pytest.raises(EncodingOverflowError, match="headroom is max_additions=3"):
        server.add(blobs[3])
    assert server.count == 3  # the failed add left the total untouched
    with pytest.raises(ParameterError, match="exceeds the paillier context's headroom of max_additions=3"):
        GradientAggregator(ctx, max_clients=4)


def test_bfv_plain_modulus_overflow():
    ctx = aggregation_context("bfv", max_clients=2, max_value=1.0, precision_bits=20)  # 23-bit plain modulus
    _, client, server = roles(ctx, max_value=1.0)
    blobs = [client.encrypt(np.ones(3)) for _ in range(10)]
    with pytest.raises(EncodingOverflowError, match="plain modulus"):
        server.sum(blobs)
    with pytest.raises(ParameterError, match="max_clients=10 updates"):
        GradientAggregator(ctx, max_clients=10, max_value=1.0)
    with pytest.raises(EncodingOverflowError, match="plain modulus holds only"):
        GradientAggregator(ctx, max_value=1.0, precision_bits=40).encrypt(np.ones(3))


def test_ckks_bound_overflow():
    ctx = aggregation_context("ckks", max_clients=4, max_value=1.0, precision_bits=20)
    limit = ctx.value_bound
    _, client, server = roles(ctx, max_value=limit / 3)
    blob = client.encrypt(np.ones(2))
    server.add(blob)
    server.add(blob)
    with pytest.raises(EncodingOverflowError, match="would wrap modulo the first prime"):
        server.add(blob)
    with pytest.raises(ParameterError, match="max_clients=4 updates"):
        GradientAggregator(ctx, max_clients=4, max_value=limit / 3)


def test_client_side_errors(contexts):
    client = GradientAggregator(contexts["ckks"].public_context(), max_value=1.0)
    with pytest.raises(EncodingOverflowError, match="reaches \\|x\\| = 2.*above the declared bound 1"):
        client.encrypt(np.array([0.5, 2.0]))
    with pytest.raises(ParameterError, match="NaN/inf"):
        client.encrypt(np.array([1.0, np.nan]))
    with pytest.raises(ParameterError, match="numeric array"):
        client.encrypt({"w": "abc"})
    paillier = GradientAggregator(contexts["paillier"].public_context())
    with pytest.raises(EncodingOverflowError):
        paillier.encrypt(np.array([MAX_VALUE * 2]))


def test_constructor_and_call_argument_errors(contexts):
    ctx = contexts["paillier"]
    with pytest.raises(ParameterError, match="needs an he_ml context"):
        GradientAggregator("ctx")
    with pytest.raises(ParameterError, match="max_clients must be a positive int"):
        GradientAggregator(ctx, max_clients=0)
    with pytest.raises(ParameterError, match="max_value must be a positive finite float"):
        GradientAggregator(ctx, max_value=float("inf"))
    with pytest.raises(ParameterError, match="precision_bits must be an int"):
        GradientAggregator(ctx, precision_bits=99)
    with pytest.raises(ParameterError, match="dp must be a he_ml.aggregation.DPConfig"):
        GradientAggregator(ctx, dp={"clip_norm": 1})
    with pytest.raises(ParameterError, match="exceeds the context's max_value"):
        GradientAggregator(ctx, max_value=MAX_VALUE * 2)
    server = GradientAggregator(ctx.public_context())
    with pytest.raises(ParameterError, match="received no blobs"):
        server.sum([])
    with pytest.raises(ParameterError, match="single bytes object"):
        server.sum(b"abc")
    with pytest.raises(ParameterError, match="processes must be a positive int"):
        server.sum([b"x"], processes=0)
    blob = GradientAggregator(ctx.public_context()).encrypt(np.ones(2))
    with pytest.raises(SecretKeyMissingError, match="holds no secret key"):
        server.decrypt(blob)
    with pytest.raises(ParameterError, match="count must be a positive int"):
        GradientAggregator(ctx).decrypt(blob, count=0)
    with pytest.raises(InvalidCiphertextError):
        GradientAggregator.count_of(b"HEML" + bytes(40))


def test_aggregation_context_choices_and_errors():
    small = aggregation_context("bfv", max_clients=100, max_value=1.0, precision_bits=24)
    assert small.poly_modulus_degree == 4096 and small.coeff_mod_bit_sizes == [60, 49]
    assert small.security_level >= 128
    assert small.max_value >= 100 * 2**24
    big = aggregation_context("bfv", max_clients=250_000, max_value=1.0, precision_bits=20)
    assert big.poly_modulus_degree == 8192 and big.max_value >= 250_000 * 2**20
    ckks = aggregation_context("ckks", max_clients=100, max_value=1.0, precision_bits=24)
    assert ckks.value_bound > 100 and ckks.security_level >= 128
    # released CKKS sums are smudged (2^-40 statistical): 10^7 clients leave < 52 bits at 128-bit parameters
    with pytest.raises(ParameterError, match="use 'bfv' or 'paillier'"):
        aggregation_context("ckks", max_clients=10**7, max_value=1.0, precision_bits=52)
    with pytest.raises(ParameterError, match="more than BFV's 60"):
        aggregation_context("bfv", max_clients=2**20, max_value=2.0**20, precision_bits=24)
    with pytest.raises(ParameterError, match="scheme must be"):
        aggregation_context("rsa")
    with pytest.raises(ParameterError, match="max_clients must be a positive int"):
        aggregation_context("bfv", max_clients=0)


def test_aggregation_context_paillier_headroom():
    ctx = aggregation_context("paillier", max_clients=100, max_value=1.0, precision_bits=24, key_bits=2048)
    assert ctx.max_additions == 100 and ctx.precision_bits == 24 and ctx.key_bits == 2048
    kh, client, server = roles(ctx, max_clients=100)
    data = np.random.default_rng(7).uniform(-1, 1, (3, 200))
    np.testing.assert_allclose(kh.decrypt(server.sum(client.encrypt(d) for d in data)), data.sum(0),
                               atol=tolerance(ctx, 3))
