"""What the agent does for assured recovery, every round: end a test whose process died (overlay removed,
spool applied, reported as ``interrupted``), and start the tests ``assured_recovery.schedule`` asks for on
this host when it is a standby. Each runs in a thread of the agent: the agent's death is the test's, and
the agent started again cleans it up. A scheduled minute is run once (``recovery/schedule.json`` keeps the
last one started); minutes missed while the agent was down are not made up.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinsite.config.scenario import Scenario
from twinsite.durable import write_json
from twinsite.errors import TwinsiteError
from twinsite.recovery import schedule
from twinsite.roles import current, standbys


def due(s: Scenario, recovery_dir: Path, now: dt.datetime) -> str | None:
    """The scheduled minute (``YYYY-MM-DDTHH:MM``) to run now, once; None when there is none."""
    if not s.assured_recovery.schedule:
        return None
    if not schedule.parse(s.assured_recovery.schedule).matches(now):
        return None
    slot = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
    try:
        last = json.loads((recovery_dir / "schedule.json").read_text()).get("last")
    except (FileNotFoundError, ValueError):
        last = None
    return None if last == slot else slot


class Tests:
    def __init__(self, host: str, config_dir: Path, state_dir: Path, log: Callable[[str], None]) -> None:
        self.host, self.config_dir, self.state_dir, self.log = host, config_dir, state_dir, log
        self.threads: dict[str, threading.Thread] = {}

    def follow(self, scenarios: list[Scenario], stopped: Callable[[str], bool], now: dt.datetime | None = None) -> None:
        for s in scenarios:
            th = self.threads.get(s.name)
            if th is not None and th.is_alive():
                continue
            try:
                self._follow_one(s, stopped, now)
            except (TwinsiteError, OSError) as exc:  # (one scenario's trouble must not stop the agent's round)
                self.log(f"assured recovery of {s.name}: {exc}")

    def _follow_one(self, s: Scenario, stopped: Callable[[str], bool], now: dt.datetime | None) -> None:
        from twinsite.recovery.steps import Test
        from twinsite.switchover.steps import Site

        t = Test(Site(s, self.host, self.state_dir, self.config_dir))
        if t.unfinished() is not None:
            with t.lock() as free:
                pass
            if free:  # (else a live process runs it)
                self._start(s.name, "cleaning up after a test that ended with its process", self._recover, t)
            return
        role = current(self.state_dir, s.name, s.master)
        if self.host not in standbys(role, s.master, s.replicas) or stopped(s.name):
            return
        slot = due(s, t.dir, now or dt.datetime.now(dt.UTC))
        if slot is not None:
            write_json(t.dir / "schedule.json", {"last": slot})
            self._start(s.name, f"scheduled ({slot})", self._scheduled, t)

    def _start(self, name: str, what: str, fn: Callable[[Any], None], t: Any) -> None:
        def body() -> None:
            try:
                fn(t)
            except TwinsiteError as exc:
                self.log(f"assured-recovery test of {name}: {exc.message}")
            except Exception as exc:  # (a bug must not end the agent, which also replicates)
                self.log(f"assured-recovery test of {name}: {type(exc).__name__}: {exc}")

        self.log(f"assured-recovery test of {name}: {what}")
        th = threading.Thread(target=body, name=f"recovery-{name}", daemon=True)
        self.threads[name] = th
        th.start()

    def _recover(self, t: Any) -> None:
        from twinsite.recovery.steps import recover

        done = recover(t)
        if done is not None:
            self.log(f"assured-recovery test of {t.site.s.name}: {done['result']}, {done['reason']}")

    def _scheduled(self, t: Any) -> None:
        from twinsite.recovery.steps import run_test

        record = run_test(t, scheduled=True)
        self.log(f"assured-recovery test of {t.site.s.name}: {record['result']} ({record['path']})")

    def join(self, timeout: float) -> None:
        for th in self.threads.values():
            th.join(timeout=timeout)
