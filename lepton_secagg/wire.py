"""The wire format (version 2): the only module that speaks msgpack.

Every message is a msgpack array ``[WIRE_VERSION, tag, field, ...]`` with the
fields in declaration order.  The masked input travels as ``[bits, length,
bin]``, its ring elements packed at ``bits`` bits each (``hazmat.ring.pack``);
version 1 messages, whose only difference is a masked input of whole words
``[itemsize, bin]``, are still decoded.  ``encode_parts`` gives a message as
buffers that reference the vector instead of copying it, for transports that
write them one after the other.  Id lists are strictly increasing; every other
field has one exact type.  ``decode`` is strict: the size limit is checked before
any parsing, msgpack's own length limits stop headers that claim more than
the buffer holds, trailing bytes are refused, every field is type- and
length-checked (against the ``Config`` when one is given), and every failure
is a ``DecodeError``.  No pickle, no extension types, no maps.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict, TypeVar, cast

import msgpack
import numpy as np
import numpy.typing as npt

from .exceptions import DecodeError
from .hazmat import ring
from .messages import (
    Abort,
    AdvertiseKeys,
    ConsistencyCheckRequest,
    ConsistencySignature,
    Join,
    KeyEntry,
    MaskedInput,
    MaskedInputRequest,
    Message,
    ShareKeys,
    ShareKeysRequest,
    UnmaskingRequest,
    UnmaskingShares,
)
from .messages import Hello, ModelReply, ModelRequest, PhaseOpen, PhaseRequest, TensorBlob, Welcome  # FL control

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "WIRE_VERSION",
    "TAGS",
    "SUPPORTED_VERSIONS",
    "encode",
    "encode_parts",
    "decode",
    "encode_config",
    "decode_config",
    "masked_input_size",
    "encode_client_state",
    "decode_client_state",
    "ClientStateFields",
]

WIRE_VERSION = 2
#: versions ``decode`` reads.  Version 1 differs in the masked input's codec (``_V1_CODECS``, still
#: read) and in the key messages, which gained the seed commitment (``_V1_REFUSED``, refused by name).
SUPPORTED_VERSIONS = (1, 2)
# The configuration message and the saved client state did not change with version 2.
_CONFIG_VERSION = 1
_STATE_VERSION = 1
_DEFAULT_LIMIT = 1 << 31
_MAX_REASON = 1024
_KEY = 32
_SIG = 64
_SESSION = 32

# tag -> (class, ((field, codec), ...)); docs/wire-format.md describes the same table.
TAGS: dict[int, tuple[type[Message], tuple[tuple[str, str], ...]]] = {
    1: (AdvertiseKeys, (("sender", "id"), ("encryption_key", "key"), ("mask_key", "key"), ("seed_commitment", "key"), ("signature", "sig"))),
    2: (ShareKeysRequest, (("session_id", "session"), ("keys", "keys"))),
    3: (ShareKeys, (("sender", "id"), ("boxes", "pairs"))),
    4: (MaskedInputRequest, (("session_id", "session"), ("boxes", "pairs"))),
    5: (MaskedInput, (("sender", "id"), ("vector", "ring"))),
    6: (ConsistencyCheckRequest, (("session_id", "session"), ("survivors", "ids"))),
    7: (ConsistencySignature, (("sender", "id"), ("signature", "sig"))),
    8: (UnmaskingRequest, (("session_id", "session"), ("survivors", "ids"), ("signatures", "pairs"))),
    9: (UnmaskingShares, (("sender", "id"), ("self_mask_shares", "pairs"), ("mask_key_shares", "pairs"))),
    15: (Abort, (("reason", "reason"),)),
    16: (Join, (("client_id", "id"),)),
}

# --- federated-learning control messages (lepton_secagg.fl), tags >= 40 --------------
# Decoded by the same strict reader; their codecs are at the end of this module.
# They are always decoded without a Config (they precede any aggregation).
FL_TAGS: dict[int, tuple[type[Message], tuple[tuple[str, str], ...]]] = {
    40: (Hello, (("organisation", "name"),)),
    41: (Welcome, (("client_id", "id"), ("num_clients", "count"), ("rounds", "count"), ("model", "name"))),
    42: (ModelRequest, (("name", "name"), ("version", "version"))),
    43: (
        ModelReply,
        (("name", "name"), ("version", "version"), ("round", "count"), ("contributors", "count"),
         ("digest", "digest"), ("architecture", "text"), ("tensors", "tensors")),
    ),
    44: (PhaseRequest, (("name", "name"), ("phase", "phase"), ("round", "version"), ("client_id", "id"), ("version", "version"))),
    45: (
        PhaseOpen,
        (("name", "name"), ("phase", "phase"), ("round", "count"), ("version", "count"), ("num_clients", "count"),
         ("threshold", "count"), ("bits", "count"), ("vector_length", "count"), ("session_label", "label"),
         ("clip", "float"), ("max_weight", "count")),
    ),
}
TAGS.update(FL_TAGS)
_TAG_OF = {cls: tag for tag, (cls, _) in TAGS.items()}


def encode(msg: Message) -> bytes:
    """The wire bytes of a message.

    Raises:
        TypeError: ``msg`` is not a protocol message.
    """
    try:
        tag = _TAG_OF[type(msg)]
    except KeyError:
        raise TypeError(f"cannot encode {type(msg).__name__}: not a protocol message.") from None
    if tag == 5:
        return b"".join(encode_parts(msg))
    out: list[object] = [WIRE_VERSION, tag]
    for name, codec in TAGS[tag][1]:
        out.append(_ENCODERS[codec](getattr(msg, name)))
    packed: bytes = msgpack.packb(out, use_bin_type=True)
    return packed


def encode_parts(msg: Message) -> list[bytes | memoryview]:
    """The wire bytes of a message as a list of buffers whose concatenation is ``encode(msg)``.

    A ``MaskedInput`` is a short header and the packed vector itself (a view
    of the vector's memory at 32 and 64 bits, so nothing is copied); any
    other message is one ``bytes``.

    Raises:
        TypeError: ``msg`` is not a protocol message.
        ValueError: a masked input with an element >= 2^bits.
    """
    if type(msg) is not MaskedInput:
        return [encode(msg)]
    bits, vector = msg.ring_bits, msg.vector
    if vector.dtype != ring.dtype_for(bits):
        raise TypeError(f"a {bits}-bit masked input is a {ring.dtype_for(bits)} vector, got {vector.dtype}.")
    payload = ring.pack(vector, bits)
    size = payload.nbytes
    header = bytearray(b"\x94")  # [version, tag, sender, [bits, length, bin]]
    header += msgpack.packb(WIRE_VERSION) + msgpack.packb(5) + msgpack.packb(int(msg.sender))
    header += b"\x93" + msgpack.packb(bits) + msgpack.packb(int(vector.shape[0]))
    if size < 1 << 8:
        header += b"\xc4" + size.to_bytes(1, "big")
    elif size < 1 << 16:
        header += b"\xc5" + size.to_bytes(2, "big")
    else:
        header += b"\xc6" + size.to_bytes(4, "big")
    return [bytes(header), payload]


def decode(data: bytes | bytearray | memoryview, cfg: Config | None = None) -> Message:
    """The message in ``data``.

    Args:
        data: the bytes of exactly one message.
        cfg: the session's ``Config``; when given, sizes, ids, vector length
            and element range are checked against it.

    Raises:
        DecodeError: anything about ``data`` is not a valid message of a version in ``SUPPORTED_VERSIONS``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"wire data must be bytes, not {type(data).__name__}.")
    limit = cfg.max_message_bytes if cfg is not None else _DEFAULT_LIMIT
    if len(data) > limit:
        raise DecodeError(f"the message is {len(data)} bytes, over the limit of {limit}.")
    if type(data) is bytes and data[:3] == _PACKED_INPUT_PREFIX:
        return _decode_packed_input(data, cfg)
    r = _Reader(data, limit)
    try:
        count = r.array()
        if count < 2:
            raise DecodeError("a message is an array [version, tag, fields...].")
        version, tag = r.scalar(), r.scalar()
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            raise DecodeError(
                f"unsupported wire version {version!r}; this library reads versions {SUPPORTED_VERSIONS} and writes {WIRE_VERSION}."
            )
        if type(tag) is not int or tag not in TAGS:
            raise DecodeError(f"unknown message tag {tag!r}.")
        cls, spec = TAGS[tag]
        if version == 1 and tag in _V1_REFUSED:
            raise DecodeError(
                f"a version-1 {cls.__name__} carries no seed commitment, which version {WIRE_VERSION} requires: "
                "a version-1 peer cannot take part in this session (docs/wire-format.md)."
            )
        if count != 2 + len(spec):
            raise DecodeError(f"{cls.__name__} has {len(spec)} fields, got {count - 2}.")
        values: dict[str, Any] = {}  # each codec checks its field's type; the class takes them by name
        for name, codec in spec:
            if version == 1:
                codec = _V1_CODECS.get(codec, codec)
            try:
                values[name] = _DECODERS[codec](r, cfg)
            except DecodeError as exc:
                raise DecodeError(f"{cls.__name__}.{name}: {exc}") from None
            if isinstance(values[name], _RingVector):
                values[name], values["bits"] = values[name].vector, values[name].bits
        r.finish()
    except (ValueError, msgpack.UnpackException, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"the bytes are not valid msgpack for this schema: {type(exc).__name__}.") from None
    if cls is MaskedInput and "bits" not in values:  # version 1: whole words
        values["bits"] = 8 * values["vector"].itemsize if cfg is None else cfg.bits
    return cls(**values)


