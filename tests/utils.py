"""Shared helpers for the tests: known-answer vector files and hex handling.

Vector files live in ``tests/vectors/v1/<name>.json``; each holds the original
values of one standard in lowercase hex, with a ``"source"`` field naming the
document and section (see docs/development/test-vectors.md).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["VECTOR_DIR", "load_vectors", "unhex", "tohex", "xor"]

VECTOR_DIR = Path(__file__).resolve().parent / "vectors" / "v1"

_HEX_SEPARATORS = re.compile(r"[\s:]+")


def unhex(text: str) -> bytes:
    """Bytes from hex, tolerating the spaces, newlines and colons RFCs print."""
    cleaned = _HEX_SEPARATORS.sub("", text)
    if len(cleaned) % 2:
        raise ValueError(f"odd-length hex string ({len(cleaned)} digits)")
    return bytes.fromhex(cleaned)


def tohex(data: bytes) -> str:
    """Lowercase hex of ``data``."""
    return bytes(data).hex()


def xor(a: bytes, b: bytes) -> bytes:
    """Bytewise XOR of two equal-length strings."""
    if len(a) != len(b):
        raise ValueError("xor of unequal lengths")
    return bytes(x ^ y for x, y in zip(a, b))


def load_vectors(name: str) -> dict[str, Any]:
    """The parsed vector file ``tests/vectors/v1/<name>.json``.

    The file must carry a non-empty ``"source"`` string; a missing file or a
    file without provenance is an error, so a vector cannot be added silently.
    """
    path = VECTOR_DIR / f"{name}.json"
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("source"), str) or not data["source"].strip():
        raise ValueError(f"{path.name} has no 'source' field naming its document and section")
    return data
