"""Flower integration: run lepton_secagg's SecAgg/SecAgg+ over Flower's Message API.

Two pieces, drop-in replacements for Flower's own secure aggregation
(``secaggplus_mod`` / ``SecAggPlusWorkflow``, flwr 1.42):

* ``lepton_secagg_mod``: a ``ClientApp`` mod,
  ``ClientApp(client_fn=..., mods=[lepton_secagg_mod])``.  It drives one
  ``lepton_secagg.Client`` per training round, runs the wrapped fit when the
  masked input is asked for, quantises the returned parameters with
  ``encoding.Quantizer`` (clipping, stochastic rounding, the number of
  examples as the weight slot *inside* the masked vector) and answers each
  protocol round.  The reply to the server holds only our wire bytes: no
  parameters, no ``num_examples``, no fit metrics travel in the clear.
* ``LeptonSecAggWorkflow``: a ``ServerApp`` fit workflow,
  ``DefaultWorkflow(fit_workflow=LeptonSecAggWorkflow(...))``.  It samples
  clients through the strategy's ``configure_fit``, maps the sampled Flower
  node ids (sorted) to client ids 0..n-1, drives a ``lepton_secagg.Server``
  and sends each round's messages to the nodes; a node whose reply is
  missing at ``timeout``, carries a Flower error (the ClientApp raised) or is
  malformed counts as dropped in that round.  The unmasked sum is
  dequantised into the weighted average and handed to
  ``strategy.aggregate_fit`` exactly as Flower's workflow does.

Message layout: every message of the protocol is one ``ConfigRecord`` named
``RECORD_KEY`` in the ``RecordDict``: ``{"stage": <round>, "msg": <wire
bytes>}``; the first one also carries the encoded ``Config``, the client id
and the quantiser (``clip``, ``step``, ``bits``, ``num_clients``,
``max_weight``).  The mod keeps its session between messages in the node's
``Context.state`` (``Client.export_state`` bytes and the quantiser's fields,
as Flower's mod keeps its keys there); this state never leaves the node.

Distributed DP (``LeptonSecAggWorkflow(dp=DdpEncoding)``): the setup record
also carries the encoding (``dp_*`` fields); the mod sends the clipped,
rotated, rounded and noised *update* (the fit's parameters minus the ones it
was sent) in a ``dp.bits``-bit ring, and the workflow decodes the noisy mean
update, adds it to the global parameters and records epsilon per round
(``RoundReport.epsilon``) for the nodes actually included.  See docs/dp.md.

``flwr`` is imported lazily, inside the functions, so this module imports
without it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..client import Client
from ..config import Config
from ..dp import mechanism as ddp
from ..dp.rotation import round_seed
from ..exceptions import ConfigRefused, DecodeError, SecAggError
from ..hazmat.quantize import DEFAULT_RANGE, Quantizer, bits_for_precision
from ..hazmat.rng import Rng, resolve
from ..messages import SERVER_MESSAGES, Abort
from ..policy import Policy
from ..server import Server
from ..wire import decode, decode_config, encode, encode_config, masked_input_size

if TYPE_CHECKING:  # flwr stays a lazy import at run time
    from flwr.app import ConfigRecord, ConfigRecordValues, ConfigScalar, Context, Message, RecordDict, UserConfigValue
    from flwr.clientapp.typing import ClientAppCallable, Mod
    from flwr.common import FitRes
    from flwr.server.client_proxy import ClientProxy
    from flwr.serverapp import Grid

    from ..dp.accounting import Accountant

__all__ = ["lepton_secagg_mod", "lepton_secagg_mod_with", "node_policy", "demo_dropout_mod", "LeptonSecAggWorkflow", "RoundReport", "RECORD_KEY", "STATE_KEY"]

RECORD_KEY = "lepton_secagg"
STATE_KEY = "lepton_secagg.state"
_SETUP = "advertise_keys"
_MASKED = "masked_input"
_ACK = "aborted"

logger = logging.getLogger(__name__)


def _log(level: int, fmt: str, *args: object) -> None:
    """Log through Flower's logger (so it shows in Flower's output), else ours."""
    try:
        from flwr.common.logger import log
    except ImportError:  # pragma: no cover
        logger.log(level, fmt, *args)
    else:
        log(level, fmt, *args)


# --- client side ------------------------------------------------------------------


def lepton_secagg_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """A Flower ``ClientApp`` mod that answers ``LeptonSecAggWorkflow`` with lepton_secagg.

    Non-train messages pass through.  A train message without our record is
    refused (``ValueError``): the update is never sent in the clear by mistake.
    A message the client must refuse (bad bytes, a lying server, a
    configuration its policy refuses) is answered with an ``Abort``, and the
    session state is forgotten.  The policy is the node's own: the node
    configuration's ``lepton-secagg-*`` keys (``node_policy``), never the
    server's message; ``lepton_secagg_mod_with(policy)`` fixes one in code.
    """
    return _mod(msg, ctxt, call_next, node_policy(ctxt.node_config))


def lepton_secagg_mod_with(policy: Policy) -> Mod:
    """A ``lepton_secagg_mod`` that accepts only what ``policy`` accepts (and the node configuration adds)."""
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, not {type(policy).__name__}.")

    def mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        return _mod(msg, ctxt, call_next, node_policy(ctxt.node_config, policy))

    return mod


#: node-configuration keys (``flower-supernode --node-config``) read by ``node_policy``.
NODE_KEYS = {
    "lepton-secagg-min-corrupt": "corrupt_fraction",
    "lepton-secagg-mode": "mode",
    "lepton-secagg-bits": "bits",
    "lepton-secagg-prg": "prg",
    "lepton-secagg-config-digest": "config_digest",
}


def demo_dropout_mod(stage: str, partitions: Iterable[int | str]) -> Mod:
    """A ``ClientApp`` mod for demos: the nodes whose ``partition-id`` is in ``partitions`` crash in ``stage``.

    Put it before ``lepton_secagg_mod`` (``mods=[demo_dropout_mod("share_keys", {3}), lepton_secagg_mod]``):
    those nodes raise when the protocol round ``stage`` reaches them, as a crashed
    client would, and the workflow counts them as dropped in that round (a node
    dropped at ``unmasking`` or later is still in the sum).  This replaces the
    Flower example's workflow subclass; nothing on the server side changes.
    """
    stages = ("advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking")
    if stage not in stages:
        raise ValueError(f"stage must be one of {stages}, got {stage!r}.")
    chosen = {int(p) for p in partitions}

    def mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        record = msg.content.config_records.get(RECORD_KEY)
        if record is not None and record.get("stage") == stage and int(ctxt.node_config.get("partition-id", -1)) in chosen:
            _log(logging.WARNING, "lepton_secagg demo: partition %s drops out in round %s", ctxt.node_config["partition-id"], stage)
            raise RuntimeError(f"demo dropout in round {stage}")
        return call_next(msg, ctxt)

    return mod


def node_policy(node_config: Mapping[str, UserConfigValue], base: Policy | None = None) -> Policy:
    """``base`` (default ``Policy()``) with the node configuration's ``lepton-secagg-*`` keys applied.

    Raises:
        ValueError: a key has a value ``Policy`` refuses (the message names the key).
    """
    changes: dict[str, Any] = {}  # Policy field -> value; Policy checks each (below)
    for key, name in NODE_KEYS.items():
        if key not in node_config:
            continue
        raw = node_config[key]
        try:
            value: object = raw
            if name == "config_digest":
                value = bytes.fromhex(str(raw))
            elif name == "corrupt_fraction":
                value = float(raw)
            elif name == "bits":
                value = int(raw)
            changes[name] = value
            replace(base or Policy(), **changes)  # validates this key now, so the error names it
        except (TypeError, ValueError) as exc:
            raise ValueError(f"node config {key} = {node_config[key]!r}: {exc}") from None
    return replace(base or Policy(), **changes)


def _scalar(record: ConfigRecord, key: str) -> ConfigScalar:
    """``record[key]`` (KeyError if absent), refusing a list where one value belongs."""
    value = record[key]
    if isinstance(value, list):
        raise ValueError(f"the {key!r} field must hold one value, not a list.")
    return value


def _bytes(record: ConfigRecord, key: str) -> bytes:
    """``record[key]``, which must be bytes (``DecodeError`` otherwise, as for bad bytes)."""
    value = record[key]
    if not isinstance(value, bytes):
        raise DecodeError(f"the {key!r} field must be bytes, not {type(value).__name__}.")
    return value


def _mod(msg: Message, ctxt: Context, call_next: ClientAppCallable, policy: Policy) -> Message:
    from flwr.app import ConfigRecord, Message, RecordDict
    from flwr.app.message_type import MessageType

    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    records = msg.content.config_records
    if RECORD_KEY not in records:
        raise ValueError(
            f"lepton_secagg_mod got a train message without a {RECORD_KEY!r} record; the server does not run "
            "LeptonSecAggWorkflow, and the update will not be sent in the clear."
        )
    record = records[RECORD_KEY]
    stage = record.get("stage")
    if not isinstance(stage, str):
        raise ValueError(f"the {RECORD_KEY!r} record names no protocol round (stage = {stage!r}).")

    def reply(stage_name: str, payload: bytes | None) -> Message:
        content = RecordDict()
        fields: dict[str, ConfigRecordValues] = {"stage": stage_name}
        if payload is not None:
            fields["msg"] = payload
        content.config_records[RECORD_KEY] = ConfigRecord(fields)
        return Message(content, reply_to=msg)

    if stage == _SETUP:
        _forget(ctxt)
        cfg = decode_config(_bytes(record, "config"))
        quantizer = _quantizer(record)
        if quantizer.levels != int(_scalar(record, "levels")) or quantizer.bits != cfg.bits:
            raise ValueError("the quantiser does not match the session configuration.")
        enc = _dp_from_record(record)
        if enc is not None and (enc.padded_length, enc.bits) != (cfg.vector_length, cfg.bits):
            raise ValueError("the DDP encoding does not match the session configuration.")
        try:
            client = Client(cfg, int(_scalar(record, "client_id")), policy=policy)
        except ConfigRefused as exc:
            _log(logging.WARNING, "lepton_secagg: this node refuses the server's configuration: %s", exc)
            return reply(stage, encode(Abort(str(exc)[:1024])))
        advertise = client.start()
        _save(ctxt, client, quantizer, enc)
        return reply(stage, encode(advertise))

    session = _load(ctxt)
    if session is None:
        raise RuntimeError(f"lepton_secagg_mod got round {stage!r} but holds no session (it missed the setup).")
    client, quantizer, enc = session
    cfg = client.config
    try:
        request = decode(_bytes(record, "msg"), cfg)
    except DecodeError as exc:
        _forget(ctxt)
        return reply(stage, encode(client.abort(f"undecodable message: {exc}")))
    if not isinstance(request, SERVER_MESSAGES):
        _forget(ctxt)
        return reply(stage, encode(client.abort(f"{type(request).__name__} is not a server message")))
    if isinstance(request, Abort):
        client.receive(request)
        _forget(ctxt)
        _log(logging.WARNING, "lepton_secagg: the server ended this node's session: %s", request.reason)
        return reply(_ACK, None)
    if stage == _MASKED:
        sent = _fitins_vector(msg.content) if enc is not None else None
        out_msg = call_next(msg, ctxt)
        if out_msg.has_error():
            _forget(ctxt)
            return out_msg
        try:
            if enc is not None:
                assert sent is not None  # read above whenever enc is set
                client.set_input(_encode_private(out_msg.content, sent, enc, cfg.session_label))
            else:
                flat, weight = _fit_update(out_msg.content, quantizer, cfg.vector_length)
                client.set_float_input(flat, quantizer, weight=weight)  # quantised and masked in one pass below
        except ValueError as exc:
            _forget(ctxt)
            return reply(stage, encode(client.abort(str(exc))))
    try:
        out = client.receive(request)
    except SecAggError as exc:
        _forget(ctxt)
        return reply(stage, encode(client.abort(str(exc))))
    if stage == _MASKED and client.clipped:
        _log(logging.WARNING, "lepton_secagg: %d of %d parameters were clipped to +-%g.", client.clipped, flat.size, quantizer.clip)
    if out is None or client.round.value in ("completed", "aborted"):
        _forget(ctxt)
    else:
        _save(ctxt, client, quantizer, enc)
    return reply(stage, None if out is None else encode(out))


def _max_weight(quantizer: Quantizer) -> int:
    """The quantiser's max_weight: the workflow always weights updates by num_examples."""
    if quantizer.max_weight is None:
        raise ValueError("the Flower workflow needs a weighted quantizer (max_weight set).")
    return quantizer.max_weight


