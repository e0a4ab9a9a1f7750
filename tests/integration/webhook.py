"""Alerts as a real webhook receives them: waiting for one of a kind among those the ``hook`` fixture
(tests/integration/conftest.py) got."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.wait import eventually


def wait_for(got: list[dict[str, Any]], kind: str, timeout: float, context: Callable[[], str]) -> dict[str, Any]:
    if not eventually(lambda: any(a["kind"] == kind for a in got), timeout=timeout, interval=0.1, what=kind):
        raise AssertionError(f"no {kind} alert within {timeout} s; got {[a['kind'] for a in got]}\n{context()}")
    return next(a for a in got if a["kind"] == kind)
