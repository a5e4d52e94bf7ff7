"""Local data for FL clients: CSV files with a label column, and the demo's hospital split."""
from __future__ import annotations

import csv
from pathlib import Path

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["load_csv", "write_csv", "hospital_split"]


def load_csv(path: str | Path, label: str = "label") -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """``(X, y)`` from a CSV file with a header row: every column but ``label`` is a float feature.

    Raises:
        ValueError: no such label column, a non-numeric cell, or no rows.
    """
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: the file is empty.") from None
        if label not in header:
            raise ValueError(f"{path}: no column named {label!r} (columns: {header[:8]}{'...' if len(header) > 8 else ''}).")
        li = header.index(label)
        rows = [r for r in reader if r]
    if not rows:
        raise ValueError(f"{path}: no data rows.")
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        raise ValueError(f"{path}: every cell must be a number.") from None
    y = table[:, li]
    if not np.array_equal(y, np.round(y)) or y.min() < 0:
        raise ValueError(f"{path}: the {label!r} column must hold class indices 0, 1, ...")
    return np.delete(table, li, axis=1).astype(np.float32), y.astype(np.int64)


def write_csv(path: str | Path, X: npt.ArrayLike, y: npt.ArrayLike, label: str = "label",
              feature_names: Iterable[str] | None = None) -> Path:
    """Write ``X`` and ``y`` as a CSV with a header (features first, then ``label``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(np.shape(X)[1])]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([n.replace(" ", "_") for n in names] + [label])
        for row, target in zip(np.asarray(X), np.asarray(y)):
            w.writerow([repr(float(v)) for v in row] + [int(target)])
    return out


def hospital_split(y: npt.NDArray[np.integer[Any]], shares: Sequence[Sequence[float]] | npt.NDArray[np.floating[Any]],
                   seed: int) -> list[npt.NDArray[np.int64]]:
    """Label-skewed (non-IID) partition of the indices of ``y``.

    ``shares[h][c]`` is the fraction of class ``c`` that hospital ``h`` receives
    (each class's fractions sum to 1).  Returns one sorted index array per hospital.
    """
    rng = np.random.default_rng(seed)
    fractions = np.asarray(shares, dtype=np.float64)
    parts: list[list[int]] = [[] for _ in range(fractions.shape[0])]
    for c in range(fractions.shape[1]):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(fractions[:, c]) / fractions[:, c].sum() * idx.size).astype(int)
        for h, (a, b) in enumerate(zip(np.r_[0, cuts[:-1]], cuts)):
            parts[h].extend(idx[a:b].tolist())
    return [np.array(sorted(p), dtype=np.int64) for p in parts]
