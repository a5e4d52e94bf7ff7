"""`lepton-secagg demo dp`: one DDP aggregation over loopback TCP, with crashes."""
from __future__ import annotations

import json

from lepton_secagg import cli


def test_demo_dp_json(capsys):
    rc = cli.main(["demo", "dp", "--clients", "8", "--length", "100", "--bits", "14", "--dropout", "0.25",
                   "--epsilon", "2", "--seed", "2", "--json", "-q"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["ok"] is True
    assert len(res["included"]) == 6 and res["bits"] == 14
    assert res["epsilon"] <= 2.0 + 1e-9 and res["epsilon"] > 1.9  # calibrated for the 6 survivors
    assert 0.5 * res["predicted_error"] < res["error"] < 2 * res["predicted_error"]
    assert res["ring_bytes_per_client"] == 14 * 128 // 8
