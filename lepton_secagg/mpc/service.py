"""Leader and helper aggregators as asyncio services, and the client's upload (Prio3 over TCP).

Theory of operation: frames are the transport's length-prefixed frames
holding ``wire.encode_mpc`` messages.  Clients talk to the leader only; they
seal each aggregator's input share to that aggregator's X25519 key
(``keys.seal_share``), so the leader relays the helper's share unread.

The leader connects to the helper and both authenticate: each signs the
transcript of an ephemeral X25519 exchange with its Ed25519 identity, and
checks the other's signature against the public key it was configured with.
The exchange yields one AEAD key per direction (every later frame is sealed,
with a frame counter as associated data, so frames cannot be read, forged,
replayed or reordered) and the Prio3 verify key, which clients never see.

Per report the leader runs ``verify_init``, asks the helper for its
verifier share, combines them, and tells the helper the verifier message (or
that the report is refused); the client gets "accepted" or "rejected" with
the reason.  After ``expected_reports`` reports the leader asks for the
helper's aggregate share (at least ``min_batch_size`` accepted reports, else
both refuse) and unshards the result.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Generic

from ..exceptions import DecodeError, LocalProtocolError, RemoteProtocolError, SecAggError
from ..hazmat import aead
from ..hazmat.agreement import generate_keypair, hkdf_sha256, shared_secret
from ..hazmat.rng import Rng, resolve
from ..hazmat.sign import verify
from ..transport.framing import StreamConnection
from ..wire import decode_mpc, encode_mpc
from .batch import Aggregator, Report, make_report
from .flp import Agg, Meas
from .keys import AggregatorKeys, open_share, seal_share, split_public
from .prio3 import Prio3

__all__ = ["LeaderService", "HelperService", "BatchOutcome", "submit", "upload_frame"]

_LABEL = b"lepton-secagg/v1/mpc/"
_PEER_LIMIT = 1 << 30  # frames from the authenticated peer aggregator
_TIMEOUT = 60.0


def _aad(ctx: bytes, report_id: bytes, agg_id: int) -> bytes:
    return _LABEL + b"report" + len(ctx).to_bytes(2, "big") + ctx + report_id + bytes([agg_id])


def upload_frame(vdaf: Prio3[Meas, Agg], ctx: bytes, report: Report, leader_public: bytes, helper_public: bytes,
                 rng: Rng | None = None) -> bytes:
    """The client's upload: report id, public share, and each input share sealed to its aggregator."""
    sealed = [seal_share(pub, share, _aad(ctx, report.report_id, i), rng)
              for i, (pub, share) in enumerate(zip((leader_public, helper_public), report.input_shares))]
    return encode_mpc("report", [report.report_id, report.public_share, *sealed])


async def submit(host: str, port: int, vdaf: Prio3[Meas, Agg], ctx: bytes, measurement: Meas, leader_public: bytes,
                 helper_public: bytes, rng: Rng | None = None) -> tuple[bool, str]:
    """Shard ``measurement``, upload it to the leader, and return ``(accepted, reason)``."""
    report = make_report(vdaf, ctx, measurement, rng)
    reader, writer = await asyncio.open_connection(host, port)
    conn = StreamConnection(reader, writer)
    try:
        await conn.send(upload_frame(vdaf, ctx, report, leader_public, helper_public, rng))
        kind, items = decode_mpc(await asyncio.wait_for(conn.recv(1 << 16), _TIMEOUT))
    finally:
        conn.close()
    if kind not in ("accepted", "rejected") or len(items) != 1 or not isinstance(items[0], str):
        raise RemoteProtocolError(f"the leader answered {kind!r}, not accepted/rejected.")
    return kind == "accepted", items[0]


