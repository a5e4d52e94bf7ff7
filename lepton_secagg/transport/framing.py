"""Length-prefixed framing and the connection interface both transports share.

A frame is a 4-byte big-endian length followed by that many bytes: exactly one
wire message (``wire.encode``) or, once, the session configuration
(``wire.encode_config``).  The reader is told the largest frame it accepts and
checks the length prefix *before* reading the body, so a peer cannot make us
allocate more than the limit.

``Connection`` is the small interface the server and client drivers use:
``recv(limit)``, ``send(data)``, ``close()`` and ``abort()`` (abrupt close,
used to simulate a crash).  ``StreamConnection`` implements it over asyncio
streams (TCP, optionally TLS); ``transport.memory`` implements it over queues.
"""
from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import TypeAlias

from ..exceptions import DecodeError

_Bytes: TypeAlias = bytes | bytearray | memoryview
#: A frame body: bytes, or buffers whose concatenation is the body (``wire.encode_parts``).
Body: TypeAlias = _Bytes | Iterable[_Bytes]

__all__ = [
    "HEADER_SIZE",
    "JOIN_LIMIT",
    "CONFIG_LIMIT",
    "MAX_FRAME",
    "FrameTooLarge",
    "ConnectionClosed",
    "Connection",
    "StreamConnection",
    "frame",
    "body_parts",
    "read_frame",
    "FrameGate",
]

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
#: The largest frame a server reads before it knows who is talking (the ``Join``).
JOIN_LIMIT = 64 * 1024
#: The largest configuration frame a client accepts (``wire.decode_config``'s own bound).
CONFIG_LIMIT = 1 << 26
#: The largest length a 4-byte prefix can state.
MAX_FRAME = (1 << 32) - 1


class FrameTooLarge(DecodeError):
    """A length prefix announced more bytes than the receiver accepts."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"a frame of {size} bytes was announced; the limit is {limit}.")
        self.size = size
        self.limit = limit


class ConnectionClosed(ConnectionError):
    """The peer closed the connection (possibly in the middle of a frame)."""


def frame(data: bytes) -> bytes:
    """The frame holding ``data`` (length prefix + body).

    Raises:
        ValueError: ``data`` is longer than a 4-byte length can state.
    """
    if len(data) > MAX_FRAME:
        raise ValueError(f"a frame holds at most {MAX_FRAME} bytes, got {len(data)}.")
    return _HEADER.pack(len(data)) + bytes(data)


def body_parts(data: Body) -> list[memoryview]:
    """A frame body given as bytes or as a list of buffers, as byte memoryviews (nothing is copied)."""
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    return [memoryview(p).cast("B") for p in parts]


class FrameGate:
    """Bounds how many large frame bodies are buffered at the same time.

    A server reading n connections at once would otherwise hold n whole
    masked inputs.  Bodies of at least ``threshold`` bytes are read only
    under one of ``permits`` permits; the others wait with their bytes in
    the kernel's socket buffers (TCP flow control), so memory stays about
    ``permits`` frames whatever n is.  A permit holder must deliver its body
    at ``min_rate`` bytes per second (plus one second), or the read times out
    and that connection is dropped: a slow sender cannot starve the others.
    """

    def __init__(self, permits: int, threshold: int = 256 << 10, min_rate: float = float(1 << 20)):
        if permits < 1:
            raise ValueError("a FrameGate needs at least one permit.")
        self.threshold = threshold
        self.min_rate = min_rate
        self._permits = asyncio.Semaphore(permits)

    async def read_body(self, reader: asyncio.StreamReader, size: int) -> bytes:
        if size < self.threshold:
            return await reader.readexactly(size)
        async with self._permits:
            return await asyncio.wait_for(reader.readexactly(size), 1.0 + size / self.min_rate)


async def read_frame(reader: asyncio.StreamReader, limit: int, gate: FrameGate | None = None) -> bytes:
    """Read one frame's body from ``reader`` (large bodies through ``gate`` when given).

    Raises:
        FrameTooLarge: the length prefix exceeds ``limit`` (the body is not read).
        ConnectionClosed: end of stream before a whole frame arrived.
        asyncio.TimeoutError: a gated body arrived slower than the gate's rate.
    """
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed("the peer closed the connection" + (" inside a frame header." if exc.partial else ".")) from None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise FrameTooLarge(size, limit)
    try:
        return await (gate.read_body(reader, size) if gate is not None else reader.readexactly(size))
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed(f"the peer closed the connection after {len(exc.partial)} of {size} frame bytes.") from None


class Connection:
    """One framed, bidirectional connection (abstract).

    Attributes:
        bytes_sent / bytes_received: frame bytes (length prefixes included).
        peer: a printable name of the other end.
    """

    peer: str = "?"

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.bytes_received = 0

    async def recv(self, limit: int, gate: FrameGate | None = None) -> bytes:
        """The next frame's body; see ``read_frame`` for the errors."""
        raise NotImplementedError

    async def send(self, data: Body) -> None:
        """Send ``data`` as one frame; raises ``ConnectionError`` if the connection is gone.

        ``data`` is bytes, or a list of buffers (``wire.encode_parts``) whose
        concatenation is the frame's body.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Close gracefully (what was sent is still delivered)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close abruptly, as a crash would: unsent data is discarded."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError


class StreamConnection(Connection):
    """A ``Connection`` over an asyncio ``StreamReader``/``StreamWriter`` pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__()
        self._reader = reader
        self._writer = writer
        name = writer.get_extra_info("peername")
        self.peer = f"{name[0]}:{name[1]}" if isinstance(name, tuple) and len(name) >= 2 else str(name)

    async def recv(self, limit: int, gate: FrameGate | None = None) -> bytes:
        data = await read_frame(self._reader, limit, gate)
        self.bytes_received += HEADER_SIZE + len(data)
        return data

    async def send(self, data: Body) -> None:
        if self._writer.is_closing():
            raise ConnectionClosed("the connection is closed.")
        parts = body_parts(data)
        size = sum(p.nbytes for p in parts)
        if size > MAX_FRAME:
            raise ValueError(f"a frame holds at most {MAX_FRAME} bytes, got {size}.")
        # Each part is handed to the transport as it is, never joined: a masked
        # input leaves from the vector's own memory.  (asyncio on Python 3.11
        # copies whatever the socket does not take at once into its buffer; 3.12+
        # keeps the buffers themselves.)
        self._writer.write(_HEADER.pack(size))
        for part in parts:
            self._writer.write(part)
        self.bytes_sent += HEADER_SIZE + size
        await self._writer.drain()

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()

    def abort(self) -> None:
        transport = self._writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        else:
            self.close()

    async def wait_closed(self) -> None:
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):  # pragma: no cover - best effort
            pass

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()
