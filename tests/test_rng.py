"""The injectable randomness source (``hazmat.rng``)."""
from __future__ import annotations

import hashlib

import pytest
from Crypto.Cipher import AES

from lepton_secagg.hazmat.rng import DeterministicRng, Rng, SystemRng, resolve


@pytest.mark.parametrize("n", [0, 1, 16, 31, 32, 33, 1000])
def test_system_rng_lengths(n):
    out = SystemRng().bytes(n)
    assert isinstance(out, bytes)
    assert len(out) == n


def test_system_rng_is_not_constant():
    rng = SystemRng()
    draws = {rng.bytes(16) for _ in range(8)}
    assert len(draws) == 8
    assert SystemRng().bytes(32) != bytes(32)


@pytest.mark.parametrize("rng", [SystemRng(), DeterministicRng(b"s")], ids=["system", "deterministic"])
def test_count_errors(rng):
    for bad in (-1, -100):
        with pytest.raises(ValueError):
            rng.bytes(bad)
    for bad in (1.0, "4", None, True, b"4"):
        with pytest.raises(TypeError):
            rng.bytes(bad)


def test_deterministic_rng_documented_construction():
    """AES-128-CTR from counter 0, keyed by SHA-256(label || type tag || seed)[:16]."""
    key = hashlib.sha256(b"lepton-secagg/v1/deterministic-rng" + b"B" + b"seed").digest()[:16]
    expected = AES.new(key, AES.MODE_ECB).encrypt(bytes(16) + (1).to_bytes(16, "big"))
    assert DeterministicRng(b"seed").bytes(32) == expected


@pytest.mark.parametrize("seed", [b"seed", b"", "text seed", 0, 1, 255, 2**64 + 3])
def test_deterministic_rng_is_reproducible(seed):
    a, b = DeterministicRng(seed), DeterministicRng(seed)
    assert a.bytes(100) == b.bytes(100)
    # a stream: the next draw continues where the last one ended
    whole = DeterministicRng(seed).bytes(100)
    parts = DeterministicRng(seed)
    assert parts.bytes(7) + parts.bytes(0) + parts.bytes(93) == whole
    assert whole != bytes(100)


def test_seed_types_do_not_collide():
    assert DeterministicRng(97).bytes(8) != DeterministicRng("a").bytes(8)
    assert DeterministicRng(0).bytes(8) != DeterministicRng(b"\x00").bytes(8)


def test_deterministic_rng_is_seed_sensitive():
    streams = {
        DeterministicRng(seed).bytes(32)
        for seed in (b"a", b"b", b"a\x00", b"", b"\x00", "b2", 2, 3, 256, 2**70)
    }
    assert len(streams) == 10


def test_str_seed_uses_its_utf8_encoding():
    key = hashlib.sha256(b"lepton-secagg/v1/deterministic-rng" + b"S" + "héllo".encode()).digest()[:16]
    assert DeterministicRng("héllo").bytes(16) == AES.new(key, AES.MODE_ECB).encrypt(bytes(16))


def test_fork_independence():
    parent = DeterministicRng(b"root")
    child_a = parent.fork("a")
    child_b = parent.fork("a")  # same label, later point of the parent: a different stream
    a_bytes, b_bytes = child_a.bytes(64), child_b.bytes(64)
    assert a_bytes != b_bytes
    # a fork is reproducible from the same parent state
    again = DeterministicRng(b"root").fork("a")
    assert again.bytes(64) == a_bytes
    # labels matter, str and bytes labels agree
    assert DeterministicRng(b"root").fork("a").bytes(32) != DeterministicRng(b"root").fork("b").bytes(32)
    assert DeterministicRng(b"root").fork("lab").bytes(32) == DeterministicRng(b"root").fork(b"lab").bytes(32)
    # drawing from a child does not move the parent
    p1, p2 = DeterministicRng(b"root"), DeterministicRng(b"root")
    p1.fork("x").bytes(1000)
    p2.fork("x")
    assert p1.bytes(32) == p2.bytes(32)
    # the child's stream is not the parent's stream
    p = DeterministicRng(b"root")
    child = p.fork("c")
    assert child.bytes(32) != DeterministicRng(b"root").bytes(32)
    assert isinstance(child, DeterministicRng)


def test_bad_seeds():
    for bad in (None, 1.5, True, False, [1], bytearray(b"x")):
        with pytest.raises(TypeError):
            DeterministicRng(bad)
    with pytest.raises(ValueError):
        DeterministicRng(-1)


def test_repr_reveals_nothing():
    secret = b"very secret seed"
    rng = DeterministicRng(secret)
    text = repr(rng) + str(rng)
    assert "secret" not in text
    assert secret.hex() not in text
    assert repr(SystemRng()) == "SystemRng()"
    assert "seed" not in repr(DeterministicRng(12345)).replace("seeded", "")
    assert "12345" not in repr(DeterministicRng(12345))


def test_resolve():
    assert isinstance(resolve(None), SystemRng)
    rng = DeterministicRng(b"x")
    assert resolve(rng) is rng
    assert isinstance(rng, Rng) and isinstance(SystemRng(), Rng)

    class Duck:
        def bytes(self, n):
            return bytes(n)

    duck = Duck()
    assert resolve(duck) is duck
    for bad in (object(), b"bytes", 3, "rng"):
        with pytest.raises(TypeError):
            resolve(bad)
