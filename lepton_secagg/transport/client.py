"""The asyncio client: connect, hand-shake, then run one ``Client`` session.

The client sends ``Join(client_id)``, reads the configuration frame (or an
``Abort`` if the server refuses it), checks it against its ``Policy`` (the
server proposes, the client decides), builds ``Client(cfg, client_id)``, sends
``start()``'s ``AdvertiseKeys`` and then answers each request until the
session completes or aborts.  ``drop_in=ROUND`` makes the client stop
answering in that round: it never sends ROUND's reply and closes the socket
abruptly, as a crash would (used by tests and the demo).  That is the meaning
of ``testing.simulate``'s ``dropouts``, the CLI's ``--drop-in`` and the FL
layer's ``drop_in`` too.  ``drop_after=ROUND`` (deprecated) is
``drop_in=<the round after ROUND>``.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
import warnings
from dataclasses import dataclass

import numpy.typing as npt

from .._state import Round, rounds_for
from ..client import Client
from ..config import Config
from ..device_input import DeviceInput
from ..exceptions import ConfigRefused, DecodeError, RemoteProtocolError, SecAggError
from ..hazmat.rng import Rng
from ..hazmat.sign import Identity
from ..messages import SERVER_MESSAGES, Abort, ClientMessage, Join, Message
from ..policy import Policy
from ..wire import decode, decode_config, encode, encode_parts
from .framing import CONFIG_LIMIT, Connection, StreamConnection

__all__ = ["ClientOutcome", "run_client", "run_session", "drop_round", "COMPLETED", "ABORTED", "CRASHED", "FAILED"]

logger = logging.getLogger(__name__)

COMPLETED = "completed"  # sent its last reply
ABORTED = "aborted"  # the server ended its participation (Abort received)
CRASHED = "crashed"  # closed the connection on purpose (drop_in)
FAILED = "failed"  # connection lost, timed out, or a protocol error


@dataclass
class ClientOutcome:
    """How one client's session ended.

    Attributes:
        client_id: the id it joined with.
        status: ``"completed"``, ``"aborted"``, ``"crashed"`` or ``"failed"``.
        round: the last round the client took part in (its reply was sent), or None.
        reason: why it did not complete (an Abort's reason, an error), or "".
        bytes_sent / bytes_received: frame bytes, length prefixes included.
        config: the configuration received at the handshake, or None.
    """

    client_id: int
    status: str
    round: str | None = None
    reason: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0
    config: Config | None = None

    @property
    def ok(self) -> bool:
        return self.status in (COMPLETED, CRASHED)


async def run_session(
    conn: Connection,
    client_id: int,
    vector: npt.ArrayLike | DeviceInput,
    *,
    identity: Identity | None = None,
    drop_in: str | None = None,
    timeout: float = 120.0,
    rng: Rng | None = None,
    policy: Policy | None = None,
    drop_after: str | None = None,
) -> ClientOutcome:
    """Run one client session over an open ``Connection`` (TCP or in memory); never raises
    for network or protocol trouble, which is reported in the outcome.

    Args:
        timeout: the longest wait for any one frame from the server.
        policy: what this client accepts from the server (default ``Policy()``:
            any sound configuration; with an ``identity`` the policy must pin
            the cohort's identities, or every configuration is refused).
        drop_in: testing: a round name; the client never sends that round's
            reply and closes the socket abruptly (status ``"crashed"``).
        drop_after: deprecated, ``drop_in`` of the round after this one.
    """
    _check_drop_names(drop_in, drop_after)
    return await _session(conn, client_id, vector, identity, drop_in, drop_after, timeout, rng, policy)


async def _session(conn: Connection, client_id: int, vector: npt.ArrayLike | DeviceInput, identity: Identity | None, drop_in: str | None,
                   drop_after: str | None, timeout: float, rng: Rng | None, policy: Policy | None) -> ClientOutcome:
    out = ClientOutcome(client_id, FAILED)
    client: Client | None = None
    try:
        await conn.send(encode(Join(client_id)))
        data = await asyncio.wait_for(conn.recv(CONFIG_LIMIT), timeout)
        try:
            cfg = decode_config(data)
        except DecodeError:
            msg = _decode_or_none(data)
            if isinstance(msg, Abort):
                out.status, out.reason = ABORTED, f"the server refused the join: {msg.reason}"
            else:
                out.reason = "the server's first frame is neither a configuration nor an Abort."
            return out
        out.config = cfg
        drop = drop_round(cfg.mode, drop_in, drop_after)
        client = Client(cfg, client_id, rng=rng, identity=identity, policy=policy if policy is not None else Policy())
        client.set_input(vector)
        reply: ClientMessage = client.start()
        rnd = Round.ADVERTISE_KEYS.value
        while True:
            if drop == rnd:
                logger.info("client %d: dropping out in round %s as asked", client_id, rnd)
                conn.abort()
                out.status = CRASHED
                return out
            await conn.send(encode_parts(reply))  # the masked input goes out without a copy
            out.round = rnd
            if client.round is Round.COMPLETED:
                out.status = COMPLETED
                return out
            while True:
                data = await asyncio.wait_for(conn.recv(cfg.max_message_bytes), timeout)
                msg = decode(data, cfg)
                rnd = client.round.value
                if isinstance(msg, Abort):
                    out.status, out.reason = ABORTED, msg.reason
                    client.receive(msg)
                    logger.info("client %d: aborted by the server in round %s: %s", client_id, rnd, msg.reason)
                    return out
                if not isinstance(msg, SERVER_MESSAGES):  # Client.receive takes server messages only
                    raise RemoteProtocolError(f"{type(msg).__name__} is not expected by client {client_id} in round {rnd}.",
                                              round=rnd, client_id=client_id)
                answer = client.receive(msg)
                if answer is not None:
                    reply = answer
                    break
    except (SecAggError, ValueError, TypeError) as exc:  # a protocol error, a refused config, a bad input
        out.reason = f"{type(exc).__name__}: {exc}"
        logger.warning("client %d: %s", client_id, out.reason)
        if client is None and isinstance(exc, ConfigRefused):
            try:  # tell the server why, so its join phase does not wait for this client
                await asyncio.wait_for(conn.send(encode(Abort(str(exc)[:1024]))), 5.0)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass
        if client is not None and client.round not in (Round.COMPLETED, Round.ABORTED):
            try:
                await asyncio.wait_for(conn.send(encode(client.abort(str(exc)))), 5.0)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass
        return out
    except asyncio.TimeoutError:
        out.reason = f"no frame from the server within {timeout:g}s."
        logger.warning("client %d: %s", client_id, out.reason)
        return out
    except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
        out.reason = f"connection lost: {exc}"
        logger.warning("client %d: %s", client_id, out.reason)
        return out
    finally:
        out.bytes_sent, out.bytes_received = conn.bytes_sent, conn.bytes_received
        if out.status != CRASHED:
            conn.close()


def _check_drop_names(drop_in: str | None, drop_after: str | None) -> None:
    every = rounds_for("active")
    if drop_in is not None and drop_in not in every:
        raise ValueError(f"drop_in must be a round name, one of {every}, got {drop_in!r}.")
    if drop_after is not None:
        if drop_in is not None:
            raise ValueError("give drop_in or the deprecated drop_after, not both.")
        if drop_after not in every:
            raise ValueError(f"drop_after must be a round name, one of {every}, got {drop_after!r}.")
        warnings.warn("drop_after=ROUND is deprecated: use drop_in=<the next round> (the client never sends that round's reply).",
                      DeprecationWarning, stacklevel=3)


def drop_round(mode: str, drop_in: str | None, drop_after: str | None = None) -> str | None:
    """The round whose reply a client never sends, for ``mode``; None: it drops nowhere.

    ``drop_after`` (deprecated) is the round before: the round after the last one is nowhere.

    Raises:
        ValueError: a round name that ``mode`` does not have (consistency_check is active mode only).
    """
    rounds = rounds_for(mode)
    for name, value in (("drop_in", drop_in), ("drop_after", drop_after)):
        if value is not None and value not in rounds:
            raise ValueError(f"{name} must be one of {rounds} in {mode} mode, got {value!r}.")
    if drop_after is not None:
        later = rounds[rounds.index(drop_after) + 1 :]
        return later[0] if later else None
    return drop_in


def _decode_or_none(data: bytes) -> Message | None:
    try:
        return decode(data)
    except DecodeError:
        return None


async def run_client(
    host: str,
    port: int,
    client_id: int,
    vector: npt.ArrayLike | DeviceInput,
    *,
    ssl_context: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    identity: Identity | None = None,
    drop_in: str | None = None,
    timeout: float = 120.0,
    rng: Rng | None = None,
    policy: Policy | None = None,
    drop_after: str | None = None,
) -> ClientOutcome:
    """Connect to ``host:port`` and take part in one aggregation as ``client_id``.

    Args:
        vector: the input, length ``cfg.vector_length``, values in [0, 2^bits).
        ssl_context: a client ``ssl.SSLContext`` (e.g. ``ssl.create_default_context(cafile=...)``).
        server_hostname: the name to verify the certificate against (default: ``host``).
        identity: the Ed25519 ``Identity`` (active mode; needs a ``policy`` that pins the identities).
        policy: what this client accepts (see ``run_session``).
        drop_in: testing: a round name; the client never sends that round's reply (it crashes instead).
        drop_after: deprecated: ``drop_in`` of the round after this one.
        timeout: seconds to connect, and the longest wait for any one server frame.

    Returns:
        a ``ClientOutcome``; connection and protocol failures are reported there, not raised.
    """
    _check_drop_names(drop_in, drop_after)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl_context, server_hostname=(server_hostname or host) if ssl_context else None
            ),
            timeout,
        )
    except (OSError, asyncio.TimeoutError) as exc:
        logger.warning("client %d: cannot connect to %s:%s: %s", client_id, host, port, exc)
        return ClientOutcome(client_id, FAILED, reason=f"cannot connect to {host}:{port}: {exc or type(exc).__name__}")
    conn = StreamConnection(reader, writer)
    outcome = await _session(conn, client_id, vector, identity, drop_in, drop_after, timeout, rng, policy)
    if outcome.status != CRASHED:
        await conn.wait_closed()
    return outcome
