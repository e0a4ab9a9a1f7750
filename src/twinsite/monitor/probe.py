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

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinsite.errors import TwinsiteError
from twinsite.transport.remote import Answer, json_answer


@dataclass
class Probe:
    """The shared answer of one active host (reached with one set of SSH settings and configuration path)."""

    watched: set[str] = field(default_factory=set)  # the scenarios whose monitors use this probe
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: float = 0.0  # time.monotonic() when the answer was received
    covers: frozenset[str] = frozenset()
    answer: Answer | None = None

    def ask(self, scenario: str, run: Callable[[list[str]], Answer], *, max_age: float) -> Answer:
        """The answer covering ``scenario``: the last one if it is at most ``max_age`` seconds old, else a new
        one for every watched scenario (asked by ``run``). One question at a time: a monitor that comes
        while another one asks waits for that answer. A host that did not answer is asked again next time."""
        with self.lock:
            fresh = time.monotonic() - self.taken <= max_age
            if self.answer is not None and scenario in self.covers and fresh:
                return self.answer
            names = sorted(self.watched | {scenario})
            got = run(names)
            if got.reached:
                self.answer, self.covers, self.taken = got, frozenset(names), time.monotonic()
            else:
                self.answer, self.covers, self.taken = None, frozenset(), 0.0
            return got


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


def answers(got: Answer, scenario: str, host: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """From a probe's answer on ``host``: the scenario's check answer (an envelope like ``twinsite app S check
    --json``'s), the status result (``twinsite status --json``'s), or None for what cannot be read, with
    the reason."""
    try:
        result = json_answer(got, host, ["probe"])
    except TwinsiteError as exc:
        return None, None, exc.message
    app = (result.get("apps") or {}).get(scenario)
    status = result.get("status")
    return (app if isinstance(app, dict) else None), (status if isinstance(status, dict) else None), ""
