"""The masking kernels against the PRG reference, bit for bit.

Three implementations must agree: the C kernel (``_speedups``, every SIMD
pipeline this CPU can run), the numpy kernel (``_native``, the specification)
and a direct pycryptodome expansion (``hazmat.prg.keystream``).  Tests that go
through ``hazmat.masking.add_masks`` run once per backend (the conftest fixture
patches the kernel); tests that call the C module directly run only in the
"c" session and skip when the extension is absent.
"""
from __future__ import annotations

import array
import os
import platform
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_secagg._kernels import _native
from lepton_secagg.hazmat import masking
from lepton_secagg.hazmat.prg import SUITES, keystream

try:
    from lepton_secagg._kernels import _speedups
except ImportError:  # not built, or LEPTON_SECAGG_PUREPYTHON
    _speedups = None

DTYPES = [np.uint32, np.uint64]
STREAM_LIMITS = masking.STREAM_LIMITS


def reference(vector, keys, signs, suite, offset):
    """vector + sum(sign * keystream words), straight from pycryptodome."""
    out = np.array(vector, copy=True)
    isz = out.itemsize
    n = out.shape[0]
    for key, sign in zip(keys, signs):
        words = np.frombuffer(keystream(suite, key, n * isz, offset * isz), dtype=f"<u{isz}")
        if sign > 0:
            out += words.astype(out.dtype)
        else:
            out -= words.astype(out.dtype)
    return out


def random_vector(rng, n, dtype):
    return rng.integers(0, np.iinfo(dtype).max, size=n, dtype=dtype, endpoint=True)


def make_keys(rng, suite, count):
    return [rng.bytes(SUITES[suite]) for _ in range(count)]


@pytest.fixture
def c_only(kernel_backend):
    """Run C-module tests once, in the "c" session; skip without the extension."""
    if _speedups is None:
        pytest.skip("C extension not available")
    if kernel_backend is not _speedups:
        pytest.skip("C-specific test: runs in the 'c' backend session")
    return _speedups


@pytest.fixture
def every_kernel(c_only):
    """Yield a function that runs a callback under every (aes, chacha) kernel pair."""
    available = c_only._available_kernels()

    def run(check):
        try:
            for aes in available["aes128ctr"] + ["numpy"]:
                for cha in available["chacha20"]:
                    c_only._set_kernels(aes, cha)
                    check(aes, cha)
        finally:
            c_only._set_kernels()

    return run


# ---------------------------------------------------------------------------
# known answers (independent of pycryptodome)


def test_known_answers():
    """AES-128(0^16, 0^16) and RFC 8439 A.1 test vector #1 (zero key, nonce, counter)."""
    v = np.zeros(4, np.uint32)
    masking.add_masks(v, [bytes(16)], [1], "aes128ctr", 0, 1)
    assert v.astype("<u4").tobytes().hex() == "66e94bd4ef8a2c3b884cfa59ca342b2e"
    v = np.zeros(8, np.uint32)
    masking.add_masks(v, [bytes(32)], [1], "chacha20", 0, 1)
    assert v.astype("<u4").tobytes().hex() == "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    v = np.zeros(4, np.uint64)
    masking.add_masks(v, [bytes(32)], [-1], "chacha20", 0, 1)
    expected = -np.frombuffer(bytes.fromhex("76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"), "<u8")
    assert np.array_equal(v, expected.astype(np.uint64))


# ---------------------------------------------------------------------------
# parity through the public API (both backends)


@st.composite
def cases(draw, max_n=100_000):
    suite = draw(st.sampled_from(sorted(SUITES)))
    dtype = draw(st.sampled_from(DTYPES))
    isz = np.dtype(dtype).itemsize
    n = draw(st.one_of(st.sampled_from([0, 1, 2, 3, 5, 255, 256, 257]), st.integers(0, 3000), st.integers(0, max_n)))
    limit = STREAM_LIMITS[suite] // isz  # elements addressable
    offset = draw(
        st.one_of(
            st.integers(0, 300),
            st.integers(0, 1 << 22),
            st.integers(limit - n - 1000, limit - n),  # the very end of the stream
            st.integers(0, limit - n),
        )
    )
    count = draw(st.integers(1, 4))
    signs = draw(st.lists(st.sampled_from([1, -1]), min_size=count, max_size=count))
    threads = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    return suite, dtype, n, offset, signs, threads, seed


