"""The library's errors: one root, and the type says whose fault it is.

* ``LocalProtocolError``: the caller used the API wrongly (wrong round, input
  not set, bad shape); nothing changed, the caller may fix it and retry.
* ``RemoteProtocolError``: a peer (the server, or a client as seen by the
  server) sent something that breaks the protocol.
* ``Aborted`` / ``TooFewSurvivors``: the session has ended without a result.
* ``DecodeError``: bytes that are not a valid message of this wire version.
* ``DecryptionError``: an AEAD ciphertext failed authentication.
* ``ReconstructionError``: Shamir shares are too few or inconsistent.
* ``SignatureError``: an Ed25519 signature did not verify.
* ``ConfigRefused``: the server proposed a configuration the client's
  ``Policy`` does not accept (a ``RemoteProtocolError``).

Arguments of the wrong type or value raise the built-in ``TypeError`` and
``ValueError`` (``DecodeError`` is also a ``ValueError``).  Messages are full
sentences and never contain key material.
"""
from __future__ import annotations

from typing import TypeVar

_P = TypeVar("_P", bound="ProtocolError")

__all__ = [
    "SecAggError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Aborted",
    "TooFewSurvivors",
    "DecodeError",
    "DecryptionError",
    "ReconstructionError",
    "SignatureError",
    "ConfigRefused",
]


class SecAggError(Exception):
    """Root of every error the library raises on purpose.

    Attributes:
        round: the protocol round name the error belongs to, or None.
        client_id: the client concerned (the sender, or the local client), or None.
    """

    def __init__(self, message: str, *, round: str | None = None, client_id: int | None = None):
        super().__init__(message)
        self.round = round
        self.client_id = client_id


class ProtocolError(SecAggError):
    """A protocol violation; abstract, raise a Local or Remote subclass."""

    def __new__(cls: type[_P], *args: object, **kwargs: object) -> _P:
        if cls is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError.")
        return super().__new__(cls)


class LocalProtocolError(ProtocolError):
    """The local caller broke the protocol; the session state is unchanged."""


class RemoteProtocolError(ProtocolError):
    """A peer's message broke the protocol."""


class ConfigRefused(RemoteProtocolError):
    """The server's configuration breaks the client's policy; the message names the field and both values."""


class Aborted(SecAggError):
    """The session ended without a result.

    Attributes:
        reason: a sentence saying why.
    """

    def __init__(self, message: str, *, round: str | None = None, client_id: int | None = None):
        super().__init__(message, round=round, client_id=client_id)
        self.reason = message


class TooFewSurvivors(Aborted):
    """Fewer clients than the threshold remain, so no sum can be produced.

    Attributes:
        survivors: how many clients were left.
        threshold: how many were needed.
    """

    def __init__(self, message: str, *, survivors: int, threshold: int, round: str | None = None):
        super().__init__(message, round=round)
        self.survivors = survivors
        self.threshold = threshold


class DecodeError(SecAggError, ValueError):
    """Bytes that are not a valid message of this wire version."""


class DecryptionError(SecAggError):
    """An authenticated ciphertext failed to open (tampered, or wrong key or context)."""


class ReconstructionError(SecAggError):
    """Shamir reconstruction is impossible (too few shares) or the shares disagree."""


class SignatureError(SecAggError):
    """An Ed25519 signature did not verify."""
