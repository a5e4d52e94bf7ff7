"""Known-answer and property tests for the mask PRG (``hazmat.prg``).

Three independent references are used:

* the published vectors (RFC 8439 for ChaCha20, NIST SP 800-38A F.5.1 for
  AES-128-CTR), from ``tests/vectors/v1``;
* pycryptodome's generic ChaCha20 / AES routines, driven with the vectors'
  own nonces and counters;
* for ChaCha20, a pure-Python block function written below from the RFC 8439
  text (Sections 2.1-2.3), and for AES-CTR, AES-128-ECB of the big-endian
  counter blocks.

``keystream`` has a zero ChaCha20 nonce and a zero AES initial counter, so the
vectors with those parameters are checked against it directly and the others
through the generic routines, which are then tied to ``keystream`` by the
cross-checks.
"""
from __future__ import annotations

import struct

import pytest
from Crypto.Cipher import AES, ChaCha20
from hypothesis import given
from hypothesis import strategies as st

from lepton_secagg.hazmat import prg
from lepton_secagg.hazmat.agreement import hkdf_sha256
from lepton_secagg.hazmat.prg import derive_prg_key, key_size, keystream, keystream_into
from tests.utils import load_vectors, unhex, xor

CHACHA = load_vectors("rfc8439_chacha20")
SP800 = load_vectors("sp800_38a_ctr_aes128")

CHACHA_STREAM_BYTES = 64 << 32  # 2^32 blocks of 64 bytes
MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------
# An independent ChaCha20 (RFC 8439 Sections 2.1-2.3), for cross-checking.
# --------------------------------------------------------------------------


def _rotl32(v: int, c: int) -> int:
    return ((v << c) & MASK32) | (v >> (32 - c))


def quarter_round(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int]:
    """RFC 8439 Section 2.1."""
    a = (a + b) & MASK32
    d = _rotl32(d ^ a, 16)
    c = (c + d) & MASK32
    b = _rotl32(b ^ c, 12)
    a = (a + b) & MASK32
    d = _rotl32(d ^ a, 8)
    c = (c + d) & MASK32
    b = _rotl32(b ^ c, 7)
    return a, b, c, d


def _qr_on_state(state: list[int], x: int, y: int, z: int, w: int) -> None:
    state[x], state[y], state[z], state[w] = quarter_round(state[x], state[y], state[z], state[w])


def chacha20_initial_state(key: bytes, counter: int, nonce: bytes) -> list[int]:
    """RFC 8439 Section 2.3: constants, key, block counter, nonce (little-endian words)."""
    assert len(key) == 32 and len(nonce) == 12 and 0 <= counter <= MASK32
    constants = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    return constants + list(struct.unpack("<8I", key)) + [counter] + list(struct.unpack("<3I", nonce))


def chacha20_rounds(state: list[int]) -> list[int]:
    """20 rounds: 10 iterations of a column round then a diagonal round."""
    working = list(state)
    for _ in range(10):
        _qr_on_state(working, 0, 4, 8, 12)
        _qr_on_state(working, 1, 5, 9, 13)
        _qr_on_state(working, 2, 6, 10, 14)
        _qr_on_state(working, 3, 7, 11, 15)
        _qr_on_state(working, 0, 5, 10, 15)
        _qr_on_state(working, 1, 6, 11, 12)
        _qr_on_state(working, 2, 7, 8, 13)
        _qr_on_state(working, 3, 4, 9, 14)
    return working


def chacha20_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    """The 64-byte serialized block of RFC 8439 Section 2.3."""
    state = chacha20_initial_state(key, counter, nonce)
    working = chacha20_rounds(state)
    return struct.pack("<16I", *((w + s) & MASK32 for w, s in zip(working, state)))