@given(cases())
def test_masking_matches_pycryptodome(case):
    suite, dtype, n, offset, signs, threads, seed = case
    rng = np.random.default_rng(seed)
    keys = make_keys(rng, suite, len(signs))
    v = random_vector(rng, n, dtype)
    expected = reference(v, keys, signs, suite, offset)
    out = masking.add_masks(v, keys, signs, suite, offset, threads)
    assert out is v
    assert v.tobytes() == expected.tobytes()


@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_masking_large_vector(suite, dtype):
    """~100k elements, unaligned offset, several keys with mixed signs."""
    rng = np.random.default_rng(7)
    n = 100_003
    keys = make_keys(rng, suite, 3)
    signs = [1, -1, -1]
    v = random_vector(rng, n, dtype)
    expected = reference(v, keys, signs, suite, 12345)
    masking.add_masks(v, keys, signs, suite, 12345, 2)
    assert v.tobytes() == expected.tobytes()


@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_masking_non_contiguous_view(suite, dtype):
    rng = np.random.default_rng(3)
    base = random_vector(rng, 2 * 777 + 1, dtype)
    keep = base.copy()
    view = base[1::2]
    keys = make_keys(rng, suite, 2)
    expected = reference(view, keys, [1, -1], suite, 5)
    masking.add_masks(view, keys, [1, -1], suite, 5, 1)
    assert view.tobytes() == expected.tobytes()
    assert np.array_equal(base[0::2], keep[0::2])  # the gaps are untouched


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_add_then_subtract_is_identity(suite):
    rng = np.random.default_rng(11)
    v = random_vector(rng, 4099, np.uint32)
    keep = v.copy()
    keys = make_keys(rng, suite, 5)
    masking.add_masks(v, keys, [1] * 5, suite, 17, 1)
    assert not np.array_equal(v, keep)
    masking.add_masks(v, keys, [-1] * 5, suite, 17, 1)
    assert np.array_equal(v, keep)


def test_aes_offset_2_pow_40_and_counter_carries():
    """Offsets around 2^40 elements and counter blocks crossing 2^32, 2^40, 2^56."""
    rng = np.random.default_rng(5)
    key = make_keys(rng, "aes128ctr", 2)
    for dtype in DTYPES:
        isz = np.dtype(dtype).itemsize
        for block in (1 << 32, 1 << 40, 1 << 56, 1 << 59):
            offset = block * 16 // isz - 37  # 37 elements before the carry
            v = random_vector(rng, 301, dtype)
            expected = reference(v, key, [1, -1], "aes128ctr", offset)
            masking.add_masks(v, key, [1, -1], "aes128ctr", offset, 1)
            assert v.tobytes() == expected.tobytes(), (dtype, block)
        v = random_vector(rng, 999, dtype)
        expected = reference(v, key, [-1, 1], "aes128ctr", (1 << 40) + 3)
        masking.add_masks(v, key, [-1, 1], "aes128ctr", (1 << 40) + 3, 1)
        assert v.tobytes() == expected.tobytes()


# ---------------------------------------------------------------------------
# the C module directly


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cases(max_n=20_000))
def test_c_matches_numpy_spec(c_only, case):
    suite, dtype, n, offset, signs, threads, seed = case
    rng = np.random.default_rng(seed)
    keys = make_keys(rng, suite, len(signs))
    v = random_vector(rng, n, dtype)
    spec = v.copy()
    _native.add_masks(spec, keys, signs, suite, offset, 1)
    c_only.add_masks(v, keys, signs, suite, offset, threads)
    assert v.tobytes() == spec.tobytes()


