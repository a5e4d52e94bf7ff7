"""What the command line checks before it listens or connects, so that no work is lost.

Every check raises ``ValueError`` naming the option, the file and the
problem (``cli.main`` prints it once and exits 1), ``UsageError`` for options
that do not go together (exit 2), or is an ``argparse`` type whose message
gives the allowed range (argparse exits 2).  They run before a
socket is opened: a session must never run to its end only to find that the
sum cannot be written, or that the client's input never fitted.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import ssl
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .config import Config
from .hazmat import ring
from .hazmat.sign import VERIFY_KEY_SIZE, Identity

__all__ = [
    "UsageError",
    "int_in",
    "float_in",
    "host_port",
    "check_writable",
    "load_input",
    "server_ssl",
    "client_ssl",
    "load_identities",
    "load_identity",
    "missing_modules",
    "given",
]

_NPY_MAGIC = b"\x93NUMPY"


class UsageError(ValueError):
    """The command line is wrong in a way argparse cannot see (options that need or exclude each other): exit 2."""


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in lo..hi (hi None: no upper bound)."""
    allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be in {allowed}, got {value}")
        return value

    return parse


def float_in(lo: float, hi: float | None, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in the interval from lo to hi (open ends as given)."""
    allowed = f"{'(' if lo_open else '['}{lo:g}, {'inf' if hi is None else f'{hi:g}'}{')' if hi_open or hi is None else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {allowed}, got {text!r}") from None
        below = value <= lo if lo_open else value < lo
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(f"must be in {allowed}, got {text}")
        return value

    return parse


def host_port(text: str) -> tuple[str, int]:
    """An argparse type: HOST:PORT (``[::1]:7373`` for IPv6), port 1..65535."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port in 1..65535, got {text!r}")
    return host.strip("[]"), int(port)


def check_writable(path: str, option: str) -> None:
    """ValueError unless ``path`` can be written as a file; leaves an existing file as it was."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{option} {path}: is a directory; give a file name.")
    existed = target.exists()
    try:
        with open(target, "ab"):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot be written ({exc.strerror or exc}).") from None
    if not existed:
        target.unlink()


def load_input(path: str, option: str, cfg: Config | None = None) -> np.ndarray:
    """A client's input vector from a .npy file: 1-D integers; with ``cfg``, also its length and ring.

    Raises:
        ValueError: unreadable, not a .npy file, a pickled (object) array, not
            1-D integers, or (with ``cfg``) the wrong length or values outside
            [0, 2^bits); the message names the file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
            if head[:1] == b"\x80":  # a pickle's PROTO opcode
                raise ValueError(f"{option} {path}: is a pickle, not a .npy file; pickles are never read (loading one can "
                                 "run code). Write the vector with numpy.save.")
            if head != _NPY_MAGIC:
                raise ValueError(f"{option} {path}: not a .npy file (write the vector with numpy.save).")
            f.seek(0)
            try:
                vector: np.ndarray = np.load(f, allow_pickle=False)
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise ValueError(f"{option} {path}: holds a pickled object array; only plain integer arrays are read "
                                     "(loading a pickle can run code).") from None
                raise ValueError(f"{option} {path}: not a valid .npy file ({exc}).") from None
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot be read ({exc.strerror or exc}).") from None
    if vector.dtype.kind not in "iu" or vector.ndim != 1:
        raise ValueError(f"{option} {path}: holds a {vector.dtype} array of shape {vector.shape}; the input must be a 1-D "
                         "integer vector with values in [0, 2^bits).")
    if cfg is not None:
        try:
            ring.check_vector(vector, cfg.vector_length, cfg.bits)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{option} {path} does not fit the pinned configuration: {exc}") from None
    return vector


def _read(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot be read ({exc.strerror or exc}).") from None


def server_ssl(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context from PEM files, or None without them."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise UsageError("--tls-cert and --tls-key go together: give both or neither.")
    _read(cert, "--tls-cert")
    _read(key, "--tls-key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its private key ({exc.reason or exc}).") from None
    return ctx


def client_ssl(ca: str | None) -> ssl.SSLContext | None:
    """The client's TLS context trusting the PEM CA file, or None without one."""
    if not ca:
        return None
    _read(ca, "--tls-ca")
    try:
        return ssl.create_default_context(cafile=ca)
    except ssl.SSLError as exc:
        raise ValueError(f"--tls-ca {ca}: not a PEM CA certificate ({exc.reason or exc}).") from None


def load_identities(path: str, num_clients: int) -> tuple[bytes, ...]:
    """Every client's Ed25519 verify key from a file of hex keys, one per line."""
    keys = []
    lines = _read(path, "--identities").decode("utf-8", "replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            key = bytes.fromhex(line.strip())
        except ValueError:
            key = b""
        if len(key) != VERIFY_KEY_SIZE:
            raise ValueError(f"--identities {path} line {number}: not a verify key ({2 * VERIFY_KEY_SIZE} hex characters).")
        keys.append(key)
    if len(keys) != num_clients:
        raise ValueError(f"--identities {path}: holds {len(keys)} verify keys; --clients is {num_clients}, one key per client.")
    return tuple(keys)


def load_identity(path: str) -> Identity:
    """This client's Ed25519 identity from a file holding its hex 32-byte seed."""
    text = _read(path, "--identity").decode("utf-8", "replace").strip()
    try:
        seed = bytes.fromhex(text)
        if len(seed) != 32:
            raise ValueError
        return Identity(seed)
    except ValueError:
        raise ValueError(f"--identity {path}: must hold a 32-byte Ed25519 seed as 64 hex characters.") from None


def missing_modules(names: Iterable[str]) -> list[str]:
    """The top-level modules among ``names`` that are not installed here (found without importing them)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def given(argv: Sequence[str], options: Iterable[str]) -> list[str]:
    """The options among ``options`` that appear on the command line ``argv`` (abbreviations and ``--opt=value`` included)."""
    found = []
    for token in argv:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        for option in options:
            if option.startswith("--"):
                hit = name.startswith("--") and len(name) > 2 and option.startswith(name)
            else:
                hit = not token.startswith("--") and token.startswith(option)
            if hit and option not in found:
                found.append(option)
    return found