def chacha20_stream(key: bytes, nonce: bytes, nbytes: int, offset: int = 0) -> bytes:
    """Bytes ``offset .. offset + nbytes`` of the ChaCha20 key stream (block counter from 0)."""
    first, last = offset // 64, (offset + nbytes + 63) // 64
    data = b"".join(chacha20_block(key, counter, nonce) for counter in range(first, last))
    start = offset - 64 * first
    return data[start : start + nbytes]


def generic_chacha20(key: bytes, nonce: bytes, counter: int, data: bytes) -> bytes:
    """pycryptodome's ChaCha20 with the vector's nonce, seeked to block ``counter``."""
    cipher = ChaCha20.new(key=key, nonce=nonce)
    cipher.seek(64 * counter)
    return cipher.encrypt(data)


def aes_ctr_by_ecb(key: bytes, nbytes: int, offset: int) -> bytes:
    """AES-128-ECB of the big-endian counter blocks offset//16, offset//16 + 1, ..., sliced."""
    ecb = AES.new(key, AES.MODE_ECB)
    first, last = offset // 16, (offset + nbytes + 15) // 16
    blocks = b"".join(ecb.encrypt(i.to_bytes(16, "big")) for i in range(first, last))
    start = offset % 16
    return blocks[start : start + nbytes]


# --------------------------------------------------------------------------
# RFC 8439
# --------------------------------------------------------------------------


def _words(hex_words: list[str]) -> list[int]:
    return [int(w, 16) for w in hex_words]


def test_rfc8439_quarter_round_2_1_1():
    vec = CHACHA["quarter_round"]
    assert quarter_round(*_words(vec["input"])) == tuple(_words(vec["output"]))


def test_rfc8439_block_function_2_3_2_pure_python():
    vec = CHACHA["block_function"]
    key, nonce, counter = unhex(vec["key"]), unhex(vec["nonce"]), vec["counter"]
    state = chacha20_initial_state(key, counter, nonce)
    assert state == _words(vec["state_after_setup"])
    assert chacha20_rounds(state) == _words(vec["state_after_rounds"])
    assert chacha20_block(key, counter, nonce) == unhex(vec["serialized_block"])


def test_rfc8439_block_function_2_3_2_generic_chacha20():
    vec = CHACHA["block_function"]
    out = generic_chacha20(unhex(vec["key"]), unhex(vec["nonce"]), vec["counter"], bytes(64))
    assert out == unhex(vec["serialized_block"])


def test_rfc8439_encryption_2_4_2():
    vec = CHACHA["encryption"]
    key, nonce, counter = unhex(vec["key"]), unhex(vec["nonce"]), vec["counter"]
    plaintext, ciphertext = unhex(vec["plaintext"]), unhex(vec["ciphertext"])
    assert plaintext.startswith(b"Ladies and Gentlemen of the class of '99")
    assert generic_chacha20(key, nonce, counter, plaintext) == ciphertext
    ks = chacha20_stream(key, nonce, len(plaintext), 64 * counter)
    assert xor(plaintext, ks) == ciphertext


@pytest.mark.parametrize("vec", CHACHA["appendix_a1"], ids=lambda v: v["name"])
def test_rfc8439_appendix_a1_block_vectors(vec):
    key, nonce, counter = unhex(vec["key"]), unhex(vec["nonce"]), vec["counter"]
    expected = unhex(vec["keystream"])
    assert len(expected) == 64
    assert generic_chacha20(key, nonce, counter, bytes(64)) == expected
    assert chacha20_block(key, counter, nonce) == expected
    if nonce == bytes(12):
        # Our PRG: zero nonce, block counter from 0, so block n is at byte 64 n.
        assert keystream("chacha20", key, 64, 64 * counter) == expected
        assert keystream("chacha20", key, 64 * (counter + 1))[64 * counter :] == expected


