"""The device-vector seam (issue 13): torch tensors join a session beside numpy clients.

Every session here runs twice from one seed: once with numpy clients only
(the reference: ``Client.set_input`` / ``set_float_input``), once with some
clients holding torch CPU tensors behind ``adapters.torch.device_ring_input``
/ ``device_float_input``.  The two transcripts must be byte-identical: every
message, so the masked vectors too, and the rng consumed alike.  The engines
are the device ones run on CPU tensors ("torch": torch integer ops; "triton":
the fused kernel in Triton's interpreter, tests/conftest.py sets
TRITON_INTERPRET=1) and the host one ("kernel").  Each runs under both
kernel backends (the conftest fixture).
"""
from __future__ import annotations

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg._state import Round
from lepton_secagg.exceptions import LocalProtocolError
from lepton_secagg.hazmat import masking, ring
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.messages import MaskedInputRequest

torch = pytest.importorskip("torch")
from lepton_secagg.adapters import torch as lt  # noqa: E402


def _triton_interpreted() -> bool:
    try:
        from lepton_secagg.adapters import _triton_chacha20 as tc
    except ImportError:
        return False
    return tc.interpreted()


_NO_TRITON = pytest.mark.skipif(not _triton_interpreted(), reason="needs triton under TRITON_INTERPRET=1")
# The interpreter costs seconds per launch: one float session (two launches per
# device client: the rounding stream, then the masks) runs in every suite; the
# ring sessions under triton are slow-marked.
ENGINES = ["kernel", "torch", pytest.param("triton", marks=[_NO_TRITON, pytest.mark.slow])]
FLOAT_ENGINES = ["kernel", "torch", pytest.param("triton", marks=_NO_TRITON)]
DROPOUTS = {4: "masked_input", 2: "unmasking"}  # 4 is out of the sum, 2 in it


def ring_tensor(vector: np.ndarray):
    return torch.from_numpy(vector.view(np.int32 if vector.dtype == np.uint32 else np.int64).copy())


def run_pair(cfg, reference, mixed, **kw):
    """(reference result, mixed result, transcripts equal)."""
    t_ref, t_mix = [], []
    ref = ls.testing.simulate(cfg, reference, dropouts=DROPOUTS, seed=7, transcript=t_ref, **kw)
    mix = ls.testing.simulate(cfg, mixed, dropouts=DROPOUTS, seed=7, transcript=t_mix, **kw)
    return ref, mix, t_ref == t_mix


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bits", [20, 64])
def test_mixed_ring_fleet_is_bit_identical_and_sums_exactly(engine, bits):
    m = 37  # odd: a partial ChaCha20 block at the end
    cfg = ls.Config(num_clients=5, vector_length=m, threshold=3, bits=bits, prg="chacha20")
    gen = np.random.default_rng(bits)
    dtype = ring.dtype_for(bits)
    inputs = [gen.integers(0, 1 << bits, m, dtype=np.uint64).astype(dtype) for _ in range(5)]
    mixed = list(inputs)
    for cid in (1, 2):  # one device client in the sum, one dropped at unmasking (still in it)
        mixed[cid] = lt.device_ring_input(ring_tensor(inputs[cid]), engine=engine)
    ref, mix, same = run_pair(cfg, inputs, mixed)
    assert same
    assert mix.included == (0, 1, 2, 3)
    want = np.array([sum(int(inputs[c][i]) for c in mix.included) % (1 << bits) for i in range(m)], dtype=dtype)
    np.testing.assert_array_equal(mix.sum, want)