class _Channel:
    """Sealed frames in both directions after the handshake.

    A frame's items are whatever msgpack decoded (bytes, str, lists, None):
    each receiver unpacks the ones its frame kind carries, hence ``Any``.
    """

    def __init__(self, conn: StreamConnection, send_key: bytes, recv_key: bytes, rng: Rng):
        self.conn, self._send_key, self._recv_key, self._rng = conn, send_key, recv_key, rng
        self._sent = self._received = 0

    async def send(self, kind: str, items: list[Any]) -> None:
        box = aead.seal(self._send_key, encode_mpc(kind, items), self._sent.to_bytes(8, "big"), self._rng)
        self._sent += 1
        await self.conn.send(box)

    async def recv(self, timeout: float | None = _TIMEOUT) -> tuple[str, list[Any]]:
        box = await asyncio.wait_for(self.conn.recv(_PEER_LIMIT), timeout)
        data = aead.open_box(self._recv_key, box, self._received.to_bytes(8, "big"))
        self._received += 1
        return decode_mpc(data, _PEER_LIMIT)


def _expect(message: tuple[str, list[Any]], kind: str, count: int) -> list[Any]:
    got, items = message
    if got != kind or len(items) != count:
        raise RemoteProtocolError(f"expected a {kind!r} frame with {count} items, got {got!r} with {len(items)}.")
    return items


async def _handshake(
    conn: StreamConnection, keys: AggregatorKeys, peer_public: bytes, leader: bool, rng: Rng
) -> tuple[_Channel, bytes]:
    """Mutual authentication; returns the sealed channel and the Prio3 verify key."""
    peer_ed, _ = split_public(peer_public)
    eph = generate_keypair(rng)
    nonce = rng.bytes(32)

    async def recv_plain() -> tuple[str, list[Any]]:
        return decode_mpc(await asyncio.wait_for(conn.recv(4096), _TIMEOUT), 4096)

    if leader:
        await conn.send(encode_mpc("hello", [eph.public, nonce]))
        peer_eph, peer_nonce, peer_sig = _expect(await recv_plain(), "hello", 3)
        transcript = eph.public + nonce + peer_eph + peer_nonce
        verify(peer_ed, b"helper" + transcript, peer_sig)
        await conn.send(encode_mpc("auth", [keys.identity.sign(b"leader" + transcript)]))
        pubs = keys.public + peer_public
    else:
        peer_eph, peer_nonce = _expect(await recv_plain(), "hello", 2)
        transcript = peer_eph + peer_nonce + eph.public + nonce
        await conn.send(encode_mpc("hello", [eph.public, nonce, keys.identity.sign(b"helper" + transcript)]))
        (peer_sig,) = _expect(await recv_plain(), "auth", 1)
        verify(peer_ed, b"leader" + transcript, peer_sig)
        pubs = peer_public + keys.public
    if not all(isinstance(x, bytes) and len(x) == 32 for x in (peer_eph, peer_nonce)):
        raise RemoteProtocolError("malformed handshake.")
    okm = hkdf_sha256(shared_secret(eph.private, peer_eph), 96, info=_LABEL + b"channel" + transcript + pubs)
    to_helper, to_leader, verify_key = okm[:32], okm[32:64], okm[64:]
    send, recv = (to_helper, to_leader) if leader else (to_leader, to_helper)
    channel = _Channel(conn, send, recv, rng)
    # Key confirmation: the leader learns the helper accepted it before it takes uploads.
    if leader:
        _expect(await channel.recv(), "ready", 0)
    else:
        await channel.send("ready", [])
    return channel, verify_key


@dataclass(frozen=True)
class BatchOutcome(Generic[Agg]):
    """What the leader ends with: the aggregate and the report ids accepted and refused (with reasons)."""

    result: Agg
    accepted: tuple[bytes, ...]
    rejected: dict[bytes, str]


