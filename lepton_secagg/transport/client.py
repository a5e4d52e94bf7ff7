"""The asyncio client: connect, hand-shake, then run one ``Client`` session.

The client sends ``Join(client_id)``, reads the configuration frame (or an
``Abort`` if the server refuses it), checks it against its ``Policy`` (the
server proposes, the client decides), builds ``Client(cfg, client_id)``, sends
``start()``'s ``AdvertiseKeys`` and then answers each request until the
session completes or aborts.  ``drop_after=ROUND`` sends that round's reply
and then closes the socket abruptly, as a crash would (used by tests and the
demo).
"""
from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from dataclasses import dataclass

from .._state import Round, rounds_for
from ..client import Client
from ..config import Config
from ..exceptions import ConfigRefused, DecodeError, SecAggError
from ..messages import Abort, Join
from ..policy import Policy
from ..wire import decode, decode_config, encode, encode_parts
from .framing import CONFIG_LIMIT, Connection, StreamConnection

__all__ = ["ClientOutcome", "run_client", "run_session", "COMPLETED", "ABORTED", "CRASHED", "FAILED"]

logger = logging.getLogger(__name__)

COMPLETED = "completed"  # sent its last reply
ABORTED = "aborted"  # the server ended its participation (Abort received)
CRASHED = "crashed"  # closed the connection on purpose (drop_after)
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
    vector,
    *,
    identity=None,
    drop_after: str | None = None,
    timeout: float = 120.0,
    rng=None,
    policy: Policy | None = None,
) -> ClientOutcome:
    """Run one client session over an open ``Connection`` (TCP or in memory); never raises
    for network or protocol trouble, which is reported in the outcome.

    Args:
        timeout: the longest wait for any one frame from the server.
        policy: what this client accepts from the server (default ``Policy()``:
            any sound configuration; with an ``identity`` the policy must pin
            the cohort's identities, or every configuration is refused).
    """
    out = ClientOutcome(client_id, FAILED)
    client = None
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
        if drop_after is not None and drop_after not in rounds_for(cfg.mode):
            raise ValueError(f"drop_after must be one of {rounds_for(cfg.mode)}, got {drop_after!r}.")
        client = Client(cfg, client_id, rng=rng, identity=identity, policy=policy if policy is not None else Policy())
        client.set_input(vector)
        reply, rnd = client.start(), Round.ADVERTISE_KEYS.value
        while True:
            await conn.send(encode_parts(reply))  # the masked input goes out without a copy
            out.round = rnd
            if drop_after == rnd:
                logger.info("client %d: crashing after round %s as asked", client_id, rnd)
                await asyncio.sleep(0)
                conn.abort()
                out.status = CRASHED
                return out
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
                reply = client.receive(msg)
                if reply is not None:
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


def _decode_or_none(data):
    try:
        return decode(data)
    except DecodeError:
        return None


async def run_client(
    host: str,
    port: int,
    client_id: int,
    vector,
    *,
    ssl_context: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    identity=None,
    drop_after: str | None = None,
    timeout: float = 120.0,
    rng=None,
    policy: Policy | None = None,
) -> ClientOutcome:
    """Connect to ``host:port`` and take part in one aggregation as ``client_id``.

    Args:
        vector: the input, length ``cfg.vector_length``, values in [0, 2^bits).
        ssl_context: a client ``ssl.SSLContext`` (e.g. ``ssl.create_default_context(cafile=...)``).
        server_hostname: the name to verify the certificate against (default: ``host``).
        identity: the Ed25519 ``Identity`` (active mode; needs a ``policy`` that pins the identities).
        policy: what this client accepts (see ``run_session``).
        drop_after: a round name; the client sends that round's reply and then crashes.
        timeout: seconds to connect, and the longest wait for any one server frame.

    Returns:
        a ``ClientOutcome``; connection and protocol failures are reported there, not raised.
    """
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
    outcome = await run_session(conn, client_id, vector, identity=identity, drop_after=drop_after, timeout=timeout, rng=rng, policy=policy)
    if outcome.status != CRASHED:
        await conn.wait_closed()
    return outcome