@pytest.mark.parametrize("engine", FLOAT_ENGINES)
def test_mixed_float_fleet_matches_the_numpy_pipeline(engine):
    q = ls.encoding.Quantizer(clip=1.0, bits=32, num_clients=5, max_weight=50)
    m = 40
    cfg = ls.Config(num_clients=5, vector_length=q.encoded_length(m), threshold=3, bits=q.bits, prg="chacha20")
    gen = np.random.default_rng(3)
    values = [gen.normal(0, 0.6, m).astype(np.float32 if c % 2 else np.float64) for c in range(5)]
    weights = [3, 10, 1, 50, 7]
    mixed = list(values)
    for cid in (2,) if engine == "triton" else (0, 2, 3):
        mixed[cid] = lt.device_float_input(torch.from_numpy(values[cid]), q, weight=weights[cid], engine=engine)
    ref, mix, same = run_pair(cfg, values, mixed, quantizer=q, weights=weights)
    assert same  # the rounding stream and the masks agree bit for bit
    mean, total = q.decode(mix.sum, count=len(mix.included))
    assert total == sum(weights[c] for c in mix.included)
    exact = sum(weights[c] * np.clip(values[c].astype(np.float64), -1, 1) for c in mix.included) / total
    assert np.max(np.abs(mean - exact)) <= q.step  # stochastic rounding: within one grid step


def _client_at_masked_input(cfg, cid=0, seed=11):
    """A client of a full session driven to the masked-input round; returns (client, request)."""
    clients = [ls.Client(cfg, c, rng=DeterministicRng(seed).fork(f"c{c}")) for c in range(cfg.num_clients)]
    server = ls.Server(cfg, rng=DeterministicRng(seed).fork("server"))
    for c in clients:
        server.receive(c.client_id, c.start())
    requests = server.advance()
    for c in clients:
        server.receive(c.client_id, c.receive(requests[c.client_id]))
    requests = server.advance()
    assert isinstance(requests[cid], MaskedInputRequest)
    return clients[cid], requests[cid]


@pytest.mark.parametrize("engine", ["torch", "kernel"])
def test_masked_vector_equals_add_masks_for_the_same_keys(engine):
    """The bound input against hazmat.masking directly (u64, bits 40: the reduction matters)."""
    gen = np.random.default_rng(5)
    x = gen.integers(0, 1 << 40, 300, dtype=np.uint64)
    keys = [gen.bytes(32) for _ in range(4)]
    signs = [1, -1, -1, 1]
    bound = lt.device_ring_input(ring_tensor(x), engine=engine).bind(300, 40, "chacha20", DeterministicRng(1))
    got, clipped = bound.masked(keys, signs)
    want = ring.reduce(masking.add_masks(x.copy(), keys, signs, "chacha20"), 40)
    assert clipped is None and got.dtype == np.uint64
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(bound.unmasked(), x)  # masking worked on a copy


def test_aes_session_falls_back_to_host_masking_with_auto():
    m = 33
    cfg = ls.Config(num_clients=5, vector_length=m, threshold=3, bits=32, prg="aes128ctr")
    gen = np.random.default_rng(9)
    inputs = [gen.integers(0, 1 << 32, m, dtype=np.uint64).astype(np.uint32) for _ in range(5)]
    q = ls.encoding.Quantizer(clip=2.0, bits=32, num_clients=5)
    floats = [gen.normal(0, 1, m) for _ in range(5)]
    mixed = [lt.device_ring_input(ring_tensor(v)) for v in inputs]
    _, _, same = run_pair(cfg, inputs, mixed)
    assert same
    mixed = [lt.device_float_input(torch.from_numpy(v), q) for v in floats]
    _, _, same = run_pair(cfg, floats, mixed, quantizer=q)
    assert same


