"""The error hierarchy: each error knows its message, where it happened, what to do, and its exit code.

Every failure a user can meet is one of these. The CLI prints ``str(error)`` (or the JSON form with
``--json``) and exits with ``error.exit_code``; the collection turns the JSON form into ``fail_json``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TwinsiteError(Exception):
    """Base of every error twinsite reports to a user.

    ``where`` names the place (host, scenario, file, key path); ``hint`` says what to do next.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  what to do: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "where": self.where,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class ConfigError(TwinsiteError):
    """Configuration (scenario file, inventory value, CLI argument) is wrong. Nothing was changed."""

    exit_code = 3


class CommandError(TwinsiteError):
    """An external program twinsite relies on (ip, sshd, knotd, go, ssh) failed."""

    exit_code = 4


class LabError(TwinsiteError):
    """The lab cannot do what was asked (not up, unknown host, missing privileges)."""

    exit_code = 5


class HostUnreachableError(TwinsiteError):
    """A host did not answer in time."""

    exit_code = 6


class DnsError(TwinsiteError):
    """The DNS server refused an update, rejected our signature, or did not answer."""

    exit_code = 7


class JournalError(TwinsiteError):
    """The journal on disk is corrupt or inconsistent (not a torn tail)."""

    exit_code = 8


class UnsafePathError(TwinsiteError):
    """A record's path would leave the scenario root, or is malformed. The record is refused."""

    exit_code = 9


class ParentNotDirectoryError(UnsafePathError):
    """A parent of the path is a symlink or a file on the replica. Nothing is followed or written; the
    replica is not what the sender believes (it replaced a directory), so this counts as a divergence."""


class ApplyError(TwinsiteError):
    """A record could not be applied (I/O error, disk full): the batch is not acknowledged."""

    exit_code = 10


class ProtocolError(TwinsiteError):
    """The peer sent something that is not a valid frame (corrupt, oversized, unexpected)."""

    exit_code = 11


class PeerClosed(ProtocolError):
    """The stream ended (the peer exited or the link was cut)."""


class LinkError(TwinsiteError):
    """The connection to the standby failed; the sender reconnects and resumes from the acknowledged seq.
    ``remote``: the type of the receiver's error when it ended the session with one (its ERROR frame)."""

    exit_code = 12

    def __init__(
        self, message: str, *, where: str | None = None, hint: str | None = None, remote: str | None = None
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.remote = remote


class CaptureError(TwinsiteError):
    """Capture cannot watch the data (watch limit reached, root missing)."""

    exit_code = 13


class RewindError(TwinsiteError):
    """A rewind was refused (outside the window, unknown point) or cannot continue."""

    exit_code = 14


class VSphereError(TwinsiteError):
    """vCenter refused or could not do something: wrong credentials, unreachable, unknown object, failed task."""

    exit_code = 15


class PlacementError(TwinsiteError):
    """The protected servers cannot be placed on the DR hosts under the rules (the message says why)."""

    exit_code = 16


class AlertError(TwinsiteError):
    """An alert channel could not deliver (the message says which and why)."""

    exit_code = 17


class AppError(TwinsiteError):
    """The application could not be started, stopped or checked (the message says what and why)."""

    exit_code = 18


class SwitchoverError(TwinsiteError):
    """A switchover step failed or was refused (the message names the step and what to do)."""

    exit_code = 19


class AlreadyActiveError(SwitchoverError):
    """The switchover's goal holds already: this host is the active one. Nothing was changed."""


class SupersededError(TwinsiteError):
    """A sender whose epoch is not the receiver's: a stale active host, or a receiver that is active itself.
    ``epoch`` is the receiver's, so the sender can tell which of the two is behind."""

    exit_code = 20

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None, epoch: int = 0) -> None:
        super().__init__(message, where=where, hint=hint)
        self.epoch = epoch

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "epoch": self.epoch}


class RedirectError(TwinsiteError):
    """Users could not be moved (a redirect method failed)."""

    exit_code = 21


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


class RemoteError(TwinsiteError):
    """An error a peer's twinsite reported; ``type`` and ``remote_exit_code`` are its own."""

    type: str = "TwinsiteError"
    remote_exit_code: int = 2


class PlanError(TwinsiteError):
    """A recovery plan stopped: a scenario of a group failed with ``on_failure: stop`` (the message names it),
    or the plan cannot run as asked."""

    exit_code = 23


class TimedOut(PlanError):
    """A scenario's step of a plan did not end within its timeout (it may still end on its host)."""
