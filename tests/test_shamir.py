"""Shamir sharing over GF(2^31 - 1): recovery, refusal, forgery detection, batching."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_secagg.exceptions import ReconstructionError
from lepton_secagg.hazmat import shamir
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.hazmat.shamir import (
    MAX_SECRET_SIZE,
    MAX_SHARES,
    PRIME,
    Share,
    lagrange_coefficients,
    reconstruct,
    reconstruct_many,
    share_size,
    split,
    split_many,
)


@st.composite
def sharings(draw):
    n = draw(st.integers(1, 60))
    t = draw(st.integers(1, n))
    secret = draw(st.binary(min_size=1, max_size=80))
    seed = draw(st.integers(0, 2**32))
    return n, t, secret, random.Random(seed)


def _forge(share: Share, position: int = 5) -> Share:
    value = bytearray(share.value)
    value[position] ^= 0x01
    return Share(index=share.index, value=bytes(value))


@given(sharings())
def test_any_t_shares_reconstruct(case):
    n, t, secret, chooser = case
    shares = split(secret, n, t, DeterministicRng(chooser.getrandbits(64)))
    assert [s.index for s in shares] == list(range(1, n + 1))
    assert {len(s.value) for s in shares} == {share_size(len(secret))}
    assert reconstruct(chooser.sample(shares, t), t) == secret
    assert reconstruct(chooser.sample(shares, chooser.randint(t, n)), t) == secret


@given(sharings())
def test_fewer_than_t_shares_raise(case):
    n, t, secret, chooser = case
    shares = split(secret, n, t)
    with pytest.raises(ReconstructionError, match=f"needs {t} distinct shares"):
        reconstruct(chooser.sample(shares, t - 1), t)


@given(st.integers(2, 40).flatmap(lambda t: st.tuples(st.just(t), st.integers(t + 1, 60))), st.data())
def test_a_forged_share_among_more_than_t_is_detected(t_n, data):
    t, n = t_n
    shares = split(b"\x07" * 32, n, t)
    chosen = data.draw(st.permutations(shares)).copy()[: data.draw(st.integers(t + 1, n))]
    victim = data.draw(st.integers(0, len(chosen) - 1))
    # Bytes 2.. are the limbs; flipping bit 0 of one keeps it below p.
    chosen[victim] = _forge(chosen[victim], position=data.draw(st.integers(2, len(chosen[victim].value) - 1)))
    # (a flip that pushes a limb to p or above is refused as malformed instead)
    with pytest.raises(ReconstructionError, match="forged or corrupted|malformed"):
        reconstruct(chosen, t)


def test_exactly_t_shares_cannot_detect_a_forgery_but_do_not_return_the_secret():
    shares = split(b"secret" * 5, 10, 4, DeterministicRng(3))
    try:
        recovered = reconstruct([_forge(shares[0])] + shares[1:4], 4)
    except ReconstructionError:
        return  # the forged limb left the 30-bit range: also fine
    assert recovered != b"secret" * 5


def test_duplicates_count_once_and_conflicts_raise():
    shares = split(b"k" * 32, 5, 3)
    assert reconstruct(shares[:3] + shares[:3], 3) == b"k" * 32
    with pytest.raises(ReconstructionError, match="needs 3 distinct"):
        reconstruct([shares[0], shares[0], shares[1]], 3)
    with pytest.raises(ReconstructionError, match="index 2 but different values"):
        reconstruct(shares[:3] + [_forge(shares[1])], 3)


def test_shares_of_different_secret_lengths_do_not_mix():
    short = split(b"a" * 16, 5, 3, DeterministicRng(1))
    long = split(b"a" * 32, 5, 3, DeterministicRng(1))
    with pytest.raises(ReconstructionError, match="different lengths"):
        reconstruct([short[0], long[1], long[2]], 3)
    # Same value size (31 and 32 bytes both use 9 limbs) but different length headers.
    other = split(b"a" * 31, 5, 3)
    assert len(other[0].value) == len(long[0].value)
    with pytest.raises(ReconstructionError, match="different secret lengths"):
        reconstruct([other[0], long[1], long[2]], 3)


def test_malformed_share_values_raise():
    shares = split(b"z" * 32, 4, 2)
    with pytest.raises(ReconstructionError, match="malformed"):
        reconstruct([Share(1, b"\x05\x00" + shares[0].value[2:]), Share(2, b"\x05\x00" + shares[1].value[2:])], 2)
    big = bytes(2) + b"\xff\xff\xff\xff" * 9
    with pytest.raises(ReconstructionError, match="malformed"):
        reconstruct([Share(1, b"\x20\x00" + big[2:]), Share(2, b"\x20\x00" + big[2:])], 2)
    with pytest.raises(ReconstructionError, match="too short"):
        reconstruct([Share(1, b"\x01"), Share(2, b"\x01")], 2)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: split("text", 3, 2), TypeError),
        (lambda: split(bytearray(b"ab"), 3, 2), TypeError),
        (lambda: split(b"", 3, 2), ValueError),
        (lambda: split(bytes(MAX_SECRET_SIZE + 1), 3, 2), ValueError),
        (lambda: split(b"ab", 3, 4), ValueError),
        (lambda: split(b"ab", 3, 0), ValueError),
        (lambda: split(b"ab", 0, 0), ValueError),
        (lambda: split(b"ab", MAX_SHARES + 1, 2), ValueError),
        (lambda: split(b"ab", 3.0, 2), TypeError),
        (lambda: split(b"ab", 3, True), TypeError),
        (lambda: split(b"ab", 3, 2, rng=object()), TypeError),
        (lambda: split_many(b"ab", 3, 2), TypeError),
        (lambda: reconstruct([b"ab"], 1), TypeError),
        (lambda: reconstruct(split(b"ab", 3, 2), 0), ValueError),
        (lambda: reconstruct(split(b"ab", 3, 2), "2"), TypeError),
        (lambda: reconstruct(iter(split(b"ab", 3, 2)), 2), TypeError),
        (lambda: Share(index=0, value=b"x"), ValueError),
        (lambda: Share(index=MAX_SHARES + 1, value=b"x"), ValueError),
        (lambda: Share(index=True, value=b"x"), TypeError),
        (lambda: Share(index=1.0, value=b"x"), TypeError),
        (lambda: Share(index=1, value="x"), TypeError),
        (lambda: lagrange_coefficients((1, 1)), ValueError),
        (lambda: lagrange_coefficients(()), ValueError),
        (lambda: lagrange_coefficients((0, 1)), ValueError),
        (lambda: lagrange_coefficients((1, "2")), TypeError),
        (lambda: lagrange_coefficients({1, 2}), TypeError),
    ],
)
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_share_repr_hides_the_value():
    share = split(b"\xab" * 32, 3, 2)[0]
    assert "value" not in repr(share) and share.value.hex() not in repr(share)


def test_deterministic_rng_gives_deterministic_shares():
    first = split(b"seeded secret", 7, 4, DeterministicRng("vector"))
    again = split(b"seeded secret", 7, 4, DeterministicRng("vector"))
    other = split(b"seeded secret", 7, 4, DeterministicRng("other"))
    assert first == again
    assert [s.value for s in first] != [s.value for s in other]


def test_shares_do_not_reveal_the_secret():
    # Every limb of the all-zero secret has constant term 0; with t >= 2 the
    # shares must still be random, differing across seeds and from the secret.
    secret = bytes(32)
    for t in (2, 3):
        values = {split(secret, 5, t, DeterministicRng(seed))[0].value for seed in range(20)}
        assert len(values) == 20
        assert all(v[2:] != bytes(36) for v in values)
    # Threshold 1 is a constant polynomial: the share is the secret, by definition.
    assert reconstruct([split(secret, 5, 1)[3]], 1) == secret


def test_coefficients_are_uniform_field_elements():
    draws = shamir._random_elements(DeterministicRng(9), 200_000)
    assert draws.dtype == np.uint64 and int(draws.max()) < PRIME
    # the top bit of a 31-bit uniform value is set half the time
    assert abs(np.mean(draws >= 1 << 30) - 0.5) < 5 * 0.5 / np.sqrt(draws.size)


def test_rejection_sampling_discards_p():
    class AllOnesThenZeros:
        def __init__(self):
            self.calls = 0

        def bytes(self, n):
            self.calls += 1
            return b"\xff" * n if self.calls == 1 else bytes(n)

    rng = AllOnesThenZeros()
    assert shamir._random_elements(rng, 3).tolist() == [0, 0, 0]
    assert rng.calls == 2


def test_lagrange_coefficients_match_the_definition_and_are_cached():
    indices = (9, 2, 5, 11)
    expected = []
    for xi in indices:
        num = den = 1
        for xj in indices:
            if xj != xi:
                num, den = num * xj % PRIME, den * (xj - xi) % PRIME
        expected.append(num * pow(den, PRIME - 2, PRIME) % PRIME)
    shamir._lagrange_at_zero.cache_clear()
    assert lagrange_coefficients(indices).tolist() == expected
    assert lagrange_coefficients(tuple(sorted(indices))).tolist() == [expected[i] for i in (1, 2, 0, 3)]
    info = shamir._lagrange_at_zero.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    # the cached array cannot be corrupted through the public function
    lagrange_coefficients(indices)[:] = 0
    assert lagrange_coefficients(indices).tolist() == expected


def test_reconstruct_reuses_cached_coefficients():
    shares = split_many([b"one" * 10, b"two" * 10], 9, 5)
    shamir._lagrange_at_zero.cache_clear()
    reconstruct(shares[0][2:7], 5)
    reconstruct(shares[1][2:7], 5)
    info = shamir._lagrange_at_zero.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_split_many_matches_split_and_reconstruct_many_matches_reconstruct():
    secrets = [b"a", b"bb" * 16, bytes(range(200)), b"\xff" * 31]
    batch = split_many(secrets, 12, 6, DeterministicRng("batch"))
    rng = DeterministicRng("batch")
    assert batch == [split(s, 12, 6, rng) for s in secrets]
    chooser = random.Random(1)
    lists = [shares[:6] for shares in batch[:2]] + [chooser.sample(shares, 8) for shares in batch[2:]]
    assert reconstruct_many(lists, 6) == secrets == [reconstruct(s, 6) for s in lists]
    assert split_many([], 12, 6) == [] and reconstruct_many([], 6) == []


def test_reconstruct_many_names_the_failing_list():
    batch = split_many([b"x" * 32] * 4, 8, 3)
    lists = [shares[:5] for shares in batch]
    lists[2] = lists[2][:4] + [_forge(lists[2][4])]
    with pytest.raises(ReconstructionError, match="share list 2: .*forged"):
        reconstruct_many(lists, 3)
    with pytest.raises(ReconstructionError, match="share list 1: .*needs 3"):
        reconstruct_many([batch[0], batch[1][:2]], 3)


def test_maximum_secret_and_large_n():
    secret = bytes(range(256)) * 4
    shares = split(secret, 300, 151, DeterministicRng(5))
    assert reconstruct(random.Random(2).sample(shares, 200), 151) == secret


def _outcome(shares, t):
    try:
        return reconstruct(shares, t)
    except ReconstructionError as exc:
        return exc


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_reconstruct_many_matches_reconstruct_on_differing_index_sets(data):
    t = data.draw(st.integers(1, 12), label="t")
    n = data.draw(st.integers(t, 24), label="n")
    count = data.draw(st.integers(1, 40), label="lists")
    chooser = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    length_pool = data.draw(st.sampled_from([[32], [31, 32], [1, 7, 32, 100]]), label="lengths")
    secrets = [chooser.randbytes(chooser.choice(length_pool)) for _ in range(count)]
    batch = split_many(secrets, n, t, DeterministicRng(chooser.getrandbits(64)))
    # "shared": most lists use one index set (the cached per-set path), else each its own
    shared = data.draw(st.booleans(), label="shared")
    common = chooser.sample(range(n), chooser.randint(t, n))
    lists = []
    for shares in batch:
        picked = common if shared and chooser.random() < 0.9 else chooser.sample(range(n), chooser.randint(t, n))
        lists.append([shares[i] for i in chooser.sample(picked, len(picked))])
    for _ in range(data.draw(st.integers(0, 3), label="faults")):
        k = chooser.randrange(count)
        kind = data.draw(st.sampled_from(["forge", "few", "duplicate", "conflict"]), label="kind")
        if kind == "few":
            lists[k] = lists[k][: chooser.randrange(t)]
        elif not lists[k]:
            continue
        elif kind == "forge":
            victim = chooser.randrange(len(lists[k]))
            lists[k][victim] = _forge(lists[k][victim], position=chooser.randrange(2, len(lists[k][victim].value)))
        else:
            victim = chooser.choice(lists[k])
            lists[k].append(victim if kind == "duplicate" else _forge(victim))
    if data.draw(st.booleans(), label="tuples"):
        lists = [[(share.index, share.value) for share in shares] for shares in lists]

    expected = [_outcome(shares, t) for shares in lists]
    failures = [k for k, outcome in enumerate(expected) if isinstance(outcome, ReconstructionError)]
    if not failures:
        assert reconstruct_many(lists, t) == expected
        return
    # malformed lists (bad counts, conflicts, values outside the field) are
    # reported before inconsistent ones; otherwise the first failing list
    malformed = [k for k in failures if "forged or corrupted" not in str(expected[k])]
    first = min(malformed or failures)
    with pytest.raises(ReconstructionError) as info:
        reconstruct_many(lists, t)
    assert str(info.value) == f"share list {first}: {expected[first]}"


def test_reconstruct_many_differing_index_sets_recover_and_name_forgeries():
    secrets = [bytes([k]) * 32 for k in range(50)]
    batch = split_many(secrets, 41, 19, DeterministicRng("differing"))
    chooser = random.Random(4)
    lists = [chooser.sample(shares, 33) for shares in batch]
    assert reconstruct_many(lists, 19) == secrets
    pairs = [[(share.index, share.value) for share in shares] for shares in lists]
    assert reconstruct_many(pairs, 19) == secrets
    for victim in (0, 17, 49):
        forged = [list(shares) for shares in lists]
        spot = chooser.randrange(33)
        # byte 3 is in the low half of the first limb, which so stays below p
        forged[victim][spot] = _forge(forged[victim][spot], position=3)
        with pytest.raises(ReconstructionError, match=f"^share list {victim}: the 33 shares do not lie"):
            reconstruct_many(forged, 19)
    with pytest.raises(ReconstructionError, match="^share list 7: reconstruction needs 19 distinct shares, got 18"):
        reconstruct_many(lists[:7] + [lists[7][:18]] + lists[8:], 19)


def test_reconstruct_many_survives_index_set_hash_collisions(monkeypatch):
    # every row hashes alike: the per-set path must notice the sets differ
    monkeypatch.setattr(shamir.reconstruction, "_row_hash_weights", lambda count: np.zeros(count, dtype=np.uint64))
    secrets = [bytes([k]) * 16 for k in range(40)]
    batch = split_many(secrets, 12, 5, DeterministicRng("collide"))
    chooser = random.Random(8)
    lists = [chooser.sample(shares, 8) for shares in batch]
    assert reconstruct_many(lists, 5) == secrets


@pytest.mark.parametrize(
    "share, error",
    [((0, b"x" * 6), ValueError), ((1.0, b"x" * 6), TypeError), ((True, b"x" * 6), TypeError),
     ((1, "x"), TypeError), ((1,), TypeError), ((1, b"x" * 6, 2), TypeError)],
)
def test_reconstruct_many_validates_tuples_like_shares(share, error):
    good = [(share.index, share.value) for share in split(b"abcd", 3, 2)]
    with pytest.raises(error):
        reconstruct_many([good, [share] + good], 2)
    with pytest.raises(error):
        reconstruct([share] + good, 2)


def test_share_fast_constructor_keeps_the_dataclass_behaviour():
    import dataclasses
    import enum

    class Position(enum.IntEnum):
        FIRST = 1

    share = Share(3, b"v")
    assert share == Share(index=3, value=b"v") and hash(share) == hash(Share(3, b"v"))
    assert share != Share(4, b"v") and share != (3, b"v")
    assert dataclasses.replace(share, index=5) == Share(5, b"v")
    assert Share(Position.FIRST, b"v").index == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        share.index = 4
    with pytest.raises(TypeError):
        Share(3)


# --- robust reconstruction (error correction) ------------------------------

CORRUPTIONS = ["value", "one_limb", "cancelling", "truncated", "extended", "out_of_field", "header", "conflict"]


def _corrupt(share: Share, kind: str, chooser: random.Random) -> list[Share]:
    """Shares replacing ``share`` so that its index is wrong (one share, or two for "conflict")."""
    value = bytearray(share.value)
    limbs = (len(value) - 2) // 4
    if limbs < 1 and (kind not in ("truncated", "extended", "conflict") or not value):
        kind = "extended"  # a share truncated by an earlier draw has no header or limb left to change
    if kind in ("value", "one_limb", "cancelling"):
        new = [int.from_bytes(value[2 + 4 * k : 6 + 4 * k], "little") for k in range(limbs)]
        if kind == "value":
            new = [chooser.randrange(PRIME) for _ in range(limbs)]
        elif kind == "one_limb" or limbs < 3:
            k = chooser.randrange(limbs)
            new[k] = (new[k] + chooser.randrange(1, PRIME)) % PRIME
        else:
            # errors d (c - 1)(c - 2) = d (2 - 3c + c^2) in limbs 0..2: they cancel in
            # the combinations c = 1 and c = 2 of the limbs, which the decoder tries first
            d = chooser.randrange(1, PRIME)
            for k, factor in enumerate((2, -3, 1)):
                new[k] = (new[k] + factor * d) % PRIME
        value[2:] = b"".join(v.to_bytes(4, "little") for v in new)
        if bytes(value) == share.value:  # "value" drew the very same limbs
            value[2] ^= 1
    elif kind == "truncated":
        value = value[: chooser.randrange(len(value))]
    elif kind == "extended":
        value += bytes(4)
    elif kind == "out_of_field":
        k = chooser.randrange(limbs)
        value[2 + 4 * k : 6 + 4 * k] = chooser.randrange(PRIME, 1 << 32).to_bytes(4, "little")
    elif kind == "header":
        value[0] ^= 1 << chooser.randrange(8)
    else:  # "conflict": the right share plus a second, different value for its index
        return [share, _corrupt(share, "value", chooser)[0]]
    return [Share(share.index, bytes(value))]


@st.composite
def corrupted_sharings(draw, beyond: int = 0):
    """(shares, t, secret, wrong indices): s shares of which radius + ``beyond`` at most are corrupted."""
    t = draw(st.integers(1, 30), label="t")
    s = draw(st.integers(t, t + 40), label="s")
    n = draw(st.integers(s, s + 10), label="n")
    secret = draw(st.binary(min_size=1, max_size=64), label="secret")
    chooser = random.Random(draw(st.integers(0, 2**32), label="seed"))
    radius = (s - t) // 2
    if beyond:
        count = radius + beyond
    else:
        # the boundary, e = radius, is drawn often
        count = draw(st.one_of(st.just(radius), st.integers(0, radius)), label="errors")
    kinds = draw(st.lists(st.sampled_from(CORRUPTIONS), min_size=count, max_size=count), label="kinds")
    shares = chooser.sample(split(secret, n, t, DeterministicRng(chooser.getrandbits(64))), s)
    victims = chooser.sample(range(s), count)
    given = [share for k, share in enumerate(shares) if k not in victims]
    for victim, kind in zip(victims, kinds):
        given += _corrupt(shares[victim], kind, chooser)
    chooser.shuffle(given)
    if draw(st.booleans(), label="tuples"):
        given = [(share.index, share.value) for share in given]
    return given, t, secret, tuple(sorted(shares[k].index for k in victims))


@settings(max_examples=300, deadline=None)
@given(corrupted_sharings())
def test_robust_reconstruction_corrects_every_pattern_within_the_radius(case):
    shares, t, secret, wrong = case
    assert shamir.reconstruct_robust(shares, t) == (secret, wrong)


@settings(max_examples=150, deadline=None)
@given(corrupted_sharings(beyond=1), st.integers(1, 3))
def test_robust_reconstruction_beyond_the_radius_raises_or_is_right_about_what_it_returns(case, extra):
    shares, t, secret, wrong = case
    try:
        recovered, reported = shamir.reconstruct_robust(shares, t)
    except ReconstructionError as exc:
        assert "too many inconsistent shares" in str(exc) or "needs" in str(exc) or "encodes" in str(exc)
        return
    # only possible if the corrupted shares happen to agree with another
    # polynomial: then it is the unique one within the radius of what was given
    s = len({share[0] if isinstance(share, tuple) else share.index for share in shares})
    assert len(reported) <= (s - t) // 2 and recovered != secret
    kept = [share for share in shares if (share[0] if isinstance(share, tuple) else share.index) not in reported]
    assert reconstruct(kept, t) == recovered


@pytest.mark.parametrize("t, s", [(1, 1), (1, 2), (1, 3), (2, 4), (3, 8), (19, 33), (20, 33), (5, 6)])
def test_robust_reconstruction_at_the_exact_boundary(t, s):
    secret = b"boundary" * 4
    shares = split(secret, s, t, DeterministicRng(f"{t}-{s}"))
    radius = (s - t) // 2
    chooser = random.Random(s * 100 + t)
    for kind in ("value", "one_limb", "out_of_field", "conflict"):
        victims = chooser.sample(shares, radius)
        given = [share for share in shares if share not in victims]
        for victim in victims:
            given += _corrupt(victim, kind, chooser)
        assert shamir.reconstruct_robust(given, t) == (secret, tuple(sorted(v.index for v in victims)))
        if s == t:
            continue  # nothing to check against (as with reconstruct)
        victims = chooser.sample(shares, radius + 1)
        given = [share for share in shares if share not in victims]
        for victim in victims:
            given += _corrupt(victim, kind, chooser)
        with pytest.raises(ReconstructionError, match="too many inconsistent shares|needs"):
            shamir.reconstruct_robust(given, t)


def test_robust_reconstruction_returns_the_majority_polynomial_of_two_mixed_sharings():
    # shares of A at indices 1..9 and of B at 10..20 (t = 3, s = 20, radius 8):
    # 11 >= ceil(23 / 2) = 12 fails, so it raises; one more B share and B wins.
    first = split(b"A" * 16, 21, 3, DeterministicRng("a"))
    second = split(b"B" * 16, 21, 3, DeterministicRng("b"))
    with pytest.raises(ReconstructionError, match="too many inconsistent shares"):
        shamir.reconstruct_robust(first[:9] + second[9:20], 3)
    assert shamir.reconstruct_robust(first[:9] + second[9:21], 3) == (b"B" * 16, tuple(range(1, 10)))
    assert shamir.reconstruct_robust(first[:12] + second[12:21], 3) == (b"A" * 16, tuple(range(13, 22)))


def test_robust_reconstruction_without_errors_equals_reconstruct():
    secret = bytes(range(40))
    shares = split(secret, 30, 11, DeterministicRng(7))
    for count in (11, 12, 20, 30):
        subset = random.Random(count).sample(shares, count)
        assert shamir.reconstruct_robust(subset, 11) == (reconstruct(subset, 11), ())
    # repeated identical shares count once
    assert shamir.reconstruct_robust(shares[:12] + shares[:5], 11) == (secret, ())


def test_robust_reconstruction_refusals():
    shares = split(b"r" * 32, 10, 4, DeterministicRng(1))
    with pytest.raises(ReconstructionError, match="needs 4 distinct shares, got 3"):
        shamir.reconstruct_robust(shares[:3], 4)
    # 5 distinct indices, radius 0: one conflict leaves 4 usable shares, too many wrong
    with pytest.raises(ReconstructionError, match="too many inconsistent"):
        shamir.reconstruct_robust(shares[:5] + [_forge(shares[0])], 4)
    # 4 distinct, one malformed: fewer than t usable
    with pytest.raises(ReconstructionError, match="needs 4 well-formed shares, got 3"):
        shamir.reconstruct_robust(shares[:3] + [Share(4, b"\x01")], 4)
    with pytest.raises(ReconstructionError, match="too many inconsistent"):
        shamir.reconstruct_robust([Share(k, b"\x01") for k in range(1, 8)], 4)
    with pytest.raises(TypeError):
        shamir.reconstruct_robust([b"ab"], 1)
    with pytest.raises(ValueError):
        shamir.reconstruct_robust([(0, b"x" * 6)] + shares, 4)
    with pytest.raises(ValueError):
        shamir.reconstruct_robust(shares, 0)


def test_robust_reconstruction_refuses_a_polynomial_that_encodes_no_secret():
    # consistent shares of a "secret" limb >= 2^30: no secret, whatever is corrected
    bogus = [(1 << 30) + 5] + [0] * 8
    shares = split(b"\x00" * 32, 9, 3, DeterministicRng(2))
    x_shift = [int.from_bytes(s.value[2:6], "little") for s in shares]
    forged = []
    for share, low in zip(shares, x_shift):
        value = bytearray(share.value)
        value[2:6] = ((low + bogus[0]) % PRIME).to_bytes(4, "little")
        forged.append(Share(share.index, bytes(value)))
    with pytest.raises(ReconstructionError, match="no secret encodes"):
        shamir.reconstruct_robust(forged, 3)
    with pytest.raises(ReconstructionError, match="no secret encodes"):
        shamir.reconstruct_robust(forged[:8] + [_forge(shares[8], position=3)], 3)


def test_robust_reconstruction_survives_errors_crafted_to_cancel_in_many_limb_combinations():
    # a 32-byte secret has 9 limbs; errors with coefficients of prod_{j=1..8} (c - j)
    # vanish in the combinations c = 1..8: only the ninth round can see them
    coefficients = [1]
    for j in range(1, 9):
        coefficients = [(a - j * b) % PRIME for a, b in zip(coefficients + [0], [0] + coefficients)]
    coefficients = coefficients[::-1]  # by power of c
    secret = bytes(range(32))
    shares = split(secret, 40, 20, DeterministicRng(3))
    chooser = random.Random(5)
    victims = chooser.sample(range(40), 10)
    given = list(shares)
    for k, victim in enumerate(victims):
        limbs = [int.from_bytes(shares[victim].value[2 + 4 * i : 6 + 4 * i], "little") for i in range(9)]
        d = k + 1
        limbs = [(v + d * e) % PRIME for v, e in zip(limbs, coefficients)]
        given[victim] = Share(shares[victim].index, shares[victim].value[:2] + b"".join(v.to_bytes(4, "little") for v in limbs))
    assert shamir.reconstruct_robust(given, 20) == (secret, tuple(sorted(v + 1 for v in victims)))


def test_robust_reconstruction_large():
    secret = bytes(range(32))
    shares = split(secret, 1000, 501, DeterministicRng(4))
    chooser = random.Random(6)
    for count in (0, 1, 10, 249):
        victims = chooser.sample(range(1000), count)
        given = list(shares)
        for victim in victims:
            given[victim] = _corrupt(shares[victim], chooser.choice(CORRUPTIONS[:3]), chooser)[0]
        assert shamir.reconstruct_robust(given, 501) == (secret, tuple(sorted(v + 1 for v in victims)))
    victims = chooser.sample(range(1000), 250)
    given = list(shares)
    for victim in victims:
        given[victim] = _corrupt(shares[victim], "value", chooser)[0]
    with pytest.raises(ReconstructionError, match="too many inconsistent"):
        shamir.reconstruct_robust(given, 501)


def test_grs_weights_match_the_definition():
    for indices in [(1, 2, 3, 4, 5), (2, 3, 5, 8), tuple(range(1, 101)), (1, 2, 4, 5, 6, 7), (3, 700, 900, 1024)]:
        expected = []
        for xi in indices:
            den = 1
            for xj in indices:
                if xj != xi:
                    den = den * (xi - xj) % PRIME
            expected.append(pow(den, PRIME - 2, PRIME))
        assert shamir._grs_weights(indices).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, PRIME - 1), min_size=0, max_size=120), st.integers(0, 2**32))
def test_berlekamp_massey_paths_agree_and_generate_the_sequence(terms, seed):
    # also sequences with a short recurrence, as syndromes of few errors are
    chooser = random.Random(seed)
    if terms and chooser.random() < 0.5:
        order = chooser.randint(1, max(1, len(terms) // 3))
        taps = [chooser.randrange(PRIME) for _ in range(order)]
        for n in range(order, len(terms)):
            terms[n] = sum(c * terms[n - 1 - i] for i, c in enumerate(taps)) % PRIME
    sequence = np.array(terms, dtype=np.uint64)
    results = [shamir._bm_python(terms), shamir._bm_numpy(sequence), shamir._berlekamp_massey(sequence)]
    assert all(c.tolist() == results[0][0].tolist() and length == results[0][1] for c, length in results)
    locator, length = results[0]
    assert locator[0] == 1 and len(locator) == length + 1
    for n in range(length, len(terms)):
        assert sum(int(c) * terms[n - i] for i, c in enumerate(locator)) % PRIME == 0


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reconstruct_many_robust_equals_per_list_calls(data):
    t = data.draw(st.integers(1, 10), label="t")
    n = data.draw(st.integers(t, 24), label="n")
    count = data.draw(st.integers(1, 30), label="lists")
    chooser = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    secrets = [chooser.randbytes(chooser.choice([1, 16, 32, 40])) for _ in range(count)]
    batch = split_many(secrets, n, t, DeterministicRng(chooser.getrandbits(64)))
    shared = data.draw(st.booleans(), label="shared")
    common = chooser.sample(range(n), chooser.randint(t, n))
    lists = []
    for shares in batch:
        picked = common if shared and chooser.random() < 0.9 else chooser.sample(range(n), chooser.randint(t, n))
        lists.append([shares[i] for i in picked])
    for _ in range(data.draw(st.integers(0, 6), label="corrupted lists")):
        k = chooser.randrange(count)
        s = len({share.index for share in lists[k]})
        errors = data.draw(st.integers(0, (s - t) // 2 + (1 if chooser.random() < 0.2 else 0)), label="errors")
        for victim in chooser.sample(range(len(lists[k])), min(errors, len(lists[k]))):
            replacement = _corrupt(lists[k][victim], data.draw(st.sampled_from(CORRUPTIONS), label="kind"), chooser)
            lists[k][victim] = replacement[-1]
            if len(replacement) == 2:
                lists[k].append(replacement[0])
    if data.draw(st.booleans(), label="tuples"):
        lists = [[(share.index, share.value) for share in shares] for shares in lists]

    def outcome(shares):
        try:
            return shamir.reconstruct_robust(shares, t)
        except ReconstructionError as exc:
            return exc

    expected = [outcome(shares) for shares in lists]
    failures = [k for k, result in enumerate(expected) if isinstance(result, ReconstructionError)]
    if failures:
        with pytest.raises(ReconstructionError) as info:
            shamir.reconstruct_many_robust(lists, t)
        assert str(info.value) == f"share list {failures[0]}: {expected[failures[0]]}"
    else:
        assert shamir.reconstruct_many_robust(lists, t) == ([e[0] for e in expected], [e[1] for e in expected])


def test_reconstruct_many_robust_decodes_only_the_failing_lists(monkeypatch):
    secrets = [bytes([k]) * 32 for k in range(60)]
    batch = split_many(secrets, 41, 19, DeterministicRng("robust batch"))
    chooser = random.Random(9)
    lists = [chooser.sample(shares, 33) for shares in batch]
    for victim, errors in ((3, 1), (30, 7), (59, 2)):
        for k in chooser.sample(range(33), errors):
            lists[victim][k] = _corrupt(lists[victim][k], "one_limb", chooser)[0]
    calls = []
    original = shamir.reconstruct_robust
    monkeypatch.setattr(shamir.robust, "reconstruct_robust", lambda shares, t: calls.append(1) or original(shares, t))
    recovered, wrong = shamir.reconstruct_many_robust(lists, 19)
    assert recovered == secrets and len(calls) == 3
    assert [k for k, w in enumerate(wrong) if w] == [3, 30, 59] and [len(wrong[k]) for k in (3, 30, 59)] == [1, 7, 2]
    assert shamir.reconstruct_many_robust([], 19) == ([], [])
    with pytest.raises(TypeError):
        shamir.reconstruct_many_robust(iter(lists), 19)