class HelperService(Generic[Meas, Agg]):
    """The helper aggregator: serves one leader connection for one batch.

    Args:
        vdaf, ctx: the task (same at every party).
        keys: this helper's keys; ``leader_public``: the leader's 64-byte public key.
        min_batch_size: the fewest accepted reports whose aggregate share is released.
    """

    def __init__(self, vdaf: Prio3[Meas, Agg], ctx: bytes, keys: AggregatorKeys, leader_public: bytes, *,
                 min_batch_size: int = 1, rng: Rng | None = None):
        self.vdaf, self.ctx, self.keys, self.leader_public = vdaf, ctx, keys, leader_public
        self.min_batch_size, self.rng = min_batch_size, resolve(rng)

    async def serve(self, host: str, port: int, ready: asyncio.Future[int] | None = None) -> None:
        """Listen, serve the first leader that authenticates, return when its batch is done."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = StreamConnection(reader, writer)
            try:
                channel, verify_key = await _handshake(conn, self.keys, self.leader_public, False, self.rng)
            except (SecAggError, ValueError, asyncio.TimeoutError, ConnectionError):
                conn.close()  # not our leader: keep listening
                return
            try:
                await self._run(channel, verify_key)
                if not done.done():
                    done.set_result(None)
            except Exception as exc:  # the batch is over either way; report why
                if not done.done():
                    done.set_exception(exc)
            finally:
                conn.close()

        server = await asyncio.start_server(on_connect, host, port)
        if ready is not None:
            ready.set_result(server.sockets[0].getsockname()[1])
        async with server:
            await done

    async def _run(self, channel: _Channel, verify_key: bytes) -> None:
        agg = Aggregator(self.vdaf, 1, verify_key, self.ctx, self.min_batch_size)
        while True:
            # No deadline: the (authenticated) leader may wait long for its clients between reports.
            kind, items = await channel.recv(None)
            if kind == "init":
                report_id, public_share, sealed = items
                try:
                    share = open_share(self.keys, sealed, _aad(self.ctx, report_id, 1))
                    await channel.send("verifier_share", [agg.start(report_id, public_share, share), ""])
                except (SecAggError, ValueError) as exc:
                    await channel.send("verifier_share", [b"", f"helper: {exc}"])
            elif kind == "next":
                report_id, message = items
                try:
                    if message is None:
                        agg.drop(report_id)
                    else:
                        agg.finish(report_id, message)
                    await channel.send("next_done", [""])
                except (SecAggError, ValueError, KeyError) as exc:
                    agg.drop(report_id)
                    await channel.send("next_done", [f"helper: {exc}"])
            elif kind == "aggregate":
                (ids,) = items
                await channel.send("agg_share", [agg.aggregate_share(ids)])
            elif kind == "bye":
                return
            else:
                raise RemoteProtocolError(f"unexpected {kind!r} frame from the leader.")


class LeaderService(Generic[Meas, Agg]):
    """The leader aggregator: takes ``expected_reports`` uploads, verifies them with the helper, aggregates."""

    def __init__(self, vdaf: Prio3[Meas, Agg], ctx: bytes, keys: AggregatorKeys, helper_public: bytes, *,
                 expected_reports: int, min_batch_size: int = 1, rng: Rng | None = None):
        if expected_reports < 1:
            raise ValueError(f"expected_reports must be at least 1, got {expected_reports}.")
        self.vdaf, self.ctx, self.keys, self.helper_public = vdaf, ctx, keys, helper_public
        self.expected, self.min_batch_size, self.rng = expected_reports, min_batch_size, resolve(rng)
        size = vdaf.field.ENCODED_SIZE
        leader_share = (vdaf.flp.MEAS_LEN + vdaf.flp.PROOF_LEN * vdaf.PROOFS) * size + 2 * vdaf.SEED_SIZE
        self._upload_limit = leader_share + vdaf.SHARES * vdaf.SEED_SIZE + 1024

    async def run(self, host: str, port: int, helper_host: str, helper_port: int,
                  ready: asyncio.Future[int] | None = None) -> BatchOutcome[Agg]:
        reader, writer = await asyncio.open_connection(helper_host, helper_port)
        helper_conn = StreamConnection(reader, writer)
        channel, verify_key = await _handshake(helper_conn, self.keys, self.helper_public, True, self.rng)
        agg = Aggregator(self.vdaf, 0, verify_key, self.ctx, self.min_batch_size)
        accepted: list[bytes] = []
        rejected: dict[bytes, str] = {}
        lock, processed = asyncio.Lock(), [0]
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            conn = StreamConnection(r, w)
            try:
                data = await asyncio.wait_for(conn.recv(self._upload_limit), _TIMEOUT)
                async with lock:
                    if finished.done():
                        return
                    ok, reason, report_id = await self._verify(channel, agg, data)
                    if ok:
                        accepted.append(report_id)
                    else:
                        rejected[report_id] = reason
                    processed[0] += 1  # a replayed id counts as an upload, though it keys one entry
                    if processed[0] == self.expected:
                        finished.set_result(None)
                await conn.send(encode_mpc("accepted" if ok else "rejected", [reason]))
            except (SecAggError, ValueError, asyncio.TimeoutError, ConnectionError):
                pass  # a client that breaks the framing gets no answer
            finally:
                conn.close()

        server = await asyncio.start_server(on_client, host, port)
        if ready is not None:
            ready.set_result(server.sockets[0].getsockname()[1])
        try:
            async with server:
                await finished
                if len(accepted) < self.min_batch_size:
                    await channel.send("bye", [])
                    raise LocalProtocolError(f"only {len(accepted)} of {self.expected} reports were accepted, "
                                             f"below min_batch_size={self.min_batch_size}; no aggregate.")
                await channel.send("aggregate", [list(accepted)])
                (helper_share,) = _expect(await channel.recv(), "agg_share", 1)
                result = self.vdaf.unshard([agg.aggregate_share(accepted), helper_share], len(accepted))
                await channel.send("bye", [])
        finally:
            helper_conn.close()
        return BatchOutcome(result, tuple(accepted), rejected)

    async def _verify(self, channel: _Channel, agg: Aggregator[Meas, Agg], data: bytes) -> tuple[bool, str, bytes]:
        """One upload through both aggregators: ``(accepted, reason, report id)``."""
        kind, items = decode_mpc(data, self._upload_limit)
        if kind != "report" or len(items) != 4 or not all(isinstance(x, bytes) for x in items):
            raise DecodeError("an upload is ['report', report id, public share, leader share, helper share].")
        report_id, public_share, sealed_leader, sealed_helper = items
        if len(report_id) != self.vdaf.NONCE_SIZE:
            raise DecodeError(f"a report id is {self.vdaf.NONCE_SIZE} bytes.")
        if report_id in agg.seen:  # a replay is refused before any work
            return False, "verify_init: report id already seen (replay)", report_id
        try:
            share = open_share(self.keys, sealed_leader, _aad(self.ctx, report_id, 0))
            leader_share = agg.start(report_id, public_share, share)
        except (SecAggError, ValueError) as exc:
            agg.seen.add(report_id)
            return False, f"leader: {exc}", report_id
        await channel.send("init", [report_id, public_share, sealed_helper])
        helper_share, error = _expect(await channel.recv(), "verifier_share", 2)
        message, reason = None, error
        if not error:
            try:
                message = self.vdaf.verifier_shares_to_message(self.ctx, [leader_share, helper_share])
                agg.finish(report_id, message)
            except (SecAggError, ValueError) as exc:
                message, reason = None, str(exc)
                agg.drop(report_id)
        else:
            agg.drop(report_id)
        await channel.send("next", [report_id, message])
        (helper_error,) = _expect(await channel.recv(), "next_done", 1)
        if message is not None and helper_error:
            agg.out_shares.pop(report_id, None)
            return False, helper_error, report_id
        return message is not None, reason or "", report_id
