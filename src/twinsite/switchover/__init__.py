"""Switchover: move the users of a scenario from its active host to a standby, and the roles with them.

The sequence (:mod:`~twinsite.switchover.steps`) is a list of idempotent steps run by the persisted runner
(:mod:`twinsite.ops.runner`), so that a switchover interrupted at any moment (kill, Ctrl-C, a lost link)
continues where it stopped when run again, and ends with a report of each step's start and duration
(:mod:`~twinsite.switchover.report`). The steps, one concept per module: :mod:`~twinsite.switchover.preflight`,
:mod:`~twinsite.switchover.handover` (the old active host lets go, this one takes the role),
:mod:`~twinsite.switchover.users` (the application here, the users moved and verified) and
:mod:`~twinsite.switchover.switchback` (a former active host becomes a standby again). An automatic switchover
is started by the standby's monitor (twinsite.monitor.auto). See docs/switchover.md.
"""