def _fit_update(content: RecordDict, quantizer: Quantizer, length: int) -> tuple[npt.NDArray[np.float64], int]:
    """The fit result as ``(flat parameters, weight)``; the weight travels in the vector's last slot."""
    from flwr.common import parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    fitres = compat.recorddict_to_fitres(content, keep_input=True)
    flat = _flatten(parameters_to_ndarrays(fitres.parameters))
    if flat.size + 1 != length:
        raise ValueError(f"the fit returned {flat.size} parameters; the session expects {length - 1}.")
    weight = fitres.num_examples
    max_weight = _max_weight(quantizer)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= max_weight:
        raise ValueError(f"num_examples = {weight!r} must be an int in 1..{max_weight} (the workflow's max_weight).")
    return flat, weight


def _fitins_vector(content: RecordDict) -> npt.NDArray[np.float64]:
    """The global parameters the fit starts from, flattened."""
    from flwr.common import parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    return _flatten(parameters_to_ndarrays(compat.recorddict_to_fitins(content, keep_input=True).parameters))


def _encode_private(content: RecordDict, sent: npt.NDArray[np.float64], enc: ddp.DdpEncoding,
                    label: bytes) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The DDP encoding of the fit's update (its parameters minus ``sent``), noise from the OS CSPRNG."""
    from flwr.common import parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    flat = _flatten(parameters_to_ndarrays(compat.recorddict_to_fitres(content, keep_input=True).parameters))
    if flat.size != enc.length or sent.size != enc.length:
        raise ValueError(f"the fit returned {flat.size} parameters; the DDP encoding expects {enc.length}.")
    vector, clipped = ddp.encode(enc, flat - sent, round_seed(label), resolve(None))
    if clipped:
        _log(logging.INFO, "lepton_secagg: the update was clipped to L2 norm %g.", enc.clip)
    return vector


