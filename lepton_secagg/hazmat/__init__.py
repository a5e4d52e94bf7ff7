"""Hazardous materials: the low-level building blocks of the protocol.

These functions do exactly what they say and nothing to protect a careless
caller (no protocol checks, no key management).  Use ``lepton_secagg.Client``
and ``lepton_secagg.Server`` unless you are building a protocol yourself.
"""
