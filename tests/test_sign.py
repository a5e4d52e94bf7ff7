"""Ed25519 identities (``hazmat.sign``): RFC 8032 known answers and failure modes."""
from __future__ import annotations

import pytest

from lepton_secagg.exceptions import SecAggError, SignatureError
from lepton_secagg.hazmat import sign
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.hazmat.sign import Identity, verify
from tests.utils import load_vectors, unhex

RFC8032 = load_vectors("rfc8032_ed25519")


@pytest.mark.parametrize("case", RFC8032["cases"], ids=lambda c: c["name"])
def test_rfc8032_7_1(case):
    ident = Identity(unhex(case["secret_key"]))
    message, signature = unhex(case["message"]), unhex(case["signature"])
    assert ident.verify_key == unhex(case["public_key"])
    assert ident.sign(message) == signature
    verify(unhex(case["public_key"]), message, signature)


def test_sizes():
    assert (sign.SEED_SIZE, sign.VERIFY_KEY_SIZE, sign.SIGNATURE_SIZE) == (32, 32, 64)
    ident = Identity.generate()
    assert len(ident.verify_key) == 32
    assert len(ident.sign(b"m")) == 64


def test_sign_and_verify_round_trip():
    ident = Identity.generate(DeterministicRng(b"client-3"))
    for message in (b"", b"advertise keys", bytes(range(256)) * 4):
        sig = ident.sign(message)
        verify(ident.verify_key, message, sig)
        verify(bytearray(ident.verify_key), bytearray(message), bytearray(sig))


def test_generate_is_reproducible_with_a_seeded_rng():
    a = Identity.generate(DeterministicRng(b"x"))
    b = Identity.generate(DeterministicRng(b"x"))
    c = Identity.generate(DeterministicRng(b"y"))
    assert a.verify_key == b.verify_key != c.verify_key
    assert a.verify_key == Identity(DeterministicRng(b"x").bytes(32)).verify_key
    assert Identity.generate().verify_key != Identity.generate().verify_key


def test_bad_signature_raises_signature_error():
    ident = Identity(bytes(range(32)))
    message = b"round 1 payload"
    sig = ident.sign(message)
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        with pytest.raises(SignatureError):
            verify(ident.verify_key, message, bytes(bad))
    with pytest.raises(SignatureError):
        verify(ident.verify_key, message, bytes(64))
    for bad_len in (sig[:63], sig + b"\x00", b"", "s" * 64, None):
        with pytest.raises(SignatureError):
            verify(ident.verify_key, message, bad_len)


def test_wrong_message_or_key():
    ident = Identity(bytes(range(32)))
    other = Identity(bytes(range(1, 33)))
    sig = ident.sign(b"message")
    for message in (b"messagE", b"message ", b"", b"message"[:-1]):
        with pytest.raises(SignatureError):
            verify(ident.verify_key, message, sig)
    with pytest.raises(SignatureError):
        verify(other.verify_key, b"message", sig)
    with pytest.raises(SecAggError):
        verify(other.verify_key, b"message", sig)


def test_malformed_verify_key():
    ident = Identity(bytes(range(32)))
    sig = ident.sign(b"m")
    for bad in (ident.verify_key[:31], ident.verify_key + b"\x00", b"", "v" * 32, None, 7):
        with pytest.raises(ValueError):
            verify(bad, b"m", sig)


def test_verify_key_not_on_the_curve_does_not_verify():
    # 32 bytes that do not decode to a curve point: refused as a bad signature, never accepted.
    ident = Identity(bytes(range(32)))
    sig = ident.sign(b"m")
    bad_point = bytes([0x02]) + bytes(30) + b"\x80"
    with pytest.raises((SignatureError, ValueError)):
        verify(bad_point, b"m", sig)


def test_seed_errors():
    for bad in (bytes(31), bytes(33), b""):
        with pytest.raises(ValueError):
            Identity(bad)
    for bad in ("s" * 32, None, 5, list(range(32))):
        with pytest.raises(TypeError):
            Identity(bad)
    with pytest.raises(TypeError):
        Identity.generate(object())


def test_repr_contains_no_seed():
    seed = bytes(range(100, 132))
    ident = Identity(seed)
    text = repr(ident) + str(ident)
    assert seed.hex() not in text
    assert seed.hex()[:16] not in text
    assert repr(seed) not in text
    assert ident.verify_key.hex()[:16] in text
    assert not hasattr(ident, "__dict__")
