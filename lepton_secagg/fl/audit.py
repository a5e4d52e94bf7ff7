"""A hash-chained, signed audit log of a federated training run (JSON lines).

Every line is one JSON object (keys sorted, no spaces)::

    {"event": "...", "data": {...}, "prev": "<hex SHA-256 of the previous line>",
     "seq": 0, "time": "2025-01-01T00:00:00Z", "sig": "<hex Ed25519 signature>"}

* ``seq`` counts from 0; ``prev`` is the SHA-256 of the previous line's bytes
  (without its newline), 64 zeros for the first line;
* ``sig`` is the server's Ed25519 signature over ``AUDIT_LABEL`` followed by
  the line's canonical JSON *without* ``sig``;
* the first event is ``log_start``; its data holds the server's verify key
  (``public_key``, hex), which ``verify_log`` uses unless a key is pinned.

Changing any entry breaks its signature (and the next line's ``prev``);
deleting, inserting or reordering lines breaks ``seq`` and ``prev``.
Truncation at the end is visible only against a known head: ``verify_log``
returns the head hash, and a complete run ends with ``run_end``.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import SignatureError
from ..hazmat.sign import Identity, verify

__all__ = ["AUDIT_LABEL", "AuditLog", "AuditResult", "verify_log", "AuditError"]

AUDIT_LABEL = b"lepton-secagg/v1/fl-audit-entry\n"
_GENESIS = "0" * 64
_KEYS = {"event", "data", "prev", "seq", "time", "sig"}
# One encoding for every hash and signature: lower-case hex of the exact length.
# bytes.fromhex would also take upper case, so a re-cased line would verify
# while hashing differently (the next line's prev and the head would change).
_HASH = re.compile(r"[0-9a-f]{64}")
_SIG = re.compile(r"[0-9a-f]{128}")


class AuditError(ValueError):
    """The log does not verify; the message says which line and why."""


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


class AuditLog:
    """Appends signed, chained entries to ``path`` (a new file; it is truncated)."""

    def __init__(self, path: str | Path, identity: Identity):
        self.path = Path(path)
        self.identity = identity
        self._lock = threading.Lock()
        self._prev = _GENESIS
        self._seq = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")

    @property
    def head(self) -> str:
        """SHA-256 (hex) of the last line written: pin it to detect truncation later."""
        return self._prev

    def append(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Sign and write one entry; ``data`` is any JSON object (the event's fields)."""
        with self._lock:
            entry: dict[str, Any] = {"event": event, "data": data, "prev": self._prev, "seq": self._seq,
                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            entry["sig"] = self.identity.sign(AUDIT_LABEL + _canonical(entry)).hex()
            line = _canonical(entry)
            with self.path.open("ab") as f:
                f.write(line + b"\n")
            self._prev = hashlib.sha256(line).hexdigest()
            self._seq += 1
            return entry


@dataclass
class AuditResult:
    entries: int
    public_key: str
    head: str
    complete: bool  # the last event is run_end
    pinned: bool  # the key was given by the caller, not read from the log


def _parse_key(key: bytes | bytearray | str | Path, *, canonical: bool = False) -> bytes:
    """A verify key from bytes, hex or a file of hex; ``canonical`` (a key inside the log) takes lower-case hex only."""
    if isinstance(key, (bytes, bytearray)) and len(key) == 32 and not canonical:
        return bytes(key)
    text = key if canonical and isinstance(key, str) else str(key).strip()
    path = Path(text)
    if not canonical and len(text) != 64 and path.is_file():
        text = path.read_text().strip()
    if not _HASH.fullmatch(text if canonical else text.lower()):
        raise AuditError(f"the key must be 64 {'lower-case ' if canonical else ''}hex characters (or a file holding them), got {text[:80]!r}.")
    return bytes.fromhex(text)


def verify_log(path: str | Path, key: bytes | bytearray | str | Path | None = None) -> AuditResult:
    """Check every line's form, sequence number, chain link and signature.

    Args:
        key: the server's verify key (32 bytes, hex, or a file holding the hex);
            None trusts the key in the ``log_start`` entry (it then only proves
            the log is internally consistent).

    Raises:
        AuditError: the first problem found, naming the line.
    """
    pinned = key is not None
    vk = _parse_key(key) if key is not None else b""  # unpinned: line 1 (always checked first) sets it
    raw = Path(path).read_bytes()
    if not raw:
        raise AuditError("the log is empty.")
    if not raw.endswith(b"\n"):
        raise AuditError("the log does not end with a newline (a truncated or edited last line).")
    prev = _GENESIS
    lines = raw[:-1].split(b"\n")
    last_event = None
    for i, line in enumerate(lines):
        where = f"line {i + 1}"
        try:
            entry = json.loads(line)
        except ValueError:
            raise AuditError(f"{where}: not valid JSON.") from None
        if not isinstance(entry, dict) or set(entry) != _KEYS:
            raise AuditError(f"{where}: an entry has exactly the keys {sorted(_KEYS)}.")
        if _canonical(entry) != line:
            raise AuditError(f"{where}: not in canonical form (keys sorted, no spaces); it was edited.")
        if entry["seq"] != i:
            raise AuditError(f"{where}: sequence number {entry['seq']!r}, expected {i} (a line was deleted, inserted or moved).")
        if entry["prev"] != prev:
            raise AuditError(f"{where}: the chain is broken (prev does not hash the previous line; a line was changed, deleted or reordered).")
        if i == 0:
            if entry["event"] != "log_start":
                raise AuditError("line 1: the first event must be log_start.")
            logged = entry["data"].get("public_key") if isinstance(entry["data"], dict) else None
            if not pinned:
                vk = _parse_key(logged if isinstance(logged, str) else "", canonical=True)
            elif logged != vk.hex():
                raise AuditError("line 1: the log was started by a different key than the one given.")
        if not isinstance(entry["sig"], str) or not _SIG.fullmatch(entry["sig"]):
            raise AuditError(f"{where}: the signature is not 128 lower-case hex characters (the one encoding accepted).")
        body = {k: v for k, v in entry.items() if k != "sig"}
        try:
            verify(vk, AUDIT_LABEL + _canonical(body), bytes.fromhex(entry["sig"]))
        except (ValueError, SignatureError):
            raise AuditError(f"{where}: the signature does not verify (the entry was changed or not signed by this key).") from None
        prev = hashlib.sha256(line).hexdigest()
        last_event = entry["event"]
    return AuditResult(entries=len(lines), public_key=vk.hex(), head=prev, complete=last_event == "run_end", pinned=pinned)
