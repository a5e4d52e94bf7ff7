"""What the FL server and its clients agree on for each phase of a round.

A run is a sequence of phases, each one secure aggregation with its own
``Config`` and a distinct ``session_label``::

    eval 0 (the initial model), train 1, eval 1, train 2, eval 2, ..., train R, eval R

* **train r**: each client sends ``Quantizer.encode(delta, weight=n_examples)``
  where ``delta`` is its locally trained float tensors minus global version
  ``r-1`` (clipped to ``[-clip, clip]``); the weight slot travels masked inside
  the vector.  The server decodes the weighted mean delta and registers
  version ``r``.
* **eval r**: each client evaluates global version ``r`` on its local data and
  sends ``[correct, total, round(loss_sum * 2^16)]`` as 64-bit ring integers;
  the server learns only the sums.

Both sides build the ``Config`` from the same few fields (``PhaseOpen``), so
a client pins it (``transport.run_session(policy=Policy(config=...))``).
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..config import Config
from ..hazmat.quantize import Quantizer

__all__ = [
    "TRAIN",
    "EVAL",
    "EVAL_LENGTH",
    "LOSS_SCALE",
    "session_label",
    "phase_config",
    "train_quantizer",
    "encode_eval",
    "decode_eval",
]

TRAIN = "train"
EVAL = "eval"
EVAL_BITS = 64
EVAL_LENGTH = 3
LOSS_SCALE = 1 << 16
_MASK64 = (1 << 64) - 1


def session_label(run_id: str, name: str, round_: int, phase: str) -> bytes:
    """``lepton-fl/v1/<run>/<model>/r<round>/<phase>``: distinct for every phase of every run."""
    label = f"lepton-fl/v1/{run_id}/{name}/r{round_}/{phase}".encode()
    if len(label) > 256:
        raise ValueError("the session label exceeds 256 bytes; use a shorter model name.")
    return label


def label_matches(label: bytes, name: str, round_: int, phase: str) -> bool:
    """The client's check: the label names this model, round and phase."""
    try:
        text = label.decode()
    except UnicodeDecodeError:
        return False
    parts = text.split("/")
    return len(parts) == 6 and parts[:2] == ["lepton-fl", "v1"] and parts[3:] == [name, f"r{round_}", phase]


def train_quantizer(clip: float, bits: int, num_clients: int, max_weight: int) -> Quantizer:
    """The weighted quantiser of a training phase (finest step whose sum cannot wrap)."""
    return Quantizer(clip=clip, bits=bits, num_clients=num_clients, max_weight=max_weight)


def phase_config(num_clients: int, threshold: int | None, bits: int, vector_length: int, label: bytes) -> Config:
    return Config(num_clients=num_clients, vector_length=vector_length, threshold=threshold, bits=bits, session_label=label)


def encode_eval(correct: int, total: int, loss_sum: float) -> npt.NDArray[np.uint64]:
    """One client's evaluation as ring integers (uint64); the loss in fixed point, two's complement."""
    if not 0 <= correct <= total < (1 << 40):
        raise ValueError(f"need 0 <= correct <= total < 2^40, got {correct}, {total}.")
    loss = int(round(float(loss_sum) * LOSS_SCALE))
    if abs(loss) >= 1 << 56:
        raise ValueError("the loss sum is too large for the fixed-point encoding.")
    return np.array([correct, total, loss & _MASK64], dtype=np.uint64)


def decode_eval(total_vector: npt.ArrayLike) -> tuple[int, int, float]:
    """``(correct, total, loss_sum)`` from the sum of clients' ``encode_eval`` vectors."""
    v = [int(x) for x in np.asarray(total_vector, dtype=np.uint64)]
    loss = v[2] - (1 << 64) if v[2] >= 1 << 63 else v[2]
    return v[0], v[1], loss / LOSS_SCALE
