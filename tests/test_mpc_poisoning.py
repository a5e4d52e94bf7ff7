"""The poisoning demo as a test, and the batch API it runs on (replay, minimum batch, refusals)."""
from __future__ import annotations

import pytest

from lepton_secagg.exceptions import LocalProtocolError
from lepton_secagg.fl.poisoning import run
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.mpc import prio3_sum
from lepton_secagg.mpc.batch import Aggregator, Report, aggregate_in_process, make_report, verify_report
from lepton_secagg.mpc.errors import ReportRejected

CTX = b"batch tests"


def test_one_boosted_client_breaks_secagg_but_not_prio3_with_the_l2_circuit():
    result = run(rounds=6)
    assert result.rejected == [1] * 6  # the attacker's report, every round
    # Prio3 trains as if the attacker were absent ...
    for clean, prio3 in zip(result.clean, result.prio3):
        assert prio3 == pytest.approx(clean, rel=1e-3)
    assert result.prio3[-1] < result.prio3[0] / 5
    # ... while under SecAgg the attacker's (per-coordinate clipped) update holds the model back.
    assert result.secagg[-1] > 5 * result.clean[-1]


def test_batch_sums_valid_reports_and_names_the_refused_ones():
    vdaf = prio3_sum(2, 100)
    rng = DeterministicRng(3)
    reports = [make_report(vdaf, CTX, m, rng) for m in (5, 50, 100)]
    bad = reports[1]
    forged = Report(bad.report_id, bad.public_share, (bad.input_shares[0][:8] + bytes(8) + bad.input_shares[0][16:],
                                                       bad.input_shares[1]))
    out = aggregate_in_process(vdaf, bytes(32), CTX, [reports[0], forged, reports[2], reports[0]])
    assert out.result == 105
    assert out.accepted == (reports[0].report_id, reports[2].report_id)
    assert set(out.rejected) == {bad.report_id, reports[0].report_id}
    assert "replay" in out.rejected[reports[0].report_id]


def test_minimum_batch_size_is_enforced():
    vdaf = prio3_sum(2, 10)
    report = make_report(vdaf, CTX, 3, DeterministicRng(1))
    with pytest.raises(LocalProtocolError, match="min_batch_size=2"):
        aggregate_in_process(vdaf, bytes(32), CTX, [report], min_batch_size=2)


def test_an_aggregator_refuses_a_seen_report_id():
    vdaf = prio3_sum(2, 10)
    report = make_report(vdaf, CTX, 3, DeterministicRng(2))
    aggs = [Aggregator(vdaf, i, bytes(32), CTX) for i in range(2)]
    verify_report(vdaf, CTX, aggs, report)
    with pytest.raises(ReportRejected, match="replay"):
        aggs[0].start(report.report_id, report.public_share, report.input_shares[0])
    assert vdaf.unshard([a.aggregate_share([report.report_id]) for a in aggs], 1) == 3


def test_demo_poisoning_command(capsys):
    import json

    from lepton_secagg.cli import main

    assert main(["demo", "poisoning", "--rounds", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is True and out["rejected"] == [1, 1, 1]
    assert out["prio3"] == pytest.approx(out["clean"], rel=1e-3)
