"""The command line fails cleanly and early: each failure's exit code and message (file named,
range given), checked before anything listens or connects, so no session's work is lost."""
from __future__ import annotations

import json
import pickle
import re
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg import cli, wire
from lepton_secagg.messages import Abort
from lepton_secagg.transport.framing import frame

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def listener():
    """A listening socket that accepts nothing: a command that connected would leave a connection in its backlog."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s, f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _no_connection(sock) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


# --- argument ranges (argparse: exit 2 = EXIT_USAGE, the allowed range in the message) --------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "-n", "5", "-m", "4", "--dropout", "2"], "argument --dropout: must be in [0, 1], got 2"),
        (["simulate", "-n", "5", "-m", "4", "--dropout", "-0.5"], "argument --dropout: must be in [0, 1], got -0.5"),
        (["simulate", "-n", "5", "-m", "4", "--dropout", "nan"], "argument --dropout: must be in [0, 1], got nan"),
        (["simulate", "-n", "5", "-m", "4", "--corrupt", "1"], "argument --corrupt: must be in [0, 1), got 1"),
        (["simulate", "-n", "1", "-m", "4"], "argument --clients/-n: must be in 2..1048576, got 1"),
        (["simulate", "-n", "5", "-m", "0"], "argument --length/-m: must be in 1..2147483648, got 0"),
        (["simulate", "-n", "5", "-m", "4", "--bits", "65"], "argument --bits: must be in 1..64, got 65"),
        (["simulate", "-n", "5", "-m", "4", "--seed", "-1"], "argument --seed: must be in >= 0, got -1"),
        (["serve", "-n", "5", "-m", "4", "-o", "x.npy", "--port", "70000"], "argument --port: must be in 0..65535, got 70000"),
        (["serve", "-n", "5", "-m", "4", "-o", "x.npy", "--round-timeout", "0"], "argument --round-timeout: must be in (0, inf), got 0"),
        (["join", "--server", "nohostport", "--id", "0", "--input", "x.npy"], "argument --server: must be HOST:PORT"),
        (["join", "--server", "h:1", "--id", "-3", "--input", "x.npy"], "argument --id: must be in 0..1048575, got -3"),
        (["join", "--server", "h:1", "--id", "0", "--input", "x.npy", "--timeout", "-1"], "argument --timeout: must be in (0, inf), got -1"),
        (["demo", "fedavg", "--rounds", "0"], "argument --rounds: must be in 1..1000, got 0"),
        (["demo", "--clients", "abc"], "argument --clients/-n: must be an integer 2..1048576, got 'abc'"),
    ],
)
def test_out_of_range_arguments_name_the_allowed_range(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == cli.EXIT_USAGE == 2
    assert message in capsys.readouterr().err


def test_design_dropout_without_secagg_plus_is_a_usage_error(capsys):
    rc, out, err = _run(capsys, "simulate", "-n", "5", "-m", "4", "--design-dropout", "0.2", "--json")
    assert rc == cli.EXIT_USAGE and "--design-dropout only applies with --secagg-plus" in err
    assert json.loads(out.splitlines()[-1])["ok"] is False


# --- serve: everything checked before the port is bound -----------------------------------


def _serve(capsys, tmp_path, *extra, output=None):
    output = output if output is not None else tmp_path / "sum.npy"
    return _run(capsys, "serve", "-n", "3", "-m", "4", "--port", "0", "--join-timeout", "0.01", "-o", str(output), "-q", *extra)


def test_serve_refuses_an_output_it_cannot_write(capsys, tmp_path):
    missing = tmp_path / "no-such-dir" / "sum.npy"
    rc, _, err = _serve(capsys, tmp_path, output=missing)
    assert rc == 1 and f"error: --output {missing}: cannot be written (No such file or directory)" in err
    assert "listening on" not in err
    rc, _, err = _serve(capsys, tmp_path, output=tmp_path)
    assert rc == 1 and f"--output {tmp_path}: is a directory" in err and "listening on" not in err


def test_serve_leaves_no_probe_file_behind(capsys, tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("garbage")
    rc, _, _ = _serve(capsys, tmp_path, "--tls-cert", str(bad), "--tls-key", str(bad))
    assert rc == 1 and not (tmp_path / "sum.npy").exists()


def test_serve_checks_tls_files(capsys, tmp_path):
    missing = tmp_path / "cert.pem"
    rc, _, err = _serve(capsys, tmp_path, "--tls-cert", str(missing), "--tls-key", str(missing))
    assert rc == 1 and f"--tls-cert {missing}: cannot be read (No such file or directory)" in err
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    rc, _, err = _serve(capsys, tmp_path, "--tls-cert", str(junk), "--tls-key", str(junk))
    assert rc == 1 and f"--tls-cert {junk} / --tls-key {junk}: not a PEM certificate and its private key" in err
    rc, _, err = _serve(capsys, tmp_path, "--tls-cert", str(junk))
    assert rc == cli.EXIT_USAGE and "--tls-cert and --tls-key go together" in err
    assert "listening on" not in err and "Traceback" not in err


def test_serve_checks_the_identities_file(capsys, tmp_path):
    keys = tmp_path / "ids.txt"
    keys.write_text("00" * 32 + "\nnot-hex\n" + "11" * 32 + "\n")
    active = ("--mode", "active", "--corrupt", "0.0", "--identities", str(keys))
    rc, _, err = _serve(capsys, tmp_path, *active)
    assert rc == 1 and f"--identities {keys} line 2: not a verify key (64 hex characters)" in err
    keys.write_text("00" * 32 + "\n" + "11" * 32 + "\n")
    rc, _, err = _serve(capsys, tmp_path, *active)
    assert rc == 1 and f"--identities {keys}: holds 2 verify keys; --clients is 3" in err


def test_serve_checks_write_config_before_listening(capsys, tmp_path):
    target = tmp_path / "missing" / "cfg.bin"
    rc, _, err = _serve(capsys, tmp_path, "--write-config", str(target))
    assert rc == 1 and f"--write-config {target}: cannot be written" in err and "listening on" not in err


# --- join: the input, identity and TLS files checked before connecting ---------------------


def _join(capsys, address, path, *extra):
    return _run(capsys, "join", "--server", address, "--id", "0", "--input", str(path), "--timeout", "2", *extra)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("1 2 3\n"), "not a .npy file (write the vector with numpy.save)"),
        (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "is a pickle, not a .npy file; pickles are never read"),
        (lambda p: np.save(p, np.array([1, "x"], dtype=object)), "holds a pickled object array"),
        (lambda p: np.save(p, np.zeros(4)), "holds a float64 array of shape (4,); the input must be a 1-D integer vector"),
        (lambda p: np.save(p, np.zeros((2, 2), np.uint32)), "holds a uint32 array of shape (2, 2)"),
        (lambda p: None, "cannot be read (No such file or directory)"),
    ],
)
def test_join_says_plainly_what_is_wrong_with_the_input(capsys, tmp_path, listener, make, message):
    sock, address = listener
    path = tmp_path / "x.npy"
    make(path)
    rc, _, err = _join(capsys, address, path)
    assert rc == 1 and f"error: --input {path}: {message}" in err
    assert _no_connection(sock)


def test_join_checks_the_input_against_a_pinned_config(capsys, tmp_path, listener):
    sock, address = listener
    cfg = ls.Config(num_clients=3, vector_length=5, bits=16)
    pinned = tmp_path / "cfg.bin"
    pinned.write_bytes(wire.encode_config(cfg))
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(4, np.uint32))
    rc, _, err = _join(capsys, address, path, "--config", str(pinned))
    assert rc == 1 and f"--input {path} does not fit the pinned configuration" in err and "5" in err
    np.save(path, np.full(5, 1 << 16, np.uint32))
    rc, _, err = _join(capsys, address, path, "--config", str(pinned))
    assert rc == 1 and f"--input {path} does not fit the pinned configuration" in err
    np.save(path, np.zeros(5, np.uint32))
    rc, _, err = _join(capsys, address, path, "--config", str(pinned), "--drop-in", "consistency_check")
    assert rc == 1 and "drop_in must be one of" in err and "semi-honest mode" in err
    assert _no_connection(sock)


def test_join_checks_identity_and_tls_files(capsys, tmp_path, listener):
    sock, address = listener
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(4, np.uint32))
    seed = tmp_path / "seed.hex"
    seed.write_text("abcd")
    rc, _, err = _join(capsys, address, path, "--identity", str(seed), "--config-digest", "00" * 32)
    assert rc == 1 and f"--identity {seed}: must hold a 32-byte Ed25519 seed as 64 hex characters" in err
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    rc, _, err = _join(capsys, address, path, "--tls-ca", str(ca))
    assert rc == 1 and f"--tls-ca {ca}: not a PEM CA certificate" in err
    rc, _, err = _join(capsys, address, path, "--tls-ca", str(tmp_path / "none.pem"))
    assert rc == 1 and "--tls-ca" in err and "none.pem: cannot be read" in err
    assert _no_connection(sock) and "Traceback" not in err


def test_join_reports_a_failure_once(capsys, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(4, np.uint32))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc, out, err = _join(capsys, f"127.0.0.1:{port}", path)
    assert rc == cli.EXIT_SESSION_FAILED and err.count("cannot connect") == 0 and out.count("cannot connect") == 1


def test_deprecated_drop_after_warns_and_names_the_replacement(capsys, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(4, np.uint32))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, _, err = _join(capsys, f"127.0.0.1:{port}", path, "--drop-after", "share_keys")
    assert rc == cli.EXIT_SESSION_FAILED and err.count("--drop-after ROUND is deprecated; use --drop-in") == 1


# --- demo: the right extra, the right options ----------------------------------------------


def test_demo_fedavg_without_the_fl_extra_names_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError, as without the extra
    rc, out, err = _run(capsys, "demo", "fedavg", "--plot", str(tmp_path / "p.png"), "--json")
    assert rc == 1
    assert "demo fedavg needs the [fl] extra" in err and "missing here: torch." in err and "pip install 'lepton-secagg[fl]'" in err
    assert "Traceback" not in err and json.loads(out.splitlines()[-1])["ok"] is False


def test_demo_fedavg_checks_its_output_paths_first(capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    target = tmp_path / "missing" / "audit.jsonl"
    rc, _, err = _run(capsys, "demo", "fedavg", "--plot", str(tmp_path / "p.png"), "--audit-log", str(target))
    assert rc == 1 and f"--audit-log {target}: cannot be written" in err


@pytest.mark.parametrize(
    "argv, refused",
    [
        (["demo", "fedavg", "--clients", "5"], "demo fedavg does not take --clients"),
        (["demo", "fedavg", "-n5", "--dropout=0.1"], "demo fedavg does not take -n, --dropout"),
        (["demo", "fedavg", "--secagg"], "demo fedavg does not take --secagg-plus"),
        (["demo", "--rounds", "3"], "demo (without fedavg) does not take --rounds"),
        (["demo", "--crash", "-n", "4"], "demo (without fedavg) does not take --crash"),
    ],
)
def test_demo_rejects_the_other_targets_options(capsys, argv, refused):
    rc, _, err = _run(capsys, *argv)
    assert rc == cli.EXIT_USAGE and refused in err and "it takes --" in err


# --- exit codes: one per outcome (docs/cli.md) --------------------------------------------


def test_the_exit_code_table_lists_exactly_the_constants():
    rows = re.findall(r"^\| (\d+) \| `(EXIT_\w+)` \|", (ROOT / "docs" / "cli.md").read_text(encoding="utf-8"), re.M)
    constants = {name: value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    assert {name: int(code) for code, name in rows} == constants
    assert len(set(constants.values())) == len(constants)  # one code, one outcome


def test_a_wrong_sum_exits_4(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_plain_sum", lambda inputs, ids, cfg: np.zeros(cfg.vector_length, cfg.dtype) + 1)
    rc, out, _ = _run(capsys, "simulate", "-n", "5", "-m", "4", "--seed", "1", "-q")
    assert rc == cli.EXIT_WRONG == 4 and "sum DOES NOT MATCH the plaintext sum" in out


def test_an_audit_log_that_cannot_be_read_is_refused_not_failed(capsys, tmp_path):
    rc, _, err = _run(capsys, "audit", "verify", str(tmp_path / "none.jsonl"))
    assert rc == cli.EXIT_REFUSED and f"error: {tmp_path / 'none.jsonl'}: cannot be read (No such file or directory)" in err


def test_an_interrupt_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_simulate", interrupted)
    rc, _, err = _run(capsys, "simulate", "-n", "5", "-m", "4")
    assert rc == cli.EXIT_INTERRUPTED == 130 and "interrupted" in err


def test_mpc_options_that_are_not_host_port_are_a_usage_error(capsys, tmp_path):
    rc, _, err = _run(capsys, "mpc", "submit", "--leader", "nohostport", "--leader-key", str(tmp_path / "l.pub"),
                      "--helper-key", str(tmp_path / "h.pub"), "--length", "2", "--values", "0.1,0.2")
    assert rc == cli.EXIT_USAGE and "--leader must be HOST:PORT, got 'nohostport'" in err


@contextmanager
def _scripted_server(reply):
    """A server that reads one Join frame, then sends the frame ``reply``, closes (``None``), or says nothing ("silent")."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.settimeout(30)

    def read(conn, size):
        data = b""
        while len(data) < size and (chunk := conn.recv(size - len(data))):
            data += chunk
        return data

    def serve():
        conn, _ = s.accept()
        with conn:
            read(conn, int.from_bytes(read(conn, 4), "big"))
            if reply is None:
                return
            if reply != "silent":
                conn.sendall(frame(reply))
            while conn.recv(1 << 16):  # until the client closes
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{s.getsockname()[1]}"
    finally:
        thread.join(30)
        s.close()


