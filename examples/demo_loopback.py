"""One aggregation over real loopback TCP: a server and N clients as asyncio tasks.

Some clients drop out in a chosen round (``drop_in``: they close their socket
abruptly instead of answering); the server drops them when they stop answering
and the decoded sum still equals the plaintext sum of the included inputs.

    python examples/demo_loopback.py            # 12 clients, m = 1000
    python examples/demo_loopback.py 50 10000   # n, m
"""
from __future__ import annotations

import asyncio
import sys

import numpy as np

import lepton_secagg as ls
from lepton_secagg.transport import AggregationServer, run_client


async def main(n: int, m: int) -> bool:
    cfg = ls.Config(num_clients=n, vector_length=m)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 2**32, m, dtype=np.uint64).astype(np.uint32) for _ in range(n)]
    drops = {1: "share_keys", 2: "masked_input", 3: "unmasking"}  # 3 sent its masked input: still in the sum

    server = AggregationServer(cfg, "127.0.0.1", 0, round_timeout=30)
    await server.start()
    print(f"server on 127.0.0.1:{server.port}, {n} clients, m={m}, t={cfg.threshold}")
    clients = [run_client("127.0.0.1", server.port, cid, inputs[cid], drop_in=drops.get(cid)) for cid in range(n)]
    result, _ = await asyncio.gather(server.run(), asyncio.gather(*clients))

    for name, st in server.stats.items():
        print(f"  {name:<16} {st.seconds:7.3f}s  up {st.bytes_up:>9} B  down {st.bytes_down:>9} B  dropped {st.dropped}")
    expected = np.zeros(m, dtype=np.uint32)
    for cid in result.included:
        expected += inputs[cid]  # wraps mod 2^32, like the protocol
    ok = bool(np.array_equal(result.sum, expected))
    print(f"included {len(result.included)}/{n}, dropped {result.dropped}")
    print("sum matches the plaintext sum:", ok)
    return ok


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]] or [12, 1000]
    if args[0] < 8:
        sys.exit("use at least 8 clients: 3 of them drop out, and the threshold is a majority.")
    sys.exit(0 if asyncio.run(main(*args)) else 1)
