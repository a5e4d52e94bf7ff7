"""lepton_secagg.arrays: numpy flatten/unflatten, the spec, and plan's matching Quantizer and Config."""
from __future__ import annotations

import json

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg.arrays import ArrayEntry, ArraySpec, flatten, plan, unflatten
from lepton_secagg.hazmat.quantize import bits_for_precision


def _mixed():
    g = np.random.default_rng(0)
    return {
        "w": g.normal(size=(3, 4)).astype(np.float32),
        "steps": np.array(7, dtype=np.int64),  # like BatchNorm's num_batches_tracked
        "b": g.normal(size=5).astype(np.float16),
        "mask": np.array([True, False, True]),
        "big": np.array([-(2**53), 2**53], dtype=np.int64),
        "d": g.normal(size=(2, 1, 2)),
        "u": np.array([0, 255], dtype=np.uint8),
    }


def test_round_trip_is_bit_identical_and_floats_come_first():
    arrays = _mixed()
    vector, spec = flatten(arrays)
    assert vector.dtype == np.float64 and vector.shape == (12 + 1 + 5 + 3 + 2 + 4 + 2,)
    floats = np.concatenate([arrays[k].reshape(-1).astype(np.float64) for k in ("w", "b", "d")])
    assert spec.num_float == 21 and np.array_equal(vector[:21], floats)
    back = unflatten(vector, spec)
    assert list(back) == list(arrays)
    for name, original in arrays.items():
        assert back[name].dtype == original.dtype and back[name].shape == original.shape
        assert np.array_equal(back[name], original), name
        assert not np.shares_memory(back[name], vector)


def test_a_list_round_trips_as_a_list():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([3, -4], dtype=np.int32)]
    vector, spec = flatten(arrays)
    assert not spec.mapping and spec.entries[0].name is None
    back = unflatten(vector, spec)
    assert isinstance(back, list) and [b.dtype for b in back] == [np.float32, np.int32]
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back))


def test_integers_are_rounded_and_bools_thresholded_on_the_way_back():
    _, spec = flatten([np.zeros(2, np.int16), np.zeros(2, bool)])
    back = unflatten(np.array([2.6, -1.4, 0.0, 0.3]), spec)
    assert back[0].tolist() == [3, -1] and back[1].tolist() == [False, True]


def test_spec_json_round_trip_and_tampering():
    _, spec = flatten(_mixed())
    text = spec.to_json()
    assert ArraySpec.from_json(text) == spec
    data = json.loads(text)
    data["entries"][0]["offset"] += 1
    with pytest.raises(ValueError, match="tile"):
        ArraySpec.from_dict(data)
    data = json.loads(text)
    data["num_float"] -= 1
    with pytest.raises(ValueError, match="num_float"):
        ArraySpec.from_dict(data)
    data = json.loads(text)
    data["entries"][0]["dtype"] = "complex64"
    with pytest.raises(ValueError, match="complex64"):
        ArraySpec.from_dict(data)
    data = json.loads(text)
    del data["numel"]
    with pytest.raises(ValueError, match="numel"):
        ArraySpec.from_dict(data)
    with pytest.raises(ValueError, match="JSON"):
        ArraySpec.from_json("{not json")


def test_bad_inputs_name_the_array():
    with pytest.raises(ValueError, match="'big'.*2\\^53"):
        flatten({"big": np.array([2**53 + 1], dtype=np.int64)})
    with pytest.raises(TypeError, match="#1.*complex"):
        flatten([np.zeros(2), np.zeros(2, np.complex64)])
    with pytest.raises(TypeError, match="#0 is a list"):
        flatten([[1.0, 2.0]])
    with pytest.raises(TypeError, match="keys must be str"):
        flatten({1: np.zeros(2)})
    _, spec = flatten([np.zeros(3)])
    with pytest.raises(ValueError, match="length 3"):
        unflatten(np.zeros(4), spec)


def test_a_torch_state_dict_maps_onto_the_numpy_spec():
    torch = pytest.importorskip("torch")
    from lepton_secagg.adapters import torch as lt

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    state = model.state_dict()
    t_vector, t_spec = lt.flatten(state)
    n_vector, n_spec = flatten({k: v.numpy() for k, v in state.items()})
    assert np.array_equal(t_vector.numpy(), n_vector)
    assert ArraySpec.from_dict(t_spec.to_dict()) == n_spec
    back = unflatten(n_vector, n_spec)
    assert all(np.array_equal(back[k], v.numpy()) for k, v in state.items())


