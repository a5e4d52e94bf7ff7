"""The torch adapter: flatten/unflatten, quantisation and masking, against the numpy reference.

Masking parity is checked against ``hazmat.masking.add_masks``, which the
conftest fixture routes through each kernel backend (C and numpy) in turn.
The torch ChaCha20 runs on the CPU here; the same ops run on CUDA.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_secagg.adapters import torch as lt  # noqa: E402
from lepton_secagg.encoding import Quantizer  # noqa: E402
from lepton_secagg.hazmat import masking  # noqa: E402
from lepton_secagg.hazmat.prg import keystream  # noqa: E402

CHACHA_END = masking.STREAM_LIMITS["chacha20"]  # 2^38 bytes
NP_DTYPES = {"u32": np.uint32, "u64": np.uint64}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """torch's OpenMP threads stall when another process holds the second vCPU (limits.md §8)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def small_chunks(monkeypatch):
    """Four blocks per torch pass, so chunk and key-group boundaries show up at small sizes."""
    monkeypatch.setattr(lt.chacha20, "CHUNK_BLOCKS", {"cpu": 4, "default": 4})


def _random_vector(rng, n, dtype):
    return rng.integers(0, np.iinfo(dtype).max, size=n, dtype=dtype, endpoint=True)


def _reference(vector, keys, signs, suite, offset):
    return masking.add_masks(vector.copy(), keys, signs, suite, offset)


def _torch_masked(vector, keys, signs, suite, offset, engine="torch"):
    t = lt.as_ring_tensor(vector.copy())
    out = lt.add_masks(t, keys, signs, suite, offset, engine=engine)
    assert out is t
    return lt.as_ring_numpy(t)


# ---------------------------------------------------------------------------
# import hygiene