def test_rfc8439_appendix_a1_counter_0_and_1_in_one_call():
    """Vectors 1 and 2 (all-zero key and nonce) are consecutive blocks of one stream."""
    first, second = CHACHA["appendix_a1"][0], CHACHA["appendix_a1"][1]
    assert (first["counter"], second["counter"]) == (0, 1)
    assert first["key"] == second["key"] and unhex(first["nonce"]) == unhex(second["nonce"]) == bytes(12)
    key = unhex(first["key"])
    both = unhex(first["keystream"]) + unhex(second["keystream"])
    assert keystream("chacha20", key, 128) == both
    # Unaligned reads inside and across the block boundary.
    for offset, n in [(1, 10), (60, 8), (63, 2), (64, 64), (70, 50), (0, 128), (127, 1)]:
        assert keystream("chacha20", key, n, offset) == both[offset : offset + n]


@pytest.mark.parametrize("vec", CHACHA["appendix_a2"], ids=lambda v: v["name"])
def test_rfc8439_appendix_a2_encryption_vectors(vec):
    key, nonce, counter = unhex(vec["key"]), unhex(vec["nonce"]), vec["counter"]
    plaintext, ciphertext = unhex(vec["plaintext"]), unhex(vec["ciphertext"])
    assert generic_chacha20(key, nonce, counter, plaintext) == ciphertext
    assert xor(plaintext, chacha20_stream(key, nonce, len(plaintext), 64 * counter)) == ciphertext
    if nonce == bytes(12):
        assert xor(plaintext, keystream("chacha20", key, len(plaintext), 64 * counter)) == ciphertext


@given(
    key=st.binary(min_size=32, max_size=32),
    offset=st.one_of(
        st.integers(0, 4096),
        st.integers(0, CHACHA_STREAM_BYTES - 300),
        st.integers(CHACHA_STREAM_BYTES - 300, CHACHA_STREAM_BYTES - 1),
    ),
    nbytes=st.integers(0, 200),
)
def test_pure_python_chacha20_matches_keystream(key, offset, nbytes):
    nbytes = min(nbytes, CHACHA_STREAM_BYTES - offset)
    assert keystream("chacha20", key, nbytes, offset) == chacha20_stream(key, bytes(12), nbytes, offset)


def test_chacha20_last_block_of_the_stream():
    key = bytes(range(32))
    last = chacha20_block(key, MASK32, bytes(12))
    assert keystream("chacha20", key, 64, CHACHA_STREAM_BYTES - 64) == last
    assert keystream("chacha20", key, 5, CHACHA_STREAM_BYTES - 5) == last[-5:]
    assert keystream("chacha20", key, 0, CHACHA_STREAM_BYTES - 1) == b""
    with pytest.raises(ValueError):
        keystream("chacha20", key, 65, CHACHA_STREAM_BYTES - 64)
    with pytest.raises(ValueError):
        keystream("chacha20", key, 1, CHACHA_STREAM_BYTES)
    with pytest.raises(ValueError):
        keystream("chacha20", key, 1, CHACHA_STREAM_BYTES + 64)


# --------------------------------------------------------------------------
# NIST SP 800-38A F.5.1
# --------------------------------------------------------------------------


def _sp800_concat(field: str) -> bytes:
    return b"".join(unhex(block[field]) for block in SP800["blocks"])


def test_sp800_38a_f51_generic_ctr():
    key = unhex(SP800["key"])
    initial = int.from_bytes(unhex(SP800["initial_counter"]), "big")
    cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=initial)
    assert cipher.encrypt(_sp800_concat("plaintext")) == _sp800_concat("ciphertext")
    cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=initial)
    assert cipher.encrypt(bytes(64)) == _sp800_concat("output")


def test_sp800_38a_f51_counter_blocks_and_ecb():
    """The vector's counter sequence is the 128-bit big-endian +1 our PRG uses (note ...feff -> ...ff00)."""
    key = unhex(SP800["key"])
    ecb = AES.new(key, AES.MODE_ECB)
    initial = int.from_bytes(unhex(SP800["initial_counter"]), "big")
    for i, block in enumerate(SP800["blocks"]):
        assert unhex(block["input"]) == (initial + i).to_bytes(16, "big")
        assert ecb.encrypt(unhex(block["input"])) == unhex(block["output"])
        assert xor(unhex(block["output"]), unhex(block["plaintext"])) == unhex(block["ciphertext"])