def test_a_torch_spec_is_an_array_spec_with_a_device():
    torch = pytest.importorskip("torch")
    from lepton_secagg.adapters import torch as lt

    _, t_spec = lt.flatten({"n": torch.zeros(1, dtype=torch.int64), "w": torch.zeros(3, 2)})
    _, n_spec = flatten({"n": np.zeros(1, np.int64), "w": np.zeros((3, 2), np.float32)})
    assert isinstance(t_spec, ArraySpec) and all(isinstance(e, ArrayEntry) for e in t_spec.entries)
    layout = [(e.name, e.shape, e.dtype, e.offset) for e in t_spec.entries]
    assert layout == [(e.name, e.shape, e.dtype, e.offset) for e in n_spec.entries] == [
        ("n", (1,), "int64", 6),
        ("w", (3, 2), "float32", 0),
    ]
    assert [e.device for e in t_spec.entries] == ["cpu", "cpu"]
    assert plan(t_spec, num_clients=10, clip=1.0).config == plan(n_spec, num_clients=10, clip=1.0).config
    # the layout checks are arrays.ArraySpec's, naming the class they check
    with pytest.raises(ValueError, match="^FlatSpec.mapping must be a bool"):
        lt.FlatSpec.from_dict({**t_spec.to_dict(), "mapping": 1})
    with pytest.raises(ValueError, match="a mapping spec needs a str name"):
        lt.FlatSpec.from_dict({**t_spec.to_dict(), "mapping": False})


def test_plan_derives_a_matching_ring_and_config():
    arrays = [np.zeros((784, 32), np.float32), np.zeros(32, np.float32)]
    p = plan(arrays, num_clients=10, clip=1.0)
    # Flower's default step 2 clip / 2^22: a sum of 10 clients needs (10 * 2^22).bit_length() = 26 bits
    assert p.config.bits == p.quantizer.bits == 26 == bits_for_precision(10, 1.0, 2 / 2**22)
    assert p.quantizer.step <= 2 / 2**22
    assert p.config.vector_length == 784 * 32 + 32 and p.config.num_clients == p.quantizer.num_clients == 10
    assert p.config.threshold == 6 and p.config.neighbors is None

    weighted = plan(p.spec, num_clients=10, clip=1.0, precision=1e-3, max_weight=1000)
    assert weighted.config.vector_length == p.config.vector_length + 1
    assert weighted.config.bits == (10 * 1000 * 2000).bit_length() == 25

    fixed = plan(arrays, num_clients=10, clip=0.5, bits=32, threshold=8)
    assert fixed.config.bits == 32 and fixed.config.threshold == 8

    sparse = plan(arrays, num_clients=200, clip=1.0, graph="secagg_plus", corrupt_fraction=0.05, dropout_fraction=0.1)
    assert sparse.config.neighbors is not None and sparse.config.neighbors < 199


def test_plan_refuses_bad_arguments_with_the_allowed_values():
    arrays = [np.zeros(4)]
    with pytest.raises(ValueError, match="bits or precision, not both"):
        plan(arrays, 10, 1.0, bits=32, precision=1e-3)
    with pytest.raises(ValueError, match="graph must be one of \\('full', 'secagg_plus'\\)"):
        plan(arrays, 10, 1.0, graph="ring")
    with pytest.raises(ValueError, match="corrupt_fraction and dropout_fraction"):
        plan(arrays, 100, 1.0, graph="secagg_plus")
    with pytest.raises(ValueError, match="nothing to aggregate"):
        plan([np.zeros(0)], 10, 1.0)
    with pytest.raises(ValueError, match="best step"):
        plan(arrays, 10, 1.0, precision=1e-30)


def test_encode_refuses_arrays_of_another_shape():
    p = plan([np.zeros((2, 3), np.float32), np.zeros(3, np.float32)], num_clients=3, clip=1.0)
    with pytest.raises(ValueError, match="array #1 is \\(4,\\) float32.*\\(3,\\) float32"):
        p.encode([np.zeros((2, 3), np.float32), np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match="1 arrays, the plan has 2"):
        p.encode([np.zeros((2, 3), np.float32)])


def test_weighted_mean_of_arrays_through_a_session():
    g = np.random.default_rng(3)
    updates = [{"w": g.uniform(-1, 1, (5, 4)), "b": g.uniform(-1, 1, 4).astype(np.float32)} for _ in range(5)]
    weights = [3, 1, 4, 1, 5]
    p = plan(updates[0], num_clients=5, clip=1.0, max_weight=10)
    vectors = [p.encode(u, weight=w) for u, w in zip(updates, weights)]
    res = ls.testing.simulate(p.config, vectors, dropouts={1: "masked_input"}, seed=7)
    assert res.included == (0, 2, 3, 4)
    mean = p.decode(res.sum, len(res.included))
    assert p.quantizer.decode(res.sum, 4)[1] == 13
    for name in ("w", "b"):
        expected = np.average([updates[c][name] for c in res.included], axis=0, weights=[weights[c] for c in res.included])
        assert mean[name].dtype == updates[0][name].dtype
        assert np.abs(mean[name] - expected).max() <= p.quantizer.step + 1e-7  # one grid step, plus float32 rounding