def test_every_kernel_matches_reference(every_kernel):
    rng = np.random.default_rng(2024)
    cases_ = []
    for suite in sorted(SUITES):
        for dtype in DTYPES:
            isz = np.dtype(dtype).itemsize
            end = STREAM_LIMITS[suite] // isz
            for n, offset in [(0, 0), (1, 0), (1, 3), (7, 1), (64, 0), (1031, 5), (4096 + 13, 255),
                              (20_001, 1 << 20), (3001, end - 3001), (513, end - 1000)]:
                keys = make_keys(rng, suite, 3)
                v = random_vector(rng, n, dtype)
                cases_.append((suite, v, keys, [1, -1, 1], offset, reference(v, keys, [1, -1, 1], suite, offset)))

    def check(aes, cha):
        for suite, v, keys, signs, offset, expected in cases_:
            out = v.copy()
            _speedups.add_masks(out, keys, signs, suite, offset, 1)
            assert out.tobytes() == expected.tobytes(), (aes, cha, suite, out.dtype, len(out), offset)

    every_kernel(check)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_chacha_kernel_offset_sweep(c_only, dtype):
    """Each ChaCha20 pipeline at every element offset across two 1 KiB batches.

    The SIMD pipelines start their 8 or 16 lanes at any block counter (a
    partial first block runs one batch from the block the range starts in),
    precompute the counter-free part of the first round once per key, and
    handle a partial tail; lengths around the batch sizes catch all three.
    Also the last blocks of the stream, where the lanes pass 2^32 - 1.
    """
    rng = np.random.default_rng(8439)
    isz = np.dtype(dtype).itemsize
    keys = make_keys(rng, "chacha20", 2)
    signs = [1, -1]
    span = 2 * 1024 // isz + 64
    lengths = [1, 15, 16, 17, 512 // isz - 1, 512 // isz + 1, 1024 // isz, 1024 // isz + 3, 3 * 1024 // isz + 5]
    words = [np.frombuffer(keystream("chacha20", k, (span + max(lengths)) * isz, 0), dtype=f"<u{isz}")
             for k in keys]
    end = STREAM_LIMITS["chacha20"] // isz
    tail_words = [np.frombuffer(keystream("chacha20", k, 4096 * isz, (end - 4096) * isz), dtype=f"<u{isz}")
                  for k in keys]
    try:
        for cha in c_only._available_kernels()["chacha20"]:
            c_only._set_kernels(None, cha)
            for offset in range(0, span, 1 if cha != "scalar" else 7):
                n = lengths[offset % len(lengths)]
                v = random_vector(rng, n, dtype)
                expected = v.copy()
                for w, sign in zip(words, signs):
                    ks = w[offset:offset + n].astype(dtype)
                    expected = expected + ks if sign > 0 else expected - ks
                c_only.add_masks(v, keys, signs, "chacha20", offset, 1)
                assert v.tobytes() == expected.tobytes(), (cha, offset, n)
            for n in list(range(1, 40)) + [255, 256, 257, 1031, 2048]:
                for back in (0, 1, 5):
                    offset = end - n - back
                    v = random_vector(rng, n, dtype)
                    expected = v.copy()
                    for w, sign in zip(tail_words, signs):
                        ks = w[4096 - n - back:4096 - back].astype(dtype)
                        expected = expected + ks if sign > 0 else expected - ks
                    c_only.add_masks(v, keys, signs, "chacha20", offset, 1)
                    assert v.tobytes() == expected.tobytes(), (cha, "end", n, back)
    finally:
        c_only._set_kernels()


@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_c_threads_bit_identical(c_only, suite, dtype):
    """threads 1..4 on a vector big enough to split (>= 64 Ki elements per thread)."""
    rng = np.random.default_rng(99)
    n = 4 * 65536 + 12345
    isz = np.dtype(dtype).itemsize
    offset = 3 if suite == "aes128ctr" else STREAM_LIMITS[suite] // isz - n - 7
    keys = make_keys(rng, suite, 3)
    v = random_vector(rng, n, dtype)
    expected = reference(v, keys, [1, -1, 1], suite, offset)
    for threads in (1, 2, 3, 4, 1000):
        out = v.copy()
        c_only.add_masks(out, keys, [1, -1, 1], suite, offset, threads)
        assert out.tobytes() == expected.tobytes(), threads


def test_c_many_keys_one_call(c_only):
    """Many keys in one call (the server unmasking shape) equals key-by-key calls."""
    rng = np.random.default_rng(1)
    keys = make_keys(rng, "aes128ctr", 200)
    signs = [1 if i % 3 else -1 for i in range(200)]
    v = random_vector(rng, 70_001, np.uint32)
    one = v.copy()
    c_only.add_masks(one, keys, signs, "aes128ctr", 9, 2)
    for key, sign in zip(keys, signs):
        c_only.add_masks(v, [key], [sign], "aes128ctr", 9, 1)
    assert np.array_equal(one, v)
    spec = random_vector(rng, 5000, np.uint64)
    c = spec.copy()
    _native.add_masks(spec, keys[:50], signs[:50], "aes128ctr", 1, 1)
    c_only.add_masks(c, keys[:50], signs[:50], "aes128ctr", 1, 1)
    assert np.array_equal(spec, c)


def test_c_accepts_other_buffers(c_only):
    """array.array 'I'/'Q', bytearray keys, a memoryview cast; numpy-free buffers work."""
    rng = np.random.default_rng(4)
    for code, dtype in (("I", np.uint32), ("Q", np.uint64), ("L", np.dtype("L").type)):
        if array.array(code).itemsize not in (4, 8):
            continue
        vals = random_vector(rng, 333, dtype)
        buf = array.array(code, vals.tolist())
        key = rng.bytes(16)
        c_only.add_masks(buf, [bytearray(key)], [1], "aes128ctr", 2, 1)
        expected = reference(vals, [key], [1], "aes128ctr", 2)
        assert np.array_equal(np.frombuffer(buf, dtype=expected.dtype), expected)
    raw = bytearray(64)
    c_only.add_masks(memoryview(raw).cast("I"), [bytes(32)], [1], "chacha20", 0, 1)
    assert raw.hex() == keystream("chacha20", bytes(32), 64, 0).hex()


def test_c_numpy_fallback_path(c_only):
    """Forced "numpy" AES kernel (what a CPU without AES-NI gets) calls back into _native."""
    rng = np.random.default_rng(8)
    keys = make_keys(rng, "aes128ctr", 2)
    try:
        c_only._set_kernels("numpy", None)
        assert c_only._kernels()["aes128ctr"] == "numpy"
        v = random_vector(rng, 1001, np.uint64)
        expected = reference(v, keys, [1, -1], "aes128ctr", 77)
        c_only.add_masks(v, keys, [1, -1], "aes128ctr", 77, 2)
        assert v.tobytes() == expected.tobytes()
        buf = array.array("I", range(50))
        c_only.add_masks(buf, keys, [1, 1], "aes128ctr", 0, 1)
        expected = reference(np.arange(50, dtype=np.uint32), keys, [1, 1], "aes128ctr", 0)
        assert np.array_equal(np.frombuffer(buf, np.uint32), expected)
    finally:
        c_only._set_kernels()


def test_c_releases_the_gil(c_only):
    """Concurrent calls from Python threads give the same bytes as sequential ones."""
    rng = np.random.default_rng(12)
    keys = make_keys(rng, "chacha20", 4)
    vs = [random_vector(rng, 50_000, np.uint32) for _ in range(4)]
    expected = [reference(v, keys, [1, -1, 1, -1], "chacha20", 1) for v in vs]
    threads = [threading.Thread(target=c_only.add_masks, args=(v, keys, [1, -1, 1, -1], "chacha20", 1, 1))
               for v in vs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for v, e in zip(vs, expected):
        assert np.array_equal(v, e)


def _ok_args(suite="aes128ctr"):
    return [np.zeros(8, np.uint32), [bytes(SUITES[suite])], [1], suite, 0, 1]


@pytest.mark.parametrize(
    "index, value, exc, match",
    [
        (0, np.zeros(8, np.uint16), TypeError, "4 or 8 bytes"),
        (0, np.zeros(8, np.int32), TypeError, "unsigned"),
        (0, np.zeros(8, np.float64), TypeError, "unsigned"),
        (0, np.zeros(8, np.uint8), TypeError, "4 or 8 bytes"),
        (0, b"\x00" * 32, TypeError, "4 or 8 bytes"),
        (0, "not a buffer", TypeError, "buffer protocol"),
        (0, np.zeros((2, 4), np.uint32), ValueError, "1-D"),
        (0, np.zeros(8, ">u4"), TypeError, "unsigned"),
        (1, [bytes(15)], ValueError, "16 bytes"),
        (1, [bytes(32)], ValueError, "16 bytes"),
        (1, ["x" * 16], TypeError, "bytes"),
        (1, 5, TypeError, "sequence"),
        (2, [0], ValueError, r"\+1 or -1"),
        (2, [2], ValueError, r"\+1 or -1"),
        (2, [True], ValueError, r"\+1 or -1"),
        (2, ["1"], ValueError, r"\+1 or -1"),
        (2, [1, 1], ValueError, "1 keys but 2 signs"),
        (3, "aes256ctr", ValueError, "unknown PRG suite"),
        (3, b"aes128ctr", ValueError, "unknown PRG suite"),
        (4, -1, ValueError, "offset"),
        (4, 1.0, ValueError, "offset"),
        (4, True, ValueError, "offset"),
        (4, 1 << 64, ValueError, "offset"),
        (4, (1 << 62) - 4, ValueError, "stream limit"),
        (5, 0, ValueError, "threads"),
        (5, -3, ValueError, "threads"),
        (5, 2.0, ValueError, "threads"),
    ],
)
def test_c_bad_arguments(c_only, index, value, exc, match):
    args = _ok_args()
    args[index] = value
    with pytest.raises(exc, match=match):
        c_only.add_masks(*args)


def test_c_bad_arguments_more(c_only):
    ro = np.zeros(8, np.uint32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        c_only.add_masks(ro, [bytes(16)], [1], "aes128ctr", 0, 1)
    with pytest.raises(ValueError, match="writable"):
        c_only.add_masks(memoryview(bytes(32)).cast("I"), [bytes(16)], [1], "aes128ctr", 0, 1)
    strided = memoryview(np.zeros(16, np.uint32))[::2]
    with pytest.raises(ValueError, match="contiguous"):
        c_only.add_masks(strided, [bytes(16)], [1], "aes128ctr", 0, 1)
    with pytest.raises(ValueError, match="32 bytes"):
        c_only.add_masks(np.zeros(8, np.uint64), [bytes(16)], [1], "chacha20", 0, 1)
    with pytest.raises(ValueError, match="stream limit"):  # chacha20 ends at 2^38 bytes
        c_only.add_masks(np.zeros(8, np.uint64), [bytes(32)], [1], "chacha20", (1 << 35) - 7, 1)
    c_only.add_masks(np.zeros(8, np.uint64), [bytes(32)], [1], "chacha20", (1 << 35) - 8, 1)  # exactly fits
    with pytest.raises(TypeError, match="6 positional"):
        c_only.add_masks(np.zeros(8, np.uint32), [bytes(16)], [1], "aes128ctr", 0)
    # empty inputs are a no-op but still validated
    v = np.arange(4, dtype=np.uint32)
    c_only.add_masks(v, [], [], "chacha20", 0, 1)
    assert np.array_equal(v, np.arange(4))
    with pytest.raises(ValueError, match="unknown PRG suite"):
        c_only.add_masks(v, [], [], "nope", 0, 1)


def test_masking_rejects_bad_arguments():
    """The Python layer in front of either kernel (sanity; masking.py owns these)."""
    with pytest.raises(TypeError):
        masking.add_masks(np.zeros(4, np.int32), [bytes(16)], [1])
    with pytest.raises(ValueError):
        masking.add_masks(np.zeros(4, np.uint32), [bytes(16)], [0])
    with pytest.raises(ValueError):
        masking.add_masks(np.zeros(4, np.uint32), [bytes(31)], [1], "chacha20")


@pytest.mark.skipif(os.environ.get("LEPTON_SECAGG_PUREPYTHON") != "1", reason="only meaningful with the switch set")
def test_pure_python_switch_selects_numpy():
    import lepton_secagg._kernels as kernels

    assert kernels.BACKEND == "python"


# ---------------------------------------------------------------------------
# quantize_into: the fused quantisation kernel against the numpy formula that
# hazmat.quantize used before the kernel existed, bit for bit.


def _old_quantize_formula(values, uniforms, clip, count, weight, dtype):
    """The pre-kernel ``quantize`` + ``Quantizer.encode`` steps, verbatim."""
    scaled = np.clip(values, -clip, clip)
    clipped = int(values.size - np.count_nonzero(scaled == values))
    scaled += clip
    scaled *= count / (2 * clip)
    q = np.floor(scaled)
    scaled -= q
    q += uniforms < scaled
    np.minimum(q, count, out=q)
    q = q.astype(np.uint64)
    out = np.empty(values.size, dtype=dtype)
    np.multiply(q, weight, out=out, casting="unsafe")
    return out, clipped


_CLIPS = st.one_of(
    st.sampled_from([1e-300, 1e-10, 0.5, 1.0, 8.0, 1e10, 1e300, 1.5e308]),
    st.floats(1e-300, 1e300, allow_nan=False, allow_infinity=False),
)
_LEVELS = st.one_of(st.sampled_from([1, 2, 3, 1000, 2**32 - 1, 2**52 + 1, 2**53, 2**63]), st.integers(1, 2**63))
_WEIGHTS = st.one_of(st.sampled_from([0, 1, 100, 1000, 2**32 - 1, 2**32, 2**64 - 1]), st.integers(0, 2**64 - 1))
# Element kinds, relative to clip: exact +-clip, just inside/outside, far beyond, zeros, random inside.
_KINDS = st.lists(st.tuples(st.integers(0, 9), st.floats(-1, 1)), max_size=60)


def _make_values(clip, kinds):
    out = []
    for kind, r in kinds:
        out.append(
            [
                clip,
                -clip,
                0.0,
                -0.0,
                np.nextafter(clip, np.inf),
                np.nextafter(-clip, -np.inf),
                np.nextafter(clip, 0.0),
                r * clip * 3,
                r * 1e300,
                r * clip,
            ][kind]
        )
    return np.array(out, dtype=np.float64)


@given(_CLIPS, _LEVELS, _WEIGHTS, _KINDS, st.integers(0, 2**32), st.sampled_from(DTYPES), st.booleans())
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_quantize_into_matches_the_numpy_spec_and_the_old_formula(
    kernel_backend, clip, count, weight, kinds, seed, dtype, ties
):
    with np.errstate(all="ignore"):  # clip = 1.5e308 overflows c + clip to inf on purpose
        _check_quantize_into_parity(kernel_backend, clip, count, weight, kinds, seed, dtype, ties)


def _check_quantize_into_parity(kernel_backend, clip, count, weight, kinds, seed, dtype, ties):
    scale = count / (2 * clip)
    values = _make_values(clip, kinds)
    rng = np.random.default_rng(seed)
    uniforms = rng.random(values.size)
    if ties and values.size:
        # uniforms equal to the fractional part: the strict < must agree too
        s = (np.clip(values, -clip, clip) + clip) * scale
        frac = s - np.floor(s)
        pick = rng.random(values.size) < 0.5
        uniforms[pick] = np.where(np.isfinite(frac[pick]) & (frac[pick] < 1), frac[pick], 0.0)
    expected, expected_clipped = _old_quantize_formula(values, uniforms, clip, count, weight, dtype)
    for impl in {kernel_backend.quantize_into, _native.quantize_into}:
        out = np.full(values.size, 0xA5, dtype=dtype)
        clipped = impl(values, uniforms, out, clip, scale, count, weight)
        assert clipped == expected_clipped
        assert np.array_equal(out, expected), (impl, values, uniforms, out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantize_into_any_shape_and_large_vectors(kernel_backend, dtype):
    rng = np.random.default_rng(42)
    values = rng.normal(0, 4, size=(3, 1000, 7))
    uniforms = rng.random(values.shape)
    out = np.empty(values.shape, dtype=dtype)
    clipped = kernel_backend.quantize_into(values, uniforms, out, 8.0, 1000 / 16.0, 1000, 997)
    expected, expected_clipped = _old_quantize_formula(values.ravel(), uniforms.ravel(), 8.0, 1000, 997, dtype)
    assert clipped == expected_clipped > 0
    assert np.array_equal(out.ravel(), expected)


def test_quantize_into_empty(kernel_backend):
    for dtype in DTYPES:
        out = np.empty(0, dtype=dtype)
        assert kernel_backend.quantize_into(np.empty(0), np.empty(0), out, 1.0, 0.5, 1, 1) == 0


def test_quantize_into_rejects_bad_arguments(kernel_backend):
    f = kernel_backend.quantize_into
    v, u, o = np.zeros(4), np.zeros(4), np.zeros(4, np.uint32)
    ok = (v, u, o, 1.0, 0.5, 1, 1)
    f(*ok)

    def call(i, value):
        args = list(ok)
        args[i] = value
        return f(*args)

    for i, bad in [
        (0, np.zeros(4, np.float32)),
        (0, np.zeros(4, np.int64)),
        (0, np.zeros(4, ">f8")),
        (1, np.zeros(4, np.float32)),
        (2, np.zeros(4, np.int32)),
        (2, np.zeros(4, np.uint16)),
        (2, np.zeros(4, np.float64)),
        (0, [0.0] * 4),
        (2, "abcd"),
        (3, 1),
        (4, None),
        (5, 1.0),
        (5, True),
        (6, 1.5),
    ]:
        with pytest.raises(TypeError):
            call(i, bad)
    readonly = np.zeros(4, np.uint32)
    readonly.flags.writeable = False
    for i, bad in [
        (0, np.zeros(8)[::2]),
        (1, np.zeros(8)[::2]),
        (2, np.zeros(8, np.uint64)[::2]),
        (2, readonly),
        (0, np.zeros(5)),
        (1, np.zeros(3)),
        (2, np.zeros(5, np.uint32)),
        (5, 0),
        (5, 2**63 + 1),
        (6, -1),
        (6, 2**64),
    ]:
        with pytest.raises(ValueError):
            call(i, bad)


def test_quantize_into_releases_the_gil(c_only):
    """Another thread makes progress while a long quantisation runs."""
    values = np.random.default_rng(0).normal(size=4_000_000)
    uniforms = np.random.default_rng(1).random(values.size)
    out = np.empty(values.size, np.uint64)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(1)

    t = threading.Thread(target=ticker)
    t.start()
    during = 0
    try:
        for _ in range(3):
            before = len(ticks)
            c_only.quantize_into(values, uniforms, out, 1.0, 500.0, 1000, 1)
            during += len(ticks) - before  # the ticker can only run meanwhile if the GIL was released
    finally:
        done.set()
        t.join()
    assert during > 100


def test_c_quantize_kernel_is_picked_by_cpu_features_and_can_be_forced(c_only):
    """The fused pipeline's quantisation step: AVX-512 where the CPU has F/DQ/VL/BW, else the generic loop."""
    available = c_only._available_kernels()["quantize"]
    assert available[-1] == "generic" and c_only._kernels()["quantize"] == available[0]
    if sys.platform == "linux" and platform.machine() == "x86_64":
        with open("/proc/cpuinfo") as f:
            flags = set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
        assert ("avx512" in available) == ({"avx512f", "avx512dq", "avx512vl", "avx512bw"} <= flags)
    try:
        c_only._set_kernels(None, None, "generic")
        assert c_only._kernels()["quantize"] == "generic"
        with pytest.raises(ValueError, match="no usable quantisation kernel named 'nope'"):
            c_only._set_kernels(None, None, "nope")
        assert c_only._kernels()["quantize"] == "generic"  # a refused call changes nothing
    finally:
        c_only._set_kernels()
    assert c_only._kernels()["quantize"] == available[0]
