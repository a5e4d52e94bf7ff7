"""The asyncio transport: framing, handshake, deadlines, failures, TLS, load, CLI processes.

Servers and clients talk over real loopback sockets (in-process asyncio tasks,
or ``python -m lepton_secagg serve/join`` processes); the in-memory transport
runs the same drivers over queues.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg import cli, wire
from lepton_secagg.messages import Join
from lepton_secagg.testing import make_identities
from lepton_secagg.transport import AggregationServer, MemoryNetwork, run_client, run_memory_aggregation
from lepton_secagg.transport.client import run_session
from lepton_secagg.transport.framing import JOIN_LIMIT, ConnectionClosed, FrameTooLarge, StreamConnection, frame, read_frame

HOST = "127.0.0.1"
ROUNDS = ("advertise_keys", "share_keys", "masked_input", "unmasking")


def _inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 1 << cfg.bits, cfg.vector_length, dtype=np.uint64).astype(cfg.dtype) for _ in range(cfg.num_clients)]


def _plain_sum(inputs, ids, cfg):
    total = np.zeros(cfg.vector_length, dtype=np.uint64)
    for i in ids:
        total += inputs[i].astype(np.uint64)
    return (total & np.uint64((1 << cfg.bits) - 1)).astype(cfg.dtype)


def _check(result, inputs, cfg):
    assert np.array_equal(result.sum, _plain_sum(inputs, result.included, cfg))


async def _tcp_aggregation(cfg, inputs, drop_in=None, *, extra=(), round_timeout=10.0, join_timeout=10.0,
                           server_ssl=None, client_ssl=None, identities=None, honest=None):
    """A TCP server and clients as tasks; ``extra`` are coroutine functions f(port) run alongside (attackers)."""
    srv = AggregationServer(cfg, HOST, 0, round_timeout=round_timeout, join_timeout=join_timeout, ssl_context=server_ssl)
    await srv.start()
    drop_in = drop_in or {}
    honest = range(cfg.num_clients) if honest is None else honest
    clients = [run_client(HOST, srv.port, cid, inputs[cid], drop_in=drop_in.get(cid), ssl_context=client_ssl,
                          server_hostname="localhost" if client_ssl else None,
                          identity=identities[cid] if identities else None, timeout=30, policy=ls.Policy(config=cfg))
               for cid in honest]
    res, *rest = await asyncio.gather(srv.run(), *clients, *(f(srv.port) for f in extra), return_exceptions=True)
    return srv, res, rest


# --- framing --------------------------------------------------------------------------


def test_frame_limit_checked_before_body():
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(struct.pack(">I", 10_000) + b"x" * 10)  # the body never fully arrives
        with pytest.raises(FrameTooLarge):
            await asyncio.wait_for(read_frame(reader, 1000), 1)  # no wait for the body: fails at once
        reader = asyncio.StreamReader()
        reader.feed_data(frame(b"hello") + struct.pack(">I", 5) + b"ab")
        reader.feed_eof()
        assert await read_frame(reader, 5) == b"hello"
        with pytest.raises(ConnectionClosed):
            await read_frame(reader, 5)

    asyncio.run(go())


# --- in-memory transport --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
def test_memory_transport_exact_sum_with_crashes(mode):
    cfg = ls.Config(num_clients=11, vector_length=50, mode=mode, corrupt_fraction=0.0)
    ids = None
    if mode == "active":
        ids = make_identities(cfg.num_clients, seed=1)
        cfg = ls.Config(num_clients=11, vector_length=50, mode=mode, corrupt_fraction=0.0, identities=tuple(i.verify_key for i in ids))
    inputs = _inputs(cfg)
    rounds = ls._state.rounds_for(mode)
    drops = {i + 1: r for i, r in enumerate(rounds)}
    # client 1 closes before AdvertiseKeys, during the join phase: its id is freed and waited for until the deadline
    srv, res, outcomes = asyncio.run(run_memory_aggregation(cfg, inputs, drops, identities=ids, join_timeout=1.0))
    assert not isinstance(res, BaseException), res
    _check(res, inputs, cfg)
    # dropped in masked_input or earlier (never sent its masked input): out; later: in
    masked = rounds.index("masked_input")
    expect_out = {cid for cid, r in drops.items() if rounds.index(r) <= masked}
    assert set(res.included) == set(range(cfg.num_clients)) - expect_out
    assert {o.status for o in outcomes} == {"completed", "crashed"}
    assert srv.stats["masked_input"].bytes_up > cfg.vector_length * 4 * len(res.included)


def test_memory_transport_too_few_survivors():
    cfg = ls.Config(num_clients=5, vector_length=8)
    drops = {0: "share_keys", 1: "share_keys", 2: "masked_input"}
    srv, res, outcomes = asyncio.run(run_memory_aggregation(cfg, _inputs(cfg), drops, round_timeout=2))
    assert isinstance(res, ls.TooFewSurvivors)
    assert {o.status for o in outcomes if o.client_id > 2} == {"aborted"}


def test_memory_transport_silent_client_hits_the_deadline():
    cfg = ls.Config(num_clients=5, vector_length=8)
    inputs = _inputs(cfg)

    async def go():
        srv = AggregationServer(cfg, host=None, round_timeout=0.5, join_timeout=5)
        net = MemoryNetwork(srv)

        async def silent():  # joins, then never answers
            conn = net.connect()
            await conn.send(wire.encode(Join(4)))
            await conn.recv(1 << 26)
            with pytest.raises(ConnectionClosed):  # told nothing useful, then closed at the end
                while True:
                    await conn.recv(1 << 26)

        t0 = time.perf_counter()
        res, *_ = await asyncio.gather(srv.run(), *(net.run_client(c, inputs[c]) for c in range(4)), silent())
        return res, time.perf_counter() - t0

    res, seconds = asyncio.run(go())
    assert 0.5 <= seconds < 3
    assert res.included == (0, 1, 2, 3)
    assert res.dropped == {"advertise_keys": (4,)}
    _check(res, inputs, cfg)


# --- TCP: crashes, attackers, duplicates ------------------------------------------------


def test_tcp_exact_sum_with_a_drop_in_each_round():
    cfg = ls.Config(num_clients=8, vector_length=300)
    inputs = _inputs(cfg, 1)
    drops = {0: "share_keys", 3: "masked_input", 5: "unmasking"}
    srv, res, outcomes = asyncio.run(_tcp_aggregation(cfg, inputs, drops))
    assert not isinstance(res, BaseException), res
    _check(res, inputs, cfg)
    assert set(res.included) == set(range(8)) - {0, 3}
    assert res.dropped == {"share_keys": (0,), "masked_input": (3,), "unmasking": (5,)}


async def _raw_join(port, cid):
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(frame(wire.encode(Join(cid))))
    await writer.drain()
    cfg = wire.decode_config(await read_frame(reader, 1 << 26))
    return reader, writer, cfg


async def _read_until_closed(reader, seconds=15):
    """Frames the server sends until it closes the connection (decoded, or raw bytes)."""
    got = []
    try:
        while True:
            data = await asyncio.wait_for(read_frame(reader, 1 << 26), seconds)
            try:
                got.append(wire.decode(data))
            except ls.DecodeError:
                got.append(data)
    except (ConnectionClosed, ConnectionError, asyncio.TimeoutError):
        pass
    return got


def _garbage(port):
    async def go():
        reader, writer, _ = await _raw_join(port, 5)
        writer.write(frame(b"\xc1 this is not msgpack"))
        await writer.drain()
        return await _read_until_closed(reader)
    return go()


def _oversized(port):
    async def go():
        reader, writer, cfg = await _raw_join(port, 5)
        writer.write(struct.pack(">I", cfg.max_message_bytes + 1))
        await writer.drain()
        return await _read_until_closed(reader)
    return go()


def _half_frame(port):
    async def go():
        reader, writer, cfg = await _raw_join(port, 5)
        writer.write(struct.pack(">I", 200) + b"\x95\x01" + b"\x00" * 20)  # then silence
        await writer.drain()
        return await _read_until_closed(reader)
    return go()


@pytest.mark.parametrize("attack", [_garbage, _oversized, _half_frame], ids=["garbage", "oversized-prefix", "half-frame"])
def test_tcp_bad_connection_is_dropped_while_others_finish(attack):
    cfg = ls.Config(num_clients=6, vector_length=100)
    inputs = _inputs(cfg, 2)
    silent = attack is _half_frame  # the only one that costs a deadline
    t0 = time.perf_counter()
    srv, res, rest = asyncio.run(_tcp_aggregation(cfg, inputs, extra=[attack], honest=range(5), round_timeout=1.0 if silent else 8.0))
    assert not isinstance(res, BaseException), res
    assert res.included == (0, 1, 2, 3, 4)
    assert res.dropped == {"advertise_keys": (5,)}
    _check(res, inputs, cfg)
    assert all(o.status == "completed" for o in rest[:5])
    if not silent:  # refused at once, no deadline needed, and told why
        assert time.perf_counter() - t0 < 6
        assert any(isinstance(m, ls.Abort) for m in rest[5])


def test_tcp_refuses_duplicates_out_of_range_and_non_join():
    cfg = ls.Config(num_clients=4, vector_length=20)
    inputs = _inputs(cfg, 3)

    def dup(port):
        async def go():
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(frame(wire.encode(Join(1))))
            await writer.drain()
            return await _read_until_closed(reader, 5)
        return go()

    def out_of_range(port):
        async def go():
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(frame(wire.encode(Join(4))))
            await writer.drain()
            return await _read_until_closed(reader, 5)
        return go()

    def big_join(port):
        async def go():
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(struct.pack(">I", JOIN_LIMIT + 1))
            await writer.drain()
            return await _read_until_closed(reader, 5)
        return go()

    def not_join(port):
        async def go():
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(frame(wire.encode(ls.Abort("hi"))))
            await writer.drain()
            return await _read_until_closed(reader, 5)
        return go()

    async def go():
        srv = AggregationServer(cfg, HOST, 0, round_timeout=5, join_timeout=5)
        await srv.start()

        async def clients():
            # client 1 joins first, then the attackers (while the join phase is open), then the others
            first = asyncio.ensure_future(run_client(HOST, srv.port, 1, inputs[1], timeout=10))
            while 1 not in srv.connected:
                await asyncio.sleep(0.01)
            bad = await asyncio.gather(dup(srv.port), out_of_range(srv.port), big_join(srv.port), not_join(srv.port))
            outs = await asyncio.gather(first, *(run_client(HOST, srv.port, c, inputs[c], timeout=10) for c in (0, 2, 3)))
            return outs + bad

        return await asyncio.gather(srv.run(), clients())

    res, outs = asyncio.run(go())
    assert res.included == (0, 1, 2, 3)
    _check(res, inputs, cfg)
    duplicate, oor, big, nj = outs[4:]
    assert any(isinstance(m, ls.Abort) and "already joined" in m.reason for m in duplicate)
    assert any(isinstance(m, ls.Abort) and "out of range" in m.reason for m in oor)
    assert big == []  # closed without a word
    assert any(isinstance(m, ls.Abort) and "Join" in m.reason for m in nj)


def test_tcp_second_message_in_a_round_does_not_corrupt_the_sum():
    """A client that sends its masked input and then a second message is dropped
    later, and its (already counted) masked input stays in: the sum is exact."""
    cfg = ls.Config(num_clients=6, vector_length=64)
    inputs = _inputs(cfg, 4)

    def twice(port):
        async def go():
            reader, writer = await asyncio.open_connection(HOST, port)
            conn = StreamConnection(reader, writer)
            await conn.send(wire.encode(Join(5)))
            c_cfg = wire.decode_config(await conn.recv(1 << 26))
            client = ls.Client(c_cfg, 5)
            client.set_input(inputs[5])
            await conn.send(wire.encode(client.start()))
            while True:
                msg = wire.decode(await conn.recv(c_cfg.max_message_bytes), c_cfg)
                reply = client.receive(msg)
                data = wire.encode(reply)
                await conn.send(data)
                if isinstance(reply, ls.MaskedInput):
                    await conn.send(data)  # the same masked input again
                    return await _read_until_closed(reader, 10)
        return go()

    srv, res, rest = asyncio.run(_tcp_aggregation(cfg, inputs, extra=[twice], honest=range(5)))
    assert not isinstance(res, BaseException), res
    _check(res, inputs, cfg)
    assert 5 in res.included and res.dropped == {"unmasking": (5,)}
    assert any(isinstance(m, ls.Abort) and "twice" in m.reason for m in rest[5])


def test_tcp_load_300_clients_secagg_plus():
    cfg = ls.Config.secagg_plus(300, 200, 0.05, 0.1)
    assert cfg.neighbors is not None
    inputs = _inputs(cfg, 5)
    rng = np.random.default_rng(5)
    crash = rng.choice(300, 15, replace=False)
    drops = {int(c): ROUNDS[i % 3 + 1] for i, c in enumerate(crash)}
    srv, res, outcomes = asyncio.run(_tcp_aggregation(cfg, inputs, drops, round_timeout=60, join_timeout=60))
    assert not isinstance(res, BaseException), res
    _check(res, inputs, cfg)
    assert len(res.included) == 300 - sum(1 for r in drops.values() if r != "unmasking")
    assert sum(o.status == "completed" for o in outcomes) == 285


@pytest.mark.slow
def test_tcp_load_1000_clients_secagg_plus():
    cfg = ls.Config.secagg_plus(1000, 1000, 0.05, 0.1)
    inputs = _inputs(cfg, 6)
    drops = {i: ROUNDS[i % 3 + 1] for i in range(0, 1000, 25)}
    srv, res, _ = asyncio.run(_tcp_aggregation(cfg, inputs, drops, round_timeout=120, join_timeout=120))
    assert not isinstance(res, BaseException), res
    _check(res, inputs, cfg)


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_aggregation_and_untrusted_client(tls_files, tmp_path):
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    cfg = ls.Config(num_clients=5, vector_length=100)
    inputs = _inputs(cfg, 7)

    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(other), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)

    def untrusting(port):  # verifies against the wrong CA: the handshake fails on its side only
        return run_client(HOST, port, 4, inputs[4], ssl_context=ssl.create_default_context(cafile=str(other)),
                          server_hostname="localhost", timeout=5)

    def plaintext(port):  # speaks plain TCP to a TLS server
        return run_client(HOST, port, 4, inputs[4], timeout=3)

    srv, res, rest = asyncio.run(_tcp_aggregation(cfg, inputs, server_ssl=server_ctx, client_ssl=client_ctx,
                                                  honest=range(4), extra=[untrusting, plaintext], join_timeout=1.5))
    assert not isinstance(res, BaseException), res
    assert res.included == (0, 1, 2, 3)
    _check(res, inputs, cfg)
    assert rest[4].status == "failed" and rest[5].status == "failed"


# --- real processes: python -m lepton_secagg serve / join ---------------------------------


def _env():
    return dict(os.environ)


def _start_server(args, tmp_path):
    out = tmp_path / "sum.npy"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_secagg", "serve", "--port", "0", "--output", str(out), "--json", "-q", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    line = proc.stderr.readline()
    assert line.startswith("listening on "), line + proc.stderr.read()
    port = int(line.split()[2].rsplit(":", 1)[1])
    return proc, port, out


def _join(port, cid, path, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "lepton_secagg", "join", "--server", f"{HOST}:{port}", "--id", str(cid), "--input", str(path), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )


def _write_inputs(cfg, tmp_path, seed):
    inputs = _inputs(cfg, seed)
    paths = []
    for cid, vec in enumerate(inputs):
        p = tmp_path / f"x{cid}.npy"
        np.save(p, vec)
        paths.append(p)
    return inputs, paths


def _last_json(text):
    import json

    return json.loads(text.strip().splitlines()[-1])


def test_processes_exact_sum_with_a_drop_in_each_round(tmp_path):
    n, m = 7, 500
    cfg = ls.Config(num_clients=n, vector_length=m)
    inputs, paths = _write_inputs(cfg, tmp_path, 8)
    server, port, out = _start_server(["--clients", str(n), "--length", str(m), "--round-timeout", "20"], tmp_path)
    drops = {1: "share_keys", 2: "masked_input", 3: "unmasking"}
    joins = [_join(port, cid, paths[cid], *(["--drop-in", drops[cid]] if cid in drops else [])) for cid in range(n)]
    for cid, p in enumerate(joins):
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        assert _last_json(stdout)["status"] == ("crashed" if cid in drops else "completed")
    stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    report = _last_json(stdout)
    assert report["ok"] and report["included"] == [0, 3, 4, 5, 6]
    assert report["dropped"] == {"share_keys": [1], "masked_input": [2], "unmasking": [3]}
    assert np.array_equal(np.load(out), _plain_sum(inputs, report["included"], cfg))


def test_processes_too_few_survivors_exits_non_zero(tmp_path):
    n, m = 5, 50
    cfg = ls.Config(num_clients=n, vector_length=m)  # t = 3
    inputs, paths = _write_inputs(cfg, tmp_path, 9)
    server, port, out = _start_server(["--clients", str(n), "--length", str(m), "--round-timeout", "20"], tmp_path)
    joins = [_join(port, cid, paths[cid], *(["--drop-in", "masked_input"] if cid < 3 else [])) for cid in range(n)]
    for p in joins:
        p.communicate(timeout=60)
    stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == cli.EXIT_ABORTED == 3
    assert "only 2 clients remain" in stderr and "threshold is 3" in stderr
    assert _last_json(stdout)["ok"] is False
    assert not out.exists()
    assert [p.returncode for p in joins[3:]] == [cli.EXIT_ABORTED] * 2  # the survivors were told (Abort)


def test_processes_tls(tmp_path, tls_files):
    cert, key = tls_files
    n, m = 3, 40
    cfg = ls.Config(num_clients=n, vector_length=m)
    inputs, paths = _write_inputs(cfg, tmp_path, 10)
    server, port, out = _start_server(["--clients", str(n), "--length", str(m), "--host", "localhost",
                                       "--tls-cert", str(cert), "--tls-key", str(key)], tmp_path)
    joins = [subprocess.Popen([sys.executable, "-m", "lepton_secagg", "join", "--server", f"localhost:{port}", "--id", str(c),
                               "--input", str(paths[c]), "--tls-ca", str(cert)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in range(n)]
    for p in joins:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert np.array_equal(np.load(out), _plain_sum(inputs, range(n), cfg))


def test_join_refuses_a_downgrading_or_identity_swapping_server(tmp_path):
    """`join --identity --config` against a server that sends another configuration: exit 1, the field named,
    and no key sent; against the real server with the right configuration it completes."""
    n, m = 4, 20
    idents = [ls.hazmat.sign.Identity(bytes([c + 1]) * 32) for c in range(n)]
    (tmp_path / "ids.txt").write_text("\n".join(i.verify_key.hex() for i in idents))
    for c, ident in enumerate(idents):
        (tmp_path / f"id{c}.hex").write_text((bytes([c + 1]) * 32).hex())
    cfg = ls.Config(num_clients=n, vector_length=m, mode="active", corrupt_fraction=0.0, identities=tuple(i.verify_key for i in idents))
    inputs, paths = _write_inputs(cfg, tmp_path, 11)

    evil = [ls.hazmat.sign.Identity(bytes([c + 101]) * 32) for c in range(n)]
    downgraded = ls.Config(num_clients=n, vector_length=m)
    swapped = dataclasses.replace(cfg, identities=tuple(idents[c].verify_key if c == 1 else evil[c].verify_key for c in range(n)))
    (tmp_path / "cfg.msgpack").write_bytes(wire.encode_config(cfg))

    async def hostile(sent):
        got = []

        async def handle(reader, writer):
            await read_frame(reader, JOIN_LIMIT)
            writer.write(frame(wire.encode_config(sent)))
            await writer.drain()
            try:
                got.append(ls.decode(await asyncio.wait_for(read_frame(reader, 1 << 20), 30)))
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, ls.DecodeError):
                pass
            writer.close()

        srv = await asyncio.start_server(handle, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lepton_secagg", "join", "--server", f"{HOST}:{port}", "--id", "1", "--input", str(paths[1]),
            "--identity", str(tmp_path / "id1.hex"), "--config", str(tmp_path / "cfg.msgpack"), "--json",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        srv.close()
        await srv.wait_closed()
        return proc.returncode, out.decode(), err.decode(), got

    for sent, field in ((downgraded, "mode"), (swapped, "identities[0]")):
        rc, out, err, got = asyncio.run(hostile(sent))
        assert rc == cli.EXIT_REFUSED == 1, err
        assert f"has {field} = " in _last_json(out)["reason"], out
        assert not any(isinstance(g, ls.AdvertiseKeys) for g in got)  # no key left the client

    server, port, out = _start_server(["--clients", str(n), "--length", str(m), "--mode", "active", "--corrupt", "0",
                                       "--identities", str(tmp_path / "ids.txt"), "--write-config", str(tmp_path / "served.msgpack")],
                                      tmp_path)
    assert (tmp_path / "served.msgpack").read_bytes() == (tmp_path / "cfg.msgpack").read_bytes()
    joins = [_join(port, c, paths[c], "--identity", str(tmp_path / f"id{c}.hex"), "--config-digest", cfg.digest.hex()) for c in range(n)]
    for p in joins:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert np.array_equal(np.load(out), _plain_sum(inputs, range(n), cfg))


def test_join_with_an_identity_and_no_pin_exits_before_connecting(tmp_path):
    (tmp_path / "id.hex").write_text("01" * 32)
    np.save(tmp_path / "x.npy", np.zeros(3, np.uint32))
    proc = subprocess.run([sys.executable, "-m", "lepton_secagg", "join", "--server", f"{HOST}:9", "--id", "0",
                           "--input", str(tmp_path / "x.npy"), "--identity", str(tmp_path / "id.hex")],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == cli.EXIT_USAGE == 2 and "--config" in proc.stderr and "cannot connect" not in proc.stderr


# --- the join phase ----------------------------------------------------------------------


def test_a_client_that_leaves_during_the_join_phase_frees_its_id():
    """Id 0 joins and closes before AdvertiseKeys: it does not count as joined, and a new client 0 takes part."""
    cfg = ls.Config(num_clients=3, vector_length=20)
    inputs = _inputs(cfg, 11)

    async def go():
        srv = AggregationServer(cfg, HOST, 0, round_timeout=10, join_timeout=20)
        await srv.start()
        reader, writer, got = await _raw_join(srv.port, 0)
        assert got == cfg
        writer.close()
        await writer.wait_closed()
        run = asyncio.ensure_future(srv.run())
        one = asyncio.ensure_future(run_client(HOST, srv.port, 1, inputs[1], timeout=20))
        await asyncio.sleep(0.3)
        assert srv.connected == {1} and not run.done()  # the ghost 0 neither counts nor holds its id
        outcomes = await asyncio.gather(one, *(run_client(HOST, srv.port, cid, inputs[cid], timeout=20) for cid in (0, 2)))
        return await run, srv, outcomes

    res, srv, outcomes = asyncio.run(go())
    assert [o.status for o in outcomes] == ["completed"] * 3
    assert res.included == (0, 1, 2) and srv.refused == 0
    _check(res, inputs, cfg)


# --- one meaning for "drops in round R" ---------------------------------------------------


def test_drop_round_maps_the_deprecated_drop_after_to_the_next_round():
    from lepton_secagg.transport.client import drop_round

    assert drop_round("semi-honest", "share_keys") == "share_keys"
    assert drop_round("semi-honest", None, "masked_input") == "unmasking"
    assert drop_round("active", None, "masked_input") == "consistency_check"
    assert drop_round("active", None, "unmasking") is None  # after the last round: no drop at all
    with pytest.raises(ValueError, match="in semi-honest mode"):
        drop_round("semi-honest", "consistency_check")


def test_drop_in_matches_simulate_and_drop_after_is_a_deprecated_alias():
    """The same dropouts give the same included set in memory over the transport and in testing.simulate."""
    cfg = ls.Config(num_clients=7, vector_length=16)  # t = 4: four survive unmasking
    inputs = _inputs(cfg, 12)
    drops = {1: "share_keys", 2: "masked_input", 3: "unmasking"}
    simulated = ls.testing.simulate(cfg, inputs, drops, seed=2)
    srv, res, outcomes = asyncio.run(run_memory_aggregation(cfg, inputs, drops))
    assert res.included == simulated.included == (0, 3, 4, 5, 6)
    assert res.dropped == simulated.dropped
    assert [o.status for o in outcomes] == ["completed", "crashed", "crashed", "crashed", "completed", "completed", "completed"]
    assert [o.round for o in outcomes[1:4]] == ["advertise_keys", "share_keys", "masked_input"]  # the last reply each sent

    async def old_style():
        srv = AggregationServer(cfg, host=None, round_timeout=5, join_timeout=5)
        await srv.start()
        net = MemoryNetwork(srv)
        clients = [run_session(net.connect(), c, inputs[c], drop_after="share_keys" if c == 2 else None) for c in range(7)]
        return await asyncio.gather(srv.run(), *clients)

    with pytest.warns(DeprecationWarning, match="drop_in"):
        res, *_ = asyncio.run(old_style())
    assert res.included == (0, 1, 3, 4, 5, 6)  # sent its keys' shares, then crashed: dropped in masked_input
    with pytest.raises(ValueError, match="not both"):
        asyncio.run(run_session(None, 0, inputs[0], drop_in="share_keys", drop_after="advertise_keys"))