# [4-array, version 2, tag 5]: a masked input, the one large message.
_PACKED_INPUT_PREFIX = bytes([0x94, WIRE_VERSION, 5])
_BIN_HEADERS = {0xC4: 1, 0xC5: 2, 0xC6: 4}


def _decode_packed_input(data: bytes, cfg: Config | None) -> MaskedInput:
    """``decode`` for a version-2 masked input, without copying its payload.

    The same checks as the general path: the header (at most 40 bytes) goes
    through a ``_Reader``; the payload is then a view of ``data`` itself, so
    the decoded vector is a read-only view of the received bytes.
    """
    head = data[:40]
    r = _Reader(head, len(data))
    try:
        r.array(exactly=4)
        r.scalar(), r.scalar()  # version 2, tag 5: the prefix
        try:
            sender = _check_id(r.scalar(), cfg)
        except DecodeError as exc:
            raise DecodeError(f"MaskedInput.sender: {exc}") from None
        r.array(exactly=3)
        bits, length = r.scalar(), r.scalar()
        at = r.tell()
    except (ValueError, msgpack.UnpackException, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"the bytes are not valid msgpack for this schema: {type(exc).__name__}.") from None
    marker = data[at] if at < len(data) else None
    width = None if marker is None else _BIN_HEADERS.get(marker)
    if width is None or at + 1 + width > len(data):
        raise DecodeError("MaskedInput.vector: a vector's payload must be bytes.")
    size = int.from_bytes(data[at + 1 : at + 1 + width], "big")
    start = at + 1 + width
    if start + size < len(data):
        raise DecodeError("trailing bytes after the message.")
    if start + size > len(data):
        raise DecodeError("the bytes are not valid msgpack for this schema: the payload is truncated.")
    try:
        vector = _ring_vector(bits, length, memoryview(data)[start:], cfg)
    except DecodeError as exc:
        raise DecodeError(f"MaskedInput.vector: {exc}") from None
    return MaskedInput(sender, vector, bits)


