"""Tests of he_ml.integrations.torch: exact round trips and error paths."""
from __future__ import annotations

import importlib
import sys
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from he_ml.errors import ParameterError, ShapeMismatchError  # noqa: E402
from he_ml.integrations import torch as ht  # noqa: E402


def small_model(seed: int = 0, dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
    ).to(dtype)
    # A training-mode forward pass moves BatchNorm's running stats and counter.
    model.train()
    model(torch.randn(8, 5, dtype=dtype))
    return model


def backward(model: torch.nn.Module, seed: int = 1) -> None:
    torch.manual_seed(seed)
    dtype = next(model.parameters()).dtype
    loss = model(torch.randn(16, 5, dtype=dtype)).pow(2).mean()
    model.zero_grad()
    loss.backward()


def test_state_dict_round_trip_is_exact_and_skips_counter():
    model = small_model()
    sd = model.state_dict()
    arrays = ht.state_dict_to_numpy(sd)
    assert "1.num_batches_tracked" in sd and "1.num_batches_tracked" not in arrays
    assert list(arrays) == [k for k in sd if sd[k].dtype.is_floating_point]
    for name, array in arrays.items():
        assert array.dtype == np.float64 and array.shape == tuple(sd[name].shape)
        np.testing.assert_array_equal(array, sd[name].double().numpy())
    back = ht.numpy_to_state_dict(arrays, like=sd)
    assert list(back) == list(sd)
    for name in sd:
        assert back[name].dtype == sd[name].dtype and back[name].shape == sd[name].shape
        assert torch.equal(back[name], sd[name])
    fresh = small_model(seed=5)
    fresh.load_state_dict(back)
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, sd[name])


def test_state_dict_arrays_are_copies():
    model = small_model()
    arrays = ht.state_dict_to_numpy(model.state_dict())
    arrays["0.weight"][:] = 0.0
    assert model.state_dict()["0.weight"].abs().sum() > 0


def test_aggregated_state_dicts_average_like_numpy():
    models = [small_model(seed=s) for s in range(3)]
    per_client = [ht.state_dict_to_numpy(m.state_dict()) for m in models]
    mean = {k: sum(a[k] for a in per_client) / 3 for k in per_client[0]}
    sd = ht.numpy_to_state_dict(mean, like=models[0].state_dict())
    expected = (sum(m.state_dict()["0.weight"].double() for m in models) / 3).float()
    assert torch.equal(sd["0.weight"], expected)
    # The skipped counter comes from `like` unchanged.
    assert torch.equal(sd["1.num_batches_tracked"], models[0].state_dict()["1.num_batches_tracked"])


def test_include_non_float_passes_counter_through_exactly():
    model = small_model()
    sd = model.state_dict()
    arrays = ht.state_dict_to_numpy(sd, include_non_float=True)
    assert arrays["1.num_batches_tracked"].dtype == np.float64
    assert arrays["1.num_batches_tracked"] == 1.0
    arrays["1.num_batches_tracked"] = np.array(7.4)
    back = ht.numpy_to_state_dict(arrays, like=sd)
    assert back["1.num_batches_tracked"].dtype == torch.int64
    assert int(back["1.num_batches_tracked"]) == 7


