"""Adapters that run lepton_secagg inside other federated-learning frameworks.

Each integration lives in its own module and imports its framework lazily, so
``import lepton_secagg`` never needs it:

* ``lepton_secagg.integrations.flower``: a Flower ``ClientApp`` mod
  (``lepton_secagg_mod``) and a ``ServerApp`` fit workflow
  (``LeptonSecAggWorkflow``), drop-in replacements for Flower's
  ``secaggplus_mod`` / ``SecAggPlusWorkflow``.
"""
from __future__ import annotations

__all__: list[str] = []
