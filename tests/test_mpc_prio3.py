"""Prio3 beyond the official vectors: field arithmetic against naive formulas, end-to-end runs, refusals."""
from __future__ import annotations

import numpy as np
import pytest

from lepton_secagg.exceptions import DecodeError
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.mpc import prio3 as p3
from lepton_secagg.mpc.errors import ReportRejected
from lepton_secagg.mpc.field import Field64, Field128

CTX = b"lepton-secagg test"


def _naive_eval(field, coeffs, x):
    return sum(int(c) * pow(x, i, field.MODULUS) for i, c in enumerate(coeffs)) % field.MODULUS


@pytest.mark.parametrize("field", [Field64, Field128])
def test_coset_values_and_lagrange_eval_match_naive_evaluation(field):
    data = np.random.default_rng(1)  # test data only
    p = field.MODULUS
    coeffs = field.vec([int.from_bytes(data.bytes(16), "little") % p for _ in range(16)])
    w, s = field.root(16), field.root(32)
    values = field.vec([_naive_eval(field, coeffs, pow(w, i, p)) for i in range(16)])
    coset = field.coset_values(np.stack([values, values * 3 % p]))
    assert [int(v) for v in coset[0]] == [_naive_eval(field, coeffs, s * pow(w, i, p) % p) for i in range(16)]
    assert [int(v) for v in coset[1]] == [3 * int(v) % p for v in coset[0]]
    x = 123456789
    assert field.lagrange_eval(values[None, :], x)[0] == _naive_eval(field, coeffs, x)
    assert pow(w, 16, p) == 1 and pow(w, 8, p) != 1


@pytest.mark.parametrize("field", [Field64, Field128])
def test_decode_refuses_out_of_range_and_ragged(field):
    with pytest.raises(DecodeError, match="modulus"):
        field.decode_vec(field.MODULUS.to_bytes(field.ENCODED_SIZE, "little"))
    with pytest.raises(DecodeError, match="multiple"):
        field.decode_vec(b"\x00" * (field.ENCODED_SIZE + 1))
    v = field.vec([0, 1, field.MODULUS - 1])
    assert list(field.decode_vec(field.encode_vec(v))) == list(v)


def _run(vdaf, measurements, seed=0):
    """Shard, verify and aggregate; return (result, rejected indices)."""
    rng = DeterministicRng(seed)
    key = rng.bytes(vdaf.VERIFY_KEY_SIZE)
    outs = [[] for _ in range(vdaf.SHARES)]
    rejected = []
    for i, m in enumerate(measurements):
        nonce, public, shares = vdaf.new_report(CTX, m, rng)
        states, vshares = zip(*[vdaf.verify_init(key, CTX, a, nonce, public, shares[a]) for a in range(vdaf.SHARES)])
        try:
            msg = vdaf.verifier_shares_to_message(CTX, list(vshares))
        except ReportRejected:
            rejected.append(i)
            continue
        for a in range(vdaf.SHARES):
            outs[a].append(vdaf.verify_next(CTX, states[a], msg))
    aggs = [vdaf.encode_agg_share(vdaf.aggregate(o)) for o in outs]
    return vdaf.unshard(aggs, len(measurements) - len(rejected)), rejected