class _Reader:
    """Reads msgpack against the schema, one object at a time.

    Leaves (ints, bytes, strings) come from ``scalar``, with msgpack told to
    refuse any container there; arrays are entered with ``array``, whose
    declared length is checked against the bytes left before anything is
    built.  So a header claiming gigabytes, or a deep nest of them, costs
    nothing but the check.
    """

    def __init__(self, data: bytes | bytearray | memoryview, limit: int) -> None:
        self._size = len(data)
        self._u = msgpack.Unpacker(
            raw=False,
            strict_map_key=True,
            max_buffer_size=max(self._size, 1),
            max_bin_len=limit,
            max_str_len=_MAX_REASON * 4,
            max_array_len=0,
            max_map_len=0,
            max_ext_len=0,
        )
        self._u.feed(data)

    def array(self, exactly: int | None = None) -> int:
        count: int = self._u.read_array_header()
        if count > self._size - self._u.tell():  # every element takes at least one byte
            raise DecodeError(f"an array claims {count} elements, more than the bytes left.")
        if exactly is not None and count != exactly:
            raise DecodeError(f"expected an array of {exactly}, got {count}.")
        return count

    def scalar(self) -> Any:  # any msgpack leaf, not yet validated
        return self._u.unpack()

    def tell(self) -> int:
        at: int = self._u.tell()
        return at

    def finish(self) -> None:
        if self._u.tell() != self._size:
            raise DecodeError("trailing bytes after the message.")


