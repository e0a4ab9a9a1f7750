"""Alerts as a real webhook receives them: waiting for one of a kind among those the ``hook`` fixture
(tests/integration/conftest.py) got."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(got: list[dict[str, Any]], kind: str, timeout: float, context: Callable[[], str]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [a for a in got if a["kind"] == kind]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {kind} alert within {timeout} s; got {[a['kind'] for a in got]}\n{context()}")
