"""The FL server: rounds of federated averaging, each through secure aggregation.

One TCP port serves everything.  A connection's first frame decides what it is:

* ``Hello(organisation)`` -> ``Welcome(client_id, ...)``: registration;
* ``ModelRequest(name, version)`` -> ``ModelReply``: a download from the registry;
* ``PhaseRequest(name, phase, round, client_id, version)``: the server holds
  the connection until that phase opens, answers ``PhaseOpen`` and then hands
  the connection to the phase's ``transport.AggregationServer``
  (``handle_connection``): ``Join``, the configuration frame and the protocol
  rounds follow on the same connection, exactly as in a stand-alone aggregation.

Anything else, or a request that cannot be served, gets an ``Abort``.
The phases are ``eval 0, train 1, eval 1, ..., train R, eval R``
(``fl.protocol``); each is one aggregation with its own ``Config`` and
``session_label``.  Nothing about a single client's update, weight or
evaluation travels in the clear: the server only ever decodes sums.

``Server(...).run()`` is a blocking facade; ``start()`` runs the event loop in
a background thread and returns once the port is bound (``server.port``),
``join()`` waits for the result; ``run_async()`` is the coroutine.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any


from ..dp import mechanism as _ddp
from ..dp.rotation import round_seed
from ..exceptions import Aborted, DecodeError
from ..hazmat.quantize import DEFAULT_RANGE, bits_for_precision
from ..hazmat.rng import Rng, resolve
from ..hazmat.sign import Identity
from ..messages import Abort, Hello, ModelReply, ModelRequest, PhaseOpen, PhaseRequest, Welcome
from ..transport.framing import JOIN_LIMIT, StreamConnection
from ..transport.server import AggregationServer
from ..wire import decode, encode
from . import protocol as P
from .audit import AuditLog
from .model import ModelLike, as_model_state
from .registry import ModelRegistry, ModelVersion

if TYPE_CHECKING:  # dp-accounting and scipy load only for a private run
    from ..dp.accounting import Accountant

__all__ = ["Server", "RunResult"]

logger = logging.getLogger(__name__)

_PENDING, _JOINING, _RUNNING, _CLOSED = "pending", "joining", "running", "closed"


@dataclass
class _Phase:
    round: int
    kind: str
    state: str = _PENDING
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    agg: AggregationServer | None = None
    open_msg: PhaseOpen | None = None
    base: ModelVersion | None = None
    handed: set[int] = field(default_factory=set)
    all_handed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        model: the final global ``ModelVersion``.
        versions: every version's summary (name, version, round, contributors, sha256).
        history: one dict per evaluation: round, version, accuracy, loss, correct,
            total, contributors, plus whatever ``evaluate_fn`` returned.
        rounds: one dict per training round: round, included, dropped, total_weight, version (or error).
        audit_log / audit_head / public_key: where the log is, its last line's hash, the signing key (hex).
        plot: the PNG written, or None.
        seconds: wall time of the run.
    """

    model: ModelVersion
    versions: list[dict[str, Any]]
    history: list[dict[str, float]]
    rounds: list[dict[str, Any]]
    audit_log: str | None
    audit_head: str | None
    public_key: str
    plot: str | None
    seconds: float


