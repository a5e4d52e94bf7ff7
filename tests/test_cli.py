"""The command line: every sub-command's --json last line, exit codes, and python -m."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lepton_secagg import cli


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_simulate_json_reports_ok(capsys):
    rc = cli.main(["simulate", "--clients", "12", "--length", "64", "--dropout", "0.25", "--seed", "3", "--json", "-q"])
    report = _last_json(capsys.readouterr().out)
    assert rc == 0 and report["ok"] is True
    assert report["clients"] == 12
    assert len(report["included"]) >= 12 - 3
    assert set(report["rounds"]) == {"advertise_keys", "share_keys", "masked_input", "unmasking"}
    assert report["rounds"]["masked_input"]["bytes_up"] > 0


@pytest.mark.parametrize("extra", [["--secagg-plus", "--clients", "60"], ["--mode", "active", "--corrupt", "0.1", "--clients", "8"],
                                   ["--neighbors", "6", "--clients", "12", "--prg", "chacha20", "--bits", "40"]])
def test_simulate_variants(capsys, extra):
    rc = cli.main(["simulate", "--length", "32", "--dropout", "0.1", "--seed", "1", "--json", "-q", *extra])
    assert rc == 0 and _last_json(capsys.readouterr().out)["ok"] is True


def test_active_mode_without_corrupt_is_refused_with_the_option_named(capsys):
    rc = cli.main(["simulate", "-n", "8", "-m", "4", "--mode", "active", "--json", "-q"])
    assert rc == cli.EXIT_USAGE == 2 and "--corrupt" in capsys.readouterr().err


def test_simulate_table_without_json(capsys):
    assert cli.main(["simulate", "-n", "6", "-m", "10", "--seed", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "masked_input" in out and "matches the plaintext sum" in out


def test_simulate_too_few_survivors_exits_3(capsys):
    rc = cli.main(["simulate", "-n", "6", "-m", "10", "--dropout", "0.8", "--seed", "1", "--json", "-q"])
    report = _last_json(capsys.readouterr().out)
    assert rc == cli.EXIT_ABORTED == 3 and report["ok"] is False and "threshold" in report["aborted"]


def test_demo_json_reports_ok(capsys):
    rc = cli.main(["demo", "--clients", "10", "--length", "200", "--dropout", "0.3", "--seed", "4", "--json", "-q"])
    report = _last_json(capsys.readouterr().out)
    assert rc == 0 and report["ok"] is True
    assert report["clients"] == 10
    assert len(report["crashed"]) == 3
    assert set(report["rounds"]) == {"advertise_keys", "share_keys", "masked_input", "unmasking"}
    assert report["seconds"] > 0


def test_demo_secagg_plus_active(capsys):
    rc = cli.main(["demo", "--clients", "40", "--length", "50", "--secagg-plus", "--mode", "active", "--corrupt", "0.05", "--dropout", "0.1", "--seed", "5", "--json", "-q"])
    report = _last_json(capsys.readouterr().out)
    assert rc == 0 and report["ok"] is True and "consistency_check" in report["rounds"]


def test_python_m_demo_default_sizes():
    """`python -m lepton_secagg demo` (what `make demo` runs) with its default sizes."""
    proc = subprocess.run([sys.executable, "-m", "lepton_secagg", "demo", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = _last_json(proc.stdout)
    assert report["ok"] is True and report["clients"] == 20
    assert "decoded sum == plaintext sum" in proc.stderr


def test_bench_tolerates_missing_scripts(tmp_path, capsys):
    (tmp_path / "kernel_ratios.py").write_text("import sys\nprint('table', sys.argv[1:])\n")
    rc = cli.main(["bench", "--bench-dir", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    report = _last_json(captured.out)
    assert rc == 0 and report["scripts"] == {"kernel_ratios.py": "ok", "protocol_table.py": "missing"}
    assert "not present" in captured.err and "['--quick']" in captured.err


def test_bench_failing_script_is_reported(tmp_path, capsys):
    (tmp_path / "protocol_table.py").write_text("raise SystemExit(3)\n")
    assert cli.main(["bench", "--bench-dir", str(tmp_path), "--json"]) == cli.EXIT_WRONG == 4
    assert _last_json(capsys.readouterr().out)["scripts"]["protocol_table.py"] == "exit 3"


def test_join_unreachable_server_fails_cleanly(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(4, dtype=np.uint32))
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc = cli.main(["join", "--server", f"127.0.0.1:{port}", "--id", "0", "--input", str(path), "--json", "--timeout", "2"])
    report = _last_json(capsys.readouterr().out)
    assert rc == cli.EXIT_SESSION_FAILED == 5 and report["ok"] is False and report["status"] == "failed"


def test_bad_arguments_give_a_clear_error(capsys):
    rc = cli.main(["simulate", "-n", "6", "-m", "10", "--threshold", "2", "--json"])
    report = _last_json(capsys.readouterr().out)
    assert rc == cli.EXIT_REFUSED == 1 and report["ok"] is False and "threshold" in report["error"]
    with pytest.raises(SystemExit):
        cli.main(["join", "--server", "nohostport", "--id", "0", "--input", "x.npy"])
