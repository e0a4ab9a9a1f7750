"""Waiting for something observable (a file, a status field, a log line, a process state) with the library's
one wait helper, :func:`twinsite.proc.wait_until`.

A wait that must happen calls ``wait_until(..., what=...)`` itself (its timeout fails naming what did not
happen). A wait followed by the assertion that checks the same thing uses :func:`eventually`: the assertion
then reports what was found instead."""

from __future__ import annotations

from collections.abc import Callable

from twinsite.proc import wait_until


def eventually(predicate: Callable[[], object], *, timeout: float, interval: float = 0.02, what: str) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds, polled every ``interval`` seconds; what the
    predicate raises is raised. When it did not, ``what`` is printed (pytest shows it beside the failure)."""
    if wait_until(lambda: bool(predicate()), timeout=timeout, interval=interval):
        return True
    print(f"waited {timeout:g} s in vain for {what}")
    return False
