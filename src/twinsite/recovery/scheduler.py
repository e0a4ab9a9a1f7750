"""What the agent does for assured recovery, every round: end a test whose process died (overlay removed,
spool applied, reported as ``interrupted``), and start the tests ``assured_recovery.schedule`` asks for on
this host when it is a standby. Each runs in a thread of the agent: the agent's death is the test's, and
the agent started again cleans it up. A scheduled minute is run once (state.schedule keeps the last one
started); minutes missed while the agent was down are not made up. What it does is logged (twinsite.logs).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from twinsite.config import cron
from twinsite.config.scenario import Scenario
from twinsite.errors import TwinsiteError
from twinsite.ops.site import Site
from twinsite.recovery.running import recover, run_test
from twinsite.recovery.steps import Test
from twinsite.state import schedule
from twinsite.state.layout import ScenarioState
from twinsite.state.role import current, standbys

log = logging.getLogger(__name__)


def due(s: Scenario, schedule_file: Path, now: dt.datetime) -> str | None:
    """The scheduled minute (``YYYY-MM-DDTHH:MM``) to run now, once; None when there is none (state.schedule
    keeps the last one started)."""
    if not s.assured_recovery.schedule:
        return None
    if not cron.parse(s.assured_recovery.schedule).matches(now):
        return None
    slot = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
    return None if schedule.last(schedule_file) == slot else slot


class Tests:
    def __init__(self, host: str, config_dir: Path, state_dir: Path) -> None:
        self.host, self.config_dir, self.state_dir = host, config_dir, state_dir
        self.threads: dict[str, threading.Thread] = {}

    def follow(self, scenarios: list[Scenario], stopped: Callable[[str], bool], now: dt.datetime | None = None) -> None:
        for s in scenarios:
            th = self.threads.get(s.name)
            if th is not None and th.is_alive():
                continue
            try:
                self._follow_one(s, stopped, now)
            except (TwinsiteError, OSError) as exc:  # (one scenario's trouble must not stop the agent's round)
                log.warning("assured recovery of %s: %s", s.name, exc)

    def _follow_one(self, s: Scenario, stopped: Callable[[str], bool], now: dt.datetime | None) -> None:
        t = Test(Site(s, self.host, self.state_dir, self.config_dir))
        if t.unfinished() is not None:
            with t.lock() as free:
                pass
            if free:  # (else a live process runs it)
                self._start(s.name, "cleaning up after a test that ended with its process", self._recover, t)
            return
        role = current(ScenarioState(self.state_dir, s.name), s.master)
        if self.host not in standbys(role, s.master, s.replicas) or stopped(s.name):
            return
        slot = due(s, t.place.schedule, now or dt.datetime.now(dt.UTC))
        if slot is not None:
            schedule.store(t.place.schedule, slot)
            self._start(s.name, f"scheduled ({slot})", self._scheduled, t)

    def _start(self, name: str, what: str, fn: Callable[[Test], None], t: Test) -> None:
        def body() -> None:
            try:
                fn(t)
            except TwinsiteError as exc:
                log.warning("assured-recovery test of %s: %s", name, exc.message)
            except Exception:  # (a bug must not end the agent, which also replicates)
                log.exception("assured-recovery test of %s failed", name)

        log.info("assured-recovery test of %s: %s", name, what)
        th = threading.Thread(target=body, name=f"recovery-{name}", daemon=True)
        self.threads[name] = th
        th.start()

    def _recover(self, t: Test) -> None:
        done = recover(t)
        if done is not None:
            log.info("assured-recovery test of %s: %s, %s", t.site.s.name, done["result"], done["reason"])

    def _scheduled(self, t: Test) -> None:
        record = run_test(t, scheduled=True)
        log.info("assured-recovery test of %s: %s (%s)", t.site.s.name, record["result"], record["path"])

    def join(self, timeout: float) -> None:
        for th in self.threads.values():
            th.join(timeout=timeout)
