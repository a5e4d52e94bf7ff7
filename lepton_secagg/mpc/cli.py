"""``lepton-secagg mpc``: Prio3 aggregators and clients from the command line.

* ``mpc keygen --out FILE``: an aggregator seed (hex) in FILE, its public key in FILE.pub.
* ``mpc serve --role helper --key K --peer-key LEADER.pub --port P``: the helper; serves one batch.
* ``mpc serve --role leader --key K --peer-key HELPER.pub --helper HOST:PORT --port P --reports N``:
  the leader; prints the aggregate after N uploads.
* ``mpc submit --leader HOST:PORT --leader-key L.pub --helper-key H.pub --values 0.1,-0.2,...``: one client.

Every party takes the same task flags: ``--task`` (the context string),
``--vdaf l2`` (``--length``, ``--bits``, ``--bound``: float updates with
``||x||_2 <= bound``) or ``--vdaf sumvec`` (``--length``, ``--max``: integers).
Servers print ``listening on PORT`` on stdout once ready (``--port 0`` picks one).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._preflight import UsageError
from .keys import AggregatorKeys
from .l2 import BoundedL2VecSum, norm_bound_sq, prio3_bounded_l2_vec_sum
from .prio3 import Prio3, prio3_sum_vec
from .service import BatchOutcome, HelperService, LeaderService, submit

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``mpc`` sub-command to the main parser's sub-parsers."""
    p = sub.add_parser("mpc", help="Prio3 (two aggregators, validated inputs): keygen, serve, submit")
    mpc = p.add_subparsers(dest="mpc_command", required=True)

    k = mpc.add_parser("keygen", help="write an aggregator key (FILE) and its public key (FILE.pub)")
    k.add_argument("--out", required=True, type=Path)
    _common(k)
    k.set_defaults(func=cmd_keygen)

    s = mpc.add_parser("serve", help="run the leader or the helper aggregator for one batch")
    s.add_argument("--role", choices=["leader", "helper"], required=True)
    s.add_argument("--key", type=Path, required=True, help="this aggregator's key file")
    s.add_argument("--peer-key", type=Path, required=True, help="the other aggregator's .pub file")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--helper", help="leader: the helper's HOST:PORT")
    s.add_argument("--reports", type=int, default=1, help="leader: uploads to take before aggregating")
    s.add_argument("--min-batch-size", type=int, default=1)
    _task(s)
    _common(s)
    s.set_defaults(func=cmd_serve)

    c = mpc.add_parser("submit", help="shard a vector, upload it to the leader, print whether it was accepted")
    c.add_argument("--leader", required=True, help="HOST:PORT")
    c.add_argument("--leader-key", type=Path, required=True)
    c.add_argument("--helper-key", type=Path, required=True)
    c.add_argument("--values", required=True, help="comma-separated numbers (write --values=-0.1,... for a leading minus)")
    _task(c)
    _common(c)
    c.set_defaults(func=cmd_submit)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_true")


def _task(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="lepton-secagg mpc", help="task name, bound into every derivation")
    p.add_argument("--vdaf", choices=["l2", "sumvec"], default="l2")
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--bits", type=int, default=16, help="l2: bits per entry")
    p.add_argument("--bound", type=float, default=1.0, help="l2: the L2 norm bound of an update")
    p.add_argument("--max", type=int, default=255, help="sumvec: largest entry")


def _vdaf(args: argparse.Namespace) -> Prio3[Any, list[int]]:
    # The measurement type follows --vdaf (integer array for l2, list of ints for sumvec), hence Any.
    if args.vdaf == "l2":
        return prio3_bounded_l2_vec_sum(2, args.length, args.bits, norm_bound_sq(1.0, args.bits))
    return prio3_sum_vec(2, args.length, args.max, max(1, int((args.length * args.max.bit_length()) ** 0.5)))


def _address(text: str, flag: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"{flag} must be HOST:PORT, got {text!r}.")
    return host, int(port)


