"""Switchover: move the users of a scenario from its active host to a standby, and the roles with them.

The sequence is a list of idempotent steps run by :class:`~twinsite.switchover.runner.Runner`, which
persists every step's state before and after it runs, so that a switchover interrupted at any moment
(kill, Ctrl-C, a lost link) continues where it stopped when run again, and ends with a report of each
step's start and duration. The steps (:mod:`twinsite.switchover.steps`: preflight, stop, drain, demote,
fence, promote, bookmark, start, check, redirect, verify, reverse roles; and for a switch-back or a rejoin
first find the active host, stop, set divergent changes aside, become a standby, resync) run on it; the
report is :mod:`twinsite.switchover.report`, automatic switchover :mod:`twinsite.switchover.auto`.
See docs/switchover.md.
"""

from __future__ import annotations

from twinsite.errors import TwinsiteError


class SwitchoverError(TwinsiteError):
    """A switchover step failed or was refused (the message names the step and what to do)."""

    exit_code = 19
