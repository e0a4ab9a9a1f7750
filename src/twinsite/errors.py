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