@pytest.mark.parametrize("make,measurements,expected", [
    (lambda: p3.prio3_count(3), [1, 0, 1, 1], 3),
    (lambda: p3.prio3_sum(2, 1000), [0, 999, 1000, 7], 2006),
    (lambda: p3.prio3_sum_vec(2, 5, 100, 4), [[1, 2, 3, 4, 100], [0, 0, 0, 0, 100]], [1, 2, 3, 4, 200]),
    (lambda: p3.prio3_histogram(2, 7, 3), [0, 6, 6, 3], [1, 0, 0, 1, 0, 0, 2]),
    (lambda: p3.prio3_multihot_count_vec(2, 5, 3, 2), [[1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], [1, 0, 1, 0, 1]),
    (lambda: p3.prio3_sum_vec_with_multiproof(2, Field64, 2, 3, 15, 2), [[15, 0, 1], [1, 1, 1]], [16, 1, 2]),
])
def test_honest_reports_aggregate_exactly(make, measurements, expected):
    result, rejected = _run(make(), measurements)
    assert rejected == [] and result == expected


def test_a_cheating_client_is_caught():
    """Shard a valid measurement, then move the leader's share of one digit by 2: the sum is no longer 0/1."""
    vdaf = p3.prio3_sum_vec(2, 4, 7, 3)
    rng = DeterministicRng(5)
    key = rng.bytes(32)
    nonce, public, shares = vdaf.new_report(CTX, [1, 2, 3, 4], rng)
    leader = bytearray(shares[0])
    meas = Field128.decode_vec(bytes(leader[:16]))
    leader[:16] = Field128.encode_vec((meas + 2) % Field128.MODULUS)
    shares = [bytes(leader), shares[1]]
    vshares = [vdaf.verify_init(key, CTX, a, nonce, public, shares[a])[1] for a in range(2)]
    with pytest.raises(ReportRejected) as info:
        vdaf.verifier_shares_to_message(CTX, vshares)
    assert info.value.step == "verifier_shares_to_message"


@pytest.mark.parametrize("make,bad,match", [
    (lambda: p3.prio3_count(2), 2, r"\[0, 1\]"),
    (lambda: p3.prio3_sum(2, 10), 11, r"\[0, 10\]"),
    (lambda: p3.prio3_sum_vec(2, 3, 10, 2), [1, 2], "3 entries"),
    (lambda: p3.prio3_histogram(2, 4, 2), 4, r"\[0, 3\]"),
    (lambda: p3.prio3_multihot_count_vec(2, 4, 1, 2), [1, 1, 0, 0], "max_weight"),
])
def test_client_refuses_invalid_measurements(make, bad, match):
    vdaf = make()
    with pytest.raises(ValueError, match=match):
        vdaf.shard(CTX, bad, bytes(16), bytes(vdaf.RAND_SIZE))


def test_malformed_bytes_raise_decode_errors():
    vdaf = p3.prio3_histogram(2, 4, 2)
    nonce, public, shares = vdaf.new_report(CTX, 1, DeterministicRng(1))
    key = bytes(32)
    with pytest.raises(DecodeError, match="public share"):
        vdaf.verify_init(key, CTX, 0, nonce, public[:-1], shares[0])
    with pytest.raises(DecodeError, match="helper input share"):
        vdaf.verify_init(key, CTX, 1, nonce, public, shares[1] + b"\x00")
    with pytest.raises(DecodeError, match="leader input share"):
        vdaf.verify_init(key, CTX, 0, nonce, public, shares[0][:-1])
    with pytest.raises(ValueError, match="shares"):
        p3.prio3_count(1)


@pytest.mark.parametrize("field", [Field64, Field128])
def test_field_kernels_agree_with_their_specification(field):
    """The C field kernels (when built) and _native give the same limbs; both match naive arithmetic."""
    from lepton_secagg._kernels import _native

    kernels = [(_native.field_transform, _native.field_dot)]
    try:
        from lepton_secagg._kernels import _field
        kernels.append((_field.transform, _field.dot))
    except ImportError:
        pass
    data = np.random.default_rng(5)  # test data
    p = field.MODULUS
    rows, n = 3, 16
    values = field.vec([int.from_bytes(data.bytes(16), "little") % p for _ in range(rows * n)]).reshape(rows, n)
    values[0, 0] = p - 1  # the largest element
    w = field.root(n)
    twiddles = field._limbs(field.powers(w, n // 2))
    pre = field.vec([int.from_bytes(data.bytes(16), "little") % p for _ in range(n)])
    weights = field.vec([int.from_bytes(data.bytes(16), "little") % p for _ in range(n)])
    results = []
    for transform, dot in kernels:
        buf = field._limbs(values)
        transform(buf, rows, n, field.WORDS, twiddles, field._limbs(pre), field._limbs(np.array([7], dtype=object)))
        out = np.empty((rows, field.WORDS), dtype=np.uint64)
        dot(field._limbs(values), rows, n, field.WORDS, field._limbs(weights), out)
        results.append((buf.tobytes(), out.tobytes()))
        got = field._from_limbs(buf).reshape(rows, n)
        for r in range(rows):
            coeffs = values[r] * pre % p
            assert [int(x) for x in got[r]] == [7 * _naive_eval(field, coeffs, pow(w, i, p)) % p for i in range(n)]
        assert [int(x) for x in field._from_limbs(out)] == [int((values[r] * weights % p).sum() % p) for r in range(rows)]
    assert all(r == results[0] for r in results)
    with pytest.raises(ValueError, match="modulus"):
        bad = field._limbs(values)
        bad[0] = np.iinfo(np.uint64).max
        kernels[-1][0](bad, rows, n, field.WORDS, twiddles, None, None)
