"""From set_float_input to the socket, the update is read once and the masked vector written once (C kernel).

Copies are counted, not timed: tracemalloc sees every numpy allocation, so the
peak of new memory while a client computes and frames its masked input says
how many vector-sized buffers it made.
"""
from __future__ import annotations

import asyncio
import tracemalloc

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg._kernels import _native
from lepton_secagg import wire
from lepton_secagg.encoding import Quantizer
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.transport.framing import StreamConnection, read_frame


def client_at_masked_input(m: int):
    n = 3
    cfg = ls.Config(num_clients=n, vector_length=m + 1, threshold=2)
    clients = [ls.Client(cfg, cid, rng=DeterministicRng(b"z%d" % cid)) for cid in range(n)]
    server = ls.Server(cfg)
    for cid, c in enumerate(clients):
        server.receive(cid, c.start())
    requests = server.advance()
    for cid, c in enumerate(clients):
        server.receive(cid, c.receive(requests[cid]))
    return clients[0], server.advance()[0]


def test_fused_path_allocates_one_vector_between_set_input_and_the_wire(kernel_backend):
    if kernel_backend is _native:
        pytest.skip("the numpy specification materialises its keystreams; the count is the C kernel's")
    m = 1_000_000
    client, request = client_at_masked_input(m)
    q = Quantizer(clip=1.0, bits=32, num_clients=3, max_weight=10)
    update = np.random.default_rng(0).uniform(-1, 1, m).astype(np.float32)
    tracemalloc.start()
    try:
        client.set_float_input(update, q, weight=3)
        msg = client.receive(request)
        parts = wire.encode_parts(msg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    vector_bytes = 4 * (m + 1)
    assert peak < 1.25 * vector_bytes  # the masked vector itself, and nothing else of its size
    assert np.shares_memory(np.frombuffer(parts[-1], np.uint8), msg.vector)


def test_unfused_path_for_comparison_copies():
    """The integer path still checks and copies its input (set_input keeps its own), so the count above can fail."""
    m = 1_000_000
    client, request = client_at_masked_input(m)
    vec = np.zeros(m + 1, dtype=np.uint32)
    tracemalloc.start()
    try:
        client.set_input(vec)
        client.receive(request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak >= 2 * 4 * (m + 1)


def test_stream_connection_sends_parts_as_one_frame():
    payload = np.arange(300_000, dtype=np.uint32)
    parts = [b"head", memoryview(payload).cast("B")]

    async def main():
        got = asyncio.get_running_loop().create_future()

        async def on_client(reader, writer):
            got.set_result(await read_frame(reader, 1 << 24))
            writer.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = StreamConnection(reader, writer)
        await conn.send(parts)
        body = await asyncio.wait_for(got, 10)
        conn.close()
        server.close()
        await server.wait_closed()
        return body, conn.bytes_sent

    body, sent = asyncio.run(main())
    assert body == b"head" + payload.tobytes()
    assert sent == 4 + len(body)
