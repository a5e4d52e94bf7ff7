"""libFuzzer-style harness (atheris) over ``wire.decode`` and the parties' handlers.

Not a pytest module (its name does not start with ``test_``).  Usage, see
tests/fuzz/README.md::

    pip install atheris
    python tests/fuzz/atheris_wire.py --write-seeds tests/fuzz/corpus   # real messages as seeds
    python tests/fuzz/atheris_wire.py tests/fuzz/corpus -max_total_time=300

Input layout: byte 0 picks one recorded message (its configuration and its
receiver's snapshot, see tests/test_fuzz_wire.py); the rest is the message.
Checks: ``decode(data)`` and ``decode(data, cfg)`` return a message or raise
``DecodeError``; a decoded message is handed to the receiver (a client must
accept it or raise a ``SecAggError`` without changing; the server must accept
it or answer ``Abort`` for that client only, and ``advance`` must not raise).
Any other exception or a failed assertion is a crash that libFuzzer reports
with the input that caused it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

with atheris.instrument_imports():
    import msgpack  # noqa: F401
    import lepton_secagg.wire  # noqa: F401
    import lepton_secagg._client_rounds  # noqa: F401
    import lepton_secagg._server_rounds  # noqa: F401

from tests.test_fuzz_wire import all_snapshots, check_one  # noqa: E402

SNAPSHOTS = all_snapshots()
PARTIES = os.environ.get("LEPTON_FUZZ_PARTIES", "1") != "0"  # 0: decode only


def one_input(data: bytes) -> None:
    if not data:
        return
    snap = SNAPSHOTS[data[0] % len(SNAPSHOTS)]
    message = data[1:]
    if PARTIES:
        check_one(snap, message)
    else:
        from tests.test_fuzz_wire import check_decode
        check_decode(message, snap.cfg)


def write_seeds(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i, snap in enumerate(SNAPSHOTS[:256]):
        (out / f"{snap.name}-{snap.index:03d}-{snap.direction}").write_bytes(bytes([i]) + snap.data)
    print(f"wrote {min(len(SNAPSHOTS), 256)} seed inputs to {out}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
