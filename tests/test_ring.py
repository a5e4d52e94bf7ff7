"""Vectors in Z_(2^bits) (``hazmat.ring``)."""
from __future__ import annotations

import numpy as np
import pytest

from lepton_secagg.hazmat import ring
from lepton_secagg.hazmat.ring import check_vector, dtype_for, modulus_mask, reduce


@pytest.mark.parametrize(
    "bits,dtype",
    [(1, np.uint32), (8, np.uint32), (31, np.uint32), (32, np.uint32), (33, np.uint64), (63, np.uint64), (64, np.uint64)],
)
def test_dtype_for_boundaries(bits, dtype):
    assert dtype_for(bits) == np.dtype(dtype)
    assert ring.MAX_BITS == 64


@pytest.mark.parametrize("bits", [0, 65, -1, 128, True, False, 32.0, "32", None])
def test_dtype_for_rejects(bits):
    with pytest.raises(ValueError):
        dtype_for(bits)
    with pytest.raises(ValueError):
        modulus_mask(bits)


@pytest.mark.parametrize("bits", [1, 2, 31, 32, 33, 63, 64])
def test_modulus_mask(bits):
    assert modulus_mask(bits) == 2**bits - 1


@pytest.mark.parametrize("bits", [1, 7, 16, 31, 32])
def test_reduce_uint32(bits):
    values = [0, 1, 2**bits - 1, 2**bits % 2**32, 0xDEADBEEF, 2**32 - 1]
    v = np.array(values, dtype=np.uint32)
    out = reduce(v, bits)
    assert out is v
    assert out.tolist() == [x % 2**bits for x in values]
    assert out.dtype == np.uint32


@pytest.mark.parametrize("bits", [33, 40, 63, 64])
def test_reduce_uint64(bits):
    values = [0, 1, 2**bits - 1, 2**bits % 2**64, 0xDEADBEEFCAFEF00D, 2**64 - 1]
    v = np.array(values, dtype=np.uint64)
    out = reduce(v, bits)
    assert out is v
    assert out.tolist() == [x % 2**bits for x in values]


def test_wrapping_sum_then_single_reduction():
    """The module's premise: sums wrap mod 2^32 / 2^64, one reduce gives the sum mod 2^bits."""
    rng = np.random.default_rng(7)
    for bits, dtype in ((12, np.uint32), (32, np.uint32), (45, np.uint64), (64, np.uint64)):
        parts = [rng.integers(0, 2**bits, size=50, dtype=np.uint64, endpoint=False) for _ in range(5)]
        acc = np.zeros(50, dtype=dtype)
        for p in parts:
            acc += p.astype(dtype)
        reduce(acc, bits)
        expected = [sum(int(p[i]) for p in parts) % 2**bits for i in range(50)]
        assert acc.tolist() == expected


def test_check_vector_accepts_and_copies():
    src = np.array([0, 5, 2**20 - 1], dtype=np.int64)
    out = check_vector(src, 3, 20)
    assert out.dtype == np.uint32 and out.tolist() == [0, 5, 2**20 - 1]
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, src)
    same = np.array([1, 2, 3], dtype=np.uint32)
    out2 = check_vector(same, 3, 32)
    assert out2 is not same and not np.shares_memory(out2, same)
    out2[0] = 9
    assert same[0] == 1
    assert check_vector([1, 2, 3], 3, 8).tolist() == [1, 2, 3]
    big = np.array([2**64 - 1, 0], dtype=np.uint64)
    assert check_vector(big, 2, 64).tolist() == [2**64 - 1, 0]
    strided = np.arange(10, dtype=np.uint64)[::2]
    got = check_vector(strided, 5, 40)
    assert got.tolist() == [0, 2, 4, 6, 8] and got.dtype == np.uint64 and got.flags.c_contiguous
    assert check_vector(np.array([], dtype=np.uint8), 0, 16).shape == (0,)


@pytest.mark.parametrize("bits", [1, 8, 32, 33, 64])
def test_check_vector_range_boundaries(bits):
    top = 2**bits - 1
    dtype = np.uint64
    assert check_vector(np.array([top], dtype=dtype), 1, bits).tolist() == [top]
    if bits < 64:
        with pytest.raises(ValueError):
            check_vector(np.array([top + 1], dtype=dtype), 1, bits)


def test_check_vector_errors():
    with pytest.raises(ValueError):
        check_vector(np.array([1, -1, 2], dtype=np.int64), 3, 32)
    with pytest.raises(ValueError):
        check_vector(np.array([-(2**63)], dtype=np.int64), 1, 64)
    with pytest.raises(ValueError):
        check_vector(np.array([256], dtype=np.uint32), 1, 8)
    with pytest.raises(ValueError):
        check_vector(np.array([2**32], dtype=np.uint64), 1, 32)
    with pytest.raises(ValueError):
        check_vector(np.arange(4, dtype=np.uint32), 3, 32)
    with pytest.raises(ValueError):
        check_vector(np.arange(4, dtype=np.uint32), 5, 32)
    with pytest.raises(ValueError):
        check_vector(np.zeros((2, 2), dtype=np.uint32), 4, 32)
    with pytest.raises(ValueError):
        check_vector(np.zeros((2, 2), dtype=np.uint32), 2, 32)
    with pytest.raises(ValueError):
        check_vector(np.uint32(3), 1, 32)
    for bad in (np.array([1.0, 2.0]), np.array([1, 2], dtype=np.float32), np.array([True, False]), np.array(["1", "2"])):
        with pytest.raises(TypeError):
            check_vector(bad, 2, 32)
    with pytest.raises(ValueError):
        check_vector(np.array([1], dtype=np.uint32), 1, 0)
    with pytest.raises(ValueError):
        check_vector(np.array([1], dtype=np.uint32), 1, 65)
    with pytest.raises(ValueError) as info:
        check_vector(np.array([7, 300]), 2, 8, what="client 4's update")
    assert "client 4's update" in str(info.value)
