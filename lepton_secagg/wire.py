"""The wire format (version 1): the only module that speaks msgpack.

Every message is a msgpack array ``[WIRE_VERSION, tag, field, ...]`` with the
fields in declaration order.  Vectors travel as ``[itemsize, bin]`` with the
elements little-endian; id lists are strictly increasing; every other field
has one exact type.  ``decode`` is strict: the size limit is checked before
any parsing, msgpack's own length limits stop headers that claim more than
the buffer holds, trailing bytes are refused, every field is type- and
length-checked (against the ``Config`` when one is given), and every failure
is a ``DecodeError``.  No pickle, no extension types, no maps.
"""
from __future__ import annotations

import msgpack
import numpy as np

from .exceptions import DecodeError
from .messages import (
    Abort,
    AdvertiseKeys,
    ConsistencyCheckRequest,
    ConsistencySignature,
    Join,
    KeyEntry,
    MaskedInput,
    MaskedInputRequest,
    ShareKeys,
    ShareKeysRequest,
    UnmaskingRequest,
    UnmaskingShares,
)

__all__ = ["WIRE_VERSION", "TAGS", "encode", "decode", "encode_config", "decode_config"]

WIRE_VERSION = 1
_DEFAULT_LIMIT = 1 << 31
_MAX_REASON = 1024
_KEY = 32
_SIG = 64
_SESSION = 32

# tag -> (class, ((field, codec), ...)); docs/wire-format.md describes the same table.
TAGS = {
    1: (AdvertiseKeys, (("sender", "id"), ("encryption_key", "key"), ("mask_key", "key"), ("signature", "sig"))),
    2: (ShareKeysRequest, (("session_id", "session"), ("keys", "keys"))),
    3: (ShareKeys, (("sender", "id"), ("boxes", "pairs"))),
    4: (MaskedInputRequest, (("session_id", "session"), ("boxes", "pairs"))),
    5: (MaskedInput, (("sender", "id"), ("vector", "vector"))),
    6: (ConsistencyCheckRequest, (("session_id", "session"), ("survivors", "ids"))),
    7: (ConsistencySignature, (("sender", "id"), ("signature", "sig"))),
    8: (UnmaskingRequest, (("session_id", "session"), ("survivors", "ids"), ("signatures", "pairs"))),
    9: (UnmaskingShares, (("sender", "id"), ("self_mask_shares", "pairs"), ("mask_key_shares", "pairs"))),
    15: (Abort, (("reason", "reason"),)),
    16: (Join, (("client_id", "id"),)),
}
_TAG_OF = {cls: tag for tag, (cls, _) in TAGS.items()}


def encode(msg) -> bytes:
    """The wire bytes of a message.

    Raises:
        TypeError: ``msg`` is not a protocol message.
    """
    try:
        tag = _TAG_OF[type(msg)]
    except KeyError:
        raise TypeError(f"cannot encode {type(msg).__name__}: not a protocol message.") from None
    out = [WIRE_VERSION, tag]
    for name, codec in TAGS[tag][1]:
        out.append(_ENCODERS[codec](getattr(msg, name)))
    return msgpack.packb(out, use_bin_type=True)