def _dp_fields(enc: ddp.DdpEncoding | None) -> dict[str, ConfigRecordValues]:
    if enc is None:
        return {}
    return {"dp_mechanism": enc.mechanism, "dp_length": enc.length, "dp_bits": enc.bits, "dp_clip": enc.clip,
            "dp_scale": enc.scale, "dp_noise": str(enc.noise), "dp_beta": enc.beta}


def _dp_from_record(record: ConfigRecord) -> ddp.DdpEncoding | None:
    from fractions import Fraction

    if "dp_mechanism" not in record:
        return None
    return ddp.DdpEncoding(str(record["dp_mechanism"]), int(_scalar(record, "dp_length")), int(_scalar(record, "dp_bits")),
                           float(_scalar(record, "dp_clip")), float(_scalar(record, "dp_scale")),
                           Fraction(str(record["dp_noise"])), float(_scalar(record, "dp_beta")))


def _flatten(arrays: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float64]:
    if not arrays:
        return np.zeros(0)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def _save(ctxt: Context, client: Client, quantizer: Quantizer, enc: ddp.DdpEncoding | None = None) -> None:
    from flwr.app import ConfigRecord

    ctxt.state.config_records[STATE_KEY] = ConfigRecord({
        "config": encode_config(client.config),
        "session": client.export_state(),
        "clip": quantizer.clip,
        "step": quantizer.step,
        "bits": quantizer.bits,
        "num_clients": quantizer.num_clients,
        "max_weight": _max_weight(quantizer),
        **_dp_fields(enc),
    })


