"""The logging policy: one way for the library to say what it does.

* Library code never prints. What a long-running process does (a sender started, a monitor's round that
  failed, a test the agent started) is logged to the module's logger, ``logging.getLogger(__name__)``, all
  under ``twinsite``.
* What a user must act on is never only a log line: it is an exception (twinsite.errors, which the CLI turns
  into a message and an exit code), a state (``twinsite status``) or an alert (twinsite.alerts).
* The processes that run for long (``twinsite agent``, its supervisor) call :func:`setup` once at start:
  records of INFO and above go to standard output as ``twinsite <process>: <message>`` (the supervisor sends
  it to ``agent.log``, systemd to the journal), with the traceback of an unexpected failure. Short CLI
  commands do not set it up: their warnings reach standard error through Python's last-resort handler.
"""

from __future__ import annotations

import logging
import sys

ROOT = "twinsite"


def setup(process: str, *, level: int = logging.INFO) -> None:
    """Send the library's records to standard output, each line prefixed with ``twinsite <process>:``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"{ROOT} {process}: %(message)s"))
    logger = logging.getLogger(ROOT)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
