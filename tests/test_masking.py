"""``hazmat.masking.add_masks`` against the direct construction from ``prg.keystream``.

Runs once per kernel backend (the conftest fixture patches ``_kernels.add_masks``).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lepton_secagg._kernels as kernels
from lepton_secagg.hazmat import prg
from lepton_secagg.hazmat.masking import STREAM_LIMITS, add_masks
from lepton_secagg.hazmat.prg import key_size, keystream

SUITES = sorted(prg.SUITES)
DTYPES = [np.uint32, np.uint64]


def expected_masked(values, keys, signs, suite, offset, dtype):
    """vector[i] + sum_k sign_k * word_k[offset + i] mod 2^(8 * itemsize), in Python ints."""
    itemsize = np.dtype(dtype).itemsize
    modulus = 1 << (8 * itemsize)
    n = len(values)
    out = [int(v) for v in values]
    for key, sign in zip(keys, signs):
        raw = keystream(suite, bytes(key), n * itemsize, offset * itemsize)
        words = [int.from_bytes(raw[i * itemsize : (i + 1) * itemsize], "little") for i in range(n)]
        out = [(o + sign * w) % modulus for o, w in zip(out, words)]
    return out


def _key(suite, tag: int) -> bytes:
    return bytes((tag * 31 + i) % 256 for i in range(key_size(suite)))


@st.composite
def masking_case(draw):
    suite = draw(st.sampled_from(SUITES))
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(0, 150))
    itemsize = np.dtype(dtype).itemsize
    limit_elems = STREAM_LIMITS[suite] // itemsize
    offset = draw(st.one_of(st.integers(0, 300), st.integers(0, limit_elems - n)))
    k = draw(st.integers(0, 4))
    size = key_size(suite)
    keys = [draw(st.binary(min_size=size, max_size=size)) for _ in range(k)]
    signs = [draw(st.sampled_from([1, -1])) for _ in range(k)]
    values = draw(st.lists(st.integers(0, (1 << (8 * itemsize)) - 1), min_size=n, max_size=n))
    return suite, dtype, offset, keys, signs, values


@given(case=masking_case())
def test_add_masks_equals_direct_construction(case):
    suite, dtype, offset, keys, signs, values = case
    vec = np.array(values, dtype=dtype)
    out = add_masks(vec, keys, signs, suite=suite, offset=offset)
    assert out is vec
    assert vec.dtype == np.dtype(dtype)
    assert vec.tolist() == expected_masked(values, keys, signs, suite, offset, dtype)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1, 3, 15, 16, 17, 1000])
def test_single_mask_from_zero_is_the_keystream(suite, dtype, offset):
    n = 37
    key = _key(suite, 1)
    itemsize = np.dtype(dtype).itemsize
    vec = np.zeros(n, dtype=dtype)
    add_masks(vec, [key], [1], suite=suite, offset=offset)
    raw = keystream(suite, key, n * itemsize, offset * itemsize)
    assert vec.tobytes() == np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).tobytes()
    assert vec.tolist() == [int.from_bytes(raw[i * itemsize : (i + 1) * itemsize], "little") for i in range(n)]
    neg = np.zeros(n, dtype=dtype)
    add_masks(neg, [key], [-1], suite=suite, offset=offset)
    modulus = 1 << (8 * itemsize)
    assert neg.tolist() == [(-w) % modulus for w in vec.tolist()]


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_add_then_subtract_cancels(suite, dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    original = rng.integers(0, info.max, size=1001, dtype=dtype, endpoint=True)
    vec = original.copy()
    keys = [_key(suite, t) for t in range(3)]
    add_masks(vec, keys, [1, 1, -1], suite=suite, offset=12)
    assert not np.array_equal(vec, original)
    add_masks(vec, keys, [-1, -1, 1], suite=suite, offset=12)
    assert np.array_equal(vec, original)
    # the same key with opposite signs in one call is a no-op
    add_masks(vec, [keys[0], keys[0]], [1, -1], suite=suite, offset=5)
    assert np.array_equal(vec, original)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pairwise_masks_cancel_in_the_sum(suite, dtype):
    """The SecAgg invariant: client i adds +PRG(s_ij) for j > i and -PRG(s_ij) for j < i."""
    clients, n = 5, 257
    rng = np.random.default_rng(42)
    inputs = [rng.integers(0, np.iinfo(dtype).max, size=n, dtype=dtype, endpoint=True) for _ in range(clients)]
    pair_key = {(i, j): _key(suite, 10 * i + j) for i in range(clients) for j in range(i + 1, clients)}
    total = np.zeros(n, dtype=dtype)
    for i in range(clients):
        masked = inputs[i].copy()
        keys, signs = [], []
        for j in range(clients):
            if j != i:
                keys.append(pair_key[(min(i, j), max(i, j))])
                signs.append(1 if j > i else -1)
        add_masks(masked, keys, signs, suite=suite, offset=3)
        assert not np.array_equal(masked, inputs[i])
        total += masked
    expected = np.zeros(n, dtype=dtype)
    for x in inputs:
        expected += x
    assert np.array_equal(total, expected)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_views(suite, dtype):
    base = np.arange(100, dtype=dtype) * 3
    before = base.copy()
    view = base[1::3]
    values = view.tolist()
    keys, signs = [_key(suite, 1), _key(suite, 2)], [1, -1]
    out = add_masks(view, keys, signs, suite=suite, offset=9)
    assert out is view
    assert view.tolist() == expected_masked(values, keys, signs, suite, 9, dtype)
    untouched = np.ones(100, dtype=bool)
    untouched[1::3] = False
    assert np.array_equal(base[untouched], before[untouched])
    # a reversed view
    rev = np.arange(20, dtype=dtype)[::-1]
    vals = rev.tolist()
    add_masks(rev, keys[:1], [1], suite=suite)
    assert rev.tolist() == expected_masked(vals, keys[:1], [1], suite, 0, dtype)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_vector_chunks_and_threads(suite, dtype):
    """Over 1 MiB: crosses the numpy kernel's chunk and enables the C kernel's threads."""
    itemsize = np.dtype(dtype).itemsize
    n = (1 << 20) // itemsize + 77
    key = _key(suite, 3)
    raw = keystream(suite, key, n * itemsize, 5 * itemsize)
    words = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    for threads in (None, 1, 3):
        vec = np.full(n, 7, dtype=dtype)
        add_masks(vec, [key], [1], suite=suite, offset=5, threads=threads)
        assert np.array_equal(vec, words + dtype(7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_chacha20_stream_limit(dtype):
    itemsize = np.dtype(dtype).itemsize
    limit = STREAM_LIMITS["chacha20"]
    assert limit == 64 << 32
    key = _key("chacha20", 4)
    n = 20
    last = limit // itemsize - n  # the last n words of the stream
    vec = np.zeros(n, dtype=dtype)
    add_masks(vec, [key], [1], suite="chacha20", offset=last)
    assert vec.tolist() == expected_masked([0] * n, [key], [1], "chacha20", last, dtype)
    with pytest.raises(ValueError):
        add_masks(np.zeros(n, dtype=dtype), [key], [1], suite="chacha20", offset=last + 1)
    with pytest.raises(ValueError):
        add_masks(np.zeros(n + 1, dtype=dtype), [key], [1], suite="chacha20", offset=last)
    with pytest.raises(ValueError):
        add_masks(np.zeros(1, dtype=dtype), [key], [1], suite="chacha20", offset=limit // itemsize)


@pytest.mark.parametrize("dtype", DTYPES)
def test_aes_stream_limit(dtype):
    itemsize = np.dtype(dtype).itemsize
    limit = STREAM_LIMITS["aes128ctr"]
    assert limit == 1 << 64
    key = _key("aes128ctr", 5)
    n = 9
    last = limit // itemsize - n
    vec = np.zeros(n, dtype=dtype)
    add_masks(vec, [key], [-1], suite="aes128ctr", offset=last)
    assert vec.tolist() == expected_masked([0] * n, [key], [-1], "aes128ctr", last, dtype)
    with pytest.raises(ValueError):
        add_masks(np.zeros(n, dtype=dtype), [key], [1], suite="aes128ctr", offset=last + 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_aes_counter_carry_at_2_32_blocks(dtype):
    itemsize = np.dtype(dtype).itemsize
    offset = ((1 << 32) * 16) // itemsize - 6  # spans block 2^32 - 1 -> 2^32
    key = _key("aes128ctr", 6)
    vec = np.zeros(12, dtype=dtype)
    add_masks(vec, [key], [1], suite="aes128ctr", offset=offset)
    assert vec.tolist() == expected_masked([0] * 12, [key], [1], "aes128ctr", offset, dtype)


def test_no_keys_or_empty_vector_is_a_no_op():
    vec = np.arange(10, dtype=np.uint32)
    assert add_masks(vec, [], []) is vec
    assert vec.tolist() == list(range(10))
    empty = np.zeros(0, dtype=np.uint64)
    assert add_masks(empty, [_key("chacha20", 1)], [1], suite="chacha20").shape == (0,)


def test_bytearray_keys_and_numpy_int_signs():
    key = _key("aes128ctr", 8)
    a = np.zeros(16, dtype=np.uint32)
    b = np.zeros(16, dtype=np.uint32)
    add_masks(a, [key], [1])
    add_masks(b, [bytearray(key)], [np.int64(1)])
    assert np.array_equal(a, b)
    assert a.tolist() == expected_masked([0] * 16, [key], [1], "aes128ctr", 0, np.uint32)


def test_default_suite_is_aes128ctr():
    key = _key("aes128ctr", 9)
    a = np.zeros(8, dtype=np.uint64)
    add_masks(a, [key], [1])
    assert a.tolist() == expected_masked([0] * 8, [key], [1], "aes128ctr", 0, np.uint64)


def test_the_fixture_installed_a_backend(kernel_backend):
    assert kernels.add_masks is kernel_backend.add_masks


def test_argument_errors():
    k16, k32 = _key("aes128ctr", 1), _key("chacha20", 1)
    vec = np.zeros(8, dtype=np.uint32)
    with pytest.raises(TypeError):
        add_masks([0] * 8, [k16], [1])
    for dtype in (np.int32, np.int64, np.uint16, np.uint8, np.float64, np.dtype(">u4"), np.dtype(">u8")):
        with pytest.raises(TypeError):
            add_masks(np.zeros(8, dtype=dtype), [k16], [1])
    with pytest.raises(ValueError):
        add_masks(np.zeros((2, 4), dtype=np.uint32), [k16], [1])
    with pytest.raises(ValueError):
        add_masks(np.zeros((), dtype=np.uint32), [k16], [1])
    readonly = np.zeros(8, dtype=np.uint32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError):
        add_masks(readonly, [k16], [1])
    with pytest.raises(ValueError):
        add_masks(vec, [k16, k16], [1])
    with pytest.raises(ValueError):
        add_masks(vec, [k16], [1, -1])
    with pytest.raises(ValueError):
        add_masks(vec, [k32], [1], suite="aes128ctr")
    with pytest.raises(ValueError):
        add_masks(vec, [k16], [1], suite="chacha20")
    with pytest.raises(ValueError):
        add_masks(vec, [k16], [1], suite="aes256ctr")
    for bad_key in ("k" * 16, None, list(k16), memoryview(k16)):
        with pytest.raises(TypeError):
            add_masks(vec, [bad_key], [1])
    for bad_sign in (0, 2, -2, True, False, "1", None):
        with pytest.raises(ValueError):
            add_masks(vec, [k16], [bad_sign])
    for bad_offset in (-1, True, 1.0, "0", None):
        with pytest.raises(ValueError):
            add_masks(vec, [k16], [1], offset=bad_offset)
    for bad_threads in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError):
            add_masks(vec, [k16], [1], threads=bad_threads)
    assert vec.tolist() == [0] * 8  # nothing was written by the failed calls