def _quantizer(record: ConfigRecord) -> Quantizer:
    """The quantiser whose fields ``record`` carries (setup message or saved state)."""
    return Quantizer(
        clip=float(_scalar(record, "clip")), step=float(_scalar(record, "step")), bits=int(_scalar(record, "bits")),
        num_clients=int(_scalar(record, "num_clients")), max_weight=int(_scalar(record, "max_weight")),
    )


def _load(ctxt: Context) -> tuple[Client, Quantizer, ddp.DdpEncoding | None] | None:
    record = ctxt.state.config_records.get(STATE_KEY)
    if record is None or "session" not in record:
        return None
    cfg = decode_config(_bytes(record, "config"))
    return Client.restore(cfg, _bytes(record, "session")), _quantizer(record), _dp_from_record(record)


def _forget(ctxt: Context) -> None:
    if STATE_KEY in ctxt.state.config_records:
        del ctxt.state.config_records[STATE_KEY]


# --- server side ------------------------------------------------------------------


@dataclass
class RoundReport:
    """What one secure-aggregation round did (``LeptonSecAggWorkflow.reports``).

    Attributes:
        server_round: Flower's round number.
        config: the lepton_secagg ``Config`` of the session.
        quantizer: the quantiser the clients used.
        node_ids: the sampled Flower node ids; client id i is ``node_ids[i]``.
        included: node ids whose update is in the average.
        dropped: node id -> the protocol round in which it stopped answering (a node
            dropped at unmasking is still in ``included``).
        total_weight: the sum of the included clients' ``num_examples``.
        seconds: protocol round -> wall time (send, wait for the replies, server work).
        server_seconds: protocol round -> time in ``lepton_secagg.Server`` (decode included).
        bytes_up / bytes_down: protocol round -> our wire bytes, all clients together.
        error: why the round ended without a result, or None.
        epsilon: with ``dp``, epsilon spent so far (at ``dp_delta``, for the nodes included).
    """

    server_round: int
    config: Config
    quantizer: Quantizer
    node_ids: list[int]
    included: list[int] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    total_weight: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    server_seconds: dict[str, float] = field(default_factory=dict)
    bytes_up: dict[str, int] = field(default_factory=dict)
    bytes_down: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    epsilon: float | None = None


