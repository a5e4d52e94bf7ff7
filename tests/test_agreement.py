"""X25519 (RFC 7748) and HKDF-SHA256 (RFC 5869) known answers, and derive_key's domain separation."""
from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lepton_secagg.hazmat import agreement
from lepton_secagg.hazmat.agreement import (
    KeyPair,
    derive_key,
    generate_keypair,
    hkdf_sha256,
    keypair_from_private,
    shared_secret,
)
from lepton_secagg.hazmat.rng import DeterministicRng
from tests.utils import load_vectors, unhex

X25519 = load_vectors("rfc7748_x25519")
LOW_ORDER = load_vectors("x25519_low_order")
HKDF = load_vectors("rfc5869_hkdf_sha256")


# ------------------------------------------------------------------ RFC 7748


@pytest.mark.parametrize("vec", X25519["scalar_mult"], ids=lambda v: v["name"])
def test_rfc7748_5_2_scalar_mult(vec):
    assert shared_secret(unhex(vec["scalar"]), unhex(vec["u"])) == unhex(vec["output"])


def test_rfc7748_5_2_top_bit_of_u_is_masked():
    vec = X25519["scalar_mult"][1]
    u = bytearray(unhex(vec["u"]))
    assert u[31] & 0x80  # the RFC's input has bit 255 set
    u[31] &= 0x7F
    assert shared_secret(unhex(vec["scalar"]), bytes(u)) == unhex(vec["output"])


def test_rfc7748_5_2_iterated():
    vec = X25519["iterated"]
    k = u = unhex(vec["start"])
    for i in range(1, 1001):
        k, u = shared_secret(k, u), k
        if i == 1:
            assert k == unhex(vec["after_1"])
    assert k == unhex(vec["after_1000"])


def test_rfc7748_6_1_diffie_hellman():
    vec = X25519["diffie_hellman"]
    alice = keypair_from_private(unhex(vec["alice_private"]))
    bob = keypair_from_private(unhex(vec["bob_private"]))
    assert alice.public == unhex(vec["alice_public"])
    assert bob.public == unhex(vec["bob_public"])
    assert alice.private == unhex(vec["alice_private"])
    expected = unhex(vec["shared_secret"])
    assert shared_secret(alice.private, bob.public) == expected
    assert shared_secret(bob.private, alice.public) == expected
    # bytearray inputs are accepted and give the same answers
    assert shared_secret(bytearray(alice.private), bytearray(bob.public)) == expected
    assert keypair_from_private(bytearray(unhex(vec["bob_private"]))).public == unhex(vec["bob_public"])


@pytest.mark.parametrize("top_bit", [False, True], ids=["canonical", "bit255-set"])
@pytest.mark.parametrize("point", LOW_ORDER["points"], ids=lambda p: p["name"])
def test_low_order_points_are_refused(point, top_bit):
    u = bytearray(unhex(point["u"]))
    if top_bit:
        u[31] |= 0x80
    for private in (unhex(X25519["diffie_hellman"]["alice_private"]), bytes(range(32))):
        with pytest.raises(ValueError):
            shared_secret(private, bytes(u))


def test_keypair_repr_hides_the_private_key():
    vec = X25519["diffie_hellman"]
    pair = keypair_from_private(unhex(vec["alice_private"]))
    text = repr(pair)
    assert "private" not in text
    assert vec["alice_private"] not in text
    assert repr(unhex(vec["alice_private"])) not in text
    assert isinstance(pair, KeyPair)


def test_generate_keypair_uses_the_rng():
    a = generate_keypair(DeterministicRng(b"alice"))
    again = generate_keypair(DeterministicRng(b"alice"))
    other = generate_keypair(DeterministicRng(b"bob"))
    assert a == again
    assert a.public != other.public
    assert a.private == DeterministicRng(b"alice").bytes(32)
    assert keypair_from_private(a.private).public == a.public
    fresh1, fresh2 = generate_keypair(), generate_keypair()
    assert fresh1.private != fresh2.private
    assert len(fresh1.public) == agreement.KEY_SIZE == 32
    assert shared_secret(a.private, other.public) == shared_secret(other.private, a.public)
    with pytest.raises(TypeError):
        generate_keypair(object())


def test_key_argument_errors():
    good = bytes(range(32))
    pub = keypair_from_private(good).public
    for bad in (good[:31], good + b"\x00", b""):
        with pytest.raises(ValueError):
            keypair_from_private(bad)
        with pytest.raises(ValueError):
            shared_secret(bad, pub)
        with pytest.raises(ValueError):
            shared_secret(good, bad)
    for bad in ("a" * 32, None, 5, list(good)):
        with pytest.raises(TypeError):
            keypair_from_private(bad)
        with pytest.raises(TypeError):
            shared_secret(bad, pub)
        with pytest.raises(TypeError):
            shared_secret(good, bad)


# ------------------------------------------------------------------ RFC 5869


@pytest.mark.parametrize("case", HKDF["cases"], ids=lambda c: c["name"])
def test_rfc5869_hkdf_sha256(case):
    okm = hkdf_sha256(unhex(case["ikm"]), case["length"], salt=unhex(case["salt"]), info=unhex(case["info"]))
    assert okm == unhex(case["okm"])
    assert len(okm) == case["length"]


