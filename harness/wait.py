"""Waiting for something observable (a file, a status field, a log line, a process state) with the library's
one wait helper, :func:`twinsite.proc.wait_until`.

A wait that must happen calls ``wait_until`` itself (its timeout fails with what did not happen). A wait
followed by the assertion that checks the same thing uses :func:`eventually`: the assertion then reports
what was found instead."""

from __future__ import annotations

from collections.abc import Callable

from twinsite.errors import CommandError
from twinsite.proc import wait_until


def eventually(predicate: Callable[[], object], *, timeout: float, interval: float = 0.02, what: str) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds, polled every ``interval`` seconds. What
    the predicate raises is raised (a CommandError of its own included: only the timeout is an answer)."""
    raised: list[CommandError] = []

    def holds() -> bool:
        try:
            return bool(predicate())
        except CommandError as exc:
            raised.append(exc)
            return True

    try:
        wait_until(holds, timeout=timeout, interval=interval, what=what)
    except CommandError:
        return False
    if raised:
        raise raised[0]
    return True
