"""Assured recovery: non-disruptive tests of a replica on its standby (docs/assured-recovery.md).

:mod:`~twinsite.recovery.steps` are a test's steps, :mod:`~twinsite.recovery.running` runs one to its end (or
ends it, or cleans up after it); the receiver's spool (engine.spool) keeps what arrives meanwhile and an overlay
(apply.overlay) gives the application a throw-away layer over the replica; :mod:`~twinsite.recovery.evidence`
records each test; :mod:`~twinsite.recovery.actions` runs what follows a passing one;
:mod:`~twinsite.recovery.scheduler` starts the tests ``assured_recovery.schedule`` (config.cron) asks for.
"""

from __future__ import annotations