_CONFIG_TAG = 32


def masked_input_size(cfg: Config) -> int:
    """The bytes of one client's ``MaskedInput`` under ``cfg`` (the largest client id), as ``encode`` writes it."""
    return len(encode(MaskedInput(cfg.num_clients - 1, np.zeros(cfg.vector_length, dtype=cfg.dtype), cfg.bits)))


def encode_config(cfg: Config) -> bytes:
    """The wire bytes of a ``Config`` (sent by a server to joining clients)."""
    from dataclasses import fields

    values: list[object] = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "identities":
            value = list(value or ())  # always an array; empty means none
        values.append(value)
    packed: bytes = msgpack.packb([_CONFIG_VERSION, _CONFIG_TAG, values], use_bin_type=True)
    return packed


def decode_config(data: bytes | bytearray | memoryview) -> Config:
    """The ``Config`` in ``data``; every field is validated by ``Config`` itself.

    Raises:
        DecodeError: not a valid configuration message.
    """
    from dataclasses import fields

    from .config import Config

    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) > (1 << 26):
        raise DecodeError("a configuration message is bytes of at most 64 MiB.")
    names = [f.name for f in fields(Config)]
    r = _Reader(data, len(data))
    try:
        ok = r.array() == 3 and _is_int(r.scalar(), _CONFIG_VERSION) and _is_int(r.scalar(), _CONFIG_TAG) and r.array() == len(names)
        if not ok:
            raise DecodeError("not a version-1 configuration message.")
        kwargs: dict[str, Any] = {}  # Config validates every field itself
        for name in names:
            if name == "identities":
                kwargs[name] = tuple(r.scalar() for _ in range(r.array())) or None
            else:
                kwargs[name] = r.scalar()
        r.finish()
    except (ValueError, msgpack.UnpackException, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"the bytes are not a valid configuration: {type(exc).__name__}.") from None
    try:
        return Config(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"the configuration is invalid: {exc}") from None


_STATE_TAG = 64
_T = TypeVar("_T")
_STATE_FIELDS = ("client_id", "round", "encryption", "masking", "seed", "input", "session_id", "peers", "box_keys", "shares", "survivors")


class ClientStateFields(TypedDict):
    """A client session's state as ``Client.export_state`` saves it and ``Client.restore`` reads it."""

    client_id: int
    round: str
    encryption: bytes | None  # private keys
    masking: bytes | None
    seed: bytes | None
    input: ring.RingVector | None
    session_id: bytes
    peers: dict[int, KeyEntry]
    box_keys: dict[int, bytes]
    shares: dict[int, tuple[bytes, bytes]]
    survivors: tuple[int, ...] | None


def encode_client_state(fields: ClientStateFields) -> bytes:
    """A client session's state as bytes, for frameworks that keep it between calls.

    The bytes hold the client's private keys: store them like a private key.
    ``fields`` is what ``Client.export_state`` assembles.
    """
    f = fields

    def optional(value: Any, encode: Callable[[Any], object] = lambda v: v) -> list[object]:
        return [] if value is None else [encode(value)]  # an array of 0 or 1: msgpack cannot peek

    body = [
        f["client_id"],
        f["round"],
        optional(f["encryption"]),
        optional(f["masking"]),
        optional(f["seed"]),
        optional(f["input"], _enc_vector),
        f["session_id"],
        _ENCODERS["keys"](f["peers"].values()),
        _ENCODERS["pairs"](sorted(f["box_keys"].items())),
        [[owner, a, b] for owner, (a, b) in sorted(f["shares"].items())],
        optional(f["survivors"], list),
    ]
    packed: bytes = msgpack.packb([_STATE_VERSION, _STATE_TAG, body], use_bin_type=True)
    return packed