def test_sp800_38a_f51_through_keystream_at_the_counter_offset():
    """Our stream starts at counter 0, so the vector's stream is ours at byte 16 * f0f1...feff."""
    key = unhex(SP800["key"])
    initial = int.from_bytes(unhex(SP800["initial_counter"]), "big")
    ks = keystream("aes128ctr", key, 64, 16 * initial)
    assert ks == _sp800_concat("output")
    assert xor(_sp800_concat("plaintext"), ks) == _sp800_concat("ciphertext")
    # A read that starts in the middle of the first vector block.
    assert keystream("aes128ctr", key, 40, 16 * initial + 7) == _sp800_concat("output")[7:47]


@given(
    key=st.binary(min_size=16, max_size=16),
    offset=st.one_of(st.integers(0, 1 << 16), st.integers(0, 1 << 63)),
    nbytes=st.integers(0, 100),
)
def test_aes128ctr_keystream_matches_ecb_of_counter_blocks(key, offset, nbytes):
    assert keystream("aes128ctr", key, nbytes, offset) == aes_ctr_by_ecb(key, nbytes, offset)


@pytest.mark.parametrize(
    "block",
    [(1 << 8) - 1, (1 << 32) - 1, (1 << 60) - 1, (1 << 64) - 1],
    ids=["2^8-1", "2^32-1", "2^60-1", "2^64-1"],
)
@pytest.mark.parametrize("within", [0, 5, 15])
def test_aes128ctr_counter_carries(block, within):
    """Reads that span counter ``block`` -> ``block + 1`` (a carry into the next byte/word)."""
    key = bytes(range(16, 32))
    offset = 16 * block + within
    got = keystream("aes128ctr", key, 48, offset)
    assert got == aes_ctr_by_ecb(key, 48, offset)
    ecb = AES.new(key, AES.MODE_ECB)
    assert got[16 - within : 32 - within] == ecb.encrypt((block + 1).to_bytes(16, "big"))


# --------------------------------------------------------------------------
# Properties of keystream / keystream_into
# --------------------------------------------------------------------------


def _pycryptodome_reference(suite: str, key: bytes, nbytes: int, offset: int) -> bytes:
    if suite == "aes128ctr":
        cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=offset // 16)
        cipher.encrypt(bytes(offset % 16))
        return cipher.encrypt(bytes(nbytes))
    cipher = ChaCha20.new(key=key, nonce=bytes(12))
    cipher.seek(offset)
    return cipher.encrypt(bytes(nbytes))


@st.composite
def _suite_key_offset(draw, max_offset=1 << 37):
    suite = draw(st.sampled_from(sorted(prg.SUITES)))
    key = draw(st.binary(min_size=key_size(suite), max_size=key_size(suite)))
    offset = draw(st.one_of(st.integers(0, 1024), st.integers(0, max_offset)))
    return suite, key, offset


@given(args=_suite_key_offset(), nbytes=st.integers(0, 1000))
def test_keystream_equals_pycryptodome(args, nbytes):
    suite, key, offset = args
    assert keystream(suite, key, nbytes, offset) == _pycryptodome_reference(suite, key, nbytes, offset)


@given(args=_suite_key_offset(), n=st.integers(0, 300), m=st.integers(0, 300))
def test_keystream_concatenation(args, n, m):
    suite, key, offset = args
    whole = keystream(suite, key, n + m, offset)
    assert len(whole) == n + m
    assert keystream(suite, key, n, offset) + keystream(suite, key, m, offset + n) == whole


@given(args=_suite_key_offset(), nbytes=st.integers(0, 300))
def test_keystream_into_matches_keystream(args, nbytes):
    suite, key, offset = args
    out = bytearray(nbytes)
    keystream_into(suite, key, memoryview(out), bytes(nbytes), offset)
    assert bytes(out) == keystream(suite, key, nbytes, offset)


