"""The fused client pipeline (quantise + mask + reduce in one pass) against its specification.

Three ways to the same ring vector must agree bit for bit: the C kernel
(``_speedups.encode_masked``), its numpy specification
(``_native.encode_masked``), and a composition written here from the
definitions alone (the rounding uniforms straight from ``prg.keystream``, the
quantisation formula of ``Quantizer``, masks as Python ints mod 2^b).  Tests
through ``hazmat.pipeline`` run once per backend (the conftest fixture
patches the kernel).
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lepton_secagg as ls
from lepton_secagg._kernels import _native
from lepton_secagg.encoding import Quantizer
from lepton_secagg.hazmat import pipeline
from lepton_secagg.hazmat.prg import key_size, keystream
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.testing import simulate
from lepton_secagg.wire import encode

try:
    from lepton_secagg._kernels import _speedups
except ImportError:  # not built, or LEPTON_SECAGG_PUREPYTHON
    _speedups = None

SUITES = ["aes128ctr", "chacha20"]


def from_definitions(q: Quantizer, values, weight, round_key, keys, signs, suite):
    """The pipeline spelled out in Python ints and floats, element by element."""
    x = np.asarray(values, dtype=np.float64)
    m = x.size
    raw = keystream(suite, round_key, 4 * m)
    width = 4 if q.bits <= 32 else 8
    out = []
    scale = q.levels / (2 * q.clip)
    for i in range(m):
        u = int.from_bytes(raw[4 * i : 4 * i + 4], "little") * 2.0**-32
        c = min(max(float(x[i]), -q.clip), q.clip)
        s = (c + q.clip) * scale
        f = math.floor(s)
        level = min(f + (u < s - f), q.levels)
        out.append(level * (weight or 1))
    if q.weighted:
        out.append(weight)
    n = len(out)
    for key, sign in zip(keys, signs):
        stream = keystream(suite, key, n * width)
        out = [o + sign * int.from_bytes(stream[width * i : width * (i + 1)], "little") for i, o in enumerate(out)]
    return [o % (1 << q.bits) for o in out]


def case(rs, bits, m, weighted, suite, nkeys, float32):
    q = Quantizer(clip=1.5, bits=bits, num_clients=3, max_weight=5 if weighted else None)
    values = rs.normal(0, 1.2, m).astype(np.float32 if float32 else np.float64)
    keys = [rs.bytes(key_size(suite)) for _ in range(nkeys)]
    signs = [int(s) for s in rs.choice([1, -1], nkeys)]
    return q, values, (3 if weighted else None), rs.bytes(key_size(suite)), keys, signs


@given(
    bits=st.integers(4, 64), m=st.integers(0, 300), weighted=st.booleans(), suite=st.sampled_from(SUITES),
    nkeys=st.integers(0, 4), float32=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_pipeline_matches_the_definitions(bits, m, weighted, suite, nkeys, float32, seed):
    q, values, weight, rk, keys, signs = case(np.random.default_rng(seed), bits, m, weighted, suite, nkeys, float32)
    vec, clipped = pipeline.encode_masked(q, values, weight=weight, round_key=rk, keys=keys, signs=signs, suite=suite)
    assert vec.dtype == q.dtype and vec.size == q.encoded_length(m)
    assert vec.tolist() == from_definitions(q, values, weight, rk, keys, signs, suite)
    assert clipped == int(np.count_nonzero(np.abs(values.astype(np.float64)) > q.clip))


@given(
    bits=st.integers(1, 64), m=st.integers(0, 5000), weighted=st.booleans(), suite=st.sampled_from(SUITES),
    nkeys=st.integers(0, 6), float32=st.booleans(), threads=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
)
def test_c_kernel_is_bit_identical_to_the_numpy_spec(bits, m, weighted, suite, nkeys, float32, threads, seed):
    if _speedups is None:
        pytest.skip("C extension not available")
    rs = np.random.default_rng(seed)
    values = (rs.normal(0, 3, m) * rs.choice([1e-3, 1, 1e3], m)).astype(np.float32 if float32 else np.float64)
    dtype = np.uint32 if bits <= 32 else np.uint64
    levels = int(rs.integers(1, min(1 << 53, 1 << bits) // 1 + 1))
    args = (bits, float(rs.uniform(0.1, 10)), float(rs.uniform(0.1, 1e6)), levels, int(rs.integers(0, 1 << 20)),
            rs.bytes(key_size(suite)), [rs.bytes(key_size(suite)) for _ in range(nkeys)],
            [int(s) for s in rs.choice([1, -1], nkeys)], suite)
    a = np.full(m + weighted, 7, dtype=dtype)
    expected = _native.encode_masked(values, a, *args, 1)
    for kernel in _speedups._available_kernels()["quantize"]:
        b = np.full(m + weighted, 7, dtype=dtype)
        with quantize_kernel(kernel):
            assert _speedups.encode_masked(values, b, *args, threads) == expected, kernel
        assert a.tobytes() == b.tobytes(), kernel


@contextlib.contextmanager
def quantize_kernel(name):
    """Run the C pipeline's quantisation step on kernel ``name`` (``_available_kernels()["quantize"]``)."""
    _speedups._set_kernels(None, None, name)
    try:
        yield
    finally:
        _speedups._set_kernels()