@pytest.mark.parametrize("engine", ["torch", "triton"])
def test_device_engine_refuses_aes(engine):
    cfg = ls.Config(num_clients=3, vector_length=8, threshold=2, prg="aes128ctr")
    client = ls.Client(cfg, 0, rng=DeterministicRng(1))
    x = torch.zeros(8, dtype=torch.int32)
    with pytest.raises(ValueError, match="chacha20 only.*aes128ctr"):
        client.set_input(lt.device_ring_input(x, engine=engine))
    q = ls.encoding.Quantizer(clip=1.0, bits=32, num_clients=3)
    with pytest.raises(ValueError, match="chacha20 only"):
        client.set_input(lt.device_float_input(torch.zeros(8), q, engine=engine))
    client.set_input(np.zeros(8, dtype=np.uint32))  # the refusal left the client usable


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: lt.device_ring_input(np.zeros(8, np.uint32)), TypeError, "must be a torch tensor"),
        (lambda: lt.device_ring_input(torch.zeros(8, dtype=torch.int64)), TypeError, "20-bit session takes torch.int32"),
        (lambda: lt.device_ring_input(torch.zeros(8, dtype=torch.float32)), TypeError, "int32 or int64"),
        (lambda: lt.device_ring_input(torch.zeros(9, dtype=torch.int32)), ValueError, "length 8"),
        (lambda: lt.device_ring_input(torch.full((8,), 1 << 20, dtype=torch.int32)), ValueError, r">= 2\^20"),
        (lambda: lt.device_float_input(torch.zeros(8), ls.encoding.Quantizer(clip=1.0, bits=24, num_clients=3)),
         ValueError, "sums in 24 bits, the session in 20"),
        (lambda: lt.device_float_input(torch.zeros(7), ls.encoding.Quantizer(clip=1.0, bits=20, num_clients=3)),
         ValueError, "7 values encode to 7"),
        (lambda: lt.device_float_input(torch.zeros(8), ls.encoding.Quantizer(clip=1.0, bits=20, num_clients=3), weight=2),
         ValueError, "no weight slot"),
        (lambda: lt.device_float_input(torch.zeros((2, 4)), ls.encoding.Quantizer(clip=1.0, bits=20, num_clients=3)),
         ValueError, "1-D"),
    ],
)
def test_bad_device_inputs_are_refused_when_set(make, error, match):
    cfg = ls.Config(num_clients=3, vector_length=8, threshold=2, bits=20, prg="chacha20")
    client = ls.Client(cfg, 0)
    with pytest.raises(error, match=match):
        client.set_input(make())


def test_triton_engine_off_cuda_is_refused_when_set():
    cfg = ls.Config(num_clients=3, vector_length=8, threshold=2, bits=32, prg="chacha20")
    client = ls.Client(cfg, 0)
    with pytest.raises(ValueError, match="runs on CUDA tensors.*meta"):  # not the interpreter's CPU, not CUDA
        client.set_input(lt.device_ring_input(torch.zeros(8, dtype=torch.int32, device="meta"), engine="triton"))


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine must be one of"):
        lt.device_ring_input(torch.zeros(3, dtype=torch.int32), engine="cuda")


def test_nan_is_found_in_the_round_and_leaves_the_client_unchanged():
    q = ls.encoding.Quantizer(clip=1.0, bits=32, num_clients=3)
    cfg = ls.Config(num_clients=3, vector_length=6, threshold=2, bits=32, prg="chacha20")
    client, request = _client_at_masked_input(cfg)
    bad = torch.tensor([0.1, float("nan"), 0.0, 0.2, 0.3, 0.4], dtype=torch.float64)
    client.set_input(lt.device_float_input(bad, q, engine="torch"))
    with pytest.raises(LocalProtocolError, match="NaN"):
        client.receive(request)
    assert client.round is Round.MASKED_INPUT
    client.set_input(lt.device_float_input(torch.nan_to_num(bad), q, engine="torch"))
    assert client.receive(request).vector.shape == (6,)
    assert client.clipped == 0


@pytest.mark.parametrize("engine", ["torch", "kernel"])
def test_export_state_holds_the_host_copy_of_the_quantised_input(engine):
    """A device client exports what a numpy client with the same rng exports: the unmasked ring vector."""
    q = ls.encoding.Quantizer(clip=1.0, bits=32, num_clients=3, max_weight=9)
    cfg = ls.Config(num_clients=3, vector_length=q.encoded_length(10), threshold=2, bits=32, prg="chacha20")
    values = np.random.default_rng(2).normal(0, 1, 10)
    host, device = ls.Client(cfg, 1, rng=DeterministicRng(4)), ls.Client(cfg, 1, rng=DeterministicRng(4))
    host.set_float_input(values, q, weight=4)
    device.set_input(lt.device_float_input(torch.from_numpy(values), q, weight=4, engine=engine))
    host.start()
    device.start()
    assert device.export_state() == host.export_state()
    restored = ls.Client.restore(cfg, device.export_state())
    assert restored.round is device.round