@pytest.mark.parametrize(
    "reply, code, message",
    [
        (wire.encode(Abort("the cohort is full")), cli.EXIT_ABORTED, "client 0: aborted (the server refused the join: the cohort is full)"),
        (wire.encode_config(ls.Config(num_clients=3, vector_length=4, bits=16)), cli.EXIT_REFUSED, "has bits = 16"),
        (None, cli.EXIT_SESSION_FAILED, "client 0: failed (connection lost"),
        ("silent", cli.EXIT_SESSION_FAILED, "client 0: failed (no frame from the server within 0.5s.)"),
    ],
    ids=["server-aborts", "policy-refuses-the-config", "connection-lost", "no-frame-in-time"],
)
def test_join_exit_code_for_each_way_a_session_ends(capsys, tmp_path, reply, code, message):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(4, np.uint32))
    pinned = tmp_path / "cfg.bin"
    pinned.write_bytes(wire.encode_config(ls.Config(num_clients=3, vector_length=4)))
    with _scripted_server(reply) as address:
        rc, out, _ = _run(capsys, "join", "--server", address, "--id", "0", "--input", str(path), "--timeout", "0.5",
                          "--config", str(pinned))
    assert rc == code and message in out


# --- logging -------------------------------------------------------------------------------


def test_the_library_logger_has_a_null_handler():
    code = "import logging, lepton_secagg; logging.getLogger('lepton_secagg.transport.server').warning('must not print')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