@pytest.mark.parametrize("bits", [32, 48])
@pytest.mark.parametrize("suite", SUITES)
def test_rounding_decision_at_its_exact_boundary(bits, suite):
    """s = 1 + (w + d) * 2^-32 for the value's own rounding word w: up exactly when d > 0.

    u = w * 2^-32 < s - floor(s) = (w + d) * 2^-32 is true for d = 2^-8 and
    false for d = 0 or -2^-8, whatever w is, so a kernel that rounds at w <= D,
    or that loses the 2^-40 in its arithmetic, gets some of these wrong (random
    values reach these boundaries with probability 2^-32).  clip = 8, scale = 1:
    x = s - 8, exact in float64.  Lengths leave a tail after the 16-wide loop.
    """
    if _speedups is None:
        pytest.skip("C extension not available")
    rs = np.random.default_rng(bits)
    round_key = rs.bytes(key_size(suite))
    m = 3 * 1000 + 7
    words = np.frombuffer(keystream(suite, round_key, 4 * m), dtype="<u4").astype(np.float64)
    d = np.tile([0.0, 2.0**-8, -(2.0**-8)], m // 3 + 1)[:m]
    values = 1.0 + (words + d) * 2.0**-32 - 8.0
    assert np.array_equal((values + 8.0 - 1.0) * 2.0**32, words + d)  # every value exact, as planned
    up = (d > 0).astype(np.uint64)
    up[(words == 0) & (d < 0)] = 0  # s = 1 - 2^-40: floor 0, then up (u = 0 < 1 - 2^-40): level 1 all the same
    dtype = np.uint32 if bits <= 32 else np.uint64
    args = (bits, 8.0, 1.0, 16, 1, round_key, [], [], suite, 1)
    spec = np.zeros(m, dtype=dtype)
    _native.encode_masked(values, spec, *args)
    assert spec.astype(np.uint64).tolist() == (1 + up).tolist()
    for kernel in _speedups._available_kernels()["quantize"]:
        out = np.zeros(m, dtype=dtype)
        with quantize_kernel(kernel):
            assert _speedups.encode_masked(values, out, *args) == (0, 0)
        assert out.tolist() == spec.tolist(), kernel


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("bits", [20, 32, 48])
def test_c_kernel_threads_and_long_vectors(suite, bits):
    """Long enough for several 16 KiB pieces per thread and several threads."""
    if _speedups is None:
        pytest.skip("C extension not available")
    rs = np.random.default_rng(bits)
    m = 300_001
    values = rs.normal(0, 1, m).astype(np.float32)
    keys = [rs.bytes(key_size(suite)) for _ in range(5)]
    args = (bits, 2.0, 1000.0, 4000, 1, rs.bytes(key_size(suite)), keys, [1, -1, 1, -1, 1], suite)
    outs = []
    for fn, threads in ((_native.encode_masked, 1), (_speedups.encode_masked, 1), (_speedups.encode_masked, 4)):
        out = np.zeros(m + 1, dtype=np.uint32 if bits <= 32 else np.uint64)
        out[-1] = 9
        assert fn(values, out, *args, threads) == (int(np.count_nonzero(np.abs(values) > 2.0)), 0)
        outs.append(out)
    assert (outs[0] == outs[1]).all() and (outs[0] == outs[2]).all()


def test_rounding_is_unbiased_and_keyed():
    """A value 0.3 of the way between two levels rounds up 30% of the time; another key, other draws."""
    q = Quantizer(clip=1.0, bits=32, num_clients=1, step=0.5)  # levels at -1, -0.5, 0, 0.5, 1
    values = np.full(200_000, 0.15)  # 0.3 of the way from 0 to 0.5
    a, _ = pipeline.quantize_keyed(q, values, round_key=bytes(16))
    b, _ = pipeline.quantize_keyed(q, values, round_key=bytes(15) + b"\x01")
    assert set(np.unique(a).tolist()) == {2, 3}
    assert abs(np.mean(a == 3) - 0.3) < 0.005
    assert (a != b).any() and abs(np.mean(b == 3) - 0.3) < 0.005


def test_pipeline_rejects_bad_input():
    q = Quantizer(clip=1.0, bits=32, num_clients=2, max_weight=4)
    good = dict(weight=2, round_key=bytes(16))
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        pipeline.encode_masked(q, np.array([0.0, np.nan]), **good)
    with pytest.raises(ValueError, match="weight= an int in 1..4"):
        pipeline.encode_masked(q, np.zeros(3), weight=5, round_key=bytes(16))
    with pytest.raises(ValueError, match="round_key must be 16 bytes"):
        pipeline.encode_masked(q, np.zeros(3), weight=1, round_key=bytes(15))
    with pytest.raises(ValueError, match="1-D"):
        pipeline.encode_masked(q, np.zeros((2, 2)), **good)
    with pytest.raises(TypeError, match="real numbers"):
        pipeline.encode_masked(q, np.array(["a"]), **good)
    with pytest.raises(ValueError, match="signs"):
        pipeline.encode_masked(q, np.zeros(3), keys=[bytes(16)], signs=[2], **good)


def fl_setup(n=5, m=2000, bits=32):
    q = Quantizer(clip=2.0, bits=bits, num_clients=n, max_weight=100)
    cfg = ls.Config(num_clients=n, vector_length=m + 1, threshold=3, bits=bits)
    rs = np.random.default_rng(bits)
    return q, cfg, [rs.uniform(-2.5, 2.5, m).astype(np.float32) for _ in range(n)], [int(w) for w in rs.integers(1, 100, n)]


@pytest.mark.parametrize("bits", [32, 45])
def test_a_session_of_float_updates_gives_the_weighted_mean(bits):
    q, cfg, updates, weights = fl_setup(bits=bits)
    res = simulate(cfg, updates, {1: "masked_input"}, seed=3, quantizer=q, weights=weights)
    mean, total = q.decode(res.sum, len(res.included))
    live = [c for c in range(cfg.num_clients) if c != 1]
    assert total == sum(weights[c] for c in live)
    plain = sum(weights[c] * np.clip(updates[c].astype(np.float64), -2, 2) for c in live) / total
    assert np.max(np.abs(mean - plain)) <= q.step


def session_until_masked_input(cfg, clients):
    server = ls.Server(cfg)
    for cid, c in clients.items():
        server.receive(cid, c.start())
    requests = server.advance()
    for cid, c in clients.items():
        server.receive(cid, c.receive(requests[cid]))
    return server.advance()


def float_clients_at_masked_input(q, cfg, updates, weights):
    """Clients (seeded rngs) holding the float updates, and their masked-input requests."""
    clients = {cid: ls.Client(cfg, cid, rng=DeterministicRng(b"c%d" % cid)) for cid in range(cfg.num_clients)}
    for cid, c in clients.items():
        c.set_float_input(updates[cid], q, weight=weights[cid])
    return clients, session_until_masked_input(cfg, clients)


def test_fused_client_sends_what_an_unfused_client_with_the_same_rounding_sends():
    """export_state materialises the float input (same rounding stream); the restored ring-input client masks it apart."""
    q, cfg, updates, weights = fl_setup()
    clients, requests = float_clients_at_masked_input(q, cfg, updates, weights)
    restored = ls.Client.restore(cfg, clients[0].export_state())
    assert restored._state.float_input is None and restored._state.input is not None
    fused, unfused = clients[0].receive(requests[0]), restored.receive(requests[0])
    assert encode(fused) == encode(unfused)
    assert clients[0].clipped == int(np.count_nonzero(np.abs(updates[0]) > 2.0)) > 0
    assert restored.clipped is None


def test_nonfinite_update_is_refused_in_the_round_and_the_client_can_retry():
    q, cfg, updates, weights = fl_setup()
    bad = updates[0].copy()
    bad[7] = np.inf
    clients, requests = float_clients_at_masked_input(q, cfg, [bad] + updates[1:], weights)
    with pytest.raises(ls.LocalProtocolError, match="NaN or infinite"):
        clients[0].receive(requests[0])
    assert clients[0].round.value == "masked_input"
    clients[0].set_float_input(updates[0], q, weight=weights[0])
    assert clients[0].receive(requests[0]).vector.size == cfg.vector_length


def test_set_float_input_checks_against_the_session():
    q, cfg, updates, weights = fl_setup()
    c = ls.Client(cfg, 0)
    with pytest.raises(ValueError, match="vectors have 2001"):
        c.set_float_input(updates[0][:-1], q, weight=1)
    with pytest.raises(ValueError, match="sums in 40 bits, the session in 32"):
        c.set_float_input(updates[0], Quantizer(clip=2.0, bits=40, num_clients=5, max_weight=100), weight=1)
    with pytest.raises(ValueError, match="weight="):
        c.set_float_input(updates[0], q)
    with pytest.raises(TypeError, match="Quantizer"):
        c.set_float_input(updates[0], "q", weight=1)


def test_a_bad_box_with_a_float_input_is_refused_and_the_client_can_retry():
    """The boxes open while the fused pass runs (meanwhile=): a bad one still stops the round before anything is sent."""
    q, cfg, updates, weights = fl_setup()
    clients, requests = float_clients_at_masked_input(q, cfg, updates, weights)
    good = requests[0]
    sender, box = good.boxes[1]
    tampered = ls.MaskedInputRequest(good.session_id, good.boxes[:1] + ((sender, box[:-1] + bytes([box[-1] ^ 1])),) + good.boxes[2:])
    with pytest.raises(ls.DecryptionError, match=f"share box from client {sender}"):
        clients[0].receive(tampered)
    assert clients[0].round.value == "masked_input" and clients[0].clipped is None
    sent = clients[0].receive(good)
    restored = ls.Client.restore(cfg, clients[1].export_state())  # an unfused reference: the same rounding stream
    assert restored.receive(requests[1]) == clients[1].receive(requests[1])
    assert sent.vector.size == cfg.vector_length and sorted(clients[0]._state.shares) == [0, 1, 2, 3, 4]


def kernels_under_test():
    """(name, encode_masked) of the numpy specification and, where built, the C kernel."""
    return [("numpy", _native.encode_masked)] + ([("c", _speedups.encode_masked)] if _speedups is not None else [])


@pytest.mark.parametrize("threads", [1, 4])
def test_meanwhile_is_called_once_and_its_error_wins(threads):
    rs = np.random.default_rng(threads)
    m = 300_001
    values = rs.normal(0, 1, m).astype(np.float32)
    args = (32, 2.0, 1000.0, 4000, 3, rs.bytes(16), [rs.bytes(16) for _ in range(3)], [1, -1, 1], "aes128ctr", threads)
    expected = np.zeros(m, dtype=np.uint32)
    expected_counts = _native.encode_masked(values, expected, *args)
    for name, fn in kernels_under_test():
        calls = []
        out = np.zeros(m, dtype=np.uint32)
        assert fn(values, out, *args, lambda: calls.append(1)) == expected_counts, name
        assert calls == [1] and out.tobytes() == expected.tobytes(), name

        def fail():
            raise ls.DecryptionError("a box failed")

        with pytest.raises(ls.DecryptionError, match="a box failed"):
            fn(values, np.zeros(m, dtype=np.uint32), *args, fail)
        with pytest.raises(TypeError, match="meanwhile|callable|not callable"):
            fn(values, np.zeros(m, dtype=np.uint32), *args, 42)


def test_c_kernel_works_while_meanwhile_runs():
    """Its worker threads write the output while meanwhile() still runs (they do not wait for it)."""
    if _speedups is None:
        pytest.skip("C extension not available")
    m = 4 * 65536 * 4  # enough elements for four worker threads
    values = np.zeros(m, dtype=np.float32)
    out = np.zeros(m, dtype=np.uint32)
    seen = []

    def watch():
        deadline = time.monotonic() + 10  # a bound for a broken kernel, not a timing claim
        while not out.any() and time.monotonic() < deadline:
            pass
        seen.append(bool(out.any()))

    _speedups.encode_masked(values, out, 32, 1.0, 1.0, 2, 1, bytes(16), [bytes(16)], [1], "aes128ctr", 4, watch)
    assert seen == [True]