def _read_hex(path: Path, size: int, what: str) -> bytes:
    try:
        data = bytes.fromhex(path.read_text().strip())
    except ValueError:
        data = b""
    if len(data) != size:
        raise ValueError(f"{path}: {what} must be {size} bytes written as {2 * size} hex digits.")
    return data


def _read_key(path: Path) -> AggregatorKeys:
    return AggregatorKeys(_read_hex(path, 32, "an aggregator key (from 'mpc keygen')"))


def _read_public(path: Path) -> bytes:
    return _read_hex(path, 64, "an aggregator public key (the .pub file from 'mpc keygen')")


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..cli import EXIT_OK  # lazily: lepton_secagg.cli imports this module

    keys = AggregatorKeys.generate()
    # Created owner-only from the start: the seed is the aggregator's secret.
    with os.fdopen(os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(keys.seed.hex() + "\n")
    Path(f"{args.out}.pub").write_text(keys.public.hex() + "\n")
    print(json.dumps({"ok": True, "public": keys.public.hex()}) if args.json else f"wrote {args.out} and {args.out}.pub")
    return EXIT_OK


def _announce(future: asyncio.Future[int]) -> asyncio.Future[int]:
    def done(f: asyncio.Future[int]) -> None:
        if not f.cancelled() and f.exception() is None:
            print(f"listening on {f.result()}", flush=True)
    future.add_done_callback(done)
    return future


def cmd_serve(args: argparse.Namespace) -> int:
    from ..cli import EXIT_OK

    vdaf, ctx = _vdaf(args), args.task.encode()
    keys, peer = _read_key(args.key), _read_public(args.peer_key)

    async def run() -> BatchOutcome[list[int]] | None:
        ready = _announce(asyncio.get_running_loop().create_future())
        if args.role == "helper":
            await HelperService(vdaf, ctx, keys, peer, min_batch_size=args.min_batch_size).serve(
                args.host, args.port, ready)
            return None
        if not args.helper:
            raise UsageError("--helper HOST:PORT is required for the leader.")
        leader = LeaderService(vdaf, ctx, keys, peer, expected_reports=args.reports,
                               min_batch_size=args.min_batch_size)
        return await leader.run(args.host, args.port, *_address(args.helper, "--helper"), ready)

    outcome = asyncio.run(run())
    if outcome is None:
        print(json.dumps({"ok": True, "role": "helper"}) if args.json else "helper: batch done")
        return EXIT_OK
    result: list[int] | list[float] = outcome.result
    if args.vdaf == "l2":
        scale = 2 ** (args.bits - 1)
        result = [x / scale * args.bound for x in outcome.result]
    summary = {"ok": True, "role": "leader", "sum": result, "raw_sum": outcome.result,
               "accepted": len(outcome.accepted), "rejected": len(outcome.rejected),
               "reasons": sorted(set(outcome.rejected.values()))}
    print(json.dumps(summary) if args.json else
          f"accepted {summary['accepted']}, rejected {summary['rejected']}; sum = {result}")
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from ..cli import EXIT_OK, EXIT_REFUSED

    vdaf, ctx = _vdaf(args), args.task.encode()
    values = [float(v) for v in args.values.split(",") if v.strip()]
    measurement: npt.NDArray[np.int64] | list[int]
    if args.vdaf == "l2":
        circuit = vdaf.flp.circuit
        assert isinstance(circuit, BoundedL2VecSum)  # _vdaf built the L2 circuit for --vdaf l2
        measurement = circuit.quantise(np.array(values) / args.bound)
    else:
        measurement = [int(v) for v in values]
    accepted, reason = asyncio.run(submit(*_address(args.leader, "--leader"), vdaf, ctx, measurement,
                                          _read_public(args.leader_key), _read_public(args.helper_key)))
    print(json.dumps({"ok": accepted, "accepted": accepted, "reason": reason}) if args.json else
          ("accepted" if accepted else f"rejected: {reason}"))
    return EXIT_OK if accepted else EXIT_REFUSED  # the aggregators refused the report (the reason is printed)
