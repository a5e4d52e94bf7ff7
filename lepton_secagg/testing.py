"""An in-memory driver: every client and the server in one process.

``simulate`` runs one whole session through the real wire codec (every
message is encoded and decoded), with chosen clients dropping out at chosen
rounds.  It is the reference harness for tests and benchmarks, and the
shortest way to see the protocol work.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import numpy.typing as npt

from ._state import Round, rounds_for
from .client import Client
from .config import Config
from .device_input import DeviceInput
from .exceptions import SecAggError
from .hazmat.quantize import Quantizer
from .hazmat.ring import RingVector
from .hazmat.rng import DeterministicRng, Rng, SystemRng
from .hazmat.sign import Identity
from .messages import Abort, ClientMessage, ServerMessage
from .server import Server
from .wire import decode, encode

__all__ = ["simulate", "SimulationResult", "make_identities"]

_R = TypeVar("_R")


@dataclass(frozen=True)
class SimulationResult:
    """What ``simulate`` returns.

    Attributes:
        sum: the aggregate mod 2^bits.
        included: sorted ids whose input is in the sum.
        dropped: round name -> ids that stopped in that round.
        bytes_up: round name -> bytes sent by all clients to the server.
        bytes_down: round name -> bytes sent by the server to all clients.
        seconds: round name -> wall time spent (clients and server together).
        server_seconds: round name -> the part of ``seconds`` spent in the server.
        config: the configuration used (with generated identities in active mode).
    """

    sum: RingVector = field(repr=False)
    included: tuple[int, ...]
    dropped: dict[str, tuple[int, ...]]
    bytes_up: dict[str, int]
    bytes_down: dict[str, int]
    seconds: dict[str, float]
    server_seconds: dict[str, float]
    config: Config = field(repr=False)


def make_identities(num_clients: int, seed: bytes | str | int | None = None) -> list[Identity]:
    """Ed25519 identities for ``num_clients`` clients (deterministic when ``seed`` is given)."""
    rng = SystemRng() if seed is None else DeterministicRng(seed).fork("identities")
    return [Identity.generate(rng) for _ in range(num_clients)]


def simulate(
    cfg: Config,
    inputs: Sequence[npt.ArrayLike],
    dropouts: Mapping[int, str] | None = None,
    seed: bytes | str | int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    transcript: list[tuple[str, str, int, bytes]] | None = None,
    quantizer: Quantizer | None = None,
    weights: Sequence[int] | None = None,
) -> SimulationResult:
    """Run one session in memory.

    Args:
        cfg: the configuration; in active mode without ``identities``, fresh
            identities are made (from ``seed`` when given).
        inputs: ``num_clients`` integer vectors of length ``vector_length``;
            any of them may be a ``DeviceInput`` (an adapter's tensor, e.g.
            ``adapters.torch.device_float_input``), set with ``set_input``.
        dropouts: client id -> the round in which it stops answering
            ("advertise_keys", "share_keys", "masked_input", "consistency_check"
            (active mode only) or "unmasking").  Dropped at masked_input or
            earlier: not in the sum; later: in the sum.
        seed: makes every secret deterministic (tests, vectors); None uses the OS CSPRNG.
        progress: called as ``progress(round, done, total)`` after each client.
        transcript: when a list, every message is appended to it as
            ``(round, "up" | "down", client_id, wire bytes)`` in delivery order.
        quantizer: when given, ``inputs`` are float updates that each client
            quantises and masks in one pass (``Client.set_float_input``).
        weights: with a weighted ``quantizer``, each client's weight.

    Raises:
        TooFewSurvivors / Aborted: the session ended without a result.
        TypeError / ValueError: bad arguments.
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a Config, not {type(cfg).__name__}.")
    rounds = rounds_for(cfg.mode)
    dropouts = dict(dropouts or {})
    for cid, rnd in dropouts.items():
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid < cfg.num_clients:
            raise ValueError(f"dropouts name client {cid!r}, not in 0..{cfg.num_clients - 1}.")
        if rnd not in rounds:
            raise ValueError(f"client {cid} drops at {rnd!r}, which is not a round of {cfg.mode} mode {rounds}.")
    if len(inputs) != cfg.num_clients:
        raise ValueError(f"expected {cfg.num_clients} inputs, got {len(inputs)}.")
    identities: list[Identity | None] = [None] * cfg.num_clients
    if cfg.mode == "active":
        if cfg.identities is None:
            made = make_identities(cfg.num_clients, seed)
            identities = list(made)
            cfg = dataclasses.replace(cfg, identities=tuple(i.verify_key for i in made))
        else:
            raise ValueError("simulate makes the identities itself; pass an active Config without identities.")
    root = None if seed is None else DeterministicRng(seed)
    system = SystemRng()

    def fork(label: str) -> Rng:
        return system if root is None else root.fork(label)

    server = Server(cfg, rng=fork("server"))
    clients: dict[int, Client] = {}
    for cid in range(cfg.num_clients):
        clients[cid] = Client(cfg, cid, rng=fork(f"client-{cid}"), identity=identities[cid])
        if quantizer is None or isinstance(inputs[cid], DeviceInput):
            clients[cid].set_input(inputs[cid])
        else:
            clients[cid].set_float_input(inputs[cid], quantizer, weight=None if weights is None else weights[cid])

    up = dict.fromkeys(rounds, 0)
    down = dict.fromkeys(rounds, 0)
    seconds = dict.fromkeys(rounds, 0.0)
    server_seconds = dict.fromkeys(rounds, 0.0)

    def on_server(rnd_name: str, call: Callable[..., _R], *args: object) -> _R:
        t0 = time.perf_counter()
        try:
            return call(*args)
        finally:
            server_seconds[rnd_name] += time.perf_counter() - t0
    gone: set[int] = set()  # clients that stopped answering or were aborted

    def deliver(cid: int, reply: ClientMessage) -> None:
        data = encode(reply)
        up[rnd] += len(data)
        if transcript is not None:
            transcript.append((rnd, "up", cid, data))
        msg = cast(ClientMessage, decode(data, cfg))  # decode inverts encode: the client's own message
        abort = on_server(rnd, server.receive, cid, msg)
        if abort is not None:
            gone.add(cid)

    rnd = rounds[0]
    started = time.perf_counter()
    for i, cid in enumerate(sorted(clients)):
        if dropouts.get(cid) == rnd:
            gone.add(cid)
            continue
        deliver(cid, clients[cid].start())
        if progress:
            progress(rnd, i + 1, len(clients))
    requests = on_server(rnd, server.advance)
    seconds[rnd] += time.perf_counter() - started
    for rnd in rounds[1:]:
        if server.round is Round.ABORTED:
            break
        started = time.perf_counter()
        for i, (cid, req) in enumerate(sorted(requests.items())):
            data = encode(req)
            down[rnd] += len(data)
            if transcript is not None:
                transcript.append((rnd, "down", cid, data))
            if cid in gone:
                continue
            msg = cast(ServerMessage, decode(data, cfg))  # decode inverts encode: the server's own request
            if isinstance(msg, Abort):
                clients[cid].receive(msg)
                gone.add(cid)
                continue
            if dropouts.get(cid) == rnd:
                gone.add(cid)
                continue
            answer: ClientMessage
            try:
                answer = clients[cid].receive(msg)
            except SecAggError as exc:  # an honest client refuses and leaves
                answer = clients[cid].abort(str(exc))
                gone.add(cid)
            deliver(cid, answer)
            if progress:
                progress(rnd, i + 1, len(requests))
        requests = on_server(rnd, server.advance)
        seconds[rnd] += time.perf_counter() - started
    result = server.result()
    return SimulationResult(result.sum, result.included, result.dropped, up, down, seconds, server_seconds, cfg)
