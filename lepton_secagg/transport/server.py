"""The asyncio aggregation server: accepts clients, then drives ``Server`` round by round.

Life of one aggregation:

1. **Join.**  Each connection sends one frame holding ``Join(client_id)``
   (at most ``JOIN_LIMIT`` bytes).  Ids out of range, ids already taken and
   anything that is not a ``Join`` get an ``Abort`` frame and are closed.
   The server answers a good ``Join`` with one frame holding
   ``wire.encode_config(cfg)``.  The join phase ends when all ``n`` ids are
   connected or ``join_timeout`` passes; later connections are refused.
   A connection that closes during the join phase before its first
   protocol message frees its id: it does not count as joined, and the id
   can join again.
2. **Rounds.**  For each round the server sends every live client its request
   and collects replies until every live client answered (``Server.ready``)
   or every client still pending is disconnected, or ``round_timeout``
   passes.  ``Server.advance`` then closes the round: non-responders are
   dropped.  ``AdvertiseKeys`` frames may arrive during the join phase.
3. **Failures stay local.**  A frame whose length prefix exceeds
   ``cfg.max_message_bytes``, an undecodable message, a message the core
   refuses or a second message in one round gets that client an ``Abort``
   and its connection closed; a read error or EOF marks it gone.  Either
   way the client is dropped when the round closes and the others carry on.
   Every reply is fed to ``Server.receive`` as soon as it is read, so the
   server holds one running total, never all masked inputs.

The server never drops a client in the middle of a round in which it
already answered (its reply, e.g. a masked input, already counts); it is
dropped in the next round, like any non-responder.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import ssl as _ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from .._state import Round, rounds_for
from ..config import Config
from ..exceptions import DecodeError
from ..hazmat.rng import Rng
from ..messages import CLIENT_MESSAGES, Abort, Join, ServerMessage
from ..server import AggregationResult, Server
from ..wire import decode, encode, encode_config
from .framing import HEADER_SIZE, JOIN_LIMIT, Connection, FrameGate, StreamConnection

__all__ = ["AggregationServer", "RoundStats", "run_server"]

logger = logging.getLogger(__name__)

_TERMINAL = (Round.COMPLETED, Round.ABORTED)
_ABORT_SEND_TIMEOUT = 5.0
# Large frame bodies buffered at once (FrameGate): about this many bytes, at least two
# frames.  Reading a body holds it twice for a moment (the stream's buffer, then bytes).
_LARGE_FRAMES_BUDGET = 32 << 20


@dataclass
class RoundStats:
    """What one round cost, as seen by the server.

    Attributes:
        round: the round name.
        seconds: wall time from sending the requests (or the end of the join
            phase) to the end of ``Server.advance`` for this round.
        bytes_up: frame bytes received from clients in this round (prefixes included).
        bytes_down: frame bytes sent to clients for this round's requests.
        expected: live clients when the round started.
        replies: clients whose reply was accepted.
        dropped: clients dropped when the round closed.
    """

    round: str
    seconds: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    expected: int = 0
    replies: int = 0
    dropped: int = 0


class AggregationServer:
    """One aggregation over TCP (``host`` given) or over ``transport.memory`` (``host=None``).

    Args:
        cfg: the session configuration (sent to every client at the handshake).
        host, port: where to listen; ``port=0`` picks a free port (see ``port``
            after ``start()``).  ``host=None``: no listener, connections come
            from ``handle_connection`` (the in-memory transport).
        round_timeout: seconds each round waits for replies.
        join_timeout: seconds the join phase lasts at most.
        ssl_context: a server-side ``ssl.SSLContext`` for TLS, or None.
        progress: called as ``progress(round, replies, expected)`` after each accepted reply.
        rng: passed to ``Server``.

    Usage::

        srv = AggregationServer(cfg, "127.0.0.1", 0, round_timeout=10)
        await srv.start()          # srv.port is bound now
        result = await srv.run()   # AggregationResult, or raises TooFewSurvivors / Aborted
    """

    def __init__(
        self,
        cfg: Config,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        round_timeout: float = 30.0,
        join_timeout: float = 60.0,
        ssl_context: _ssl.SSLContext | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        rng: Rng | None = None,
    ) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {type(cfg).__name__}.")
        if not round_timeout > 0 or not join_timeout > 0:
            raise ValueError("round_timeout and join_timeout must be positive.")
        self.cfg = cfg
        self.host = host
        self.port = port
        self.round_timeout = float(round_timeout)
        self.join_timeout = float(join_timeout)
        self.ssl_context = ssl_context
        self.progress = progress
        self.server = Server(cfg, rng=rng)
        self.stats: dict[str, RoundStats] = {name: RoundStats(name) for name in rounds_for(cfg.mode)}
        self.seconds = 0.0  # whole run, join phase included
        self.join_seconds = 0.0
        self.refused = 0  # connections refused at the handshake
        self._config_frame = encode_config(cfg)
        self._gate = FrameGate(max(2, _LARGE_FRAMES_BUDGET // (2 * cfg.max_message_bytes)))
        self._conns: dict[int, Connection] = {}
        self._gone: set[int] = set()
        self._joining = True
        self._join_deadline: float | None = None
        self._all_joined = asyncio.Event()
        self._changed = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._senders: set[asyncio.Task[None]] = set()
        self._listener: asyncio.AbstractServer | None = None
        self._started = False

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start accepting connections (binds the port when listening on TCP)."""
        if self._started:
            return
        self._started = True
        self._join_deadline = asyncio.get_running_loop().time() + self.join_timeout
        if self.host is not None:
            self._listener = await asyncio.start_server(
                self._on_tcp, self.host, self.port, ssl=self.ssl_context, backlog=max(128, min(self.cfg.num_clients, 4096))
            )
            self.port = self._listener.sockets[0].getsockname()[1]
            logger.info("listening on %s:%d (%d clients, %s)", self.host, self.port, self.cfg.num_clients, "TLS" if self.ssl_context else "plain TCP")

    async def run(self) -> AggregationResult:
        """Run the whole aggregation; returns the result.

        Raises:
            TooFewSurvivors / Aborted: the session ended without a sum.
        """
        await self.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            try:
                await asyncio.wait_for(self._all_joined.wait(), self._join_left())
            except asyncio.TimeoutError:
                missing = self.cfg.num_clients - len(self._conns)
                logger.warning("join deadline passed: %d of %d clients never joined", missing, self.cfg.num_clients)
            self._joining = False
            self._gone.update(set(range(self.cfg.num_clients)) - self._conns.keys())  # never joined: nothing to wait for
            self.join_seconds = loop.time() - t0
            logger.info("join phase over: %d clients connected in %.2fs", len(self._conns), self.join_seconds)
            round_start = loop.time()
            while True:
                st = self.stats[self.server.round.value]
                st.expected = len(self.server.live)
                await self._collect(round_start + self.round_timeout)
                pending = self.server.pending
                st.replies = st.expected - len(pending)
                live_before = self.server.live
                requests = self.server.advance()
                st.dropped = len(live_before - self.server.live)
                st.seconds = loop.time() - round_start
                logger.info("round %s closed: %d/%d replies, %d dropped, %.3fs", st.round, st.replies, st.expected, st.dropped, st.seconds)
                round_start = loop.time()
                for cid in sorted(live_before - self.server.live - requests.keys()):
                    if cid in pending:
                        requests[cid] = Abort(f"client {cid} sent no reply in round {st.round} before the deadline.")
                self._dispatch(requests, self.stats.get(self.server.round.value, st))
                if self.server.round in _TERMINAL:
                    break
            if self._senders:
                await asyncio.wait(set(self._senders), timeout=_ABORT_SEND_TIMEOUT)
            return self.server.result()
        finally:
            self.seconds = loop.time() - t0
            await self.close()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        self._joining = False
        if self._listener is not None:
            self._listener.close()
        for task in list(self._senders) + list(self._handlers):
            task.cancel()
        for conn in self._conns.values():
            conn.close()
        tasks = list(self._senders) + list(self._handlers)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    async def __aenter__(self) -> "AggregationServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> frozenset[int]:
        """Ids whose connection is still open."""
        return frozenset(self._conns.keys() - self._gone)

    # --- connections ---------------------------------------------------------------

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.handle_connection(StreamConnection(reader, writer))

    async def handle_connection(self, conn: Connection) -> None:
        """Serve one connection until it closes or the session ends (never raises)."""
        task = cast("asyncio.Task[Any]", asyncio.current_task())  # a coroutine asyncio runs is always in a task
        self._handlers.add(task)
        cid = None
        try:
            cid = await self._handshake(conn)
            if cid is None:
                return
            limit = self.cfg.max_message_bytes
            while True:
                # No local may keep the last frame (a whole masked input) alive while we wait.
                abort = self._on_frame(cid, await conn.recv(limit, self._gate))
                if abort is not None:
                    if isinstance(abort, Abort):  # else _LEFT
                        await self._send_quietly(conn, encode(abort))
                    return
        except DecodeError as exc:  # an oversized length prefix
            logger.warning("client %s (%s): %s Closing its connection.", cid, conn.peer, exc)
            if cid is not None:
                await self._send_quietly(conn, encode(Abort(f"protocol error: {exc}")))
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            logger.info("client %s (%s): connection lost: %s", cid, conn.peer, exc)
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - a bug; keep the other clients going
            logger.exception("client %s (%s): unexpected error", cid, conn.peer)
        finally:
            self._handlers.discard(task)
            if cid is not None and not self._release(cid, conn):
                self._gone.add(cid)
                self._changed.set()
            conn.close()

    def _release(self, cid: int, conn: Connection) -> bool:
        """Free ``cid`` if its connection closed in the join phase before the core heard from it.

        A client the core already heard from (its AdvertiseKeys counts) stays
        and is dropped like any other non-responder.
        """
        heard = self.server.round is not Round.ADVERTISE_KEYS or cid not in self.server.pending
        if not self._joining or heard or self._conns.get(cid) is not conn:
            return False
        del self._conns[cid]
        self._all_joined.clear()
        logger.info("client %d left during the join phase; its id is free again", cid)
        return True

    async def _handshake(self, conn: Connection) -> int | None:
        """Read the ``Join``, register the id and send the configuration; None when refused."""
        if not self._joining:
            await self._refuse(conn, "the join phase of this session is over.")
            return None
        try:
            data = await asyncio.wait_for(conn.recv(JOIN_LIMIT), self._join_left())
        except asyncio.TimeoutError:
            logger.info("connection %s sent no Join before the join deadline; closing it", conn.peer)
            self.refused += 1
            return None
        try:
            msg = decode(data)
        except DecodeError as exc:
            await self._refuse(conn, f"the first message must be a Join: {exc}")
            return None
        if not isinstance(msg, Join):
            await self._refuse(conn, f"the first message must be a Join, not {type(msg).__name__}.")
            return None
        cid = msg.client_id
        if not self._joining:
            await self._refuse(conn, "the join phase of this session is over.")
            return None
        if cid >= self.cfg.num_clients:
            await self._refuse(conn, f"client id {cid} is out of range 0..{self.cfg.num_clients - 1}.")
            return None
        if cid in self._conns:
            await self._refuse(conn, f"client id {cid} has already joined.")
            return None
        self._conns[cid] = conn
        if len(self._conns) == self.cfg.num_clients:
            self._all_joined.set()
        logger.debug("client %d joined from %s", cid, conn.peer)
        try:
            await asyncio.wait_for(conn.send(self._config_frame), self.round_timeout)
        except BaseException:
            if not self._release(cid, conn):
                self._gone.add(cid)
                self._changed.set()
            raise
        return cid

    def _join_left(self) -> float:
        """Seconds left in the join phase, whose deadline ``start`` sets."""
        if self._join_deadline is None:
            raise RuntimeError("the server is not started: call start() first.")
        return max(0.0, self._join_deadline - asyncio.get_running_loop().time())

    async def _refuse(self, conn: Connection, reason: str) -> None:
        logger.warning("refused connection %s: %s", conn.peer, reason)
        self.refused += 1
        await self._send_quietly(conn, encode(Abort(reason)))
        return None

    def _on_frame(self, cid: int, data: bytes) -> Abort | _Left | None:
        """Feed one frame to the core; returns None to keep reading, else the Abort to send (or _LEFT)."""
        srv = self.server
        if srv.round in _TERMINAL or cid in self._gone:
            return _LEFT
        st = self.stats[srv.round.value]
        st.bytes_up += HEADER_SIZE + len(data)
        try:
            msg = decode(data, self.cfg)
        except DecodeError as exc:
            logger.warning("client %d sent an undecodable message in round %s: %s", cid, srv.round.value, exc)
            return Abort(f"undecodable message: {exc}")
        if cid not in srv.pending:
            why = "answered twice in one round" if cid in srv.live else "is no longer part of this session"
            logger.warning("client %d %s (round %s)", cid, why, srv.round.value)
            return Abort(f"client {cid} {why}.")
        if not isinstance(msg, CLIENT_MESSAGES):
            # A Join, a server or an FL message.  Server.receive takes client messages only; the
            # client is dropped as the core drops a refused one (its Abort does exactly that).
            refusal = Abort(f"{type(msg).__name__} is not expected in round {srv.round.value}.")
            srv.receive(cid, refusal)
            self._changed.set()
            logger.warning("client %d refused in round %s: %s", cid, srv.round.value, refusal.reason)
            return refusal
        abort = srv.receive(cid, msg)
        self._changed.set()
        if abort is not None:
            logger.warning("client %d refused in round %s: %s", cid, srv.round.value, abort.reason)
            return abort
        if isinstance(msg, Abort):
            logger.info("client %d left in round %s: %s", cid, srv.round.value, msg.reason)
            return _LEFT
        if self.progress is not None:
            self.progress(srv.round.value, len(srv.live) - len(srv.pending), len(srv.live))
        return None

    # --- rounds --------------------------------------------------------------------

    async def _collect(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = self.server.pending - self._gone
            if not waiting:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                logger.warning("round %s deadline passed; %d clients did not answer", self.server.round.value, len(waiting))
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _dispatch(self, requests: dict[int, ServerMessage], st: RoundStats) -> None:
        for cid, msg in sorted(requests.items()):
            conn = self._conns.get(cid)
            if conn is None or cid in self._gone:
                continue
            data = encode(msg)
            st.bytes_down += HEADER_SIZE + len(data)
            task = asyncio.ensure_future(self._send(cid, conn, data, final=isinstance(msg, Abort)))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _send(self, cid: int, conn: Connection, data: bytes, final: bool) -> None:
        try:
            await asyncio.wait_for(conn.send(data), self.round_timeout)
        except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
            logger.info("client %d: send failed (%s); marking it gone", cid, exc or type(exc).__name__)
            final = True
            conn.abort()
        if final:
            self._gone.add(cid)
            self._changed.set()
            conn.close()

    async def _send_quietly(self, conn: Connection, data: bytes) -> None:
        try:
            await asyncio.wait_for(conn.send(data), _ABORT_SEND_TIMEOUT)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass


class _Left(enum.Enum):
    LEFT = "left"


_LEFT = _Left.LEFT  # the client left (or the session is over): close without sending anything


async def run_server(
    cfg: Config,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    round_timeout: float = 30.0,
    ssl_context: _ssl.SSLContext | None = None,
    join_timeout: float = 60.0,
    progress: Callable[[str, int, int], None] | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> AggregationResult:
    """Serve one aggregation over TCP and return its result.

    ``on_listening(port)`` is called once the port is bound (useful with ``port=0``).

    Raises:
        TooFewSurvivors / Aborted: the session ended without a sum.
        OSError: the address cannot be bound.
    """
    srv = AggregationServer(cfg, host, port, round_timeout=round_timeout, join_timeout=join_timeout, ssl_context=ssl_context, progress=progress)
    await srv.start()
    if on_listening is not None:
        on_listening(srv.port)
    return await srv.run()