def decode_client_state(data: bytes | bytearray | memoryview, cfg: Config) -> ClientStateFields:
    """The fields written by ``encode_client_state``, checked against ``cfg``.

    Raises:
        DecodeError: not a valid client state of this version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"a client state is bytes, not {type(data).__name__}.")
    limit = cfg.max_message_bytes * 4 + 256 * cfg.neighborhood_size
    if len(data) > limit:
        raise DecodeError(f"the client state is {len(data)} bytes, over the limit of {limit}.")
    r = _Reader(data, limit)

    def optional(read: Callable[[], _T]) -> _T | None:
        count = r.array()
        if count > 1:
            raise DecodeError("an optional field holds at most one value.")
        return read() if count else None

    try:
        if not (r.array() == 3 and _is_int(r.scalar(), _STATE_VERSION) and _is_int(r.scalar(), _STATE_TAG) and r.array() == len(_STATE_FIELDS)):
            raise DecodeError("not a version-1 client state.")
        client_id = _check_id(r.scalar(), cfg)
        rnd = r.scalar()
        if type(rnd) is not str:
            raise DecodeError("the round must be a string.")
        encryption, masking, seed = (optional(lambda: _check_bytes(r.scalar(), _KEY)) for _ in range(3))
        vector = optional(lambda: _dec_vector(r, cfg))
        session_id = _check_bytes(r.scalar())
        peers = {e.client_id: e for e in _dec_keys(r, cfg)}
        box_keys = dict(_dec_pairs(r, cfg))
        shares = {}
        for _ in range(r.array()):
            r.array(exactly=3)
            owner = _check_id(r.scalar(), cfg)
            shares[owner] = (_check_bytes(r.scalar()), _check_bytes(r.scalar()))
        survivors = optional(lambda: _dec_ids(r, cfg))
        r.finish()
        out = ClientStateFields(
            client_id=client_id, round=rnd, encryption=encryption, masking=masking, seed=seed, input=vector,
            session_id=session_id, peers=peers, box_keys=box_keys, shares=shares, survivors=survivors,
        )
    except (ValueError, msgpack.UnpackException, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"the bytes are not a valid client state: {type(exc).__name__}.") from None
    return out


def _is_int(value: object, expected: int) -> bool:
    return type(value) is int and value == expected


# --- field codecs ---------------------------------------------------------------


def _enc_vector(vector: npt.NDArray[Any]) -> list[object]:
    arr = np.ascontiguousarray(vector)
    if arr.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise TypeError(f"vectors must be uint32 or uint64, got {arr.dtype}.")
    return [arr.itemsize, arr.astype(arr.dtype.newbyteorder("<"), copy=False).data.cast("B")]


# "ring" (the masked input) has no entry: encode_parts writes it with the message's bits.
# Each takes the message field its codec names.
_ENCODERS: dict[str, Callable[[Any], object]] = {
    "id": int,
    "key": bytes,
    "sig": bytes,
    "session": bytes,
    "reason": str,
    "ids": list,
    "keys": lambda entries: [[e.client_id, e.encryption_key, e.mask_key, e.seed_commitment, e.signature] for e in entries],
    "pairs": lambda pairs: [[i, b] for i, b in pairs],
    "vector": _enc_vector,
}


def _check_id(raw: object, cfg: Config | None) -> int:
    if type(raw) is not int or raw < 0:
        raise DecodeError(f"a client id is a non-negative int, got {type(raw).__name__}.")
    bound = cfg.num_clients if cfg is not None else 1 << 32
    if raw >= bound:
        raise DecodeError(f"client id {raw} is out of range 0..{bound - 1}.")
    return raw


def _check_bytes(raw: object, size: int | None = None) -> bytes:
    if type(raw) is not bytes:
        raise DecodeError(f"expected bytes, got {type(raw).__name__}.")
    if size is not None and len(raw) != size:
        raise DecodeError(f"expected {size} bytes, got {len(raw)}.")
    return raw


def _check_sig(raw: object) -> bytes:
    sig = _check_bytes(raw)
    if len(sig) not in (0, _SIG):
        raise DecodeError(f"a signature is empty or {_SIG} bytes, got {len(sig)}.")
    return sig


def _check_increasing(ids: Sequence[int], what: str) -> None:
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise DecodeError(f"{what} must be sorted by strictly increasing id.")


def _dec_reason(r: _Reader, cfg: Config | None) -> str:
    raw = r.scalar()
    if type(raw) is not str or len(raw) > _MAX_REASON:
        raise DecodeError(f"a reason is a string of at most {_MAX_REASON} characters.")
    return raw


def _dec_ids(r: _Reader, cfg: Config | None) -> tuple[int, ...]:
    ids = tuple(_check_id(r.scalar(), cfg) for _ in range(r.array()))
    _check_increasing(ids, "an id list")
    return ids


def _dec_keys(r: _Reader, cfg: Config | None) -> tuple[KeyEntry, ...]:
    out: list[KeyEntry] = []
    for _ in range(r.array()):
        r.array(exactly=5)
        out.append(KeyEntry(_check_id(r.scalar(), cfg), _check_bytes(r.scalar(), _KEY), _check_bytes(r.scalar(), _KEY),
                            _check_bytes(r.scalar(), _KEY), _check_sig(r.scalar())))
    _check_increasing([e.client_id for e in out], "key entries")
    return tuple(out)


def _dec_pairs(r: _Reader, cfg: Config | None) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    for _ in range(r.array()):
        r.array(exactly=2)
        out.append((_check_id(r.scalar(), cfg), _check_bytes(r.scalar())))
    _check_increasing([i for i, _ in out], "pairs")
    return tuple(out)


def _dec_vector(r: _Reader, cfg: Config | None) -> ring.RingVector:
    r.array(exactly=2)
    itemsize, payload = r.scalar(), r.scalar()
    if itemsize not in (4, 8) or type(itemsize) is not int:
        raise DecodeError(f"a vector's itemsize is 4 or 8, got {itemsize!r}.")
    if type(payload) is not bytes or len(payload) % itemsize:
        raise DecodeError("a vector's payload must be bytes, a whole number of elements.")
    vec = np.frombuffer(payload, dtype="<u4" if itemsize == 4 else "<u8")
    if cfg is not None:
        if itemsize != cfg.dtype.itemsize:
            raise DecodeError(f"this session's vectors have {cfg.dtype.itemsize}-byte elements, got {itemsize}.")
        if vec.shape[0] != cfg.vector_length:
            raise DecodeError(f"this session's vectors have {cfg.vector_length} elements, got {vec.shape[0]}.")
        if cfg.bits < 8 * itemsize and vec.size and int(vec.max()) >> cfg.bits:
            raise DecodeError(f"a vector element is not reduced mod 2^{cfg.bits} (non-canonical encoding).")
    # "<u4"/"<u8" in native byte order is uint32/uint64
    return cast(ring.RingVector, vec.astype(vec.dtype.newbyteorder("="), copy=False))


def _dec_ring(r: _Reader, cfg: Config | None) -> _RingVector:
    """A packed ring vector ``[bits, length, bin]``, as a ``_RingVector``."""
    r.array(exactly=3)
    bits, length, payload = r.scalar(), r.scalar(), r.scalar()
    if type(payload) is not bytes:
        raise DecodeError("a vector's payload must be bytes.")
    return _RingVector(_ring_vector(bits, length, payload, cfg), bits)


def _ring_vector(bits: object, length: object, payload: bytes | memoryview, cfg: Config | None) -> ring.RingVector:
    """The checks of a packed vector's fields (``payload`` is bytes or a byte memoryview); the unpacked vector."""
    if type(bits) is not int or not 1 <= bits <= ring.MAX_BITS:
        raise DecodeError(f"a vector's bits is an int in 1..{ring.MAX_BITS}, got {bits!r}.")
    if type(length) is not int or length < 0:
        raise DecodeError(f"a vector's length is a non-negative int, got {length!r}.")
    if cfg is not None:
        if bits != cfg.bits:
            raise DecodeError(f"this session's vectors are packed at {cfg.bits} bits, got {bits}.")
        if length != cfg.vector_length:
            raise DecodeError(f"this session's vectors have {cfg.vector_length} elements, got {length}.")
    if len(payload) != ring.packed_size(length, bits):  # also bounds length by the bytes received
        raise DecodeError(f"{length} elements of {bits} bits take {ring.packed_size(length, bits)} bytes, got {len(payload)}.")
    try:
        return ring.unpack(payload, bits, length)
    except ValueError as exc:
        raise DecodeError(str(exc)) from None


