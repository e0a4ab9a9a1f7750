"""Assured recovery: non-disruptive tests of a replica (issue 7, being built).

The first piece is the spool (:mod:`twinsite.recovery.spool`): while a test runs on the standby, the
receiver stores incoming records durably and acknowledges them without applying them; after the test
they are applied in order.
"""

from __future__ import annotations

from twinsite.errors import TwinsiteError


class RecoveryError(TwinsiteError):
    """An assured-recovery test or its spool could not go on (the message says why and what to do)."""

    exit_code = 22
