"""Assured recovery: non-disruptive tests of a replica on its standby (docs/assured-recovery.md).

:mod:`~twinsite.recovery.steps` runs a test; :mod:`~twinsite.recovery.spool` keeps what the receiver gets
meanwhile; :mod:`~twinsite.recovery.overlay` gives the application a throw-away layer over the replica;
:mod:`~twinsite.recovery.evidence` records each test; :mod:`~twinsite.recovery.actions` runs what follows a
passing one; :mod:`~twinsite.recovery.schedule` reads ``assured_recovery.schedule`` for the agent.
"""

from __future__ import annotations

from typing import Any

from twinsite.errors import TwinsiteError


class RecoveryError(TwinsiteError):
    """An assured-recovery test or its spool could not go on (the message says why and what to do)."""

    exit_code = 22


class TestFailed(RecoveryError):
    """A test ran and did not pass (its evidence is written): ``record`` is that evidence."""

    __test__ = False  # (not a pytest test class)

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(
            f"the assured-recovery test {record['id']} of {record['scenario']} {record['result']}: {record['reason']}",
            where=record["host"],
            hint=f"read its evidence: twinsite recover-test {record['scenario']} --report {record['id']} "
            f"({record.get('path', '')}); the replica was left as it was",
        )
        self.record = record

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "evidence": self.record}
