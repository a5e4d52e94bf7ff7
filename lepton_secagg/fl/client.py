"""The FL client of the product vision: ``Client(server_address).load_model / train / send_update``.

::

    client = Client("127.0.0.1:7000", organisation="hospital-a")
    model = client.load_model("breast-cancer")          # the latest global version
    client.train(model, data_path="hospital_a.csv", epochs=2)
    client.send_update(model)                            # joins this round's secure aggregation
    client.evaluate(data_path="hospital_a_val.csv")      # joins the federated evaluation

or ``client.run(data_path=...)`` for every round.  The update sent is the
trained float tensors minus the downloaded version, quantised with the
round's ``Quantizer`` and the number of training examples as the masked
weight slot; it leaves the client only as a ``MaskedInput``.  Evaluation
sends ``[correct, total, loss_sum]`` the same way.  Before taking part the
client rebuilds the phase's ``Config`` from ``PhaseOpen`` and its own model,
checks it against its own ``Policy`` (``policy=``, e.g. the fraction of
colluding organisations the threshold must withstand), refuses a
configuration frame that differs from it, and checks that the session label
names this model, round and phase.

Every method is synchronous (it runs its own event loop); do not call them
from inside a running event loop.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import ssl as _ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..dp import mechanism as _ddp
from ..device_input import DeviceInput
from ..dp.rotation import round_seed
from ..exceptions import ConfigRefused, SecAggError
from ..hazmat.rng import Rng, resolve
from ..messages import Abort, Hello, ModelReply, ModelRequest, PhaseOpen, PhaseRequest, Welcome
from ..policy import Policy
from ..transport.client import ClientOutcome, run_session
from ..transport.framing import StreamConnection
from ..wire import decode, encode
from . import device as _device
from . import protocol as P
from .data import load_csv
from .model import ModelState, build_model

if TYPE_CHECKING:  # torch stays a lazy import at run time
    import torch

_T = TypeVar("_T")
#: Local data: the features X and the labels y.
Data = tuple[npt.ArrayLike, npt.ArrayLike]

__all__ = ["Client", "FLError", "EvalReport", "LoadedModel", "train_model", "evaluate_model"]

logger = logging.getLogger(__name__)

_CONTROL_LIMIT = 1 << 16


class FLError(SecAggError):
    """The FL server refused a request (its ``Abort`` reason is the message) or answered nonsense."""


def _local_data(data_path: str | Path | None, data: Data | None, label: str) -> Data:
    """``data`` if given, else ``(X, y)`` read from the CSV at ``data_path``."""
    if data is not None:
        return data
    if data_path is None:
        raise TypeError("pass data_path (a CSV file) or data=(X, y).")
    return load_csv(data_path, label)


def train_model(model: torch.nn.Module, X: npt.ArrayLike, y: npt.ArrayLike, *, epochs: int = 1, lr: float = 0.05, batch_size: int = 32, momentum: float = 0.9,
                seed: int | None = None) -> int:
    """The default local training loop: SGD with momentum on the cross-entropy; returns len(y)."""
    import torch

    features = np.ascontiguousarray(X, dtype=np.float32)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    n = len(labels)
    Xt, yt = torch.from_numpy(features), torch.from_numpy(labels)
    gen = torch.Generator()
    gen.manual_seed(int(np.random.default_rng(seed).integers(1 << 62)))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            opt.step()
    return n


def evaluate_model(model: torch.nn.Module, X: npt.ArrayLike, y: npt.ArrayLike) -> tuple[int, int, float]:
    """``(correct, total, loss_sum)`` of ``model`` on ``(X, y)`` (cross-entropy, argmax)."""
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
        loss = torch.nn.functional.cross_entropy(logits, yt, reduction="sum")
        correct = int((logits.argmax(1) == yt).sum())
    return correct, len(yt), float(loss)


@dataclass
class LoadedModel:
    """What the client remembers about a downloaded model."""

    name: str
    version: int
    round: int
    contributors: int
    digest: bytes
    architecture: str
    state: ModelState


@dataclass
class EvalReport:
    round: int
    version: int
    correct: int
    total: int
    loss_sum: float
    outcome: ClientOutcome


class Client:
    """One organisation's connection to an FL ``Server``.

    Args:
        server_address: ``"HOST:PORT"``.
        organisation: the name this client registers under (default: a random one);
            the same name always gets the same client id.
        client_id: skip registration and use this id.
        timeout: seconds to wait for any one server frame (a phase may wait
            this long to open).
        ssl_context / server_hostname: TLS, as ``transport.run_client``.
        max_model_bytes: the largest model download accepted.
        policy: what this client accepts (``lepton_secagg.policy.Policy``); the
            phase's configuration is pinned on top of it.
        dp: a ``lepton_secagg.dp.DdpEncoding``: send distributed-DP updates (the server must use the same one).
        rng: the secret randomness of the DDP rounding and noise (default: the OS CSPRNG).
    """

    def __init__(self, server_address: str, *, organisation: str | None = None, client_id: int | None = None,
                 timeout: float = 300.0, ssl_context: _ssl.SSLContext | None = None, server_hostname: str | None = None,
                 max_model_bytes: int = 1 << 28, policy: Policy | None = None, dp: _ddp.DdpEncoding | None = None,
                 rng: Rng | None = None):
        host, _, port = str(server_address).removeprefix("tcp://").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"server_address must be 'HOST:PORT', got {server_address!r}.")
        self.host, self.port = host.strip("[]"), int(port)
        self.organisation = organisation or f"org-{np.random.default_rng().integers(1 << 62):x}"
        self.client_id = client_id
        self.timeout = float(timeout)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.max_model_bytes = int(max_model_bytes)
        self.policy = policy if policy is not None else Policy()
        self.welcome: Welcome | None = None
        self._loaded: dict[int, LoadedModel] = {}
        self._weights: dict[int, int] = {}
        self.last_clipped = 0
        self.dp = dp
        self._rng = resolve(rng)

    # --- plumbing -----------------------------------------------------------------------

    async def _connect(self) -> StreamConnection:
        ssl = self.ssl_context
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=ssl, server_hostname=(self.server_hostname or self.host) if ssl else None),
            self.timeout,
        )
        return StreamConnection(reader, writer)

    async def _ask(self, msg: Hello | ModelRequest, limit: int = _CONTROL_LIMIT) -> object:
        conn = await self._connect()
        try:
            await conn.send(encode(msg))
            reply = decode(await asyncio.wait_for(conn.recv(limit), self.timeout))
        finally:
            conn.close()
        if isinstance(reply, Abort):
            raise FLError(f"the server refused: {reply.reason}")
        return reply

    @staticmethod
    def _run(coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run(coro)

    # --- registration and models ---------------------------------------------------------

    def register(self) -> Welcome:
        """Register the organisation (once); returns the server's ``Welcome``."""
        if self.welcome is None:
            reply = self._run(self._ask(Hello(self.organisation)))
            if not isinstance(reply, Welcome):
                raise FLError(f"expected Welcome, got {type(reply).__name__}.")
            self.welcome = reply
            if self.client_id is None:
                self.client_id = reply.client_id
        return self.welcome

    async def _fetch(self, name: str, version: int) -> LoadedModel:
        reply = await self._ask(ModelRequest(name, version), self.max_model_bytes)
        if not isinstance(reply, ModelReply) or reply.name != name or (version != -1 and reply.version != version):
            raise FLError("the server answered a model request with something else.")
        state = ModelState.from_blobs(reply.tensors)
        if state.digest != reply.digest:
            raise FLError(f"model {name!r} version {reply.version}: the tensors do not match the announced SHA-256.")
        return LoadedModel(reply.name, reply.version, reply.round, reply.contributors, reply.digest, reply.architecture, state)

    def load_model(self, name: str | None = None, version: int = -1, *,
                   model: torch.nn.Module | None = None) -> torch.nn.Module:
        """Download a global model from the registry and return it as a torch module.

        Args:
            name: the model's name (default: the one the server trains).
            version: a version number, or -1 for the latest.
            model: a module to load the weights into (in place); default: a new
                module of the registered built-in architecture (``fl.model.build_model``).
        """
        name = name or self.register().model
        loaded = self._run(self._fetch(name, version))
        module = self._module(loaded, model)
        self._loaded[id(module)] = loaded
        self._weights.pop(id(module), None)
        return module

    @staticmethod
    def _module(loaded: LoadedModel, model: torch.nn.Module | None) -> torch.nn.Module:
        if model is None:
            model = build_model(loaded.architecture)
        model.load_state_dict(loaded.state.to_state_dict())
        return model

    def model_info(self, model: torch.nn.Module) -> LoadedModel:
        """The registry entry ``model`` was loaded from."""
        try:
            return self._loaded[id(model)]
        except KeyError:
            raise ValueError("this model was not loaded with load_model().") from None

    # --- local work -----------------------------------------------------------------------

    def train(self, model: torch.nn.Module, data_path: str | Path | None = None, *, epochs: int = 1, label: str = "label",
              train_fn: Callable[[torch.nn.Module], int] | None = None, data: Data | None = None,
              lr: float = 0.05, batch_size: int = 32, momentum: float = 0.9, seed: int | None = None) -> int:
        """Train ``model`` locally; returns the number of examples (the update's weight).

        Either ``data_path`` (a CSV with a header and a ``label`` column, every
        other column a feature), ``data=(X, y)``, or ``train_fn(model) -> number
        of examples`` for any other training loop.  The default loop is SGD with
        momentum on the cross-entropy, mini-batches of ``batch_size``.
        """
        if train_fn is not None:
            n = int(train_fn(model))
        else:
            X, y = _local_data(data_path, data, label)
            n = train_model(model, X, y, epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum, seed=seed)
        if n < 1:
            raise ValueError("training used no examples; there is nothing to send.")
        self._weights[id(model)] = n
        return n

    @staticmethod
    def evaluate_local(model: torch.nn.Module, X: npt.ArrayLike, y: npt.ArrayLike) -> tuple[int, int, float]:
        """``(correct, total, loss_sum)`` of ``model`` on ``(X, y)`` (cross-entropy, argmax)."""
        return evaluate_model(model, X, y)

    # --- secure aggregation phases ------------------------------------------------------------

    async def _open_phase(self, name: str, phase: str, round_: int, version: int) -> tuple[StreamConnection, PhaseOpen]:
        client_id = self.client_id
        assert client_id is not None  # every caller registers first
        conn = await self._connect()
        try:
            await conn.send(encode(PhaseRequest(name, phase, round_, client_id, version)))
            msg = decode(await asyncio.wait_for(conn.recv(_CONTROL_LIMIT), self.timeout))
        except BaseException:
            conn.close()
            raise
        if isinstance(msg, Abort):
            conn.close()
            raise FLError(f"the server refused to open the {phase} phase: {msg.reason}")
        if not isinstance(msg, PhaseOpen) or msg.name != name or msg.phase != phase or (round_ != -1 and msg.round != round_):
            conn.close()
            raise FLError("the server answered a phase request with something else.")
        if self.welcome is not None and msg.num_clients != self.welcome.num_clients:
            conn.close()
            raise FLError("the phase's cohort size differs from the one announced at registration.")
        if not P.label_matches(msg.session_label, name, msg.round, phase):
            conn.close()
            raise FLError("the phase's session label does not name this model, round and phase.")
        return conn, msg

    async def _aggregate(self, conn: StreamConnection, op: PhaseOpen, vector: npt.NDArray[np.unsignedinteger[Any]] | DeviceInput,
                         drop_in: str | None) -> ClientOutcome:
        client_id = self.client_id
        assert client_id is not None  # every caller registers first
        try:
            cfg = P.phase_config(op.num_clients, op.threshold, op.bits, op.vector_length, op.session_label)
            policy = dataclasses.replace(self.policy, config=cfg)
            policy.check(cfg, client_id)
        except (TypeError, ValueError, ConfigRefused) as exc:  # e.g. a threshold that is not a majority
            conn.close()
            raise FLError(f"the phase's parameters are unsafe or invalid: {exc}") from None
        outcome = await run_session(conn, client_id, vector, drop_in=drop_in, timeout=self.timeout, policy=policy)
        if outcome.status != "crashed":
            await conn.wait_closed()
        return outcome

    def send_update(self, model: torch.nn.Module, *, weight: int | None = None, drop_in: str | None = None) -> ClientOutcome:
        """Take part in the next training round with ``model``'s update.

        Args:
            weight: the number of examples (default: what ``train`` returned).
            drop_in: testing only: a protocol round name; the client never sends
                that round's reply and closes its socket abruptly, as a crash would
                (``testing.simulate``'s ``dropouts`` meaning).

        Returns:
            the transport's ``ClientOutcome`` (``.ok``, ``.status``, ``.reason``).

        Raises:
            FLError: the server refused the phase (e.g. a stale model version).
        """
        self.register()
        base = self.model_info(model)
        weight = weight if weight is not None else self._weights.get(id(model))
        if weight is None and self.dp is None:
            raise ValueError("no weight: call train() first or pass weight= (the number of examples).")
        if self.dp is None and _device.on_accelerator(model):  # the update stays on the device until masked
            delta = _device.device_delta(model, base.state)
            length = delta.numel()
        else:
            new = ModelState.from_state_dict(model.state_dict())
            if new.structure != base.state.structure:
                raise ValueError("the model's tensors differ in name, dtype or shape from the version it was loaded from.")
            delta = new.float_vector() - base.state.float_vector()
            length = delta.size

        async def go() -> ClientOutcome:
            conn, op = await self._open_phase(base.name, P.TRAIN, -1, base.version)
            if self.dp is not None:
                return await self._send_private(conn, op, delta, drop_in)
            if op.vector_length != length + 1:
                conn.close()
                raise FLError(f"the phase expects vectors of {op.vector_length} elements, this model gives {length + 1}.")
            assert weight is not None  # checked above: only a private update goes without one
            if weight > op.max_weight:
                conn.close()
                raise ValueError(f"weight {weight} exceeds the server's max_weight {op.max_weight}.")
            quantizer = P.train_quantizer(op.clip, op.bits, op.num_clients, op.max_weight)
            vector: npt.NDArray[np.unsignedinteger[Any]] | DeviceInput
            if isinstance(delta, np.ndarray):
                vector, clipped = quantizer.encode(delta, weight=weight)
            else:
                vector, clipped = _device.device_update(delta, quantizer, weight)
            self.last_clipped = clipped
            if clipped:
                logger.info("client %d: %d of %d update values clipped to +-%g", self.client_id, clipped, length, op.clip)
            return await self._aggregate(conn, op, vector, drop_in)

        outcome = self._run(go())
        if not outcome.ok:
            logger.warning("client %d: update not aggregated: %s %s", self.client_id, outcome.status, outcome.reason)
        return outcome

    def evaluate(self, data_path: str | Path | None = None, *, label: str = "label", data: Data | None = None,
                 eval_fn: Callable[[torch.nn.Module], tuple[int, int, float]] | None = None,
                 model: torch.nn.Module | None = None,
                 name: str | None = None, round: int = -1, drop_in: str | None = None) -> EvalReport:
        """Take part in the next federated evaluation (of the global version the server names).

        The client downloads that version, computes ``(correct, total, loss_sum)``
        on its data (``data_path`` CSV, ``data=(X, y)``, or ``eval_fn(module)``
        returning the triple) and sends it masked.  ``model``: a module to load
        the weights into (a copy is used), for non-built-in architectures.
        """
        model_name = name or self.register().model
        if eval_fn is None:
            X, y = _local_data(data_path, data, label)

        async def go() -> EvalReport:
            conn, op = await self._open_phase(model_name, P.EVAL, round, -1)
            try:
                loaded = await self._fetch(model_name, op.version)
                module = self._module(loaded, copy.deepcopy(model) if model is not None else None)
                correct, total, loss_sum = eval_fn(module) if eval_fn is not None else self.evaluate_local(module, X, y)
                vector = P.encode_eval(int(correct), int(total), float(loss_sum))
            except BaseException:
                conn.close()
                raise
            outcome = await self._aggregate(conn, op, vector, drop_in)
            return EvalReport(op.round, op.version, int(correct), int(total), float(loss_sum), outcome)

        return self._run(go())

    async def _send_private(self, conn: StreamConnection, op: PhaseOpen, delta: npt.NDArray[np.float64],
                            drop_in: str | None) -> ClientOutcome:
        """The DDP path of ``send_update``: clip, rotate, round, add noise from this client's rng."""
        enc = self.dp
        assert enc is not None  # send_update takes this path only with dp set
        if (op.vector_length, op.bits, float(op.clip)) != (enc.padded_length, enc.bits, float(enc.clip)) or delta.size != enc.length:
            conn.close()
            raise FLError(f"the phase (length {op.vector_length}, {op.bits} bits, clip {op.clip}) does not match this client's "
                          f"DDP encoding (length {enc.padded_length}, {enc.bits} bits, clip {enc.clip}).")
        vector, clipped = _ddp.encode(enc, delta, round_seed(op.session_label), self._rng)
        self.last_clipped = int(clipped)
        return await self._aggregate(conn, op, vector, drop_in)

    def run(self, data_path: str | Path | None = None, *, data: Data | None = None,
            eval_data_path: str | Path | None = None, eval_data: Data | None = None, name: str | None = None,
            epochs: int = 1, model: torch.nn.Module | None = None, drop_in: dict[int, str] | None = None,
            **train_kw: Any) -> list[ClientOutcome]:
        """Take part in every phase of the run: evaluate, then (load, train, send, evaluate) per round.

        Training data: ``data_path`` or ``data=(X, y)``; evaluation data:
        ``eval_data_path`` / ``eval_data`` (default: the training data).
        ``drop_in``: testing only, ``{training round: protocol round}``: the client drops out in that protocol round.
        Returns the list of ``ClientOutcome`` of the training rounds.
        """
        welcome = self.register()
        model_name = name or welcome.model
        label = train_kw.get("label", "label")
        if eval_data_path is None and eval_data is None:
            eval_data_path, eval_data = data_path, data
        def evaluate() -> EvalReport:
            return self.evaluate(eval_data_path, data=eval_data, label=label, name=model_name, model=model)

        evaluate()
        outcomes: list[ClientOutcome] = []
        for r in range(1, welcome.rounds + 1):
            m = self.load_model(model_name, model=model)
            self.train(m, data_path, data=data, epochs=epochs, **train_kw)
            outcomes.append(self.send_update(m, drop_in=(drop_in or {}).get(r)))
            evaluate()
        return outcomes
