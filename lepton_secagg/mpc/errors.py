"""Errors of the Prio3 stack, under the library's one root (``SecAggError``)."""
from __future__ import annotations

from ..exceptions import RemoteProtocolError

__all__ = ["ReportRejected"]


class ReportRejected(RemoteProtocolError):
    """A report failed verification; it must not be aggregated.

    Attributes:
        step: the Prio3 step that refused it (``"verify_init"``,
            ``"verifier_shares_to_message"`` or ``"verify_next"``).
    """

    def __init__(self, message: str, *, step: str):
        super().__init__(f"{step}: {message}", round=step)
        self.step = step
