"""Every official draft-irtf-cfrg-vdaf-20 vector (tests/vectors/vdaf-draft-20/), reproduced byte for byte.

Each JSON file is loaded (a file this test does not know fails it): the XOF
vectors are re-derived, the Prio3 ones are replayed operation by operation
(shard, verify_init, verifier_shares_to_message, verify_next, aggregate,
unshard) and each output compared with the vector; a ``bad_*`` file must
fail exactly at the operation it marks ``"success": false``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_secagg.exceptions import DecodeError
from lepton_secagg.mpc import prio3 as p3
from lepton_secagg.mpc.errors import ReportRejected
from lepton_secagg.mpc.field import Field64, Field128
from lepton_secagg.mpc.xof import XofFixedKeyAes128, XofTurboShake128

ROOT = Path(__file__).parent / "vectors" / "vdaf-draft-20"
FILES = sorted(p for p in ROOT.rglob("*.json"))


def _instance(name: str, v: dict) -> p3.Prio3:
    s = v["shares"]
    makers = {
        "Prio3Count": lambda: p3.prio3_count(s),
        "Prio3Sum": lambda: p3.prio3_sum(s, v["max_measurement"]),
        "Prio3SumVec": lambda: p3.prio3_sum_vec(s, v["length"], v["max_measurement"], v["chunk_length"]),
        "Prio3Histogram": lambda: p3.prio3_histogram(s, v["length"], v["chunk_length"]),
        "Prio3MultihotCountVec": lambda: p3.prio3_multihot_count_vec(s, v["length"], v["max_weight"], v["chunk_length"]),
        # The draft's multiproof vectors use Field64 with three proofs (the sizes say so).
        "Prio3SumVecWithMultiproof": lambda: p3.prio3_sum_vec_with_multiproof(
            s, Field64, 3, v["length"], v["max_measurement"], v["chunk_length"]),
    }
    return makers[name]()


def test_every_file_is_known():
    names = {p.name.split("_")[0].removesuffix(".json") for p in FILES}
    assert names == {"XofTurboShake128", "XofFixedKeyAes128", "Prio3Count", "Prio3Sum", "Prio3SumVec",
                     "Prio3Histogram", "Prio3MultihotCountVec", "Prio3SumVecWithMultiproof"}
    assert len(FILES) == 26
    assert sum("_bad_" in p.name for p in FILES) == 8


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith("Xof")], ids=lambda p: p.name)
def test_xof(path):
    v = json.loads(path.read_text())
    xof = {"XofTurboShake128": XofTurboShake128, "XofFixedKeyAes128": XofFixedKeyAes128}[path.stem]
    args = [bytes.fromhex(v[k]) for k in ("seed", "dst", "binder")]
    assert xof.derive_seed(*args).hex() == v["derived_seed"]
    vec = xof.expand_into_vec(Field128, *args, v["length"])
    assert Field128.encode_vec(vec).hex() == v["expanded_vec_field128"]
    # Reading the stream in pieces gives the same bytes as one read.
    stream = xof(*args)
    assert b"".join(stream.next(n) for n in (1, 15, 17, 31)) == xof(*args).next(64)


def replay(path: Path, make=None):
    """Run the vector's operations in order; yield (operation, outcome) where outcome is True or the error.

    ``make(vector)`` builds the Prio3 instance (default: the draft's, from the file name).
    """
    v = json.loads(path.read_text())
    vdaf = make(v) if make else _instance(path.name.split("_")[0], v)
    ctx, key = bytes.fromhex(v["ctx"]), bytes.fromhex(v["verify_key"])
    states, out_shares, agg_shares = {}, {}, {}
    reports = v["reports"]
    for op in v["operations"]:
        name, i, a = op["operation"], op.get("report_index"), op.get("aggregator_id")
        r = reports[i] if i is not None else None
        try:
            if name == "shard":
                public, shares = vdaf.shard(ctx, r["measurement"], bytes.fromhex(r["nonce"]), bytes.fromhex(r["rand"]))
                assert public.hex() == r["public_share"]
                assert [s.hex() for s in shares] == r["input_shares"]
            elif name == "verify_init":
                state, share = vdaf.verify_init(key, ctx, a, bytes.fromhex(r["nonce"]), bytes.fromhex(r["public_share"]),
                                                bytes.fromhex(r["input_shares"][a]))
                states[i, a] = state
                if op["success"]:
                    assert share.hex() == r["verifier_shares"][0][a]
            elif name == "verifier_shares_to_message":
                msg = vdaf.verifier_shares_to_message(ctx, [bytes.fromhex(s) for s in r["verifier_shares"][op["round"]]])
                assert msg.hex() == r["verifier_messages"][op["round"]]
            elif name == "verify_next":
                out = vdaf.verify_next(ctx, states[i, a], bytes.fromhex(r["verifier_messages"][op["round"] - 1]))
                assert vdaf.field.encode_vec(out).hex() == r["out_shares"][a]
                out_shares.setdefault(a, []).append(out)
            elif name == "aggregate":
                agg = vdaf.encode_agg_share(vdaf.aggregate(out_shares[a]))
                assert agg.hex() == v["agg_shares"][a]
                agg_shares[a] = agg
            elif name == "unshard":
                result = vdaf.unshard([agg_shares[a] for a in range(vdaf.SHARES)], len(reports))
                assert result == v["agg_result"]
            else:
                raise AssertionError(f"unknown operation {name}")
        except (ReportRejected, DecodeError) as exc:
            yield op, exc
        else:
            yield op, True


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith("Prio3")], ids=lambda p: p.name)
def test_prio3(path):
    check_outcomes(path, list(replay(path)))


def check_outcomes(path, ops):
    assert ops, "a vector without operations"
    for op, outcome in ops:
        if op["success"]:
            assert outcome is True, f"{op} failed: {outcome}"
        else:
            assert outcome is not True, f"{op} should have been refused"
            if isinstance(outcome, ReportRejected):
                assert outcome.step == op["operation"]
    assert any(not op["success"] for op, _ in ops) == ("_bad_" in path.name)


def test_a_corrupted_honest_vector_fails(tmp_path):
    """The replay can fail: flip one byte of an expected output and the comparison must trip."""
    path = ROOT / "vdaf" / "Prio3Sum_0.json"
    v = json.loads(path.read_text())
    v["reports"][0]["out_shares"][0] = ("00" if v["reports"][0]["out_shares"][0][:2] != "00" else "01") + \
        v["reports"][0]["out_shares"][0][2:]
    tmp = tmp_path / "Prio3Sum_corrupted.json"
    tmp.write_text(json.dumps(v))
    with pytest.raises(AssertionError):
        list(replay(tmp))
