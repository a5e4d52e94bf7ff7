"""XChaCha20-Poly1305 sealed boxes (``hazmat.aead``): a known answer and misuse resistance."""
from __future__ import annotations

import pytest

from lepton_secagg.exceptions import DecryptionError, SecAggError
from lepton_secagg.hazmat import aead
from lepton_secagg.hazmat.aead import NONCE_SIZE, OVERHEAD, open_box, seal
from lepton_secagg.hazmat.rng import DeterministicRng
from tests.utils import load_vectors, unhex

VEC = load_vectors("xchacha20poly1305_draft03")["aead"]
KEY = bytes(range(32))
AD = b"session|from=3|to=7|round=share-keys"


class FixedRng:
    """An rng that returns preset bytes, to pin the nonce."""

    def __init__(self, data: bytes):
        self._data = data

    def bytes(self, n: int) -> bytes:
        assert n == len(self._data)
        return self._data


def test_draft_xchacha_a31_known_answer():
    key, nonce, ad = unhex(VEC["key"]), unhex(VEC["nonce"]), unhex(VEC["aad"])
    plaintext = unhex(VEC["plaintext"])
    expected = nonce + unhex(VEC["ciphertext"]) + unhex(VEC["tag"])
    box = seal(key, plaintext, ad, rng=FixedRng(nonce))
    assert box == expected
    assert open_box(key, expected, ad) == plaintext


def test_sizes():
    assert (aead.KEY_SIZE, NONCE_SIZE, OVERHEAD) == (32, 24, 40)
    for n in (0, 1, 15, 16, 17, 1000):
        box = seal(KEY, bytes(n), AD)
        assert len(box) == n + OVERHEAD


@pytest.mark.parametrize("plaintext", [b"", b"x", bytes(range(256)) * 3])
def test_round_trip(plaintext):
    box = seal(KEY, plaintext, AD)
    assert open_box(KEY, box, AD) == plaintext
    assert open_box(bytearray(KEY), bytearray(box), bytearray(AD)) == plaintext
    assert seal(KEY, plaintext, b"") and open_box(KEY, seal(KEY, plaintext, b""), b"") == plaintext


def test_random_nonces_by_default():
    b1, b2 = seal(KEY, b"same", AD), seal(KEY, b"same", AD)
    assert b1[:NONCE_SIZE] != b2[:NONCE_SIZE]
    assert b1 != b2


def test_deterministic_rng_gives_deterministic_boxes():
    b1 = seal(KEY, b"share", AD, rng=DeterministicRng(b"seed"))
    b2 = seal(KEY, b"share", AD, rng=DeterministicRng(b"seed"))
    b3 = seal(KEY, b"share", AD, rng=DeterministicRng(b"other"))
    assert b1 == b2
    assert b1 != b3
    assert b1[:NONCE_SIZE] == DeterministicRng(b"seed").bytes(NONCE_SIZE)


def test_tamper_anywhere_is_detected():
    box = seal(KEY, b"the share of client 7", AD)
    # every byte position: nonce, ciphertext and tag
    for i in range(len(box)):
        for flip in (0x01, 0x80):
            bad = bytearray(box)
            bad[i] ^= flip
            with pytest.raises(DecryptionError):
                open_box(KEY, bytes(bad), AD)


def test_truncation_and_extension_are_detected():
    box = seal(KEY, b"0123456789", AD)
    for bad in (box[:-1], box[1:], box + b"\x00", box[:NONCE_SIZE] + box[NONCE_SIZE + 1 :]):
        with pytest.raises(DecryptionError):
            open_box(KEY, bad, AD)


def test_wrong_associated_data_or_key():
    box = seal(KEY, b"secret", AD)
    for ad in (b"", AD[:-1], AD + b"x", b"session|from=7|to=3|round=share-keys"):
        with pytest.raises(DecryptionError):
            open_box(KEY, box, ad)
    other = bytes(31) + b"\x01"
    with pytest.raises(DecryptionError):
        open_box(other, box, AD)


@pytest.mark.parametrize("length", [0, 1, NONCE_SIZE, OVERHEAD - 1])
def test_short_box(length):
    with pytest.raises(DecryptionError):
        open_box(KEY, bytes(length), AD)


def test_empty_plaintext_box_has_exactly_the_overhead():
    box = seal(KEY, b"", AD)
    assert len(box) == OVERHEAD
    assert open_box(KEY, box, AD) == b""


def test_decryption_error_is_a_secagg_error_and_names_no_key():
    box = seal(KEY, b"secret", AD)
    with pytest.raises(SecAggError) as info:
        open_box(bytes(32), box, AD)
    assert isinstance(info.value, DecryptionError)
    assert KEY.hex() not in str(info.value)


def test_argument_errors():
    box = seal(KEY, b"x", AD)
    for bad_key in ("k" * 32, None, list(KEY)):
        with pytest.raises(TypeError):
            seal(bad_key, b"x", AD)
        with pytest.raises(TypeError):
            open_box(bad_key, box, AD)
    for bad_key in (KEY[:31], KEY + b"\x00", b""):
        with pytest.raises(ValueError):
            seal(bad_key, b"x", AD)
        with pytest.raises(ValueError):
            open_box(bad_key, box, AD)
    for bad in ("text", None, 5, memoryview(b"x")):
        with pytest.raises(TypeError):
            seal(KEY, bad, AD)
        with pytest.raises(TypeError):
            seal(KEY, b"x", bad)
        with pytest.raises(TypeError):
            open_box(KEY, bad, AD)
        with pytest.raises(TypeError):
            open_box(KEY, box, bad)
    with pytest.raises(TypeError):
        seal(KEY, b"x", AD, rng=object())
