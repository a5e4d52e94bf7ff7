"""Federated learning on top of secure aggregation: the "Lepton AI" organisations' API.

``Server`` runs rounds of federated averaging, each a secure aggregation
over the transport, keeps a model registry, runs federated evaluation,
writes a signed hash-chained audit log and a progress plot; ``Client`` is
the seed's ``Client(server_address).load_model / train / send_update``.
See ``docs/fl.md``.  This is the apps layer: nothing below imports it.
"""
from __future__ import annotations

from .audit import AuditError, AuditLog, AuditResult, verify_log
from .client import Client, EvalReport, FLError
from .model import ModelState, build_model
from .registry import ModelRegistry, ModelVersion
from .server import RunResult, Server

__all__ = [
    "Server",
    "Client",
    "RunResult",
    "EvalReport",
    "FLError",
    "ModelRegistry",
    "ModelVersion",
    "ModelState",
    "build_model",
    "AuditLog",
    "AuditResult",
    "AuditError",
    "verify_log",
]
