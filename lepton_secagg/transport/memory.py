"""An in-memory transport: the same server and client drivers over asyncio queues.

``MemoryNetwork(server)`` connects clients to an ``AggregationServer`` built
with ``host=None``.  Frames go through the same size limits, the same wire
codec and the same deadlines as over TCP, so tests exercise the transport
logic without sockets::

    srv = AggregationServer(cfg, host=None, round_timeout=5)
    net = MemoryNetwork(srv)
    result, outcomes = await asyncio.gather(srv.run(), asyncio.gather(*(
        net.run_client(cid, inputs[cid]) for cid in range(cfg.num_clients))))
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import cast

import numpy.typing as npt

from ..config import Config
from ..device_input import DeviceInput
from ..hazmat.rng import Rng
from ..hazmat.sign import Identity
from ..policy import Policy
from ..server import AggregationResult
from .client import ClientOutcome, run_session
from .framing import HEADER_SIZE, Body, ConnectionClosed, Connection, FrameGate, FrameTooLarge, body_parts
from .server import AggregationServer

__all__ = ["MemoryConnection", "MemoryNetwork", "memory_pair", "run_memory_aggregation"]

_EOF = None  # queued when the sending end closes


class MemoryConnection(Connection):
    """One end of an in-memory connection (made by ``memory_pair``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.peer = name
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._other: MemoryConnection | None = None
        self._closed = False
        self._eof = False

    async def recv(self, limit: int, gate: FrameGate | None = None) -> bytes:  # queues buffer whole frames: no gate
        if self._eof:
            raise ConnectionClosed("the peer closed the connection.")
        data = await self._inbox.get()
        if data is None:  # _EOF
            self._eof = True
            raise ConnectionClosed("the peer closed the connection.")
        if len(data) > limit:
            raise FrameTooLarge(len(data), limit)
        self.bytes_received += HEADER_SIZE + len(data)
        return data

    async def send(self, data: Body) -> None:
        if self._closed or self._other is None or self._other._closed:
            raise ConnectionClosed("the connection is closed.")
        body = b"".join(body_parts(data))  # the receiver gets its own bytes, as from a socket
        self.bytes_sent += HEADER_SIZE + len(body)
        self._other._inbox.put_nowait(body)
        await asyncio.sleep(0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._other is not None:
                self._other._inbox.put_nowait(_EOF)

    def abort(self) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed


def memory_pair(name: str = "memory") -> tuple[MemoryConnection, MemoryConnection]:
    """Two connected ends (client side, server side)."""
    a, b = MemoryConnection(f"{name}/client"), MemoryConnection(f"{name}/server")
    a._other, b._other = b, a
    return a, b


class MemoryNetwork:
    """Connects in-process clients to an ``AggregationServer`` made with ``host=None``."""

    def __init__(self, server: AggregationServer) -> None:
        self.server = server
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def connect(self) -> MemoryConnection:
        """A new connection; its server end is handed to the server at once."""
        self._count += 1
        client_end, server_end = memory_pair(f"memory-{self._count}")
        task = asyncio.ensure_future(self.server.handle_connection(server_end))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client_end

    async def run_client(self, client_id: int, vector: npt.ArrayLike | DeviceInput, *, identity: Identity | None = None, drop_in: str | None = None,
                         timeout: float = 120.0, rng: Rng | None = None, policy: Policy | None = None) -> ClientOutcome:
        """``transport.client.run_client`` over this network (``drop_in``: the round whose reply it never sends)."""
        return await run_session(self.connect(), client_id, vector, identity=identity, drop_in=drop_in, timeout=timeout, rng=rng,
                                 policy=policy)


async def run_memory_aggregation(
    cfg: Config,
    inputs: Sequence[npt.ArrayLike],
    drop_in: Mapping[int, str] | None = None,
    *,
    round_timeout: float = 10.0,
    join_timeout: float = 10.0,
    identities: Sequence[Identity] | None = None,
) -> tuple[AggregationServer, AggregationResult | BaseException, list[ClientOutcome | BaseException]]:
    """One whole aggregation in memory: returns ``(server, result_or_exception, outcomes)``.

    The clients pin ``cfg`` (``Policy(config=cfg)``): they know the configuration they were built for.
    """
    srv = AggregationServer(cfg, host=None, round_timeout=round_timeout, join_timeout=join_timeout)
    net = MemoryNetwork(srv)
    drop_in = dict(drop_in or {})
    clients = [
        net.run_client(cid, inputs[cid], drop_in=drop_in.get(cid), identity=identities[cid] if identities else None,
                       policy=Policy(config=cfg))
        for cid in range(cfg.num_clients)
    ]
    result, *outcomes = await asyncio.gather(srv.run(), *clients, return_exceptions=True)
    # gather keeps the order: run()'s result first, then each client's outcome (each possibly an exception)
    return srv, cast("AggregationResult | BaseException", result), cast("list[ClientOutcome | BaseException]", outcomes)
