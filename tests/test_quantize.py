"""Fixed-point quantisation: rounding error, unbiasedness, clipping, the bit budget, weights."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lepton_secagg import encoding
from lepton_secagg.encoding import Quantizer, bits_needed, dequantize, levels, quantize
from lepton_secagg.hazmat import quantize as hazmat_quantize


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_encoding_re_exports_the_hazmat_api():
    for name in encoding.__all__:
        assert getattr(encoding, name) is getattr(hazmat_quantize, name)


@given(
    hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-3, 3)),
    st.floats(0.1, 2.0),
    st.floats(1e-4, 0.05),
    st.integers(0, 2**32),
)
def test_round_trip_error_is_below_one_step(values, clip, step, seed):
    q, clipped = quantize(values, clip, step, rng=_rng(seed))
    grid = 2 * clip / levels(clip, step)
    assert q.dtype == np.uint64 and int(q.max()) <= levels(clip, step)
    assert clipped == np.count_nonzero(np.abs(values) > clip)
    back = dequantize(q, 1, clip, step)
    assert np.all(np.abs(back - np.clip(values, -clip, clip)) < grid * (1 + 1e-9))


def test_stochastic_rounding_is_unbiased():
    # 1000 levels on [-1, 1]: x = -1 + 0.3 * step sits at 0.3 of a level.
    clip, step = 1.0, 0.002
    x = -clip + 0.3 * step
    samples = 200_000
    q, _ = quantize(np.full(samples, x), clip, step, rng=_rng(7))
    assert set(np.unique(q).tolist()) == {0, 1}
    mean = q.mean()
    standard_error = np.sqrt(0.3 * 0.7 / samples)
    # Round-half-up or truncation would give 0 exactly, 140 standard errors away.
    assert abs(mean - 0.3) < 5 * standard_error


def test_values_on_the_grid_are_exact_and_the_ends_map_to_0_and_levels():
    q, clipped = quantize(np.array([-1.0, -0.5, 0.0, 0.5, 1.0]), 1.0, 0.5, rng=_rng())
    assert q.tolist() == [0, 1, 2, 3, 4] and clipped == 0


def test_clipped_counts_are_exact():
    values = np.array([-5.0, -1.0, -0.999, 0.0, 1.0, 1.0000001, 7.0, np.float64(-1.5)])
    q, clipped = quantize(values, 1.0, 0.01, rng=_rng())
    assert clipped == 4
    assert q[0] == 0 and q[6] == levels(1.0, 0.01)
    quantizer = Quantizer(clip=1.0, num_clients=3)
    assert quantizer.encode(values, rng=_rng())[1] == 4


def test_bits_needed_and_levels():
    assert levels(1.0, 0.1) == 20  # 2 / 0.1 is 20.000000000000004 in floats
    assert bits_needed(1, 1.0, 0.1) == 5
    assert bits_needed(1000, 1.0, 2 / 1023) == (1000 * 1023).bit_length() == 20
    assert bits_needed(10, 1.0, 0.1, max_weight=7) == (10 * 7 * 20).bit_length()
    with pytest.raises(ValueError, match="wider than the whole range"):
        levels(1.0, 5.0)


def test_the_bit_budget_refuses_wrapping_and_accepts_the_boundary_exactly():
    # 15 levels * 17 clients = 255 = 2^8 - 1: the largest sum fits in 8 bits.
    fits = Quantizer(clip=1.0, step=2 / 15, bits=8, num_clients=17)
    assert fits.levels == 15 and bits_needed(17, 1.0, 2 / 15) == 8
    with pytest.raises(ValueError, match=r"18 clients at 15 levels .* needs 9 bits, but bits = 8"):
        Quantizer(clip=1.0, step=2 / 15, bits=8, num_clients=18)
    # 16 levels * 16 clients = 256 = 2^8 would wrap to 0.
    assert bits_needed(16, 1.0, 2 / 16) == 9
    with pytest.raises(ValueError, match=r"16 clients at 16 levels .* needs 9 bits"):
        Quantizer(clip=1.0, step=2 / 16, bits=8, num_clients=16)
    with pytest.raises(ValueError, match="step of at least"):
        Quantizer(clip=1.0, step=1e-9, bits=32, num_clients=1000)
    with pytest.raises(ValueError, match="use at least 9 bits"):
        Quantizer(clip=1.0, bits=8, num_clients=300)
    with pytest.raises(ValueError, match="weights up to 100"):
        Quantizer(clip=1.0, step=2 / 15, bits=14, num_clients=17, max_weight=100)


def test_step_none_chooses_the_finest_grid_that_fits():
    quantizer = Quantizer(clip=2.0, bits=16, num_clients=5)
    assert quantizer.levels == (2**16 - 1) // 5
    assert quantizer.step == 4.0 / quantizer.levels
    assert bits_needed(5, 2.0, quantizer.step) == 16
    assert bits_needed(5, 2.0, 4.0 / (quantizer.levels + 1)) == 17
    weighted = Quantizer(clip=2.0, bits=20, num_clients=5, max_weight=9)
    assert weighted.levels == (2**20 - 1) // 45


@pytest.mark.parametrize("bits", [12, 32, 64])
def test_a_wrapped_sum_of_clients_decodes_to_the_float_sum(bits):
    n = 9
    quantizer = Quantizer(clip=1.5, bits=bits, num_clients=n)
    rng = _rng(bits)
    vectors = rng.uniform(-2, 2, size=(n, 300))
    mask = (1 << bits) - 1
    total = np.zeros(300, dtype=object)
    clipped_total = 0
    for vector in vectors:
        encoded, clipped = quantizer.encode(vector, rng=rng)
        assert encoded.dtype == quantizer.dtype and int(encoded.max()) <= quantizer.levels
        total = (total + encoded.astype(object)) & mask
        clipped_total += clipped
    assert clipped_total == np.count_nonzero(np.abs(vectors) > 1.5)
    decoded = quantizer.decode(total.astype(quantizer.dtype), n)
    expected = np.clip(vectors, -1.5, 1.5).sum(axis=0)
    # float64 itself limits a 64-bit grid to about 1e-16 relative precision
    assert np.all(np.abs(decoded - expected) <= n * quantizer.step + 1e-12)


def test_weighted_mean():
    quantizer = Quantizer(clip=1.0, bits=32, num_clients=4, max_weight=1000)
    rng = _rng(3)
    vectors = rng.uniform(-1, 1, size=(4, 50))
    weights = [1, 10, 500, 1000]
    total = np.zeros(51, dtype=np.uint64)
    for vector, weight in zip(vectors, weights):
        encoded, _ = quantizer.encode(vector, weight=weight, rng=rng)
        assert encoded.size == 51 and encoded[-1] == weight
        total += encoded
    mean, total_weight = quantizer.decode(total.astype(np.uint32), 4)
    assert total_weight == sum(weights)
    expected = np.average(vectors, axis=0, weights=weights)
    assert np.all(np.abs(mean - expected) <= quantizer.step * (1 + 1e-9))


def test_weight_slot_misuse():
    weighted = Quantizer(clip=1.0, num_clients=4, max_weight=10)
    plain = Quantizer(clip=1.0, num_clients=4)
    with pytest.raises(ValueError, match="is weighted"):
        weighted.encode([0.5])
    with pytest.raises(ValueError, match="exceeds max_weight"):
        weighted.encode([0.5], weight=11)
    with pytest.raises(ValueError, match=">= 1"):
        weighted.encode([0.5], weight=0)
    with pytest.raises(TypeError):
        weighted.encode([0.5], weight=2.0)
    with pytest.raises(ValueError, match="no weight slot"):
        plain.encode([0.5], weight=3)
    with pytest.raises(ValueError, match="weight slot holds 50"):
        weighted.decode(np.array([0, 50], dtype=np.uint32), 4)


def test_decode_refuses_impossible_sums():
    quantizer = Quantizer(clip=1.0, step=0.5, bits=16, num_clients=4)
    assert quantizer.decode(np.array([8, 0], dtype=np.uint16), 2).tolist() == [2.0, -2.0]
    with pytest.raises(ValueError, match="exceeds 8"):
        quantizer.decode(np.array([9, 0], dtype=np.uint16), 2)
    with pytest.raises(ValueError, match="exceeds num_clients"):
        quantizer.decode(np.array([9, 0], dtype=np.uint16), 5)
    with pytest.raises(ValueError, match="negative"):
        quantizer.decode(np.array([-1, 0]), 1)
    with pytest.raises(ValueError, match="1-D"):
        quantizer.decode(np.zeros((2, 2), dtype=np.uint32), 1)
    with pytest.raises(TypeError, match="integer array"):
        quantizer.decode(np.zeros(2), 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise(bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize(np.array([0.0, bad]), 1.0, 0.1)
    with pytest.raises(ValueError, match="NaN or infinity"):
        Quantizer(clip=1.0, num_clients=2).encode([0.0, bad])


@pytest.mark.parametrize(
    "call",
    [
        lambda: quantize(["a", "b"], 1.0, 0.1),
        lambda: quantize(np.array([True]), 1.0, 0.1),
        lambda: quantize([0.1], "1", 0.1),
        lambda: quantize([0.1], 1.0, 0.1, rng=np.random.RandomState(0)),
        lambda: quantize([0.1], 1.0, 0.1, rng=3),
        lambda: bits_needed(2.0, 1.0, 0.1),
        lambda: Quantizer(clip=None, num_clients=2),
        lambda: Quantizer(clip=1.0, num_clients=2.5),
        lambda: Quantizer(clip=1.0, num_clients=2, max_weight="3"),
        lambda: dequantize([1], True, 1.0, 0.1),
    ],
)
def test_wrong_types_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: quantize([0.1], -1.0, 0.1),
        lambda: quantize([0.1], 1.0, 0.0),
        lambda: quantize([0.1], float("inf"), 0.1),
        lambda: Quantizer(clip=1.0, num_clients=0),
        lambda: Quantizer(clip=1.0, num_clients=2, bits=65),
        lambda: Quantizer(clip=1.0, num_clients=2, max_weight=0),
        lambda: Quantizer(clip=1.0, num_clients=2).encode([[0.1]]),
    ],
)
def test_bad_values_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_default_rounding_randomness_comes_from_the_os():
    values = np.full(64, 0.05)
    first, _ = quantize(values, 1.0, 0.1)
    second, _ = quantize(values, 1.0, 0.1)
    assert not np.array_equal(first, second)  # fails with probability 2^-64
    seeded = [quantize(values, 1.0, 0.1, rng=_rng(5))[0] for _ in range(2)]
    assert np.array_equal(*seeded)


def test_64_bit_single_client_grid_stays_exact():
    """The finest grid is capped at 2^53 levels, which float64 holds exactly."""
    q = Quantizer(clip=1.0, bits=64, num_clients=1)
    assert q.levels == 2**53
    encoded, clipped = q.encode(np.array([1.0, -1.0, 0.0, 3.0]))
    assert clipped == 1
    assert encoded.tolist() == [2**53, 0, 2**52, 2**53]
    with pytest.raises(ValueError, match="2\\^53"):
        Quantizer(clip=1.0, step=2.0 / 2**60, bits=64, num_clients=1)


def _old_quantize(values, clip, step, rng):
    """``quantize`` as it was before the fused kernel: the numpy passes, verbatim."""
    count = levels(clip, step)
    array = np.asarray(values).astype(np.float64, copy=False)
    scaled = np.clip(array, -clip, clip)
    clipped = int(array.size - np.count_nonzero(scaled == array))
    scaled += clip
    scaled *= count / (2 * clip)
    q = np.floor(scaled)
    scaled -= q
    q += rng.random(scaled.shape) < scaled
    np.minimum(q, count, out=q)
    return q.astype(np.uint64), clipped


def _old_encode(quantizer, values, weight, rng):
    q, clipped = _old_quantize(values, quantizer.clip, quantizer.step, rng)
    encoded = np.empty(quantizer.encoded_length(q.size), dtype=quantizer.dtype)
    if quantizer.weighted:
        np.multiply(q, weight, out=encoded[:-1], casting="unsafe")
        encoded[-1] = weight
    else:
        encoded[:] = q
    return encoded, clipped


@given(
    hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(-20, 20)),
    st.sampled_from([0.5, 1, 3.0, 8.0]),
    st.sampled_from([1e-9, 1e-3, 0.1, 1.0]),
    st.integers(0, 2**32),
)
def test_quantize_is_unchanged_by_the_fused_kernel(values, clip, step, seed):
    values = np.concatenate([values, [clip, -clip, 0.0, 2 * clip, -2 * clip]])
    for shaped in (values, values[::2], values.reshape(-1, 1)):
        q, clipped = quantize(shaped, clip, step, rng=_rng(seed))
        q_old, clipped_old = _old_quantize(shaped, clip, step, _rng(seed))
        assert q.dtype == np.uint64 and q.shape == q_old.shape
        assert clipped == clipped_old and np.array_equal(q, q_old)


@pytest.mark.parametrize("bits", [12, 32, 33, 64])
@pytest.mark.parametrize("max_weight", [None, 1, 7, 1000])
@pytest.mark.parametrize("n", [0, 1, 1001])
def test_encode_is_unchanged_by_the_fused_kernel(bits, max_weight, n):
    budget = 50 * (max_weight or 1)
    if budget.bit_length() > bits:
        pytest.skip("no such quantizer")
    quantizer = Quantizer(clip=8.0, bits=bits, num_clients=50, max_weight=max_weight)
    values = _rng(n).normal(0, 6, n)
    for weight in ([None] if max_weight is None else sorted({1, max_weight})):
        encoded, clipped = quantizer.encode(values, weight=weight, rng=_rng(bits + n))
        expected, expected_clipped = _old_encode(quantizer, values, weight, _rng(bits + n))
        assert encoded.dtype == expected.dtype and np.array_equal(encoded, expected)
        assert clipped == expected_clipped


@pytest.mark.parametrize("n,clip,precision,weight", [(5, 8.0, 16 / 2**22, 9000), (20, 8.0, 16 / 2**22, 9000), (3, 1.0, 1e-3, None),
                                                     (1000, 0.5, 1e-6, 1), (2, 1.0, 2.0, None)])
def test_bits_for_precision_is_the_smallest_ring_that_meets_the_step(n, clip, precision, weight):
    from lepton_secagg.hazmat.quantize import bits_for_precision

    b = bits_for_precision(n, clip, precision, weight)
    assert Quantizer(clip=clip, bits=b, num_clients=n, max_weight=weight).step <= precision
    if b > 1 and n * (weight or 1) < 1 << (b - 1):  # one bit less either holds too few levels or none at all
        assert Quantizer(clip=clip, bits=b - 1, num_clients=n, max_weight=weight).step > precision


def test_an_unreachable_precision_is_refused_with_the_best_step():
    from lepton_secagg.hazmat.quantize import bits_for_precision

    with pytest.raises(ValueError, match=r"best step available is 1\.\d+e-0?1[0-9]"):
        bits_for_precision(1000, 1.0, 1e-18, 10_000)
    assert bits_for_precision(1000, 1.0, 1e-9, 10_000, max_bits=64) <= 64
