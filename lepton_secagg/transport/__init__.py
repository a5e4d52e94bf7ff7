"""Transport: run a session over asyncio TCP (optionally TLS) or in memory.

Framing is a 4-byte big-endian length and one wire message
(``transport.framing``); ``docs/transport.md`` describes the handshake,
deadlines and failure handling.  The sans-I/O core (``Client``, ``Server``)
never imports this package.
"""
from __future__ import annotations

from .client import ClientOutcome, run_client, run_session
from .framing import ConnectionClosed, FrameTooLarge
from .memory import MemoryNetwork, run_memory_aggregation
from .server import AggregationServer, RoundStats, run_server

__all__ = [
    "AggregationServer",
    "RoundStats",
    "run_server",
    "run_client",
    "run_session",
    "ClientOutcome",
    "MemoryNetwork",
    "run_memory_aggregation",
    "FrameTooLarge",
    "ConnectionClosed",
]