@pytest.mark.parametrize("suite", sorted(prg.SUITES))
def test_keystream_depends_on_key_and_offset(suite):
    size = key_size(suite)
    a, b = bytes(size), bytes(size - 1) + b"\x01"
    assert keystream(suite, a, 64) != keystream(suite, b, 64)
    assert keystream(suite, a, 64, 0) != keystream(suite, a, 64, 64)
    assert keystream(suite, bytearray(a), 32) == keystream(suite, a, 32)
    assert keystream(suite, a, 0, 12345) == b""


def test_suites_and_key_sizes():
    assert prg.SUITES == {"aes128ctr": 16, "chacha20": 32}
    assert key_size("aes128ctr") == 16
    assert key_size("chacha20") == 32
    for bad in ("aes", "AES128CTR", "", None, 3):
        with pytest.raises(ValueError):
            key_size(bad)


@pytest.mark.parametrize("suite", sorted(prg.SUITES))
def test_keystream_argument_errors(suite):
    key = bytes(key_size(suite))
    with pytest.raises(ValueError):
        keystream("rot13", bytes(16), 8)
    with pytest.raises(TypeError):
        keystream(suite, "k" * len(key), 8)
    with pytest.raises(TypeError):
        keystream(suite, list(key), 8)
    for bad_key in (key[:-1], key + b"\x00", b""):
        with pytest.raises(ValueError):
            keystream(suite, bad_key, 8)
    for bad_n in (-1, True, 1.0, "8", None):
        with pytest.raises(ValueError):
            keystream(suite, key, bad_n)
    for bad_offset in (-1, -64, True, 1.5, "0", None):
        with pytest.raises(ValueError):
            keystream(suite, key, 8, bad_offset)


# --------------------------------------------------------------------------
# derive_prg_key
# --------------------------------------------------------------------------


def _hkdf_reference(ikm: bytes, length: int, info: bytes) -> bytes:
    """RFC 5869 with an empty salt, written with the standard library."""
    import hashlib
    import hmac

    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


@pytest.mark.parametrize("suite", sorted(prg.SUITES))
def test_derive_prg_key_matches_the_documented_construction(suite):
    seed = bytes(range(32))
    info = b"lepton-secagg/v1/mask/" + suite.encode()
    info += struct.pack(">I", 3) + b"sid" + struct.pack(">I", 2) + b"r1"
    info += struct.pack(">I", 2) + struct.pack(">QQ", 4, 9)
    expected = _hkdf_reference(seed, key_size(suite), info)
    got = derive_prg_key(seed, suite, "mask", session_id=b"sid", round="r1", parties=(9, 4))
    assert got == expected
    assert got == hkdf_sha256(seed, key_size(suite), info=info)
    assert len(got) == key_size(suite)


def test_derive_prg_key_separates_suites_purposes_and_seeds():
    seed = bytes(32)
    keys = {
        derive_prg_key(seed, "chacha20", "self-mask"),
        derive_prg_key(seed, "chacha20", "pair-mask"),
        derive_prg_key(bytes(31) + b"\x01", "chacha20", "self-mask"),
        derive_prg_key(seed, "aes128ctr", "self-mask") + bytes(16),
    }
    assert len(keys) == 4
    # The AES key is not a prefix of the ChaCha key: the suite is in the label.
    assert derive_prg_key(seed, "chacha20", "m")[:16] != derive_prg_key(seed, "aes128ctr", "m")


def test_derive_prg_key_errors():
    for bad_seed in (bytes(31), bytes(33), b"", "x" * 32, None):
        with pytest.raises(ValueError):
            derive_prg_key(bad_seed, "chacha20", "mask")
    with pytest.raises(ValueError):
        derive_prg_key(bytes(32), "des", "mask")
    with pytest.raises(ValueError):
        derive_prg_key(bytes(32), "chacha20", "mask", parties=(1, -2))