class _RingVector:
    """A decoded ring vector and its width, split into MaskedInput's two fields by ``decode``."""

    __slots__ = ("vector", "bits")

    def __init__(self, vector: ring.RingVector, bits: int) -> None:
        self.vector, self.bits = vector, bits


# Version 1 codecs that differ from version 2 (decode only).
_V1_CODECS = {"ring": "vector"}
# Version-1 messages without the seed commitment (AdvertiseKeys, ShareKeysRequest): never accepted.
_V1_REFUSED = {1, 2}

# Each reads one field and checks it (against the Config when there is one).
_DECODERS: dict[str, Callable[[_Reader, "Config | None"], object]] = {
    "ring": _dec_ring,
    "id": lambda r, cfg: _check_id(r.scalar(), cfg),
    "key": lambda r, cfg: _check_bytes(r.scalar(), _KEY),
    "sig": lambda r, cfg: _check_sig(r.scalar()),
    "session": lambda r, cfg: _check_bytes(r.scalar(), _SESSION),
    "reason": _dec_reason,
    "ids": _dec_ids,
    "keys": _dec_keys,
    "pairs": _dec_pairs,
    "vector": _dec_vector,
}


# --- codecs of the FL control messages (tags >= 40) --------------------------------

_MAX_NAME = 256
_MAX_TEXT = 1024
_MAX_INT = (1 << 63) - 1
_MAX_DIMS = 8
_MAX_TENSORS = 1 << 16
#: Tensor dtypes a model may hold on the wire (``FlatSpec`` names), with their little-endian numpy dtype.
TENSOR_DTYPES = {
    "float16": "<f2", "float32": "<f4", "float64": "<f8",
    "int8": "|i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "|u1", "bool": "|b1",
}
PHASES = ("train", "eval")