class Server:
    """Federated averaging over secure aggregation.

    Args:
        host, port: where to listen (``port=0``: a free port, see ``port`` after ``start()``).
        model: the initial model: a torch module, a ``state_dict``, or a ``ModelState``.
        name: the model's name in the registry.
        architecture: a ``fl.model.build_model`` string, so clients can build the
            module without their own code ("" if they bring their own).
        clients: n, the organisations taking part (client ids 0..n-1).
        rounds: R, the number of training rounds.
        threshold: the Shamir threshold of every aggregation (None: the smallest majority).
        clip: update values (local minus global) are clipped to [-clip, clip].
        bits: the ring of the training aggregations (evaluations use 64 bits);
            None (default): the smallest ring whose finest step meets ``precision``.
        precision: the largest acceptable quantisation step of the updates;
            None: Flower's default step, 2 clip / 2^22.  The chosen ring and
            step are logged and recorded in the audit log's ``run_start``.
        max_weight: the largest number of examples one client may declare.
        join_timeout: seconds each phase waits for the n clients to join.
        round_timeout: seconds each protocol round waits for replies.
        audit_log: a path for the signed audit log (JSON lines), or None.
        identity: the server's Ed25519 ``Identity`` signing the log (None: a fresh one from ``rng``).
        plot: a path for the training-progress PNG, or None.
        evaluate_fn: optional ``f(ModelVersion) -> dict`` of extra metrics per
            evaluated version (e.g. accuracy on a server-side test set, ``test_accuracy``).
        registry: a ``ModelRegistry`` to use (default: a new in-memory one).
        ssl_context: a server ``ssl.SSLContext`` for TLS.
        linger: seconds to keep serving downloads after the last phase.
        dp: a ``lepton_secagg.dp.DdpEncoding`` for distributed differential
            privacy (clients must be given the same one): training rounds then
            carry noisy ring vectors of ``dp.bits`` bits, the mean is unweighted,
            and each round's epsilon (at ``dp_delta``, for the clients actually
            included) goes to the round log, the audit log and the plot.
        dp_delta: the delta at which epsilon is reported.
        on_evaluation: optional ``f(metrics)`` called with each ``history`` entry
            as it is recorded (live progress).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model: ModelLike,
        clients: int,
        rounds: int,
        name: str = "model",
        architecture: str = "",
        threshold: int | None = None,
        clip: float = 1.0,
        bits: int | None = None,
        precision: float | None = None,
        max_weight: int = 10_000,
        join_timeout: float = 30.0,
        round_timeout: float = 30.0,
        audit_log: str | Path | None = None,
        identity: Identity | None = None,
        plot: str | Path | None = None,
        evaluate_fn: Callable[[ModelVersion], Mapping[str, float]] | None = None,
        registry: ModelRegistry | None = None,
        ssl_context: ssl.SSLContext | None = None,
        linger: float = 0.0,
        rng: Rng | None = None,
        dp: "_ddp.DdpEncoding | None" = None,
        dp_delta: float = 1e-5,
        on_evaluation: Callable[[dict[str, float]], None] | None = None,
    ):
        if not isinstance(clients, int) or clients < 2:
            raise ValueError("clients must be an int >= 2 (secure aggregation needs at least two parties).")
        if not isinstance(rounds, int) or rounds < 1:
            raise ValueError("rounds must be an int >= 1.")
        state = as_model_state(model)
        if state.num_float == 0:
            raise ValueError("the model has no floating-point tensors to average.")
        self.host, self.port = host, port
        self.name = name
        self.architecture = architecture
        self.num_clients = clients
        self.rounds = rounds
        self.clip, self.max_weight = float(clip), int(max_weight)
        if bits is None:
            precision = precision if precision is not None else 2 * self.clip / DEFAULT_RANGE
            bits = bits_for_precision(clients, self.clip, precision, self.max_weight)
        self.bits = int(bits)
        if dp is not None and (not isinstance(dp, _ddp.DdpEncoding) or dp.length != state.num_float):
            raise ValueError(f"dp must be a DdpEncoding of length {state.num_float} (the model's float count), got {dp!r}.")
        self.dp = dp
        self.accountant: Accountant | None = None
        if dp is not None:
            from ..dp.accounting import Accountant  # dp-accounting and scipy load only for a private run

            self.accountant = Accountant(dp_delta)
        self.quantizer = P.train_quantizer(self.clip, self.bits, clients, self.max_weight)  # validates the bit budget
        if precision is not None and self.quantizer.step > precision:
            raise ValueError(f"bits = {self.bits} gives a step of {self.quantizer.step:.3g}, coarser than precision = {precision:.3g}; "
                             "leave bits=None to choose the ring from the precision.")
        logger.info("training aggregations: ring Z_2^%d, step %.3g", self.bits, self.quantizer.step)
        self.threshold = P.phase_config(clients, threshold, self.bits, 1, b"probe").threshold  # validates it
        self.join_timeout, self.round_timeout = float(join_timeout), float(round_timeout)
        self._rng = resolve(rng)
        self.identity = identity or Identity.generate(self._rng)
        self.audit_path = Path(audit_log) if audit_log else None
        self.plot_path = Path(plot) if plot else None
        self.evaluate_fn = evaluate_fn
        self.registry = registry or ModelRegistry()
        self.ssl_context = ssl_context
        self.linger = float(linger)
        self.run_id = self._rng.bytes(6).hex()
        self.history: list[dict[str, float]] = []
        self.on_evaluation = on_evaluation
        self.round_log: list[dict[str, Any]] = []
        self._initial = state
        self._orgs: dict[str, int] = {}
        self._phases: list[_Phase] = []
        self._audit: AuditLog | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._finished = False

    # --- facade -------------------------------------------------------------------------

    @property
    def public_key(self) -> str:
        """The hex Ed25519 verify key of the audit log."""
        return self.identity.verify_key.hex()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "Server":
        """Run in a background thread; returns once listening (``self.port`` is bound)."""
        if self._thread is not None:
            raise RuntimeError("this server was already started.")
        self._thread = threading.Thread(target=self._thread_main, name="lepton-fl-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None and self._done.is_set():
            raise self._error
        return self

    def join(self, timeout: float | None = None) -> RunResult:
        """Wait for the run started by ``start()``; re-raises its error."""
        if not self._done.wait(timeout):
            raise TimeoutError("the FL run has not finished yet.")
        if self._error is not None:
            raise self._error
        assert self._result is not None  # _thread_main sets it whenever there is no error
        return self._result

    def run(self) -> RunResult:
        """Start, run every round, return the ``RunResult`` (blocking)."""
        return self.start().join()

    def _thread_main(self) -> None:
        try:
            self._result = asyncio.run(self.run_async())
        except BaseException as exc:  # noqa: BLE001 - handed to join()
            self._error = exc
        finally:
            self._ready.set()
            self._done.set()

    # --- the run --------------------------------------------------------------------------

    async def run_async(self) -> RunResult:
        t0 = time.perf_counter()
        listener = await asyncio.start_server(self._on_tcp, self.host, self.port, ssl=self.ssl_context)
        self.port = listener.sockets[0].getsockname()[1]
        if self.audit_path is not None:
            self._audit = AuditLog(self.audit_path, self.identity)
        self._log("log_start", {"public_key": self.public_key, "run_id": self.run_id, "model": self.name,
                                "architecture": self.architecture, "clients": self.num_clients, "rounds": self.rounds,
                                "threshold": self.threshold, "clip": self.clip, "bits": self.bits, "step": self.quantizer.step,
                                "max_weight": self.max_weight, **({"dp": self._dp_summary()} if self.dp else {})})
        v0 = self.registry.register(self.name, self._initial, round=0, contributors=0, architecture=self.architecture)
        self._log("model_registered", v0.summary())
        self._phases = [_Phase(0, P.EVAL)]
        for r in range(1, self.rounds + 1):
            self._phases += [_Phase(r, P.TRAIN), _Phase(r, P.EVAL)]
        logger.info("FL server on %s:%d, model %r, %d clients, %d rounds", self.host, self.port, self.name, self.num_clients, self.rounds)
        self._ready.set()
        try:
            for ph in self._phases:
                await self._run_phase(ph)
            final = self.registry.get(self.name)
            self._log("run_end", {"model": final.summary(), "evaluations": len(self.history)})
            plot = None
            if self.plot_path is not None:
                from .plot import plot_progress

                plot = str(plot_progress(self.history, self.plot_path))
            if self.linger > 0:
                await asyncio.sleep(self.linger)
        finally:
            self._finished = True
            listener.close()
            for task in list(self._conn_tasks):
                task.cancel()
            if self._conn_tasks:
                await asyncio.gather(*self._conn_tasks, return_exceptions=True)
            await listener.wait_closed()
        return RunResult(
            model=final, versions=[v.summary() for v in self.registry.versions(self.name)], history=self.history,
            rounds=self.round_log, audit_log=str(self.audit_path) if self.audit_path else None,
            audit_head=self._audit.head if self._audit else None, public_key=self.public_key, plot=plot,
            seconds=time.perf_counter() - t0,
        )

    def _dp_summary(self) -> dict[str, Any]:
        """What the logs record of the DDP encoding (epsilon is added per round)."""
        enc = self.dp
        assert enc is not None and self.accountant is not None  # called for private runs only, which have both
        return {"mechanism": enc.mechanism, "bits": enc.bits, "clip": enc.clip, "scale": enc.scale,
                "noise_variance": str(enc.noise), "delta": self.accountant.delta}

    def _log(self, event: str, data: dict[str, Any]) -> None:
        if self._audit is not None:
            self._audit.append(event, data)

    async def _run_phase(self, ph: _Phase) -> None:
        base = self.registry.get(self.name)
        ph.base = base
        label = P.session_label(self.run_id, self.name, ph.round, ph.kind)
        if ph.kind == P.TRAIN and self.dp is not None:
            length, bits, clip, max_weight = self.dp.padded_length, self.dp.bits, self.dp.clip, 0
        elif ph.kind == P.TRAIN:
            length, bits, clip, max_weight = base.state.num_float + 1, self.bits, self.clip, self.max_weight
        else:
            length, bits, clip, max_weight = P.EVAL_LENGTH, P.EVAL_BITS, 0.0, 0
        cfg = P.phase_config(self.num_clients, self.threshold, bits, length, label)
        ph.agg = AggregationServer(cfg, host=None, round_timeout=self.round_timeout, join_timeout=self.join_timeout)
        ph.open_msg = PhaseOpen(self.name, ph.kind, ph.round, base.version, self.num_clients, cfg.threshold, bits, length, label, clip, max_weight)
        await ph.agg.start()
        self._log("round_start", {"round": ph.round, "phase": ph.kind, "version": base.version, "model_sha256": base.sha256,
                                  "session_label": label.decode(), "config_digest": cfg.digest.hex()})
        ph.state = _JOINING
        ph.opened.set()
        run = asyncio.ensure_future(ph.agg.run())
        try:
            await asyncio.wait_for(ph.all_handed.wait(), self.join_timeout)
        except asyncio.TimeoutError:
            pass
        ph.state = _RUNNING
        try:
            result = await run
        except (Aborted, DecodeError) as exc:  # TooFewSurvivors is an Aborted
            ph.state = _CLOSED
            logger.warning("round %d %s failed: %s", ph.round, ph.kind, exc)
            self._log("round_failed", {"round": ph.round, "phase": ph.kind, "error": str(exc)})
            if ph.kind == P.TRAIN:
                self.round_log.append({"round": ph.round, "error": str(exc), "version": base.version})
            return
        ph.state = _CLOSED
        included = list(result.included)
        dropped = {k: list(v) for k, v in result.dropped.items() if v}
        if ph.kind == P.TRAIN:
            if self.dp is not None:
                mean_delta = _ddp.decode(self.dp, result.sum, round_seed(label)) / len(included)
                total_weight = len(included)  # DDP averages clipped updates without weights
            else:
                mean_delta, total_weight = self.quantizer.decode(result.sum, len(included))
            new_state = base.state.with_float_vector(base.state.float_vector() + mean_delta)
            mv = self.registry.register(self.name, new_state, round=ph.round, contributors=len(included), architecture=self.architecture)
            entry: dict[str, Any] = {"round": ph.round, "included": included, "dropped": dropped, "total_weight": int(total_weight), "version": mv.version}
            if self.dp is not None:
                assert self.accountant is not None  # made with self.dp
                entry["dp"] = {**self._dp_summary(), "epsilon": self.accountant.record(self.dp, len(included))}
            self.round_log.append(entry)
            self._log("round_end", {**entry, "phase": ph.kind, "model_sha256": mv.sha256})
            self._log("model_registered", mv.summary())
            logger.info("round %d: %d contributors, %d examples -> version %d (%s)", ph.round, len(included), total_weight, mv.version, mv.sha256[:16])
        else:
            correct, total, loss_sum = P.decode_eval(result.sum)
            metrics: dict[str, float] = {"round": ph.round, "version": base.version, "contributors": len(included), "correct": correct, "total": total,
                       "accuracy": correct / total if total else float("nan"), "loss": loss_sum / total if total else float("nan")}
            if self.accountant is not None:
                metrics["epsilon"] = self.accountant.epsilon
            if self.evaluate_fn is not None:
                metrics.update({k: float(v) for k, v in self.evaluate_fn(base).items()})
            self.history.append(metrics)
            if self.on_evaluation is not None:
                self.on_evaluation(metrics)
            self._log("round_end", {"round": ph.round, "phase": ph.kind, "included": included, "dropped": dropped, "model_sha256": base.sha256})
            self._log("evaluation", metrics)
            logger.info("eval %d (version %d): accuracy %.4f, loss %.4f over %d examples", ph.round, base.version, metrics["accuracy"], metrics["loss"], total)

    # --- connections ------------------------------------------------------------------------

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs each connection callback in its own task
        self._conn_tasks.add(task)
        conn = StreamConnection(reader, writer)
        handed = False
        try:
            data = await asyncio.wait_for(conn.recv(JOIN_LIMIT), self.join_timeout)
            try:
                msg = decode(data)
            except DecodeError as exc:
                await conn.send(encode(Abort(f"undecodable first message: {exc}")))
                return
            if isinstance(msg, Hello):
                await conn.send(encode(self._hello(msg)))
            elif isinstance(msg, ModelRequest):
                await conn.send(encode(self._model(msg)))
            elif isinstance(msg, PhaseRequest):
                ph, reply = await self._phase_for(msg)
                await conn.send(encode(reply))
                if ph is not None:
                    assert ph.agg is not None  # _run_phase starts it before the phase opens
                    handed = True
                    ph.handed.add(msg.client_id)
                    if len(ph.handed) >= self.num_clients:
                        ph.all_handed.set()
                    await ph.agg.handle_connection(conn)
            else:
                await conn.send(encode(Abort(f"the first message must be Hello, ModelRequest or PhaseRequest, not {type(msg).__name__}.")))
        except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, DecodeError) as exc:
            logger.info("FL connection %s: %s", conn.peer, exc or type(exc).__name__)
        except asyncio.CancelledError:
            pass
        finally:
            self._conn_tasks.discard(task)
            if not handed:
                conn.close()

    def _hello(self, msg: Hello) -> Welcome | Abort:
        cid = self._orgs.get(msg.organisation)
        if cid is None:
            if len(self._orgs) >= self.num_clients:
                return Abort(f"all {self.num_clients} places of this run are taken.")
            cid = self._orgs[msg.organisation] = len(self._orgs)
            self._log("client_registered", {"organisation": msg.organisation, "client_id": cid})
        return Welcome(cid, self.num_clients, self.rounds, self.name)

    def _model(self, msg: ModelRequest) -> ModelReply | Abort:
        try:
            mv = self.registry.get(msg.name, msg.version)
        except KeyError as exc:
            return Abort(str(exc.args[0]))
        return ModelReply(mv.name, mv.version, mv.round, mv.contributors, mv.digest, mv.architecture, mv.state.to_blobs())

    async def _phase_for(self, msg: PhaseRequest) -> tuple[_Phase, PhaseOpen] | tuple[None, Abort]:
        """``(phase, PhaseOpen)`` once the requested phase opens, or ``(None, Abort)``."""
        if msg.name != self.name:
            return None, Abort(f"this server trains {self.name!r}, not {msg.name!r}.")
        if msg.client_id >= self.num_clients:
            return None, Abort(f"client id {msg.client_id} is out of range 0..{self.num_clients - 1}.")
        if msg.round == -1:
            ph = next((p for p in self._phases if p.kind == msg.phase and p.state in (_PENDING, _JOINING)), None)
        else:
            ph = next((p for p in self._phases if p.kind == msg.phase and p.round == msg.round), None)
        if ph is None or self._finished:
            return None, Abort(f"no {msg.phase} phase{'' if msg.round == -1 else f' for round {msg.round}'} is left in this run.")
        if ph.state == _PENDING:
            await ph.opened.wait()  # the client's own timeout bounds the wait
        if ph.state != _JOINING:
            return None, Abort(f"the join window of round {ph.round} ({ph.kind}) is closed.")
        if msg.client_id in ph.handed:
            return None, Abort(f"client {msg.client_id} has already joined round {ph.round} ({ph.kind}).")
        assert ph.base is not None and ph.open_msg is not None  # _run_phase sets both before the phase opens
        if ph.kind == P.TRAIN and msg.version != ph.base.version:
            return None, Abort(f"the update is relative to version {msg.version}, but round {ph.round} trains version "
                               f"{ph.base.version}; load the latest model and train again.")
        return ph, ph.open_msg
