"""One question to an active host for every scenario a standby watches on it.

Each monitor (one thread per scenario) asked the active host twice per round, ``twinsite app S check
--quick`` and ``twinsite status``: two Python processes there per scenario and interval. Fourteen scenarios
on a 5 s interval started almost six processes a second and kept two cores busy doing nothing else, which
in turn made switchovers miss their timeouts. Now the monitors of one active host share a ``Probe``: its
``twinsite probe`` answers the quick checks of every scenario watched there and the status of all of them
in one process, and an answer younger than half of the asking monitor's interval is reused by the others.

Reachability (``ssh true``) stays each monitor's own: it runs no Python on the active host and decides how
soon a failure is noticed, which must not wait for another scenario's answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinsite.transport.remote import TIMED_OUT, UNREACHABLE

#: (exit code, output) of one ``twinsite probe`` on the active host
Raw = tuple[int, str]


@dataclass
class Probe:
    """The shared answer of one active host (reached with one set of SSH settings and configuration path)."""

    watched: set[str] = field(default_factory=set)  # the scenarios whose monitors use this probe
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: float = 0.0  # time.monotonic() when the answer was received
    covers: frozenset[str] = frozenset()
    raw: Raw | None = None

    def ask(self, scenario: str, run: Callable[[list[str]], Raw], *, max_age: float) -> Raw:
        """The answer covering ``scenario``: the last one if it is at most ``max_age`` seconds old, else a new
        one for every watched scenario (asked by ``run``). One question at a time: a monitor that comes
        while another one asks waits for that answer. A host that did not answer is asked again next time."""
        with self.lock:
            fresh = time.monotonic() - self.taken <= max_age
            if self.raw is not None and scenario in self.covers and fresh:
                return self.raw
            names = sorted(self.watched | {scenario})
            raw = run(names)
            if raw[0] in (UNREACHABLE, TIMED_OUT):
                self.raw, self.covers, self.taken = None, frozenset(), 0.0
            else:
                self.raw, self.covers, self.taken = raw, frozenset(names), time.monotonic()
            return raw


class Probes:
    """The probes of one agent, one per active host and way of reaching it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probes: dict[tuple[Any, ...], Probe] = {}

    def join(self, key: tuple[Any, ...], scenario: str) -> Probe:
        with self._lock:
            probe = self._probes.setdefault(key, Probe())
            probe.watched.add(scenario)
            return probe

    def leave(self, key: tuple[Any, ...], scenario: str) -> None:
        with self._lock:
            probe = self._probes.get(key)
            if probe is not None:
                probe.watched.discard(scenario)
                if not probe.watched:
                    del self._probes[key]


def answers(raw: Raw, scenario: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """From a probe's output: the scenario's check answer (an envelope like ``twinsite app S check
    --json``'s), the status result (``twinsite status --json``'s), or None for what cannot be read, with
    the reason."""
    code, out = raw
    try:
        body = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, None, f"no answer from twinsite probe (exit {code}): {out.strip()[-300:]}"
    if not isinstance(body, dict) or not body.get("ok"):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return None, None, f"twinsite probe failed: {error.get('message', out.strip()[-300:])}"
    result = body.get("result") or {}
    app = (result.get("apps") or {}).get(scenario)
    status = result.get("status")
    return (app if isinstance(app, dict) else None), (status if isinstance(status, dict) else None), ""
