"""lepton_secagg: secure aggregation (SecAgg, SecAgg+) for federated learning."""
from __future__ import annotations

import logging as _logging

from ._state import Round
from ._version import __version__
from .client import Client
from .config import Config
from .exceptions import (
    Aborted,
    ConfigRefused,
    DecodeError,
    DecryptionError,
    LocalProtocolError,
    ReconstructionError,
    RemoteProtocolError,
    SecAggError,
    SignatureError,
    TooFewSurvivors,
)
from .messages import *  # noqa: F403  (the protocol message classes are public API)
from .messages import FL_MESSAGES as _fl_messages
from .messages import __all__ as _messages_all
from .policy import Policy
from .server import AggregationResult, Server
from .wire import decode, encode

from . import adapters, arrays, encoding, hazmat, testing  # noqa: E402  (ls.testing.simulate, ls.arrays.plan, ls.encoding, ls.adapters.torch)

__all__ = [
    "__version__",
    "Config",
    "Policy",
    "Client",
    "Server",
    "AggregationResult",
    "Round",
    "encode",
    "decode",
    "testing",
    "encoding",
    "arrays",
    "hazmat",
    "adapters",
    *(n for n in _messages_all if n not in {c.__name__ for c in _fl_messages} | {"FL_MESSAGES"}),
    "SecAggError",
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

# A library configures no logging: without a handler of the application's, its records go nowhere
# (not to Python's last-resort stderr handler).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