def test_bool_buffer_round_trip():
    sd = OrderedDict(mask=torch.tensor([True, False, True]), w=torch.ones(2))
    arrays = ht.state_dict_to_numpy(sd, include_non_float=True)
    np.testing.assert_array_equal(arrays["mask"], [1.0, 0.0, 1.0])
    back = ht.numpy_to_state_dict(arrays, like=sd)
    assert back["mask"].dtype == torch.bool and torch.equal(back["mask"], sd["mask"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_float_dtype_round_trips_exactly(dtype):
    torch.manual_seed(0)
    sd = OrderedDict(a=torch.randn(3, 4).to(dtype), b=torch.randn(2).to(dtype))
    vector, spec = ht.flatten_state_dict(sd)
    assert vector.dtype == np.float64 and vector.shape == (14,)
    assert spec.names == ("a", "b") and spec.entries[1].offset == 12 and spec.entries[0].dtype == dtype
    back = ht.unflatten_state_dict(vector, spec, like=sd)
    for name in sd:
        assert back[name].dtype == dtype and torch.equal(back[name], sd[name])


def test_flatten_state_dict_matches_concatenation():
    model = small_model()
    sd = model.state_dict()
    vector, spec = ht.flatten_state_dict(sd)
    expected = np.concatenate([sd[n].double().numpy().ravel() for n in spec.names])
    np.testing.assert_array_equal(vector, expected)
    assert spec.skipped == ("1.num_batches_tracked",) and spec.size == expected.size
    back = ht.unflatten_state_dict(vector * 2, spec, like=sd)
    assert torch.equal(back["3.bias"], (sd["3.bias"].double() * 2).float())


def test_gradients_round_trip_after_backward():
    model = small_model()
    backward(model)
    grads = ht.gradients_to_numpy(model)
    names = [n for n, p in model.named_parameters()]
    assert list(grads) == names
    for name, param in model.named_parameters():
        np.testing.assert_array_equal(grads[name], param.grad.double().numpy())
    original = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    ht.numpy_to_gradients(model, grads)
    for name, param in model.named_parameters():
        assert param.grad.dtype == param.dtype and torch.equal(param.grad, original[name])


def sgd_step(model: torch.nn.Module, lr: float = 0.1) -> None:
    with torch.no_grad():
        for param in model.parameters():
            param -= lr * param.grad


def test_flat_gradients_and_sgd_step():
    model = small_model()
    backward(model)
    vector, spec = ht.flatten_gradients(model)
    assert vector.size == sum(p.numel() for p in model.parameters())
    reference = small_model()
    backward(reference)
    sgd_step(reference)
    # Put the same gradients back through numpy and take the same step.
    model.zero_grad(set_to_none=True)
    ht.unflatten_gradients(model, vector, spec)
    sgd_step(model)
    for (name, a), (_, b) in zip(model.named_parameters(), reference.named_parameters()):
        assert torch.equal(a, b), name


def test_float64_model_gradients():
    model = small_model(dtype=torch.float64)
    backward(model)
    grads = ht.gradients_to_numpy(model)
    ht.numpy_to_gradients(model, {k: v * 0.5 for k, v in grads.items()})
    assert model[0].weight.grad.dtype == torch.float64
    np.testing.assert_array_equal(model[0].weight.grad.numpy(), grads["0.weight"] * 0.5)


def test_missing_and_frozen_gradients():
    model = small_model()
    model[0].weight.requires_grad_(False)
    grads_before = ht.gradients_to_numpy(model)  # no backward yet: zeros
    assert "0.weight" not in grads_before
    assert all(not a.any() for a in grads_before.values())
    with pytest.raises(ParameterError, match="parameter '0.bias' has no gradient; call loss.backward"):
        ht.gradients_to_numpy(model, missing_as_zero=False)


def test_works_with_the_dp_pipeline():
    from he_ml.aggregation import dp

    model = small_model()
    backward(model)
    cfg = dp.DPConfig(clip_norm=0.1, noise_multiplier=1.0, mode="central")
    clipped = dp.privatize_client_update(ht.gradients_to_numpy(model), cfg)
    ht.numpy_to_gradients(model, clipped)
    total = sum(float(p.grad.double().pow(2).sum()) for p in model.parameters())
    assert total <= 0.1**2


# -- errors ---------------------------------------------------------------------


def test_shape_and_name_mismatch_errors():
    model = small_model()
    sd = model.state_dict()
    arrays = ht.state_dict_to_numpy(sd)
    bad_shape = dict(arrays, **{"0.weight": np.zeros((5, 4))})
    with pytest.raises(ShapeMismatchError, match=r"arrays\['0.weight'\] has shape \(5, 4\) but the model expects \(4, 5\)"):
        ht.numpy_to_state_dict(bad_shape, like=sd)
    missing = {k: v for k, v in arrays.items() if k != "3.bias"}
    with pytest.raises(ShapeMismatchError, match=r"missing \['3.bias'\], unexpected \[\]"):
        ht.numpy_to_state_dict(missing, like=sd)
    extra = dict(arrays, extra=np.zeros(1))
    with pytest.raises(ShapeMismatchError, match=r"unexpected \['extra'\]"):
        ht.numpy_to_state_dict(extra, like=sd)
    backward(model)
    grads = ht.gradients_to_numpy(model)
    with pytest.raises(ShapeMismatchError, match=r"gradient\['3.bias'\] has shape \(3,\)"):
        ht.numpy_to_gradients(model, dict(grads, **{"3.bias": np.zeros(3)}))
    with pytest.raises(ShapeMismatchError, match="gradient names do not match"):
        ht.numpy_to_gradients(model, {"0.weight": grads["0.weight"]})


def test_numpy_to_gradients_is_all_or_nothing():
    model = small_model()
    backward(model)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    arrays = {n: np.zeros(tuple(p.shape)) for n, p in model.named_parameters()}
    arrays["3.bias"] = np.zeros(7)
    with pytest.raises(ShapeMismatchError):
        ht.numpy_to_gradients(model, arrays)
    for name, param in model.named_parameters():
        assert torch.equal(param.grad, before[name])


def test_flat_vector_errors():
    sd = OrderedDict(a=torch.ones(3))
    vector, spec = ht.flatten_state_dict(sd)
    with pytest.raises(ShapeMismatchError, match=r"flat vector has shape \(4,\) but the spec describes 3 values"):
        ht.unflatten_state_dict(np.zeros(4), spec, like=sd)
    with pytest.raises(ParameterError, match="spec must be the FlatSpec"):
        ht.unflatten_state_dict(vector, {"a": (3,)}, like=sd)


def test_input_type_errors():
    with pytest.raises(ParameterError, match="model must be a torch.nn.Module; got dict"):
        ht.gradients_to_numpy({})
    with pytest.raises(ParameterError, match="state_dict must be a mapping"):
        ht.state_dict_to_numpy([torch.ones(2)])
    with pytest.raises(ParameterError, match=r"state_dict\['x'\] must be a torch.Tensor; got ndarray"):
        ht.state_dict_to_numpy({"x": np.ones(2)})
    with pytest.raises(ParameterError, match=r"state_dict\['c'\] has complex dtype"):
        ht.state_dict_to_numpy({"c": torch.ones(2, dtype=torch.complex64)})
    with pytest.raises(ParameterError, match="to_dense"):
        ht.state_dict_to_numpy({"s": torch.eye(3).to_sparse()})
    with pytest.raises(ParameterError, match=r"beyond 2\*\*53"):
        ht.state_dict_to_numpy({"n": torch.tensor([2**60])}, include_non_float=True)
    with pytest.raises(ParameterError, match="NaN/inf values; it cannot go back to torch.int64"):
        ht.numpy_to_state_dict({"n": np.array(np.nan)}, like={"n": torch.tensor(1)})
    with pytest.raises(ParameterError, match="must be a real numeric array"):
        ht.numpy_to_state_dict({"w": np.array(["a"])}, like={"w": torch.ones(1)})


def test_missing_torch_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    monkeypatch.delitem(sys.modules, "he_ml.integrations.torch", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'he_ml\[torch\]'"):
        importlib.import_module("he_ml.integrations.torch")
