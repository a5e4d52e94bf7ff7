"""The model registry: every global version of every model, by name and version.

Each version records the round that produced it, the SHA-256 of the
canonical serialisation of its tensors (``ModelState.digest``, no pickle) and
how many clients contributed to it.  Clients download versions with
``ModelRequest`` (``Client.load_model``); version -1 means the latest.
Optionally the registry writes each version to ``directory`` as
``<name>/v<version>.json`` (metadata) and ``.npz`` (the tensors, loaded with
``allow_pickle=False``).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .model import ModelState

__all__ = ["ModelVersion", "ModelRegistry"]


@dataclass(frozen=True)
class ModelVersion:
    """One registered global model."""

    name: str
    version: int
    round: int
    contributors: int
    architecture: str
    state: ModelState = field(repr=False)
    digest: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", self.state.digest)

    @property
    def sha256(self) -> str:
        return self.digest.hex()

    def summary(self) -> dict[str, Any]:
        """The version's JSON summary (name, version, round, contributors, sha256, architecture)."""
        return {"name": self.name, "version": self.version, "round": self.round, "contributors": self.contributors,
                "sha256": self.sha256, "architecture": self.architecture}


class ModelRegistry:
    """Versions of named models (thread-safe)."""

    def __init__(self, directory: str | Path | None = None):
        self._models: dict[str, list[ModelVersion]] = {}
        self._lock = threading.Lock()
        self.directory = Path(directory) if directory is not None else None

    def register(self, name: str, state: ModelState, *, round: int, contributors: int, architecture: str = "") -> ModelVersion:
        """Add the next version of ``name``; its structure must match the previous versions'."""
        with self._lock:
            versions = self._models.setdefault(name, [])
            if versions and versions[0].state.structure != state.structure:
                raise ValueError(f"model {name!r}: the new version's tensors differ in name, dtype or shape from version 0.")
            mv = ModelVersion(name, len(versions), round, contributors, architecture, state)
            versions.append(mv)
        if self.directory is not None:
            self._save(mv, self.directory)
        return mv

    def get(self, name: str, version: int = -1) -> ModelVersion:
        """Version ``version`` of ``name`` (-1: the latest); KeyError if absent."""
        with self._lock:
            versions = self._models.get(name)
            if not versions:
                raise KeyError(f"no model named {name!r} in the registry.")
            if version == -1:
                return versions[-1]
            if not 0 <= version < len(versions):
                raise KeyError(f"model {name!r} has versions 0..{len(versions) - 1}, not {version}.")
            return versions[version]

    def versions(self, name: str) -> list[ModelVersion]:
        with self._lock:
            return list(self._models.get(name, ()))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def _save(self, mv: ModelVersion, directory: Path) -> None:
        folder = directory / mv.name
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"t{i}": a for i, (_, a) in enumerate(mv.state.entries)}
        # numpy's stub matches **kwds against allow_pickle too; these keys are t0, t1, ..., never that.
        np.savez(folder / f"v{mv.version}.npz", **tensors)  # type: ignore[arg-type]
        meta = {**mv.summary(), "tensors": [n for n, _ in mv.state.entries]}
        (folder / f"v{mv.version}.json").write_text(json.dumps(meta, indent=1) + "\n")