def _dec_str(r: _Reader, limit: int, what: str, empty: bool = False) -> str:
    raw = r.scalar()
    if type(raw) is not str or len(raw) > limit or (not raw and not empty):
        raise DecodeError(f"{what} is a {'' if empty else 'non-empty '}string of at most {limit} characters.")
    return raw


def _dec_int(r: _Reader, lo: int) -> int:
    raw = r.scalar()
    if type(raw) is not int or not lo <= raw <= _MAX_INT:
        raise DecodeError(f"expected an int in {lo}..2^63-1, got {type(raw).__name__}.")
    return raw


def _dec_phase(r: _Reader, cfg: Config | None) -> str:
    raw = r.scalar()
    if type(raw) is not str or raw not in PHASES:
        raise DecodeError(f"a phase is one of {PHASES}.")
    return raw


def _dec_float(r: _Reader, cfg: Config | None) -> float:
    raw = r.scalar()
    if type(raw) is not float or raw != raw or raw in (float("inf"), float("-inf")) or raw < 0:
        raise DecodeError("expected a finite non-negative float.")
    return raw


def _dec_label(r: _Reader, cfg: Config | None) -> bytes:
    raw = _check_bytes(r.scalar())
    if len(raw) > 256:
        raise DecodeError("a session label is at most 256 bytes.")
    return raw


def _enc_tensors(tensors: Iterable[TensorBlob]) -> list[list[object]]:
    return [[t.name, t.dtype, [int(d) for d in t.shape], bytes(t.data)] for t in tensors]


