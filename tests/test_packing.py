"""Ring vectors of any width b on the wire: packing, masks mod 2^b, wire version 2.

``hazmat.ring.pack``/``unpack`` run on the kernel the conftest fixture patches
(numpy specification, then C); both are checked against a Python-int
reference built from the definition (element i in bits [i b, (i + 1) b) of a
little-endian bit string), and the C module against the numpy one directly.
"""
from __future__ import annotations

import json
import pathlib

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lepton_secagg as ls
from lepton_secagg import wire
from lepton_secagg._kernels import _native
from lepton_secagg.exceptions import DecodeError
from lepton_secagg.hazmat import ring
from lepton_secagg.hazmat.masking import add_masks
from lepton_secagg.hazmat.prg import keystream
from lepton_secagg.messages import MaskedInput
from lepton_secagg.testing import simulate

try:
    from lepton_secagg._kernels import _speedups
except ImportError:  # not built, or LEPTON_SECAGG_PUREPYTHON
    _speedups = None

LEGACY = pathlib.Path(__file__).parent / "vectors" / "v1" / "legacy" / "wire_v1_secagg_plus_48bit.json"
HEADER_MAX = 20  # array markers, version, tag, sender < 2^32, bits, length < 2^32, bin header


def reference_pack(values, bits: int) -> bytes:
    total = 0
    for i, v in enumerate(values):
        total |= int(v) << (i * bits)
    return total.to_bytes(-(-len(values) * bits // 8), "little")


def reduced(rs, n, bits):
    top = (1 << bits) - 1
    return np.array([int(x) & top for x in rs.integers(0, 1 << 63, n, dtype=np.uint64) * 2 + rs.integers(0, 2, n)],
                    dtype=object).astype(ring.dtype_for(bits))


def test_known_answer_12_bits():
    vec = np.array([0xABC, 0x123, 0x00F], dtype=np.uint32)
    packed = bytes(ring.pack(vec, 12))
    assert packed == bytes([0xBC, 0x3A, 0x12, 0x0F, 0x00])  # 0x00F123ABC little-endian, 4 pad bits
    assert ring.unpack(packed, 12, 3).tolist() == [0xABC, 0x123, 0x00F]


@given(st.integers(1, 64), st.integers(0, 70), st.integers(0, 2**32 - 1))
def test_pack_matches_the_definition_and_round_trips(bits, n, seed):
    vec = reduced(np.random.default_rng(seed), n, bits)
    packed = bytes(ring.pack(vec, bits))
    assert packed == reference_pack(vec, bits)
    back = ring.unpack(packed, bits, n)
    assert back.dtype == ring.dtype_for(bits) and back.tolist() == vec.tolist()


@pytest.mark.parametrize("bits", [1, 7, 8, 12, 16, 24, 31, 32, 33, 48, 57, 63, 64])
def test_c_pack_matches_the_numpy_spec_on_long_vectors(bits):
    if _speedups is None:
        pytest.skip("C extension not available")
    vec = reduced(np.random.default_rng(bits), 20_003, bits)
    size = ring.packed_size(vec.size, bits)
    a, b = np.empty(size, np.uint8), np.empty(size, np.uint8)
    _native.pack_bits(vec, bits, a)
    _speedups.pack_bits(vec, bits, b)
    assert a.tobytes() == b.tobytes()
    u, w = np.empty_like(vec), np.empty_like(vec)
    _native.unpack_bits(a, bits, u)
    _speedups.unpack_bits(a, bits, w)
    assert (u == vec).all() and (w == vec).all()


def test_pack_refuses_unreduced_and_unpack_refuses_bad_payloads(kernel_backend):
    with pytest.raises(ValueError, match="2\\^12"):
        ring.pack(np.array([1, 1 << 12], dtype=np.uint32), 12)
    with pytest.raises(ValueError, match="take 5 bytes, got 4"):
        ring.unpack(bytes(4), 12, 3)
    with pytest.raises(ValueError, match="pad bits"):
        ring.unpack(bytes([0, 0, 0, 0, 0x10]), 12, 3)
    with pytest.raises(ValueError, match="bits must be an int in 1..64"):
        kernel_backend.pack_bits(np.zeros(2, np.uint32), 0, np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="take 2 bytes"):
        kernel_backend.pack_bits(np.zeros(2, np.uint32), 8, np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="do not fit"):
        kernel_backend.pack_bits(np.zeros(2, np.uint32), 40, np.zeros(10, np.uint8))
    with pytest.raises(TypeError):
        kernel_backend.pack_bits(np.zeros(2, np.int32), 8, np.zeros(2, np.uint8))


@pytest.mark.parametrize("bits", [8, 13, 24, 40, 57])
@pytest.mark.parametrize("suite", ["aes128ctr", "chacha20"])
def test_a_mask_in_z_2_b_is_the_word_keystream_reduced_mod_2_b(bits, suite):
    """The specified mask: word i of the keystream (4 bytes for b <= 32, else 8) mod 2^b."""
    key = bytes(range(16 if suite == "aes128ctr" else 32))
    n, width = 1000, ring.dtype_for(bits).itemsize
    vec = ring.reduce(add_masks(np.zeros(n, ring.dtype_for(bits)), [key], [1], suite), bits)
    raw = keystream(suite, key, n * width)
    expected = [int.from_bytes(raw[i * width : (i + 1) * width], "little") % (1 << bits) for i in range(n)]
    assert vec.tolist() == expected


@pytest.mark.parametrize("bits", [8, 12, 20, 32, 33, 48, 64])
def test_masked_input_bytes_are_ceil_b_m_over_8_plus_a_fixed_header(bits):
    m = 10_000
    msg = MaskedInput(2**32 - 1, reduced(np.random.default_rng(bits), m, bits), bits)
    data = wire.encode(msg)
    limit = -(-bits * m // 8)
    assert limit <= len(data) <= limit + HEADER_MAX
    assert len(data) <= 1.01 * limit + HEADER_MAX
    assert wire.decode(data) == msg


@pytest.mark.parametrize("bits", [8, 13, 32, 41])
def test_a_session_at_b_bits_sends_packed_inputs_and_sums_mod_2_b(bits):
    n, m = 5, 3001
    cfg = ls.Config(num_clients=n, vector_length=m, threshold=3, bits=bits)
    rs = np.random.default_rng(bits)
    inputs = [reduced(rs, m, bits) for _ in range(n)]
    res = simulate(cfg, inputs, {4: "unmasking"}, seed=bits)
    expected = [sum(int(x[i]) for x in inputs) % (1 << bits) for i in range(m)]
    assert res.sum.tolist() == expected
    per_client = res.bytes_up["masked_input"] / n
    limit = -(-bits * m // 8)
    assert limit <= per_client <= limit + HEADER_MAX


@pytest.mark.parametrize("payload", [0, 1, 255, 256, 65535, 65536, 70001])
def test_encode_parts_is_the_msgpack_encoding_without_copying(payload):
    bits = 32 if payload % 4 == 0 else 8
    m = payload * 8 // bits
    vec = reduced(np.random.default_rng(payload), m, bits)
    msg = MaskedInput(300, vec, bits)
    parts = wire.encode_parts(msg)
    reference = msgpack.packb([wire.WIRE_VERSION, 5, 300, [bits, m, bytes(ring.pack(vec, bits))]], use_bin_type=True)
    assert b"".join(bytes(p) for p in parts) == reference == wire.encode(msg)
    if bits == 32 and m:
        assert np.shares_memory(np.frombuffer(parts[-1], np.uint8), vec)  # the vector itself goes out


def test_decode_refuses_bad_packed_vectors():
    cfg = ls.Config(num_clients=3, vector_length=3, threshold=2, bits=12)
    good = msgpack.packb([2, 5, 1, [12, 3, bytes([0xBC, 0x3A, 0x12, 0x0F, 0x00])]], use_bin_type=True)
    assert wire.decode(good, cfg).vector.tolist() == [0xABC, 0x123, 0x00F]
    bad = {
        "pad bits": [12, 3, bytes([0xBC, 0x3A, 0x12, 0x0F, 0x10])],
        "take 5 bytes": [12, 3, bytes(4)],
        "packed at 12 bits, got 13": [13, 3, bytes(5)],
        "have 3 elements, got 2": [12, 2, bytes(3)],
        "bits is an int in 1..64": [65, 3, bytes(25)],
        "length is a non-negative int": [12, -1, b""],
    }
    for what, field in bad.items():
        with pytest.raises(DecodeError, match=what):
            wire.decode(msgpack.packb([2, 5, 1, field], use_bin_type=True), cfg)
    with pytest.raises(DecodeError, match=r"reads versions \(1, 2\) and writes 2"):
        wire.decode(msgpack.packb([3, 15, "x"], use_bin_type=True))


def test_version_1_masked_inputs_still_decode_and_version_1_keys_are_refused():
    """A session recorded by the version-1 library: its masked inputs decode (and re-encode smaller at version 2);
    its key messages, which carry no seed commitment, are refused by name, so a version-1 client cannot join."""
    vec = json.loads(LEGACY.read_text())
    cfg = wire.decode_config(bytes.fromhex(vec["config"]))
    messages = [(m, bytes.fromhex(m["hex"])) for m in vec["messages"]]
    assert all(data[1] == 1 for _, data in messages)
    inputs = [data for m, data in messages if m["round"] == "masked_input" and m["direction"] == "up"]
    assert inputs
    for data in inputs:
        msg = wire.decode(data, cfg)
        assert isinstance(msg, MaskedInput) and msg.bits == cfg.bits == 48
        assert wire.decode(wire.encode(msg), cfg) == msg  # the same message in version 2
        assert len(wire.encode(msg)) < len(data)  # 6 bytes an element instead of 8
    keys = [data for m, data in messages if m["round"] in ("advertise_keys", "share_keys") and data[2] in (1, 2)]
    assert keys
    for data in keys:
        with pytest.raises(ls.DecodeError, match="no seed commitment"):
            wire.decode(data, cfg)


def _generic_form(data: bytes) -> bytes:
    """The same message with its outer array header as array16: decode takes the general (copying) path."""
    assert data[0] == 0x94
    return b"\xdc\x00\x04" + data[1:]


@pytest.mark.parametrize("bits", [12, 32, 64])
def test_decode_views_the_payload_and_agrees_with_the_general_path(bits):
    cfg = ls.Config(num_clients=3, vector_length=5000, threshold=2, bits=bits)
    msg = MaskedInput(2, reduced(np.random.default_rng(bits), 5000, bits), bits)
    data = wire.encode(msg)
    fast, slow = wire.decode(data, cfg), wire.decode(_generic_form(data), cfg)
    assert fast == slow == msg
    if bits in (32, 64):
        assert np.shares_memory(fast.vector, np.frombuffer(data, np.uint8))  # no copy on the server either
        assert not fast.vector.flags.writeable
    header = bytes(wire.encode_parts(msg)[0])
    marker = next(len(header) - 1 - w for w, code in ((1, 0xC4), (2, 0xC5), (4, 0xC6)) if header[len(header) - 1 - w] == code)
    corruptions = {
        "truncated": data[:-1],
        "trailing": data + b"\x00",
        "not bin": data[:marker] + b"\xd9" + data[marker + 1 :],
        "bad sender": data[:3] + b"\x07" + data[4:],
    }
    for what, bad in corruptions.items():
        for form in (bad, _generic_form(bad)):
            with pytest.raises(DecodeError):
                wire.decode(form, cfg)