@pytest.mark.parametrize("case", HKDF["cases"], ids=lambda c: c["name"])
def test_rfc5869_prk_with_stdlib_hmac(case):
    """The vector's intermediate PRK, checked with the standard library: HMAC-SHA256(salt or 0^32, IKM)."""
    salt = unhex(case["salt"]) or bytes(32)
    prk = hmac.new(salt, unhex(case["ikm"]), hashlib.sha256).digest()
    assert prk == unhex(case["prk"])
    t, okm = b"", b""
    for i in range(1, -(-case["length"] // 32) + 1):
        t = hmac.new(prk, t + unhex(case["info"]) + bytes([i]), hashlib.sha256).digest()
        okm += t
    assert okm[: case["length"]] == unhex(case["okm"])


def test_rfc5869_case3_empty_salt_is_the_default():
    case = HKDF["cases"][2]
    assert case["salt"] == "" and case["info"] == ""
    assert hkdf_sha256(unhex(case["ikm"]), 42) == unhex(case["okm"])
    assert hkdf_sha256(unhex(case["ikm"]), 42, salt=bytes(32)) == unhex(case["okm"])


def test_hkdf_prefix_property_and_bounds():
    ikm = b"input keying material"
    long = hkdf_sha256(ikm, 255 * 32, info=b"x")
    assert len(long) == 8160
    for n in (1, 31, 32, 33, 100):
        assert hkdf_sha256(ikm, n, info=b"x") == long[:n]
    for bad in (0, -1, 8161, True, 1.0, "32", None):
        with pytest.raises(ValueError):
            hkdf_sha256(ikm, bad)
    for kwargs in ({"salt": "s"}, {"info": "i"}, {"salt": None}):
        with pytest.raises(TypeError):
            hkdf_sha256(ikm, 32, **kwargs)
    with pytest.raises(TypeError):
        hkdf_sha256("ikm", 32)
    assert hkdf_sha256(bytearray(ikm), 16, salt=bytearray(b"s"), info=bytearray(b"i")) == hkdf_sha256(
        ikm, 16, salt=b"s", info=b"i"
    )


# ------------------------------------------------------------------ derive_key


def _info(purpose: str, session_id: bytes = b"", round: str = "", parties=()) -> bytes:
    """The documented info string, built independently of the module."""
    out = b"lepton-secagg/v1/" + purpose.encode()
    out += struct.pack(">I", len(session_id)) + session_id
    out += struct.pack(">I", len(round.encode())) + round.encode()
    ids = sorted(parties)
    out += struct.pack(">I", len(ids)) + b"".join(struct.pack(">Q", i) for i in ids)
    return out


SECRET = bytes.fromhex(X25519["diffie_hellman"]["shared_secret"])


def test_derive_key_matches_the_documented_info_string():
    got = derive_key(SECRET, "share-key", 32, session_id=b"\x01\x02", round="advertise", parties=(7, 3))
    assert got == hkdf_sha256(SECRET, 32, info=_info("share-key", b"\x01\x02", "advertise", (3, 7)))
    assert agreement.LABEL_PREFIX == b"lepton-secagg/v1/"
    assert derive_key(SECRET, "p") == hkdf_sha256(SECRET, 32, info=_info("p"))


def test_derive_key_domain_separation():
    base = dict(session_id=b"session-1", round="share-keys", parties=(1, 2))
    reference = derive_key(SECRET, "aead", **base)
    variants = [
        derive_key(SECRET, "mask", **base),
        derive_key(SECRET, "aead", **{**base, "session_id": b"session-2"}),
        derive_key(SECRET, "aead", **{**base, "round": "masked-input"}),
        derive_key(SECRET, "aead", **{**base, "parties": (1, 3)}),
        derive_key(SECRET, "aead", **{**base, "parties": (1, 2, 3)}),
        derive_key(SECRET, "aead", **{**base, "parties": ()}),
        derive_key(bytes(32), "aead", **base),
        derive_key(SECRET, "aead"),
    ]
    assert len({reference, *variants}) == len(variants) + 1


def test_derive_key_length_prefixes_prevent_field_shifting():
    # Moving bytes between the session id and the round must change the key.
    a = derive_key(SECRET, "x", session_id=b"ab", round="c")
    b = derive_key(SECRET, "x", session_id=b"a", round="bc")
    assert a != b
    # A purpose cannot absorb the following fields.
    c = derive_key(SECRET, "x" + "\x00\x00\x00\x00", session_id=b"")
    assert c != derive_key(SECRET, "x")


def test_derive_key_party_order_does_not_matter():
    k1 = derive_key(SECRET, "pair", session_id=b"s", round="r", parties=(5, 2))
    k2 = derive_key(SECRET, "pair", session_id=b"s", round="r", parties=(2, 5))
    k3 = derive_key(SECRET, "pair", session_id=b"s", round="r", parties=[2, 5])
    assert k1 == k2 == k3


@pytest.mark.parametrize("length", [1, 16, 32, 33, 64, 100])
def test_derive_key_output_length(length):
    key = derive_key(SECRET, "len", length)
    assert len(key) == length
    assert derive_key(SECRET, "len", 100)[:length] == key


def test_derive_key_errors():
    for purpose in ("", None, b"bytes", 3):
        with pytest.raises(ValueError):
            derive_key(SECRET, purpose)
    for parties in ((1, -1), (1, True), (1, 2.0), (1, "2")):
        with pytest.raises((ValueError, TypeError)):
            derive_key(SECRET, "p", parties=parties)
    with pytest.raises(ValueError):
        derive_key(SECRET, "p", parties=(-1,))
    with pytest.raises(ValueError):
        derive_key(SECRET, "p", 0)


@given(ikm=st.binary(max_size=80), salt=st.binary(max_size=80), info=st.binary(max_size=200), length=st.integers(1, 400))
def test_hkdf_matches_pycryptodome(ikm, salt, info, length):
    from Crypto.Hash import SHA256
    from Crypto.Protocol.KDF import HKDF

    assert hkdf_sha256(ikm, length, salt, info) == HKDF(ikm, length, salt or bytes(32), SHA256, context=info)
