"""lepton_secagg: secure aggregation (SecAgg, SecAgg+) for federated learning."""
from __future__ import annotations

from ._version import __version__
from .exceptions import (
    Aborted,
    DecodeError,
    DecryptionError,
    LocalProtocolError,
    ReconstructionError,
    RemoteProtocolError,
    SecAggError,
    SignatureError,
    TooFewSurvivors,
)

__all__ = [
    "__version__",
    "SecAggError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Aborted",
    "TooFewSurvivors",
    "DecodeError",
    "DecryptionError",
    "ReconstructionError",
    "SignatureError",
]