def _dec_tensors(r: _Reader, cfg: Config | None) -> tuple[TensorBlob, ...]:
    import math

    count = r.array()
    if count > _MAX_TENSORS:
        raise DecodeError(f"a model has at most {_MAX_TENSORS} tensors.")
    out: list[TensorBlob] = []
    names: set[str] = set()
    for _ in range(count):
        r.array(exactly=4)
        name = _dec_str(r, _MAX_NAME, "a tensor name")
        if name in names:
            raise DecodeError(f"tensor name {name!r} appears twice.")
        names.add(name)
        dtype = r.scalar()
        if type(dtype) is not str or dtype not in TENSOR_DTYPES:
            raise DecodeError(f"a tensor dtype is one of {sorted(TENSOR_DTYPES)}.")
        ndim = r.array()
        if ndim > _MAX_DIMS:
            raise DecodeError(f"a tensor has at most {_MAX_DIMS} dimensions.")
        shape = tuple(_dec_int(r, 0) for _ in range(ndim))
        data = _check_bytes(r.scalar())
        if len(data) != math.prod(shape) * np.dtype(TENSOR_DTYPES[dtype]).itemsize:
            raise DecodeError(f"tensor {name!r}: {len(data)} data bytes do not match shape {shape} of {dtype}.")
        out.append(TensorBlob(name, dtype, shape, data))
    return tuple(out)


_ENCODERS.update({
    "name": str,
    "text": str,
    "count": int,
    "version": int,
    "phase": str,
    "digest": bytes,
    "label": bytes,
    "float": float,
    "tensors": _enc_tensors,
})
_DECODERS.update({
    "name": lambda r, cfg: _dec_str(r, _MAX_NAME, "a name"),
    "text": lambda r, cfg: _dec_str(r, _MAX_TEXT, "a text field", empty=True),
    "count": lambda r, cfg: _dec_int(r, 0),
    "version": lambda r, cfg: _dec_int(r, -1),
    "phase": _dec_phase,
    "digest": lambda r, cfg: _check_bytes(r.scalar(), 32),
    "label": _dec_label,
    "float": _dec_float,
    "tensors": _dec_tensors,
})


# --- Prio3 service frames (issue 15; lepton_secagg/mpc/service.py) ---------------------------------
# [WIRE_VERSION, "mpc", kind, items]: items is a list of bytes, ints, strs, None, and lists of those
# (two levels at most).  Separate from TAGS: these frames never reach a SecAgg session.
_MPC_DEPTH = 3


def encode_mpc(kind: str, items: list[Any]) -> bytes:  # JSON-like items, checked by _check_mpc
    """One Prio3 service frame."""
    _check_mpc(items, 0)
    packed: bytes = msgpack.packb([WIRE_VERSION, "mpc", str(kind), list(items)], use_bin_type=True)
    return packed


def decode_mpc(data: bytes | bytearray | memoryview, limit: int = _DEFAULT_LIMIT) -> tuple[str, list[Any]]:
    """``(kind, items)`` of a Prio3 service frame; ``DecodeError`` on anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"wire data must be bytes, not {type(data).__name__}.")
    if len(data) > limit:
        raise DecodeError(f"the message is {len(data)} bytes, over the limit of {limit}.")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, use_list=True, ext_hook=_no_ext)
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises several types for malformed input
        raise DecodeError(f"malformed Prio3 service frame: {exc}.") from None
    if (not isinstance(obj, list) or len(obj) != 4 or obj[0] != WIRE_VERSION or type(obj[0]) is not int
            or obj[1] != "mpc" or not isinstance(obj[2], str) or not isinstance(obj[3], list)):
        raise DecodeError("a Prio3 service frame is [version, 'mpc', kind, items].")
    _check_mpc(obj[3], 0)
    return obj[2], obj[3]


def _no_ext(code: int, data: bytes) -> NoReturn:
    raise DecodeError("extension types are not part of the wire format.")


def _check_mpc(items: list[Any], depth: int) -> None:
    if depth >= _MPC_DEPTH:
        raise DecodeError("a Prio3 service frame nests lists too deeply.")
    for x in items:
        if isinstance(x, list):
            _check_mpc(x, depth + 1)
        elif x is not None and type(x) not in (bytes, int, str):
            raise DecodeError(f"a Prio3 service frame holds a {type(x).__name__}.")