def test_importing_the_adapter_does_not_import_torch():
    code = (
        "import sys, lepton_secagg, lepton_secagg.adapters.torch as lt\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "spec = lt.FlatSpec.from_dict({'version': 1, 'mapping': False, 'num_float': 0, 'numel': 0, 'entries': []})\n"
        "assert 'torch' not in sys.modules, 'FlatSpec imported torch'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---------------------------------------------------------------------------
# ChaCha20 in torch ops


@pytest.mark.parametrize("r", [7, 8, 12, 16])
def test_rotate_left_on_int32_matches_32_bit_rotation(r):
    rng = np.random.default_rng(r)
    words = np.concatenate([np.array([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF], np.uint32), _random_vector(rng, 1000, np.uint32)])
    x = torch.from_numpy(words.view(np.int32).copy())
    lt._rotl_(x, r, torch.empty_like(x))
    expected = ((words.astype(np.uint64) << r) | (words.astype(np.uint64) >> (32 - r))) & 0xFFFFFFFF
    assert np.array_equal(x.numpy().view(np.uint32), expected.astype(np.uint32))


def test_chacha20_blocks_match_rfc8439_test_vectors():
    # RFC 8439 A.1, test vectors #1 and #2: all-zero key and nonce, block counters 0 and 1.
    expected = bytes.fromhex(
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
        "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
        "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"
    )
    blocks = lt._chacha20_blocks(torch, torch.zeros((1, 8), dtype=torch.int32), 0, 2)
    assert blocks.numpy().astype("<i4").tobytes() == expected


def test_chacha20_blocks_match_pycryptodome_for_several_keys_and_high_counters():
    rng = np.random.default_rng(5)
    keys = [rng.bytes(32) for _ in range(3)]
    words = torch.from_numpy(np.frombuffer(b"".join(keys), "<u4").view(np.int32).reshape(3, 8).copy())
    first = (1 << 32) - 3  # counters 2^32-3 .. 2^32-1: past 2^31, where int32 wraps
    blocks = lt._chacha20_blocks(torch, words, first, 3)
    for i, key in enumerate(keys):
        assert blocks[i].numpy().astype("<i4").tobytes() == keystream("chacha20", key, 192, first * 64)


CASES = [  # (n, offset in 32-bit words; the element offset is this / (itemsize / 4))
    (0, 0),
    (1, 0),
    (1, 1),
    (7, 0),
    (33, 3),
    (64, 13),
    (1001, 17),
    (1, (1 << 31) * 16 - 1),  # the last word before block 2^31
    (50, (1 << 31) * 16 - 20),  # across the int32 sign boundary of the counter
]


@pytest.mark.parametrize("dtype", sorted(NP_DTYPES))
@pytest.mark.parametrize(("n", "offset"), CASES)
def test_torch_chacha20_is_bit_identical_to_add_masks(dtype, n, offset, small_chunks):
    npdt = NP_DTYPES[dtype]
    offset = offset * 4 // np.dtype(npdt).itemsize
    rng = np.random.default_rng(n * 1000 + offset % 997)
    nkeys = int(rng.integers(1, 6))
    keys = [rng.bytes(32) for _ in range(nkeys)]
    signs = [int(s) for s in rng.choice([1, -1], nkeys)]
    vector = _random_vector(rng, n, npdt)
    assert np.array_equal(_torch_masked(vector, keys, signs, "chacha20", offset), _reference(vector, keys, signs, "chacha20", offset))


@pytest.mark.parametrize("dtype", sorted(NP_DTYPES))
def test_torch_chacha20_at_the_end_of_the_stream(dtype, small_chunks):
    npdt = NP_DTYPES[dtype]
    itemsize = np.dtype(npdt).itemsize
    rng = np.random.default_rng(11)
    keys, signs = [rng.bytes(32), rng.bytes(32)], [1, -1]
    n = 37
    offset = CHACHA_END // itemsize - n  # the last n elements of the 256 GiB stream
    vector = _random_vector(rng, n, npdt)
    assert np.array_equal(_torch_masked(vector, keys, signs, "chacha20", offset), _reference(vector, keys, signs, "chacha20", offset))
    with pytest.raises(ValueError, match="stream limit"):
        lt.add_masks(lt.as_ring_tensor(vector.copy()), keys, signs, "chacha20", offset + 1, engine="torch")


@pytest.mark.parametrize("seed", range(6))
def test_torch_chacha20_random_sizes_offsets_keys_and_signs(seed, small_chunks):
    rng = np.random.default_rng(100 + seed)
    npdt = [np.uint32, np.uint64][seed % 2]
    n = int(rng.integers(0, 400))
    itemsize = np.dtype(npdt).itemsize
    offset = int(rng.integers(0, CHACHA_END // itemsize - n)) if seed % 3 else int(rng.integers(0, 100))
    nkeys = int(rng.integers(1, 12))  # several key groups of one pass each
    keys = [rng.bytes(32) for _ in range(nkeys)]
    signs = [int(s) for s in rng.choice([1, -1], nkeys)]
    vector = _random_vector(rng, n, npdt)
    assert np.array_equal(_torch_masked(vector, keys, signs, "chacha20", offset), _reference(vector, keys, signs, "chacha20", offset))


@pytest.mark.parametrize("dtype", sorted(NP_DTYPES))
def test_torch_chacha20_beyond_one_default_chunk(dtype):
    npdt = NP_DTYPES[dtype]
    per_block = 64 // np.dtype(npdt).itemsize
    n = lt.CHUNK_BLOCKS["cpu"] * per_block + 3 * per_block + 5  # more than one full pass
    rng = np.random.default_rng(21)
    keys, signs = [rng.bytes(32)], [-1]
    vector = _random_vector(rng, n, npdt)
    assert np.array_equal(_torch_masked(vector, keys, signs, "chacha20", 9), _reference(vector, keys, signs, "chacha20", 9))


def test_many_keys_on_a_short_vector_are_batched_and_still_exact():
    # 40 keys x 2 blocks fit in one default pass: all keys are expanded by one batch of ops.
    rng = np.random.default_rng(3)
    keys = [rng.bytes(32) for _ in range(40)]
    signs = [1, -1] * 20
    vector = _random_vector(rng, 20, np.uint32)
    assert np.array_equal(_torch_masked(vector, keys, signs, "chacha20", 5), _reference(vector, keys, signs, "chacha20", 5))


def test_add_then_subtract_restores_the_vector():
    rng = np.random.default_rng(4)
    keys = [rng.bytes(32) for _ in range(3)]
    t = torch.arange(1000, dtype=torch.int64)
    lt.add_masks(t, keys, [1, 1, -1], engine="torch")
    assert not torch.equal(t, torch.arange(1000, dtype=torch.int64))
    lt.add_masks(t, keys, [-1, -1, 1], engine="torch")
    assert torch.equal(t, torch.arange(1000, dtype=torch.int64))


@pytest.mark.parametrize("engine", ["torch", "kernel", "auto"])
def test_non_contiguous_and_unsigned_tensors_are_masked_in_place(engine):
    rng = np.random.default_rng(8)
    keys, signs = [rng.bytes(32), rng.bytes(32)], [1, -1]
    base = _random_vector(rng, 200, np.uint32)
    t = lt.as_ring_tensor(base.copy())
    strided = t[::2]
    assert not strided.is_contiguous()
    lt.add_masks(strided, keys, signs, "chacha20", 3, engine=engine)
    expected = base.copy()
    masking.add_masks(expected[::2], keys, signs, "chacha20", 3)
    assert np.array_equal(lt.as_ring_numpy(t), expected)

    u = torch.from_numpy(base.copy())  # torch.uint32
    assert u.dtype == torch.uint32
    lt.add_masks(u, keys, signs, "chacha20", 3, engine=engine)
    assert np.array_equal(u.numpy(), _reference(base, keys, signs, "chacha20", 3))


@pytest.mark.parametrize("dtype", sorted(NP_DTYPES))
@pytest.mark.parametrize("engine", ["auto", "kernel"])
def test_aes128ctr_through_the_adapter_equals_numpy(dtype, engine):
    npdt = NP_DTYPES[dtype]
    rng = np.random.default_rng(9)
    keys = [rng.bytes(16) for _ in range(4)]
    signs = [1, -1, -1, 1]
    vector = _random_vector(rng, 1003, npdt)
    got = _torch_masked(vector, keys, signs, "aes128ctr", 77, engine=engine)
    assert np.array_equal(got, _reference(vector, keys, signs, "aes128ctr", 77))


def test_auto_engine_on_cpu_equals_the_torch_engine():
    rng = np.random.default_rng(10)
    keys, signs = [rng.bytes(32) for _ in range(2)], [1, 1]
    vector = _random_vector(rng, 999, np.uint64)
    auto = _torch_masked(vector, keys, signs, "chacha20", 31, engine="auto")
    assert np.array_equal(auto, _torch_masked(vector, keys, signs, "chacha20", 31, engine="torch"))


def test_two_clients_masks_cancel_in_the_sum():
    rng = np.random.default_rng(12)
    pair_key = rng.bytes(32)
    a = torch.from_numpy(rng.integers(-(2**31), 2**31, 500, dtype=np.int32))
    b = torch.from_numpy(rng.integers(-(2**31), 2**31, 500, dtype=np.int32))
    a0, plain = a.clone(), a + b
    lt.add_masks(a, [pair_key], [1], engine="torch")
    lt.add_masks(b, [pair_key], [-1], engine="torch")
    assert int((a != a0).sum()) >= 490  # masked (a word equal by chance is fine)
    assert torch.equal(a + b, plain)


def _ok_masks(**override):
    args = dict(tensor=torch.zeros(4, dtype=torch.int32), keys=[bytes(32)], signs=[1], suite="chacha20", offset=0)
    args.update(override)
    return args


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        (dict(tensor=np.zeros(4, np.uint32)), TypeError, "torch tensor"),
        (dict(tensor=torch.zeros(4, dtype=torch.float32)), TypeError, "int32 or int64"),
        (dict(tensor=torch.zeros(4, dtype=torch.int16)), TypeError, "int32 or int64"),
        (dict(tensor=torch.zeros((2, 2), dtype=torch.int32)), ValueError, "1-D"),
        (dict(keys=[bytes(16)]), ValueError, "32 bytes"),
        (dict(keys=["k" * 32]), TypeError, "bytes"),
        (dict(signs=[2]), ValueError, r"\+1 or -1"),
        (dict(signs=[True]), ValueError, r"\+1 or -1"),
        (dict(signs=[1, 1]), ValueError, "signs"),
        (dict(offset=-1), ValueError, "offset"),
        (dict(offset=1.0), ValueError, "offset"),
        (dict(suite="rc4"), ValueError, "suite"),
        (dict(suite="aes128ctr", keys=[bytes(16)], engine="torch"), ValueError, "chacha20 only"),
        (dict(engine="gpu"), ValueError, "engine"),
    ],
)
def test_add_masks_rejects_bad_input(override, error, match):
    with pytest.raises(error, match=match):
        lt.add_masks(**_ok_masks(**override))


def test_ring_views_share_memory():
    t = torch.zeros(3, dtype=torch.int32)
    view = lt.as_ring_numpy(t)
    assert view.dtype == np.uint32
    view[0] = 0xFFFFFFFF
    assert int(t[0]) == -1
    array = np.zeros(2, np.uint64)
    tensor = lt.as_ring_tensor(array)
    assert tensor.dtype == torch.int64
    tensor[1] = -1
    assert int(array[1]) == 2**64 - 1
    with pytest.raises(TypeError):
        lt.as_ring_numpy(torch.zeros(2))
    with pytest.raises(TypeError):
        lt.as_ring_tensor(np.zeros(2, np.int32))


# ---------------------------------------------------------------------------
# flatten / unflatten


def _bits(t):
    """A tensor's exact bit pattern as an integer numpy array (bool as uint8)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bool:
        return t.numpy().astype(np.uint8)
    width = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.view(width).numpy()


def _assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
    assert np.array_equal(_bits(a), _bits(b))


def _zoo():
    gen = torch.Generator().manual_seed(0)
    f16 = torch.tensor([0.0, -0.0, 65504.0, -65504.0, 6e-8, float("inf"), 1.0009765625], dtype=torch.float16)
    return OrderedDict(
        [
            ("half", f16),
            ("bf16", torch.randn(3, 5, generator=gen).to(torch.bfloat16)),
            ("weight", torch.randn(4, 6, generator=gen)),
            ("double", torch.randn(7, generator=gen, dtype=torch.float64) * 1e300),
            ("steps", torch.tensor(2**53 - 1, dtype=torch.int64)),  # a 0-d integer, like num_batches_tracked
            ("negatives", torch.tensor([-(2**53), -1, 0, 5], dtype=torch.int64)),
            ("mask", torch.tensor([[True, False], [False, True]])),
            ("bytes", torch.tensor([0, 255], dtype=torch.uint8)),
            ("small", torch.tensor([-128, 127], dtype=torch.int8)),
            ("i32", torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32)),
            ("empty", torch.zeros(0, 3)),
            ("scalar", torch.tensor(3.25)),
            ("transposed", torch.randn(3, 4, generator=gen).t()),
            ("u32", torch.tensor([0, 2**32 - 1], dtype=torch.uint32)),
        ]
    )


def test_flatten_unflatten_round_trip_is_exact():
    state = _zoo()
    assert not state["transposed"].is_contiguous()
    vector, spec = lt.flatten(state)
    assert vector.dtype == torch.float64 and vector.dim() == 1
    assert vector.numel() == spec.numel == sum(t.numel() for t in state.values())
    assert spec.names == tuple(state)
    back = lt.unflatten(vector, spec)
    assert isinstance(back, OrderedDict) and list(back) == list(state)
    for name in state:
        _assert_same(back[name], state[name])
    # the floating tensors come first: vector[:num_float] is what gets averaged
    floats = [t for t in state.values() if t.is_floating_point()]
    assert spec.num_float == sum(t.numel() for t in floats)
    assert torch.equal(vector[: spec.num_float], torch.cat([t.reshape(-1).double() for t in floats]))
    # the outputs are new tensors, not views of the vector
    vector.zero_()
    assert back["weight"].abs().sum() > 0


def test_flatten_a_sequence_of_tensors():
    tensors = [torch.ones(2, 2, dtype=torch.float16), torch.tensor(7), torch.zeros(0), torch.tensor([1.5, -2.5])]
    vector, spec = lt.flatten(tensors)
    assert not spec.mapping and spec.names == (None,) * 4
    assert vector.tolist() == [1.0] * 4 + [1.5, -2.5, 7.0]
    back = lt.unflatten(vector, spec)
    assert isinstance(back, list) and len(back) == 4
    for got, want in zip(back, tensors):
        _assert_same(got, want)
    empty_vector, empty_spec = lt.flatten([])
    assert empty_vector.numel() == 0 and lt.unflatten(empty_vector, empty_spec) == []


def test_spec_travels_as_json():
    vector, spec = lt.flatten(_zoo())
    text = json.dumps(spec.to_dict())
    again = lt.FlatSpec.from_dict(json.loads(text))
    assert again == spec
    for name, t in lt.unflatten(vector, again).items():
        _assert_same(t, _zoo()[name])


def test_batchnorm_state_dict_loads_back_with_its_step_counter():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    model.train()
    model(torch.randn(16, 5))
    model(torch.randn(16, 5))
    state = model.state_dict()
    assert int(state["1.num_batches_tracked"]) == 2
    vector, spec = lt.flatten(state)
    spec = lt.FlatSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    restored = lt.unflatten(vector, spec)
    assert restored._metadata == state._metadata
    clone = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    clone.load_state_dict(restored)
    for name, t in clone.state_dict().items():
        _assert_same(t, state[name])
    # num_batches_tracked sits after every float parameter and buffer
    entry = next(e for e in spec.entries if e.name == "1.num_batches_tracked")
    assert entry.offset == spec.num_float == spec.numel - 1 and entry.dtype == "int64"


def test_unflatten_restores_integer_dtypes_from_an_averaged_vector():
    vector, spec = lt.flatten({"w": torch.tensor([0.5]), "n": torch.tensor([3], dtype=torch.int64), "b": torch.tensor([True])})
    back = lt.unflatten(vector * 0.9, spec)  # e.g. the result of some averaging: 2.7 rounds to 3
    assert back["n"].dtype == torch.int64 and back["n"].tolist() == [3]
    assert back["b"].dtype == torch.bool and back["b"].tolist() == [True]


def test_unflatten_device_override():
    vector, spec = lt.flatten({"a": torch.ones(2)})
    assert spec.entries[0].device == "cpu"
    assert lt.unflatten(vector, spec, device="cpu")["a"].device.type == "cpu"


@pytest.mark.parametrize(
    ("tensors", "error", "match"),
    [
        (torch.ones(3), TypeError, "state_dict"),
        ("abc", TypeError, "state_dict"),
        ({1: torch.ones(1)}, TypeError, "keys must be str"),
        ({"a": np.ones(2)}, TypeError, "not a tensor"),
        ([torch.ones(2, dtype=torch.complex64)], TypeError, "complex"),
        ({"big": torch.tensor([2**53 + 1])}, ValueError, "2\\^53"),
        ({"neg": torch.tensor([-(2**60)])}, ValueError, "2\\^53"),
    ],
)
def test_flatten_rejects_bad_input(tensors, error, match):
    with pytest.raises(error, match=match):
        lt.flatten(tensors)


def test_unflatten_rejects_bad_input():
    vector, spec = lt.flatten({"a": torch.ones(3)})
    with pytest.raises(ValueError, match="length 3"):
        lt.unflatten(vector[:2], spec)
    with pytest.raises(ValueError, match="1-D"):
        lt.unflatten(vector.view(3, 1), spec)
    with pytest.raises(TypeError, match="floating"):
        lt.unflatten(vector.long(), spec)
    with pytest.raises(TypeError, match="FlatSpec"):
        lt.unflatten(vector, spec.to_dict())
    broken = spec.to_dict()
    broken["entries"][0]["offset"] = 1
    with pytest.raises(ValueError, match="tile"):
        lt.FlatSpec.from_dict(broken)
    with pytest.raises(ValueError, match="FlatSpec"):
        lt.FlatSpec.from_dict({"version": 1})
    with pytest.raises(ValueError, match="version"):
        lt.FlatSpec.from_dict({**spec.to_dict(), "version": 99})


# ---------------------------------------------------------------------------
# quantisation

QUANTIZERS = {
    "u16": Quantizer(clip=0.5, bits=16, num_clients=7),
    "u32": Quantizer(clip=2.0, step=1e-4, bits=32, num_clients=100),
    "u32-full": Quantizer(clip=1.0, bits=32, num_clients=1),  # levels 2^32 - 1: int32 patterns go negative
    "u32-weighted": Quantizer(clip=1.0, bits=32, num_clients=10, max_weight=1000),
    "u40": Quantizer(clip=3.0, bits=40, num_clients=5),
    "u64": Quantizer(clip=1.0, bits=64, num_clients=4096),  # levels just below 2^52
    "u32-weighted-full": Quantizer(clip=1.0, bits=32, num_clients=1, max_weight=1000),  # w q up to 2^32 - 1
    "u64-weighted": Quantizer(clip=1.0, bits=64, num_clients=4, max_weight=2**20),
}


def _values(rng, n, clip):
    x = rng.normal(0, clip / 1.5, n)
    x[:4] = [clip, -clip, 0.0, clip * 3]  # the edges, and one clipped value
    return x


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_quantize_equals_encode_given_the_same_noise(name):
    quantizer = QUANTIZERS[name]
    rng = np.random.default_rng(1)
    values = _values(rng, 5000, quantizer.clip)
    weight = quantizer.max_weight - 1 if quantizer.weighted else None
    expected, clipped = quantizer.encode(values, weight=weight, rng=np.random.default_rng(2))
    noise = torch.from_numpy(np.random.default_rng(2).random(values.size))
    got, got_clipped = lt._quantize_with_noise(torch, torch.from_numpy(values), quantizer, weight, noise)
    assert got.dtype == (torch.int32 if quantizer.bits <= 32 else torch.int64)
    assert got_clipped == clipped and clipped >= 1
    assert np.array_equal(lt.as_ring_numpy(got), expected)


@pytest.mark.parametrize("weighted", [False, True])
def test_quantize_on_grid_values_equals_encode_whatever_the_noise(weighted):
    # L = 1024 and clip = 1: (x + 1) * 512 is an exact integer, so no rounding noise matters.
    quantizer = Quantizer(clip=1.0, step=2 / 1024, bits=32, num_clients=50, max_weight=9 if weighted else None)
    assert quantizer.levels == 1024
    k = np.random.default_rng(3).integers(0, 1025, 3000)
    values = np.concatenate([k / 512 - 1, [1.5, -7.0]])
    weight = 9 if weighted else None
    expected, clipped = quantizer.encode(values, weight=weight)
    got, got_clipped = lt.quantize(torch.from_numpy(values).float(), quantizer, weight=weight, generator=torch.Generator().manual_seed(5))
    assert (got_clipped, clipped) == (2, 2)
    assert np.array_equal(lt.as_ring_numpy(got), expected)


def test_stochastic_rounding_is_unbiased():
    quantizer = Quantizer(clip=1.0, step=2 / 1024, bits=32, num_clients=50)
    n = 200_000
    rng = np.random.default_rng(7)
    values = torch.from_numpy(rng.uniform(-1.0, 1.0, n))
    scaled = (values + 1.0) * 512.0
    frac = scaled - torch.floor(scaled)
    q, _ = lt.quantize(values, quantizer, generator=torch.Generator().manual_seed(123))
    sigma = math.sqrt(float((frac * (1 - frac)).sum())) / n  # std of the mean rounding error

    def z(rounded):
        return float((rounded.double() - scaled).mean()) / sigma

    assert abs(z(q)) < 5, z(q)
    # the bound is tight enough to catch a biased rounding: floor, or a 1 % skew of the draw
    assert abs(z(torch.floor(scaled))) > 5
    skewed = torch.floor(scaled) + (torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < frac + 0.01)
    assert abs(z(skewed)) > 5
    # and every element lies on one of its two neighbouring grid points
    assert bool(((q.double() - torch.floor(scaled)) >= 0).all()) and bool(((q.double() - torch.floor(scaled)) <= 1).all())


def test_quantize_generator_reproducible_and_fresh_by_default():
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=10)
    values = torch.full((2000,), 0.123)
    a, _ = lt.quantize(values, quantizer, generator=torch.Generator().manual_seed(9))
    b, _ = lt.quantize(values, quantizer, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    torch.manual_seed(0)
    c, _ = lt.quantize(values, quantizer)
    torch.manual_seed(0)
    d, _ = lt.quantize(values, quantizer)
    assert not torch.equal(c, d)  # not torch's (fixed-seed) default generator


@pytest.mark.parametrize("uint32_casts", [True, False], ids=["uint32-cast", "mask"])
@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_dequantize_equals_decode(name, uint32_casts, monkeypatch):
    if not uint32_casts:  # the path for devices (and torch versions) without uint32 casts
        monkeypatch.setattr(lt.quantization, "_unsigned", lambda torch, *bits: ())
    quantizer = QUANTIZERS[name]
    rng = np.random.default_rng(4)
    count = min(3, quantizer.num_clients)
    total = np.zeros(quantizer.encoded_length(300), quantizer.dtype)
    for i in range(count):
        weight = int(rng.integers(1, quantizer.max_weight + 1)) if quantizer.weighted else None
        encoded, _ = quantizer.encode(_values(rng, 300, quantizer.clip), weight=weight, rng=rng)
        total += encoded
    expected = quantizer.decode(total, count)
    got = lt.dequantize(lt.as_ring_tensor(total), quantizer, count)
    if quantizer.weighted:
        assert got[1] == expected[1]
        got, expected = got[0], expected[0]
    assert got.dtype == torch.float64
    assert np.array_equal(got.numpy(), expected)


def test_dequantize_unsigned_views_and_corrupted_sums():
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=1)  # levels 2^32 - 1: sums above 2^31 are legal
    total = np.array([2**32 - 1, 2**31, 0], np.uint32)
    expected = quantizer.decode(total, 1)
    assert np.array_equal(lt.dequantize(lt.as_ring_tensor(total), quantizer, 1).numpy(), expected)
    assert np.array_equal(lt.dequantize(torch.from_numpy(total), quantizer, 1).numpy(), expected)  # torch.uint32
    small = Quantizer(clip=1.0, step=0.5, bits=32, num_clients=4)  # levels 4: a sum of 2 is at most 8
    with pytest.raises(ValueError, match="exceeds 8"):
        lt.dequantize(torch.tensor([9, 0], dtype=torch.int32), small, 2)
    with pytest.raises(ValueError, match="exceeds"):
        lt.dequantize(torch.tensor([-1, 0], dtype=torch.int32), small, 2)  # 2^32 - 1
    with pytest.raises(ValueError, match="num_clients"):
        lt.dequantize(torch.tensor([1, 0], dtype=torch.int32), small, 5)
    weighted = Quantizer(clip=1.0, step=0.5, bits=32, num_clients=4, max_weight=3)
    with pytest.raises(ValueError, match="weight slot"):
        lt.dequantize(torch.tensor([1, 7], dtype=torch.int32), weighted, 2)


def _ok_quantize(**override):
    args = dict(tensor=torch.zeros(4), quantizer=Quantizer(clip=1.0, bits=32, num_clients=2), weight=None, generator=None)
    args.update(override)
    return args


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        (dict(tensor=np.zeros(4)), TypeError, "torch tensor"),
        (dict(tensor=torch.zeros(2, 2)), ValueError, "1-D"),
        (dict(tensor=torch.zeros(3, dtype=torch.bool)), TypeError, "real"),
        (dict(tensor=torch.tensor([0.0, float("nan")])), ValueError, "NaN"),
        (dict(tensor=torch.tensor([float("inf")])), ValueError, "infinity"),
        (dict(quantizer="q"), TypeError, "Quantizer"),
        (dict(weight=3), ValueError, "no weight slot"),
        (dict(quantizer=Quantizer(clip=1.0, bits=32, num_clients=2, max_weight=5)), ValueError, "weighted"),
        (dict(quantizer=Quantizer(clip=1.0, bits=32, num_clients=2, max_weight=5), weight=6), ValueError, "max_weight"),
        (dict(quantizer=Quantizer(clip=1.0, bits=32, num_clients=2, max_weight=5), weight=2.0), TypeError, "int"),
        (dict(generator=np.random.default_rng(0)), TypeError, "torch.Generator"),
    ],
)
def test_quantize_rejects_bad_input(override, error, match):
    with pytest.raises(error, match=match):
        lt.quantize(**_ok_quantize(**override))


def test_dequantize_rejects_bad_input():
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=2)
    with pytest.raises(TypeError, match="torch tensor"):
        lt.dequantize(np.zeros(3, np.uint32), quantizer, 1)
    with pytest.raises(TypeError, match="int32 or int64"):
        lt.dequantize(torch.zeros(3), quantizer, 1)
    with pytest.raises(ValueError, match="1-D"):
        lt.dequantize(torch.zeros((1, 3), dtype=torch.int32), quantizer, 1)
    with pytest.raises(TypeError, match="count"):
        lt.dequantize(torch.zeros(3, dtype=torch.int32), quantizer, 1.0)


# ---------------------------------------------------------------------------
# end to end


def test_state_dict_average_through_masks():
    """Three models: flatten, quantise, mask with cancelling pairwise masks, sum, dequantise, unflatten."""
    torch.manual_seed(1)
    models = [torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.BatchNorm1d(3)) for _ in range(3)]
    states = [m.state_dict() for m in models]
    quantizer = Quantizer(clip=2.0, bits=32, num_clients=3, max_weight=100)
    weights = [10, 30, 60]
    rng = np.random.default_rng(0)
    pair = {(i, j): rng.bytes(32) for i in range(3) for j in range(i + 1, 3)}
    total = None
    for i, (state, w) in enumerate(zip(states, weights)):
        vector, spec = lt.flatten(state)
        ints, clipped = lt.quantize(vector[: spec.num_float], quantizer, weight=w, generator=torch.Generator().manual_seed(i))
        assert clipped == 0
        for (a, b), key in pair.items():
            if i in (a, b):
                lt.add_masks(ints, [key], [1 if i == a else -1], engine="torch")
        total = ints if total is None else total + ints
    mean, total_weight = lt.dequantize(total, quantizer, 3)
    assert total_weight == 100
    expected = sum(w * lt.flatten(s)[0][: spec.num_float] for s, w in zip(states, weights)) / 100
    assert float((mean - expected).abs().max()) <= quantizer.step
    averaged = lt.unflatten(torch.cat([mean, lt.flatten(states[0])[0][spec.num_float :]]), spec)
    models[0].load_state_dict(averaged)