def decode(data: bytes, cfg=None):
    """The message in ``data``.

    Args:
        data: the bytes of exactly one message.
        cfg: the session's ``Config``; when given, sizes, ids, vector length
            and element range are checked against it.

    Raises:
        DecodeError: anything about ``data`` is not a valid version-1 message.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"wire data must be bytes, not {type(data).__name__}.")
    limit = cfg.max_message_bytes if cfg is not None else _DEFAULT_LIMIT
    if len(data) > limit:
        raise DecodeError(f"the message is {len(data)} bytes, over the limit of {limit}.")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=limit,
            max_str_len=_MAX_REASON * 4,
            max_array_len=max(16, limit // 8),
            max_map_len=0,
            max_ext_len=0,
        )
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the message.") from None
    except (ValueError, msgpack.UnpackException, TypeError, OverflowError, RecursionError) as exc:
        raise DecodeError(f"the bytes are not valid msgpack: {type(exc).__name__}.") from None
    if not isinstance(obj, list) or len(obj) < 2:
        raise DecodeError("a message is an array [version, tag, fields...].")
    version, tag = obj[0], obj[1]
    if version != WIRE_VERSION or type(version) is not int:
        raise DecodeError(f"unsupported wire version {version!r}; this library speaks version {WIRE_VERSION}.")
    if type(tag) is not int or tag not in TAGS:
        raise DecodeError(f"unknown message tag {tag!r}.")
    cls, spec = TAGS[tag]
    if len(obj) != 2 + len(spec):
        raise DecodeError(f"{cls.__name__} has {len(spec)} fields, got {len(obj) - 2}.")
    values = {}
    for (name, codec), raw in zip(spec, obj[2:]):
        try:
            values[name] = _DECODERS[codec](raw, cfg)
        except DecodeError as exc:
            raise DecodeError(f"{cls.__name__}.{name}: {exc}") from None
    return cls(**values)


_CONFIG_TAG = 32


def encode_config(cfg) -> bytes:
    """The wire bytes of a ``Config`` (sent by a server to joining clients)."""
    from dataclasses import fields

    values = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        values.append(list(value) if isinstance(value, tuple) else value)
    return msgpack.packb([WIRE_VERSION, _CONFIG_TAG, values], use_bin_type=True)


def decode_config(data: bytes):
    """The ``Config`` in ``data``; every field is validated by ``Config`` itself.

    Raises:
        DecodeError: not a valid configuration message.
    """
    from dataclasses import fields

    from .config import Config

    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) > (1 << 26):
        raise DecodeError("a configuration message is bytes of at most 64 MiB.")
    try:
        obj = msgpack.unpackb(data, raw=False, max_map_len=0, max_ext_len=0, max_str_len=1 << 12)
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the configuration.") from None
    except (ValueError, msgpack.UnpackException, TypeError, OverflowError, RecursionError) as exc:
        raise DecodeError(f"the bytes are not valid msgpack: {type(exc).__name__}.") from None
    names = [f.name for f in fields(Config)]
    if not (isinstance(obj, list) and len(obj) == 3 and type(obj[0]) is int and obj[0] == WIRE_VERSION and obj[1] == _CONFIG_TAG
            and isinstance(obj[2], list) and len(obj[2]) == len(names)):
        raise DecodeError("not a version-1 configuration message.")
    kwargs = dict(zip(names, obj[2]))
    if isinstance(kwargs.get("identities"), list):
        kwargs["identities"] = tuple(kwargs["identities"])
    try:
        return Config(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"the configuration is invalid: {exc}") from None


# --- field codecs ---------------------------------------------------------------


def _enc_vector(vector: np.ndarray):
    arr = np.ascontiguousarray(vector)
    if arr.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise TypeError(f"vectors must be uint32 or uint64, got {arr.dtype}.")
    return [arr.itemsize, memoryview(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).cast("B")]


_ENCODERS = {
    "id": int,
    "key": bytes,
    "sig": bytes,
    "session": bytes,
    "reason": str,
    "ids": list,
    "keys": lambda entries: [[e.client_id, e.encryption_key, e.mask_key, e.signature] for e in entries],
    "pairs": lambda pairs: [[i, b] for i, b in pairs],
    "vector": _enc_vector,
}


def _dec_id(raw, cfg) -> int:
    if type(raw) is not int or raw < 0:
        raise DecodeError(f"a client id is a non-negative int, got {type(raw).__name__}.")
    bound = cfg.num_clients if cfg is not None else 1 << 32
    if raw >= bound:
        raise DecodeError(f"client id {raw} is out of range 0..{bound - 1}.")
    return raw


def _dec_bytes(size: int | None):
    def dec(raw, cfg) -> bytes:
        if type(raw) is not bytes:
            raise DecodeError(f"expected bytes, got {type(raw).__name__}.")
        if size is not None and len(raw) != size:
            raise DecodeError(f"expected {size} bytes, got {len(raw)}.")
        return raw

    return dec


def _dec_sig(raw, cfg) -> bytes:
    raw = _dec_bytes(None)(raw, cfg)
    if len(raw) not in (0, _SIG):
        raise DecodeError(f"a signature is empty or {_SIG} bytes, got {len(raw)}.")
    return raw


def _dec_reason(raw, cfg) -> str:
    if type(raw) is not str or len(raw) > _MAX_REASON:
        raise DecodeError(f"a reason is a string of at most {_MAX_REASON} characters.")
    return raw


def _dec_list(raw) -> list:
    if type(raw) is not list:
        raise DecodeError(f"expected an array, got {type(raw).__name__}.")
    return raw


def _dec_ids(raw, cfg) -> tuple[int, ...]:
    ids = tuple(_dec_id(x, cfg) for x in _dec_list(raw))
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise DecodeError("an id list must be strictly increasing.")
    return ids


def _dec_keys(raw, cfg) -> tuple[KeyEntry, ...]:
    out = []
    for item in _dec_list(raw):
        if type(item) is not list or len(item) != 4:
            raise DecodeError("a key entry is [id, encryption key, mask key, signature].")
        out.append(KeyEntry(_dec_id(item[0], cfg), _dec_bytes(_KEY)(item[1], cfg), _dec_bytes(_KEY)(item[2], cfg), _dec_sig(item[3], cfg)))
    ids = [e.client_id for e in out]
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise DecodeError("key entries must be sorted by strictly increasing id.")
    return tuple(out)


def _dec_pairs(raw, cfg) -> tuple[tuple[int, bytes], ...]:
    out = []
    for item in _dec_list(raw):
        if type(item) is not list or len(item) != 2:
            raise DecodeError("a pair is [id, bytes].")
        out.append((_dec_id(item[0], cfg), _dec_bytes(None)(item[1], cfg)))
    ids = [i for i, _ in out]
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise DecodeError("pairs must be sorted by strictly increasing id.")
    return tuple(out)


def _dec_vector(raw, cfg) -> np.ndarray:
    if type(raw) is not list or len(raw) != 2:
        raise DecodeError("a vector is [itemsize, bin].")
    itemsize, payload = raw
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
    return vec.astype(vec.dtype.newbyteorder("="), copy=False)


_DECODERS = {
    "id": _dec_id,
    "key": _dec_bytes(_KEY),
    "sig": _dec_sig,
    "session": _dec_bytes(_SESSION),
    "reason": _dec_reason,
    "ids": _dec_ids,
    "keys": _dec_keys,
    "pairs": _dec_pairs,
    "vector": _dec_vector,
}