class LeptonSecAggWorkflow:
    """A Flower fit workflow that aggregates with lepton_secagg (SecAgg / SecAgg+).

    Use it where ``SecAggPlusWorkflow`` is used, with ``lepton_secagg_mod`` on
    the clients::

        DefaultWorkflow(fit_workflow=LeptonSecAggWorkflow(num_shares=..., reconstruction_threshold=...))

    Args:
        num_shares: as in Flower: the size of each client's neighbourhood,
            itself included (an int, or a float fraction of the sampled
            clients).  SecAgg+ uses the Harary graph of degree ``num_shares - 1``
            (an even ``num_shares`` is raised by one, as Flower does); when it
            reaches the cohort size the full graph (SecAgg) is used.  None:
            let ``Config.secagg_plus`` pick the graph and threshold from
            ``corrupt_fraction`` and ``dropout_fraction`` (full graph below
            65 clients).
        reconstruction_threshold: the Shamir threshold t (an int, or a float
            fraction of ``num_shares``).  Set by hand it must withstand
            ``corrupt_fraction`` on the graph used.  None: a safe default.
        corrupt_fraction / dropout_fraction: the fractions the parameter
            finder (and the full-graph threshold) is chosen for.
        max_weight: the largest ``num_examples`` a client may report (an int).
        clipping_range: parameters are clipped to [-clipping_range, clipping_range].
        quantization_range: as in Flower, quantised values lie in
            [0, quantization_range - 1] (a step of 2 clipping_range /
            (range - 1)); None: the step comes from ``precision``.  A range
            that could wrap in ``bits`` is refused (``ValueError``), never clipped.
        precision: the largest acceptable quantisation step.  None: Flower's
            default step, 2 clipping_range / 2^22 (unless ``bits`` is given,
            which then takes the finest step that fits it).
        bits: the ring Z_(2^bits), 1..64.  None (default): the smallest ring
            whose finest step meets ``precision`` (or holds ``quantization_range``)
            with no possible wrap for the cohort at ``max_weight``; the choice
            is logged each round and kept in ``RoundReport.config.bits`` and
            ``RoundReport.quantizer.step``.
        prg: the mask PRG, "aes128ctr" or "chacha20".
        timeout: seconds to wait for the replies of each protocol round
            (None: wait for all); a node that has not answered is dropped.
        dp: a ``lepton_secagg.dp.DdpEncoding`` (its length the number of model
            parameters): distributed DP, an unweighted mean of clipped noisy
            updates in a ``dp.bits``-bit ring (``bits`` is then ignored).
        dp_delta: the delta at which ``RoundReport.epsilon`` is reported.

    After each round, ``reports[-1]`` is a ``RoundReport`` (included and
    dropped nodes, timings, bytes).
    """

    def __init__(
        self,
        num_shares: int | float | None = None,
        reconstruction_threshold: int | float | None = None,
        *,
        corrupt_fraction: float = 0.0,
        dropout_fraction: float = 0.1,
        max_weight: int = 1000,
        clipping_range: float = 8.0,
        quantization_range: int | None = None,
        precision: float | None = None,
        bits: int | None = None,
        prg: str = "aes128ctr",
        timeout: float | None = None,
        rng: Rng | None = None,
        dp: "ddp.DdpEncoding | None" = None,
        dp_delta: float = 1e-5,
    ) -> None:
        for name, value in (("num_shares", num_shares), ("reconstruction_threshold", reconstruction_threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a positive int or float, or None; got {value!r}.")
        if isinstance(reconstruction_threshold, float) and reconstruction_threshold > 1:
            raise ValueError("reconstruction_threshold as a float is a fraction of num_shares, in (0, 1].")
        if isinstance(max_weight, bool) or not isinstance(max_weight, int) or max_weight < 1:
            raise ValueError(f"max_weight must be an int >= 1 (num_examples are ints), got {max_weight!r}.")
        if quantization_range is not None and (not isinstance(quantization_range, int) or quantization_range < 2):
            raise ValueError(f"quantization_range must be an int >= 2 or None, got {quantization_range!r}.")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 or None, got {timeout!r}.")
        if precision is not None and (isinstance(precision, bool) or not isinstance(precision, (int, float)) or not precision > 0):
            raise ValueError(f"precision must be a positive float or None, got {precision!r}.")
        if precision is not None and quantization_range is not None:
            raise ValueError("give quantization_range or precision, not both: each fixes the step.")
        self.num_shares = num_shares
        self.reconstruction_threshold = reconstruction_threshold
        self.corrupt_fraction = corrupt_fraction
        self.dropout_fraction = dropout_fraction
        self.max_weight = max_weight
        self.clipping_range = float(clipping_range)
        self.quantization_range = quantization_range
        self.precision = None if precision is None else float(precision)
        self.bits = bits
        self.prg = prg
        self.timeout = timeout
        self._rng = resolve(rng)
        self.reports: list[RoundReport] = []
        if dp is not None and not isinstance(dp, ddp.DdpEncoding):
            raise ValueError(f"dp must be a DdpEncoding or None, got {type(dp).__name__}.")
        self.dp = dp
        self.accountant: Accountant | None = None
        if dp is not None:
            from ..dp.accounting import Accountant  # dp-accounting and scipy load only for a private run

            self.bits = dp.bits
            self.accountant = Accountant(dp_delta)
        # Fail early on a quantiser that can never work (e.g. max_weight too large for bits).
        self.make_quantizer(2)

    # -- the parameters of one session -------------------------------------------

    def make_quantizer(self, num_clients: int) -> Quantizer:
        """The quantiser for a cohort of ``num_clients`` (its ``bits`` is the session's ring)."""
        clip, weight = self.clipping_range, self.max_weight
        if self.quantization_range is not None:
            step = 2 * clip / (self.quantization_range - 1)
            ring = self.bits or bits_for_precision(num_clients, clip, step, weight)
            return Quantizer(clip=clip, step=step, bits=ring, num_clients=num_clients, max_weight=weight)
        bits = self.bits
        if bits is None or self.precision is not None:
            precision = self.precision if self.precision is not None else 2 * clip / DEFAULT_RANGE
            bits = bits or bits_for_precision(num_clients, clip, precision, weight)
            quantizer = Quantizer(clip=clip, bits=bits, num_clients=num_clients, max_weight=weight)
            if quantizer.step > precision:
                raise ValueError(f"bits = {bits} gives a step of {quantizer.step:.3g}, coarser than precision = {precision:.3g}; "
                                 f"leave bits=None to choose the ring from the precision.")
            return quantizer
        return Quantizer(clip=clip, bits=bits, num_clients=num_clients, max_weight=weight)

    def make_config(self, num_clients: int, vector_length: int, session_label: bytes = b"") -> Config:
        """The lepton_secagg ``Config`` for ``num_clients`` vectors of ``vector_length`` elements."""
        n = num_clients
        bits = self.make_quantizer(n).bits
        if self.num_shares is None and self.reconstruction_threshold is None:
            return Config.secagg_plus(n, vector_length, self.corrupt_fraction, self.dropout_fraction,
                                      bits=bits, prg=self.prg, session_label=session_label)
        if self.num_shares is None:
            shares = n
        elif isinstance(self.num_shares, float):
            shares = max(round(self.num_shares * n), 3)
        else:
            shares = self.num_shares
        if shares < n and shares % 2 == 0:
            shares += 1  # a Harary graph of even degree: an odd neighbourhood, as in Flower
        neighbors = shares - 1 if shares - 1 <= n - 2 else None
        size = n if neighbors is None else shares
        t = self.reconstruction_threshold
        if isinstance(t, float):
            t = max(round(t * size), 2)
        return Config(num_clients=n, vector_length=vector_length, threshold=t, neighbors=neighbors,
                      corrupt_fraction=self.corrupt_fraction, bits=bits, prg=self.prg, session_label=session_label)

    # -- the workflow --------------------------------------------------------------

    def __call__(self, grid: Grid, context: Context) -> None:
        """Run one round of secure aggregation (Flower's fit workflow protocol)."""
        from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
        from flwr.compat.common import recorddict_compat as compat
        from flwr.server.compat.legacy_context import LegacyContext
        from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
        from flwr.server.workflow.constant import Key as WorkflowKey

        if not isinstance(context, LegacyContext):
            raise TypeError(f"Expect a LegacyContext, but get {type(context).__name__}.")
        current_round = int(_scalar(context.state.config_records[MAIN_CONFIGS_RECORD], WorkflowKey.CURRENT_ROUND))
        parameters = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
        proxy_fitins = context.strategy.configure_fit(current_round, parameters, context.client_manager)
        if not proxy_fitins:
            _log(logging.INFO, "configure_fit: no clients selected, cancel")
            return
        _log(logging.INFO, "configure_fit: strategy sampled %s clients (out of %s)",
             len(proxy_fitins), context.client_manager.num_available())
        if len(proxy_fitins) < 2:
            _log(logging.ERROR, "lepton_secagg needs at least 2 sampled clients.")
            return
        fitins = {proxy.node_id: compat.fitins_to_recorddict(ins, True) for proxy, ins in proxy_fitins}
        proxies = {proxy.node_id: proxy for proxy, _ in proxy_fitins}
        node_ids = sorted(fitins)
        templates = parameters_to_ndarrays(parameters)
        length = sum(int(np.asarray(a).size) for a in templates) + 1  # + the weight slot
        if self.dp is not None:
            if self.dp.length != length - 1:
                raise ValueError(f"the model has {length - 1} parameters; the DDP encoding is for {self.dp.length}.")
            length = self.dp.padded_length

        label = b"flower/%d/%d/" % (int(getattr(context, "run_id", 0) or 0), current_round) + self._rng.bytes(16)
        n = len(node_ids)
        cfg = self.make_config(n, length, label)
        quantizer = self.make_quantizer(n)
        report = RoundReport(current_round, cfg, quantizer, node_ids)
        self.reports.append(report)
        _log(logging.INFO, "lepton_secagg: %d clients, ring Z_2^%d, step %.3g, %d bytes of masked input per client",
             n, cfg.bits, quantizer.step, masked_input_size(cfg))
        total = self._run_protocol(grid, cfg, quantizer, node_ids, fitins, report, group_id=str(current_round))
        if total is None:
            _log(logging.ERROR, "lepton_secagg: secure aggregation halted: %s", report.error)
            return
        if self.dp is not None:
            mean = _flatten(templates) + ddp.decode(self.dp, total, round_seed(label)) / len(report.included)
            weight = len(report.included)  # DP-FedAvg: an unweighted mean of clipped updates
            assert self.accountant is not None  # made with self.dp
            report.epsilon = self.accountant.record(self.dp, len(report.included))
        else:
            mean, weight = quantizer.decode(total, len(report.included))
        report.total_weight = int(weight)
        arrays, offset = [], 0
        for template in templates:
            template = np.asarray(template)
            arrays.append(mean[offset:offset + template.size].reshape(template.shape).astype(template.dtype, copy=False))
            offset += template.size
        aggregated = ndarrays_to_parameters(arrays)
        # Strategies weight results by num_examples, which never travelled in the
        # clear: every included node gets the same aggregate and weight 1.
        results = [(proxies[nid], FitRes(Status(Code.OK, "Success"), aggregated, 1, {})) for nid in report.included]
        failures: list[tuple[ClientProxy, FitRes] | BaseException] = [Exception(f"node {nid} dropped in round {rnd}") for nid, rnd in report.dropped.items()
                    if nid not in report.included]
        _log(logging.INFO, "aggregate_fit: received %s results and %s failures", len(results), len(failures))
        params_aggregated, metrics = context.strategy.aggregate_fit(current_round, results, failures)
        if params_aggregated:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(params_aggregated, True)
            context.history.add_metrics_distributed_fit(server_round=current_round, metrics=metrics)

    def _run_protocol(self, grid: Grid, cfg: Config, quantizer: Quantizer, node_ids: list[int], fitins: dict[int, RecordDict],
                      report: RoundReport, group_id: str) -> npt.NDArray[np.unsignedinteger[Any]] | None:
        """Drive a ``Server`` over the grid; the sum vector, or None (``report.error`` says why)."""
        from flwr.app import ConfigRecord, Message, RecordDict
        from flwr.app.message_type import MessageType

        server = Server(cfg)
        cid_of = {nid: i for i, nid in enumerate(node_ids)}
        cfg_bytes = encode_config(cfg)

        def setup_record(cid: int) -> dict[str, ConfigRecordValues]:
            return {
                "stage": _SETUP, "config": cfg_bytes, "client_id": cid,
                "clip": quantizer.clip, "step": quantizer.step, "bits": quantizer.bits, "levels": quantizer.levels,
                "num_clients": quantizer.num_clients, "max_weight": _max_weight(quantizer), **_dp_fields(self.dp),
            }

        # cid -> the server's next message for it (None: the setup record); Any until the core types Server.advance.
        pending: dict[int, Any] = {cid: None for cid in range(len(node_ids))}
        while server.round.value not in ("completed", "aborted"):
            stage = server.round.value
            started = time.perf_counter()
            messages: list[Message] = []
            sent_abort: set[int] = set()
            down = 0
            for cid, smsg in pending.items():
                if smsg is None:
                    fields = setup_record(cid)
                else:
                    wire = encode(smsg)
                    fields = {"stage": stage, "msg": wire}
                    down += len(wire)
                    if isinstance(smsg, Abort):
                        sent_abort.add(cid)
                if stage == _MASKED and cid not in sent_abort:
                    content = fitins[node_ids[cid]]
                else:
                    content = RecordDict()
                content.config_records[RECORD_KEY] = ConfigRecord(fields)
                messages.append(Message(content=content, dst_node_id=node_ids[cid],
                                        message_type=MessageType.TRAIN, group_id=group_id))
            replies = list(grid.send_and_receive(messages, timeout=self.timeout)) if messages else []
            t_server, up = 0.0, 0
            for rmsg in replies:
                sender = cid_of.get(rmsg.metadata.src_node_id)
                if sender is None or sender in sent_abort or sender not in server.live:
                    continue
                cid = sender
                if rmsg.has_error():
                    report.dropped.setdefault(node_ids[cid], stage)
                    continue
                record = rmsg.content.config_records.get(RECORD_KEY) if rmsg.has_content() else None
                t0 = time.perf_counter()
                payload = None if record is None else record.get("msg")
                obj: Any  # the client's message or an Abort; Any until the core types decode
                if record is None or record.get("stage") != stage or not isinstance(payload, bytes):
                    obj = Abort(f"malformed reply in round {stage}")
                else:
                    up += len(payload)
                    try:
                        obj = decode(payload, cfg)
                    except DecodeError as exc:
                        obj = Abort(f"undecodable reply: {exc}")
                abort = server.receive(cid, obj)
                t_server += time.perf_counter() - t0
                if isinstance(obj, Abort) or abort is not None:
                    report.dropped.setdefault(node_ids[cid], stage)
            for cid in server.pending:
                report.dropped.setdefault(node_ids[cid], stage)
            t0 = time.perf_counter()
            pending = server.advance()
            t_server += time.perf_counter() - t0
            report.seconds[stage] = time.perf_counter() - started
            report.server_seconds[stage] = t_server
            report.bytes_up[stage] = up
            report.bytes_down[stage] = down
            _log(logging.DEBUG, "lepton_secagg: round %s: %d replies, %d live", stage, len(replies), len(server.live))
        try:
            result = server.result()
        except SecAggError as exc:
            report.error = str(exc)
            return None
        report.included = [node_ids[c] for c in result.included]  # with those dropped at unmasking
        return result.sum
