"""The ``lepton-secagg`` command line: simulate, serve, join, demo (and demo fedavg), bench, audit verify.

Every sub-command takes ``--json`` and then prints one JSON object as its
last line on stdout; tables and progress go to stderr/stdout before it.
Each outcome has its own exit code, the ``EXIT_*`` constants (docs/cli.md).
Logging is quiet by default; ``-v`` shows the transport's info messages,
``-vv`` everything.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import numpy as np
import numpy.typing as npt

from . import __version__
from . import _preflight as pre
from ._progress import Progress
from ._state import rounds_for
from .config import MODES, Config
from .exceptions import Aborted, DecodeError, SecAggError
from .policy import Policy
from .wire import decode_config, encode_config
from .mpc.cli import register as register_mpc

if TYPE_CHECKING:  # imported where used: the transport is loaded only by the commands that need it
    from .server import AggregationResult
    from .transport.client import ClientOutcome

__all__ = ["main", "build_parser"]

logger = logging.getLogger(__name__)

# Exit codes, one per outcome (the table is in docs/cli.md).
EXIT_OK = 0  # done: the result is right (join: completed, or crashed as asked)
EXIT_REFUSED = 1  # refused before anything ran: bad input, a file, a configuration the checks or the client's policy refuse
EXIT_USAGE = 2  # the command line is wrong: argparse's own code, also for options that do not go together
EXIT_ABORTED = 3  # the session ended without a result: too few survivors, or the server aborted this client
EXIT_WRONG = 4  # it ran to its end and its check failed: a wrong sum, a log that does not verify, a failed benchmark
EXIT_SESSION_FAILED = 5  # join: no connection, the connection lost, no frame in time, or a protocol error mid-session
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
_SECAGG_PLUS_CORRUPT = 0.05  # --secagg-plus's corrupt fraction in semi-honest mode when --corrupt is not given


# --- helpers ---------------------------------------------------------------------


def _config_from_args(args: argparse.Namespace, dropout: float = 0.0) -> Config:
    kw = dict(bits=args.bits, prg=args.prg)
    if args.design_dropout is not None and not args.secagg_plus:
        raise pre.UsageError("--design-dropout only applies with --secagg-plus (it sets the dropout rate (k, t) are chosen for).")
    if args.mode == "active" and args.corrupt is None:
        raise pre.UsageError("--mode active needs --corrupt FRACTION: the fraction of clients that may collude with the "
                         "server (e.g. 0.1); the threshold is chosen to withstand it.")
    if getattr(args, "secagg_plus", False):
        design = args.design_dropout if args.design_dropout is not None else (dropout if dropout > 0 else 0.1)
        corrupt = args.corrupt if args.corrupt is not None else _SECAGG_PLUS_CORRUPT
        return Config.secagg_plus(args.clients, args.length, corrupt, design, mode=args.mode, **kw)
    return Config(num_clients=args.clients, vector_length=args.length, threshold=args.threshold, neighbors=args.neighbors,
                  mode=args.mode, corrupt_fraction=args.corrupt, **kw)


def _join_policy(args: argparse.Namespace) -> Policy:
    """The client's policy from join's --config / --config-digest (the server proposes, the client decides)."""
    config, digest = None, None
    if args.config:
        data = _read_file(args.config, "--config")
        try:
            config = decode_config(data)
        except DecodeError as exc:
            raise ValueError(f"--config {args.config}: not a configuration written by 'serve --write-config' ({exc}).") from None
    if args.config_digest:
        text = args.config_digest.strip().lower()
        if len(text) != 64 or any(ch not in "0123456789abcdef" for ch in text):
            raise pre.UsageError(f"--config-digest must be 64 hex characters (the digest 'serve' prints), got {args.config_digest!r}.")
        digest = bytes.fromhex(text)
        if config is not None and config.digest != digest:
            raise ValueError(f"--config {args.config} has digest {config.digest.hex()}, not the --config-digest given.")
    if args.identity and config is None and digest is None:
        raise pre.UsageError("--identity (active mode) needs --config FILE or --config-digest HEX: without the cohort's "
                         "pinned identities a server could replace every other client with its own.")
    return Policy(config=config, config_digest=digest, corrupt_fraction=args.min_corrupt)


def _read_file(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot be read ({exc.strerror or exc}).") from None


def _describe(cfg: Config) -> str:
    graph = "full graph" if cfg.neighbors is None else f"SecAgg+ k={cfg.neighbors}"
    return f"n={cfg.num_clients} m={cfg.vector_length} t={cfg.threshold} {graph} bits={cfg.bits} prg={cfg.prg} mode={cfg.mode}"


def _plain_sum(inputs: Sequence[npt.ArrayLike], ids: Iterable[int], cfg: Config) -> np.ndarray:
    total = np.zeros(cfg.vector_length, dtype=np.uint64)
    for i in ids:
        total += np.asarray(inputs[i], dtype=np.uint64)  # wraps mod 2^64
    if cfg.bits < 64:
        total &= np.uint64((1 << cfg.bits) - 1)
    return total.astype(cfg.dtype)


def _random_inputs(rng: np.random.Generator, cfg: Config) -> list[npt.NDArray[np.unsignedinteger[Any]]]:
    high = 1 << cfg.bits
    if cfg.bits == 64:
        return [rng.integers(0, 2**63, cfg.vector_length, dtype=np.uint64) * 2 + rng.integers(0, 2, cfg.vector_length, dtype=np.uint64) for _ in range(cfg.num_clients)]
    return [rng.integers(0, high, cfg.vector_length, dtype=np.uint64).astype(cfg.dtype) for _ in range(cfg.num_clients)]


def _random_dropouts(rng: np.random.Generator, cfg: Config, fraction: float, rounds: Sequence[str]) -> dict[int, str]:
    count = int(round(fraction * cfg.num_clients))
    ids: Iterable[int] = rng.choice(cfg.num_clients, size=count, replace=False) if count else []
    return {int(i): str(rounds[int(rng.integers(0, len(rounds)))]) for i in sorted(ids)}


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _print_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    """rows: dicts with round, seconds, bytes_up, bytes_down, dropped."""
    head = f"{'round':<18} {'seconds':>9} {'bytes up':>12} {'bytes down':>12} {'dropped':>8}"
    print(head, file=out)
    print("-" * len(head), file=out)
    tot = dict(seconds=0.0, bytes_up=0, bytes_down=0, dropped=0)
    for r in rows:
        print(f"{r['round']:<18} {r['seconds']:>9.3f} {_fmt_bytes(r['bytes_up']):>12} {_fmt_bytes(r['bytes_down']):>12} {r['dropped']:>8}", file=out)
        for k in tot:
            tot[k] += r[k]
    print("-" * len(head), file=out)
    print(f"{'total':<18} {tot['seconds']:>9.3f} {_fmt_bytes(tot['bytes_up']):>12} {_fmt_bytes(tot['bytes_down']):>12} {tot['dropped']:>8}", file=out)


def _emit(args: argparse.Namespace, obj: dict[str, Any]) -> None:  # obj: JSON
    if args.json:
        print(json.dumps(obj, sort_keys=True))
        sys.stdout.flush()


def _dropped_json(dropped: Mapping[str, Iterable[int]]) -> dict[str, list[int]]:
    return {str(k): [int(i) for i in v] for k, v in dropped.items()}


# --- simulate ----------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from .testing import simulate

    cfg = _config_from_args(args, args.dropout)
    rng = np.random.default_rng(args.seed)
    rounds = rounds_for(cfg.mode)
    inputs = _random_inputs(rng, cfg)
    dropouts = _random_dropouts(rng, cfg, args.dropout, rounds)
    out = sys.stderr if args.json else sys.stdout
    print(f"simulate: {_describe(cfg)}; {len(dropouts)} dropouts", file=out)
    progress = Progress(enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        res = simulate(cfg, inputs, dropouts, seed=args.seed, progress=progress)
    except Aborted as exc:
        progress.close()
        print(f"aborted: {exc}", file=sys.stderr)
        _emit(args, {"ok": False, "aborted": str(exc), "clients": cfg.num_clients, "dropouts": {str(k): v for k, v in dropouts.items()}})
        return EXIT_ABORTED
    progress.close()
    seconds = time.perf_counter() - t0
    ok = bool(np.array_equal(res.sum, _plain_sum(inputs, res.included, cfg)))
    dropped_per_round = {r: len(res.dropped.get(r, ())) for r in rounds}
    server_seconds = getattr(res, "server_seconds", {}) or {}
    rows: list[dict[str, Any]] = [dict(round=r, seconds=res.seconds[r], bytes_up=res.bytes_up[r], bytes_down=res.bytes_down[r], dropped=dropped_per_round[r]) for r in rounds]
    _print_table(rows, out)
    print(f"{len(res.included)} of {cfg.num_clients} inputs in the sum; sum {'matches' if ok else 'DOES NOT MATCH'} the plaintext sum ({seconds:.2f}s)", file=out)
    _emit(args, {
        "ok": ok,
        "clients": cfg.num_clients,
        "included": list(res.included),
        "dropped": _dropped_json(res.dropped),
        "seconds": seconds,
        "rounds": {r["round"]: {**{k: r[k] for k in ("seconds", "bytes_up", "bytes_down", "dropped")},
                                **({"server_seconds": server_seconds[r["round"]]} if r["round"] in server_seconds else {})} for r in rows},
    })
    return EXIT_OK if ok else EXIT_WRONG


# --- serve -------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from .transport.server import AggregationServer

    # Everything is checked before the port is bound: no session runs only to find its sum cannot be written.
    cfg = _config_from_args(args, args.dropout)
    if args.identities:
        cfg = dataclasses.replace(cfg, identities=pre.load_identities(args.identities, cfg.num_clients))
    ctx = pre.server_ssl(args.tls_cert, args.tls_key)
    pre.check_writable(args.output, "--output")
    if args.write_config:
        try:
            Path(args.write_config).write_bytes(encode_config(cfg))
        except OSError as exc:
            raise ValueError(f"--write-config {args.write_config}: cannot be written ({exc.strerror or exc}).") from None
    progress = Progress(enabled=not args.quiet)

    async def go() -> tuple[AggregationServer, AggregationResult | Aborted]:
        srv = AggregationServer(cfg, args.host, args.port, round_timeout=args.round_timeout, join_timeout=args.join_timeout, ssl_context=ctx, progress=progress)
        await srv.start()
        print(f"listening on {args.host}:{srv.port} ({_describe(cfg)}{', TLS' if ctx else ''}; config digest {cfg.digest.hex()}, "
              "which clients pin with join --config-digest)", file=sys.stderr, flush=True)
        try:
            return srv, await srv.run()
        except Aborted as exc:
            return srv, exc

    srv, res = asyncio.run(go())
    progress.close()
    out = sys.stderr if args.json else sys.stdout
    rows: list[dict[str, Any]] = [dict(round=s.round, seconds=s.seconds, bytes_up=s.bytes_up, bytes_down=s.bytes_down, dropped=s.dropped) for s in srv.stats.values()]
    if isinstance(res, Exception):
        print(f"error: the aggregation was aborted: {res}", file=sys.stderr)
        _emit(args, {"ok": False, "error": str(res), "seconds": srv.seconds})
        return EXIT_ABORTED
    _print_table(rows, out)
    with open(args.output, "wb") as f:  # exactly this path (np.save would append .npy to a bare name)
        np.save(f, res.sum)
    print(f"{len(res.included)} of {cfg.num_clients} inputs in the sum, written to {args.output} ({srv.seconds:.2f}s)", file=out)
    _emit(args, {"ok": True, "included": list(res.included), "dropped": _dropped_json(res.dropped), "seconds": srv.seconds,
                 "rounds": {r["round"]: {k: r[k] for k in ("seconds", "bytes_up", "bytes_down", "dropped")} for r in rows}})
    return EXIT_OK


# --- join --------------------------------------------------------------------------


def cmd_join(args: argparse.Namespace) -> int:
    from .transport.client import drop_round, run_client

    # Everything is checked before connecting; with --config the input is checked against the pinned configuration.
    host, port = args.server
    policy = _join_policy(args)
    vector = pre.load_input(args.input, "--input", policy.config)
    identity = pre.load_identity(args.identity) if args.identity else None
    ctx = pre.client_ssl(args.tls_ca)
    drop_in = args.drop_in
    if args.drop_after is not None:
        print("warning: --drop-after ROUND is deprecated; use --drop-in with the next round "
              "(the round whose reply the client never sends).", file=sys.stderr)
    if policy.config is not None:
        drop_round(policy.config.mode, drop_in, args.drop_after)  # a round the pinned mode lacks fails before connecting
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # said once, above
        outcome = asyncio.run(run_client(host, port, args.id, vector, ssl_context=ctx, identity=identity, drop_in=drop_in,
                                         drop_after=args.drop_after, timeout=args.timeout, policy=policy))
    msg = f"client {args.id}: {outcome.status}" + (f" after round {outcome.round}" if outcome.round else "") + (f" ({outcome.reason})" if outcome.reason else "")
    print(msg, file=sys.stderr if args.json else sys.stdout)
    _emit(args, {"ok": outcome.ok, "id": args.id, "status": outcome.status, "round": outcome.round, "reason": outcome.reason,
                 "bytes_sent": outcome.bytes_sent, "bytes_received": outcome.bytes_received})
    return _join_exit(outcome)


def _join_exit(outcome: ClientOutcome) -> int:
    """The exit code of a join that ended with ``outcome`` (a transport ``ClientOutcome``)."""
    if outcome.ok:
        return EXIT_OK
    if outcome.status == "aborted":
        return EXIT_ABORTED
    # The configuration arrived and no reply left: this client refused it (its policy, identity or input), before any
    # key. A connection lost during that very first send lands here too; the printed reason says which.
    if outcome.config is not None and outcome.round is None:
        return EXIT_REFUSED
    return EXIT_SESSION_FAILED


# --- demo --------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    loop, fed, dp = args.loopback_options, args.fedavg_options, args.dp_options
    takes = {"fedavg": fed, "dp": loop + dp, "poisoning": ["--rounds"], None: loop}[args.target]
    wrong = pre.given(args.argv, [o for o in loop + fed + dp if o not in takes])
    if wrong:
        which = f"demo {args.target}" if args.target else "demo (without fedavg)"
        raise pre.UsageError(f"{which} does not take {', '.join(wrong)}; it takes "
                         f"{', '.join(o for o in takes if o.startswith('--'))}, --seed, --json, -q and -v.")
    if args.target == "fedavg":
        return cmd_demo_fedavg(args)
    if args.target == "poisoning":
        from .fl.poisoning import cmd_demo_poisoning

        return cmd_demo_poisoning(args)
    if args.target == "dp":
        return cmd_demo_dp(args)
    from .testing import make_identities
    from .transport.client import run_client
    from .transport.server import AggregationServer

    cfg = _config_from_args(args, args.dropout)
    identities = None
    if cfg.mode == "active":
        identities = make_identities(cfg.num_clients, args.seed)
        cfg = dataclasses.replace(cfg, identities=tuple(i.verify_key for i in identities))
    rng = np.random.default_rng(args.seed)
    rounds = rounds_for(cfg.mode)
    inputs = _random_inputs(rng, cfg)
    # A drop in advertise_keys would only free the id and hold the join phase open until its deadline.
    crashes = _random_dropouts(rng, cfg, args.dropout, rounds[1:])
    out = sys.stderr if args.json else sys.stdout
    print(f"demo: {_describe(cfg)} over loopback TCP; {len(crashes)} clients will crash", file=out)
    progress = Progress(enabled=not args.quiet)

    async def go() -> tuple[AggregationServer, AggregationResult | BaseException, list[ClientOutcome | BaseException]]:
        srv = AggregationServer(cfg, "127.0.0.1", 0, round_timeout=args.round_timeout, join_timeout=args.round_timeout, progress=progress)
        await srv.start()
        clients = [run_client("127.0.0.1", srv.port, cid, inputs[cid], drop_in=crashes.get(cid),
                              identity=identities[cid] if identities else None, timeout=args.round_timeout * 4,
                              policy=Policy(config=cfg))
                   for cid in range(cfg.num_clients)]
        res, *outcomes = await asyncio.gather(srv.run(), *clients, return_exceptions=True)
        # gather keeps the order: run()'s result first, then each client's outcome (each possibly an exception)
        return srv, cast("AggregationResult | BaseException", res), cast("list[ClientOutcome | BaseException]", outcomes)

    srv, res, outcomes = asyncio.run(go())
    progress.close()
    rows: list[dict[str, Any]] = [dict(round=s.round, seconds=s.seconds, bytes_up=s.bytes_up, bytes_down=s.bytes_down, dropped=s.dropped) for s in srv.stats.values()]
    rounds_json = {r["round"]: {k: r[k] for k in ("seconds", "bytes_up", "bytes_down", "dropped")} for r in rows}
    if isinstance(res, BaseException):
        print(f"aborted: {res}", file=sys.stderr)
        _emit(args, {"ok": False, "clients": cfg.num_clients, "included": [], "seconds": srv.seconds, "rounds": rounds_json, "error": str(res)})
        return EXIT_ABORTED
    _print_table(rows, out)
    sum_ok = bool(np.array_equal(res.sum, _plain_sum(inputs, res.included, cfg)))
    must = {cid for cid in range(cfg.num_clients) if cid not in crashes or rounds.index(crashes[cid]) > rounds.index("masked_input")}
    included_ok = must <= set(res.included)
    ok = sum_ok and included_ok
    total_bytes = sum(r["bytes_up"] + r["bytes_down"] for r in rows)
    print(f"{len(res.included)} of {cfg.num_clients} inputs in the sum; crashed: {len(crashes)}; "
          f"{_fmt_bytes(total_bytes / cfg.num_clients)} per client; {srv.seconds:.2f}s", file=out)
    print(f"decoded sum {'==' if sum_ok else '!='} plaintext sum of the included inputs: {'OK' if ok else 'FAILED'}"
          + ("" if included_ok else f" (missing survivors: {sorted(must - set(res.included))})"), file=out)
    _emit(args, {"ok": ok, "clients": cfg.num_clients, "included": list(res.included), "dropped": _dropped_json(res.dropped),
                 "crashed": {str(k): v for k, v in crashes.items()}, "seconds": srv.seconds, "rounds": rounds_json,
                 "bytes_per_client": total_bytes / cfg.num_clients})
    return EXIT_OK if ok else EXIT_WRONG


def cmd_demo_dp(args: argparse.Namespace) -> int:
    from .dp_demo import run_dp_demo

    clients, length = args.clients, args.length
    res = run_dp_demo(clients=clients, length=length, bits=args.bits, mechanism=args.mechanism, epsilon=args.epsilon,
                      crashes=round(args.dropout * clients), seed=args.seed, timeout=args.round_timeout)
    out = sys.stderr if args.json else sys.stdout
    print(f"demo dp: {res['mechanism']} noise, {res['bits']}-bit ring, {len(res['included'])} of {res['clients']} clients in the sum", file=out)
    print(f"epsilon spent {res['epsilon']:.3f} (target {res['epsilon_target']:g}, for the minimum survivors) at delta {res['delta']:g}", file=out)
    print(f"decoded mean error {res['error']:.4f}, predicted {res['predicted_error']:.4f} (signal norm {res['signal_norm']:.4f}): "
          f"{'OK' if res['ok'] else 'FAILED'}", file=out)
    print(f"masked input {_fmt_bytes(res['masked_input_bytes_per_client'])} per client (b-bit packing: {_fmt_bytes(res['ring_bytes_per_client'])})", file=out)
    _emit(args, res)
    return EXIT_OK if res["ok"] else EXIT_WRONG


# --- demo fedavg / audit verify (federated learning, lepton_secagg.fl) -------------------


_FL_EXTRA = {"torch": "torch", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}  # module -> package of the [fl] extra


def cmd_demo_fedavg(args: argparse.Namespace) -> int:
    missing = pre.missing_modules(_FL_EXTRA)
    if missing:
        raise ValueError(f"demo fedavg needs the [fl] extra ({', '.join(_FL_EXTRA.values())}); missing here: "
                         f"{', '.join(_FL_EXTRA[m] for m in missing)}. Install it with: pip install 'lepton-secagg[fl]' "
                         "(in a clone: pip install -e '.[fl]', or make test).")
    for path, option in ((args.plot, "--plot"), (args.audit_log, "--audit-log")):
        if path:
            pre.check_writable(path, option)
    from .fl.demo import run_demo

    res = run_demo(rounds=args.rounds, epochs=args.epochs, seed=3 if args.seed is None else args.seed, plot=args.plot,
                   audit_log=args.audit_log, crash=args.crash, quiet=args.quiet, stream=sys.stderr if args.json else sys.stdout)
    ok = res["global_accuracy"] > res["local_accuracy"] and res["centralized_accuracy"] - res["global_accuracy"] <= 0.03
    if not args.json:
        print(f"federated within 3 points of centralised and above local-only: {'yes' if ok else 'NO'}")
        if res["plot"]:
            print(f"plot: {res['plot']}")
        if res["audit_log"]:
            print(f"audit log: {res['audit_log']} (verify: lepton-secagg audit verify {res['audit_log']} --key {res['audit_key']})")
    _emit(args, {"global_accuracy": res["global_accuracy"], "centralized_accuracy": res["centralized_accuracy"],
                 "local_accuracy": res["local_accuracy"], "rounds": res["rounds"], "plot": res["plot"],
                 "epochs": res["epochs"], "local_accuracies": res["local_accuracies"],
                 "federated_eval_accuracy": res["federated_eval_accuracy"], "audit_log": res["audit_log"],
                 "audit_key": res["audit_key"], "model_sha256": res["model_sha256"], "seconds": res["seconds"]})
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from .fl.audit import AuditError, verify_log

    try:
        res = verify_log(args.log, key=args.key)
    except OSError as exc:  # no log to check: refused, not a failed verification
        raise ValueError(f"{exc.filename or args.log}: cannot be read ({exc.strerror or exc}).") from None
    except AuditError as exc:
        print(f"FAILED: {args.log}: {exc}", file=sys.stderr)
        _emit(args, {"ok": False, "log": str(args.log), "error": str(exc)})
        return EXIT_WRONG
    trust = "the given key" if res.pinned else "the key in its first entry (not pinned: pass --key to check who signed it)"
    msg = (f"OK: {args.log}: {res.entries} entries, chain and signatures verify against {trust} {res.public_key}; "
           f"head {res.head}; {'complete (ends with run_end)' if res.complete else 'INCOMPLETE: no run_end entry (run in progress or truncated)'}")
    print(msg, file=sys.stderr if args.json else sys.stdout)
    _emit(args, {"ok": True, "log": str(args.log), "entries": res.entries, "public_key": res.public_key, "head": res.head,
                 "complete": res.complete, "pinned": res.pinned})
    return EXIT_OK


# --- bench -------------------------------------------------------------------------

_BENCH_SCRIPTS = ("kernel_ratios.py", "protocol_table.py")


def cmd_bench(args: argparse.Namespace) -> int:
    root = Path(args.bench_dir) if args.bench_dir else _find_bench_dir()
    results = {}
    if root is None or not root.is_dir():
        print("no bench/ directory found (run from the repository root, or pass --bench-dir).", file=sys.stderr)
        _emit(args, {"ok": False, "scripts": {}, "error": "no bench directory"})
        return EXIT_REFUSED
    for name in _BENCH_SCRIPTS:
        path = root / name
        if not path.is_file():
            print(f"== {name}: not present in {root}, skipped", file=sys.stderr)
            results[name] = "missing"
            continue
        cmd = [sys.executable, str(path)] + ([] if args.full else ["--quick"])
        print(f"== {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout if not args.json else "")
        if args.json:
            sys.stderr.write(proc.stdout)
        results[name] = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    ran = [v for v in results.values() if v != "missing"]
    ok = all(v == "ok" for v in ran)
    if not ran:
        print("no benchmark script was found; nothing ran.", file=sys.stderr)
    _emit(args, {"ok": ok, "scripts": results})
    return EXIT_OK if ok else EXIT_WRONG


def _find_bench_dir() -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (base / "bench").is_dir():
            return base / "bench"
    return None


# --- parser ------------------------------------------------------------------------


_FRACTION = pre.float_in(0.0, 1.0, hi_open=True)  # corrupt and design-dropout fractions: [0, 1), as Config takes them
_SECONDS = pre.float_in(0.0, None, lo_open=True)


def _add_config_args(p: argparse.ArgumentParser, clients_default: int | None = None,
                     length_default: int | None = None) -> list[argparse.Action]:
    """The configuration options; returns their actions."""
    g = p.add_mutually_exclusive_group()
    return [
        p.add_argument("--clients", "-n", type=pre.int_in(2, 1 << 20), required=clients_default is None, default=clients_default,
                       help="number of clients n, 2..2^20"),
        p.add_argument("--length", "-m", type=pre.int_in(1, 1 << 31), required=length_default is None, default=length_default,
                       help="vector length m, 1..2^31"),
        p.add_argument("--threshold", "-t", type=pre.int_in(2), default=None, help="Shamir threshold (default: smallest safe majority)"),
        g.add_argument("--neighbors", "-k", type=pre.int_in(2), default=None, help="SecAgg+ Harary graph degree k (even)"),
        g.add_argument("--secagg-plus", action="store_true", help="pick SecAgg+ (k, t) from the corrupt and dropout fractions"),
        p.add_argument("--corrupt", type=_FRACTION, default=None,
                       help="fraction in [0, 1) of all clients that may collude with the server; the threshold must withstand it "
                            f"(required with --mode active; --secagg-plus default {_SECAGG_PLUS_CORRUPT}, else 0)"),
        p.add_argument("--design-dropout", type=_FRACTION, default=None,
                       help="dropout fraction in [0, 1) --secagg-plus designs (k, t) for (default: --dropout if > 0, else 0.1)"),
        p.add_argument("--mode", choices=MODES, default="semi-honest"),
        p.add_argument("--prg", choices=("aes128ctr", "chacha20"), default="aes128ctr"),
        p.add_argument("--bits", type=pre.int_in(1, 64), default=32, help="ring Z_(2^bits), 1..64 (default 32)"),
    ]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lepton-secagg", description="Secure aggregation (SecAgg / SecAgg+): simulate, serve, join, demo, bench.")
    parser.add_argument("--version", action="version", version=f"lepton-secagg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run one session in memory with random inputs and dropouts")
    _add_config_args(p)
    p.add_argument("--dropout", type=pre.float_in(0.0, 1.0), default=0.0, help="fraction in [0, 1] of clients that drop at a random round")
    p.add_argument("--seed", type=pre.int_in(0), default=None)
    _add_common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("serve", help="serve one aggregation over TCP and write the sum")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=pre.int_in(0, 65535), default=7373, help="0..65535; 0 picks a free port (printed on stderr)")
    _add_config_args(p)
    p.add_argument("--dropout", type=pre.float_in(0.0, 1.0), default=0.1, help=argparse.SUPPRESS)  # serve: only a default for --design-dropout
    p.add_argument("--round-timeout", type=_SECONDS, default=30.0, help="seconds (> 0) each round waits for replies")
    p.add_argument("--join-timeout", type=_SECONDS, default=60.0, help="seconds (> 0) the join phase lasts at most")
    p.add_argument("--tls-cert", help="server certificate (PEM) for TLS")
    p.add_argument("--tls-key", help="server private key (PEM) for TLS")
    p.add_argument("--identities", help="active mode: file of every client's hex Ed25519 verify key, one per line")
    p.add_argument("--write-config", help="write the session configuration here (msgpack) for clients to pin with join --config")
    p.add_argument("--output", "-o", required=True, help="where to write the sum (.npy)")
    _add_common(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("join", help="take part in an aggregation as one client")
    p.add_argument("--server", type=pre.host_port, required=True, help="HOST:PORT")
    p.add_argument("--id", type=pre.int_in(0, (1 << 20) - 1), required=True, help="this client's id, 0..n-1")
    p.add_argument("--input", required=True, help="the input vector (.npy, integers in [0, 2^bits))")
    p.add_argument("--tls-ca", help="CA certificate (PEM) to verify the server; enables TLS")
    p.add_argument("--identity", help="active mode: file holding this client's hex 32-byte Ed25519 seed (needs --config or --config-digest)")
    p.add_argument("--config", help="accept only this configuration (the file 'serve --write-config' wrote)")
    p.add_argument("--config-digest", help="accept only the configuration with this digest (64 hex characters, printed by serve)")
    p.add_argument("--min-corrupt", type=_FRACTION, default=0.0,
                   help="refuse a threshold that does not withstand this fraction of colluding clients (default 0)")
    drops = p.add_mutually_exclusive_group()
    drops.add_argument("--drop-in", choices=rounds_for("active"),
                       help="never send this round's reply: close the socket abruptly instead (crash test)")
    drops.add_argument("--drop-after", choices=rounds_for("active"), help="deprecated: --drop-in with the next round")
    p.add_argument("--timeout", type=_SECONDS, default=120.0, help="seconds (> 0): longest wait for any one server message")
    _add_common(p)
    p.set_defaults(func=cmd_join)

    p = sub.add_parser("demo", help="server and clients over loopback TCP, with crashes; checks the sum ('demo fedavg': federated learning)")
    p.add_argument("target", nargs="?", choices=("fedavg", "poisoning", "dp"), default=None,
                   help="fedavg: three hospitals train a breast-cancer model with FedAvg over secure aggregation; "
                        "poisoning: one boosted client, SecAgg vs Prio3 with the L2 circuit (docs/mpc.md); "
                        "dp: one aggregation with distributed differential privacy")
    loopback = _add_config_args(p, clients_default=20, length_default=10_000)
    loopback.append(p.add_argument("--dropout", type=pre.float_in(0.0, 1.0), default=0.2,
                                   help="fraction in [0, 1] of clients that crash at a random round (default 0.2)"))
    p.add_argument("--seed", type=pre.int_in(0), default=None)
    loopback.append(p.add_argument("--round-timeout", type=_SECONDS, default=30.0, help="seconds (> 0) each round waits"))
    g = p.add_argument_group("demo fedavg")
    fedavg = [
        g.add_argument("--rounds", type=pre.int_in(1, 1000), default=10, help="fedavg: training rounds, 1..1000 (default 10)"),
        g.add_argument("--epochs", type=pre.int_in(1, 1000), default=2, help="fedavg: local epochs per round, 1..1000 (default 2)"),
        g.add_argument("--plot", default="fedavg_progress.png", help="fedavg: where to write the progress plot (PNG)"),
        g.add_argument("--audit-log", default=None, help="fedavg: write the signed audit log (JSON lines) here"),
        g.add_argument("--crash", action="store_true", help="fedavg: hospital C crashes in the middle of round 1"),
    ]
    g = p.add_argument_group("demo dp")
    dp = [
        g.add_argument("--mechanism", choices=("gaussian", "skellam"), default="gaussian", help="dp: the noise (default gaussian)"),
        g.add_argument("--epsilon", type=pre.float_in(0.0, 1e6), default=1.0, help="dp: the target epsilon at delta = 1e-5 (default 1)"),
    ]
    _add_common(p)
    # each target rejects the other's options (cmd_demo) instead of ignoring them
    p.set_defaults(func=cmd_demo, loopback_options=[o for a in loopback for o in a.option_strings],
                   fedavg_options=[o for a in fedavg for o in a.option_strings],
                   dp_options=[o for a in dp for o in a.option_strings])

    p = sub.add_parser("audit", help="check an FL audit log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="verify the hash chain and the Ed25519 signatures of an audit log")
    v.add_argument("log", help="the audit log (JSON lines)")
    v.add_argument("--key", default=None, help="the server's verify key (64 hex characters, or a file holding them)")
    _add_common(v)
    v.set_defaults(func=cmd_audit)

    p = sub.add_parser("bench", help="run the benchmark scripts under bench/ and print their tables")
    p.add_argument("--full", action="store_true", help="run the scripts without --quick")
    p.add_argument("--bench-dir", help="where the scripts are (default: ./bench)")
    _add_common(p)
    p.set_defaults(func=cmd_bench)

    register_mpc(sub)  # Prio3: keygen, serve, submit (docs/mpc.md)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    # join reports its outcome (and its reason) itself: the transport's warnings would say it twice
    level = {0: logging.WARNING if args.command == "serve" else logging.ERROR, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        code: int = args.func(args)
        return code
    except (ValueError, TypeError, OSError, SecAggError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(exc)}))
        return EXIT_USAGE if isinstance(exc, pre.UsageError) else EXIT_REFUSED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
