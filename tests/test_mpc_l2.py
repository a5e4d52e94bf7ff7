"""The bounded-L2 fixed-point circuit: our vectors, an independent slow implementation, properties."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.mpc.errors import ReportRejected
from lepton_secagg.mpc.l2 import BoundedL2VecSum, norm_bound_sq, prio3_bounded_l2_vec_sum

from . import mpc_reference as ref
from .test_mpc_vectors import ROOT as DRAFT, check_outcomes, replay

HERE = Path(__file__).parent / "vectors" / "mpc-l2"
FILES = sorted(HERE.glob("*.json"))
CTX = b"l2 tests"


def _make(v):
    return prio3_bounded_l2_vec_sum(v["shares"], v["length"], v["bits"], v["max_norm_sq"],
                                    chunk_length=v["chunk_length"], norm_chunk_length=v["norm_chunk_length"])


def _reference(v):
    circuit = BoundedL2VecSum(v["length"], v["bits"], v["max_norm_sq"], v["chunk_length"], v["norm_chunk_length"])
    return ref.Prio3Ref(0xFFFF1002, ref.L2Ref(v["length"], v["bits"], v["max_norm_sq"], circuit.chunk_length,
                                              circuit.norm_chunk_length), v["shares"])


def test_the_vector_set_is_complete():
    assert [p.name for p in FILES] == ["Prio3BoundedL2VecSum_0.json", "Prio3BoundedL2VecSum_1.json",
                                       "Prio3BoundedL2VecSum_bad_norm_claim.json",
                                       "Prio3BoundedL2VecSum_bad_scaled_digit.json"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_library_reproduces_our_vectors(path):
    check_outcomes(path, list(replay(path, _make)))


def test_reference_reproduces_an_official_draft_vector():
    """The slow reference is trusted only because it reproduces the draft's SumVec vector byte for byte."""
    v = json.loads((DRAFT / "vdaf" / "Prio3SumVec_0.json").read_text())
    vdaf = ref.Prio3Ref(3, ref.SumVecRef(ref.F128, v["length"], v["max_measurement"], v["chunk_length"]), v["shares"])
    _reference_replay(vdaf, v)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_reference_reproduces_our_vectors(path):
    v = json.loads(path.read_text())
    _reference_replay(_reference(v), v)


def _reference_replay(vdaf, v):
    ctx, key = bytes.fromhex(v["ctx"]), bytes.fromhex(v["verify_key"])
    for r in v["reports"]:
        nonce = bytes.fromhex(r["nonce"])
        if r["measurement"] is not None:
            public, shares = vdaf.shard(ctx, r["measurement"], nonce, bytes.fromhex(r["rand"]))
            assert public.hex() == r["public_share"]
            assert [s.hex() for s in shares] == r["input_shares"]
        results = [vdaf.verify_init(key, ctx, a, nonce, bytes.fromhex(r["public_share"]), bytes.fromhex(r["input_shares"][a]))
                   for a in range(vdaf.s)]
        assert [share.hex() for _, share in results] == r["verifier_shares"][0]
        msg = vdaf.verifier_shares_to_message(ctx, [share for _, share in results])
        if r["verifier_messages"]:
            assert msg.hex() == r["verifier_messages"][0]
            assert [vdaf.c.f.enc(state[0]).hex() for state, _ in results] == r["out_shares"]
        else:
            assert msg is None


def _run(vdaf, measurement, seed):
    rng = DeterministicRng(seed)
    key = rng.bytes(32)
    nonce, public, shares = vdaf.new_report(CTX, measurement, rng)
    states, vshares = zip(*[vdaf.verify_init(key, CTX, a, nonce, public, shares[a]) for a in range(vdaf.SHARES)])
    msg = vdaf.verifier_shares_to_message(CTX, list(vshares))
    outs = [vdaf.verify_next(CTX, s, msg) for s in states]
    return vdaf.unshard([vdaf.encode_agg_share(o) for o in outs], 1)


LENGTH, BITS = 6, 5
MAX_NORM_SQ = 150
VDAF = prio3_bounded_l2_vec_sum(2, LENGTH, BITS, MAX_NORM_SQ)
# Small entries keep about half the draws within the bound; the wide ones reach the range edges.
entries = st.lists(st.one_of(st.integers(-5, 5), st.integers(-16, 15)), min_size=LENGTH, max_size=LENGTH)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=entries, seed=st.integers(0, 2**32))
def test_inputs_within_the_bound_are_accepted_and_summed_exactly(q, seed):
    if sum(x * x for x in q) > MAX_NORM_SQ:
        with pytest.raises(ValueError, match="max_norm_sq"):
            VDAF.shard(CTX, np.array(q), bytes(16), bytes(VDAF.RAND_SIZE))
    else:
        assert _run(VDAF, np.array(q), seed) == q


class _Cheater(BoundedL2VecSum):
    """A malicious client's encoder: any digits it likes."""

    def __init__(self, honest, digits):
        self.__dict__.update(honest.__dict__)
        self._digits = digits

    def encode(self, measurement):
        return np.array(self._digits, dtype=object)


def _cheat(digits, seed):
    vdaf = prio3_bounded_l2_vec_sum(2, LENGTH, BITS, MAX_NORM_SQ)
    vdaf.flp.circuit = _Cheater(vdaf.flp.circuit, digits)
    return _run(vdaf, None, seed)


def _digits(c, q, claimed):
    return [((v + c.offset) >> i) & 1 for v in q for i in range(c.bits)] + list(c.norm.encode([claimed]))


@settings(max_examples=20, deadline=None)
@given(q=entries, seed=st.integers(0, 2**32), claim=st.integers(0, MAX_NORM_SQ))
def test_inputs_over_the_bound_are_rejected_whatever_norm_is_claimed(q, seed, claim):
    c = VDAF.flp.circuit
    if sum(x * x for x in q) <= MAX_NORM_SQ:
        q = [15] * LENGTH  # norm 1350 > 150
    with pytest.raises(ReportRejected):
        _cheat(_digits(c, q, claim), seed)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), index=st.integers(0, LENGTH * BITS - 1), scale=st.integers(2, 10**12))
def test_a_scaled_digit_is_rejected(seed, index, scale):
    c = VDAF.flp.circuit
    digits = _digits(c, [1, 0, 0, 0, 0, 0], 1)
    digits[index] = scale  # not 0/1: an entry scaled out of range
    with pytest.raises(ReportRejected):
        _cheat(digits, seed)


def test_the_honest_encoding_passes_through_the_cheater_path():
    """The cheat helper itself is sound: honest digits through it are accepted."""
    c = VDAF.flp.circuit
    assert _cheat(_digits(c, [3, -4, 0, 0, 0, 1], 26), 7) == [3, -4, 0, 0, 0, 1]


def test_quantise_and_bound():
    c = BoundedL2VecSum(4, 8, norm_bound_sq(1.0, 8))
    assert c.max_norm_sq == 128**2
    assert list(c.quantise([0.5, -0.5, 0.999, -1.0])) == [64, -64, 127, -128]
    with pytest.raises(ValueError, match="NaN"):
        c.quantise([0.0, float("nan"), 0.0, 0.0])
    with pytest.raises(ValueError, match="bits"):
        BoundedL2VecSum(4, 1, 10)
    assert VDAF.flp.soundness_error() < 2**-100
