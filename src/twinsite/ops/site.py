"""Where an operation on a scenario runs: the scenario, this host, its directories, and the ways to reach
the other hosts of the scenario. Switchovers (twinsite.switchover) and assured-recovery tests
(twinsite.recovery) both run on a :class:`Site`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinsite import apps
from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.config.scenario import Scenario
from twinsite.state import applied, role
from twinsite.state.applied import AppliedPosition
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.state.role import Role
from twinsite.transport.remote import run_on, twinsite_on


@dataclass
class Site:
    """A scenario as seen from ``host`` (the host an operation runs on), with its state and config directories."""

    s: Scenario
    host: str
    state_dir: Path
    config_dir: Path
    plugins_dir: Path | None = None
    alerter: Alerter = field(init=False)

    def __post_init__(self) -> None:
        self.alerter = Alerter(self.state_dir, channels_from(self.s.alerts))

    @property
    def place(self) -> ScenarioState:
        """The scenario's state on this host (state.layout)."""
        return ScenarioState(self.state_dir, self.s.name)

    @property
    def plugins(self) -> Path:
        return self.plugins_dir or Path(os.environ.get("TWINSITE_PLUGINS", str(apps.DEFAULT_PLUGINS_DIR)))

    def role(self) -> Role:
        return role.current(self.place, self.s.master)

    def app(self) -> apps.Application:
        return apps.for_scenario(self.s, self.plugins_dir)

    def on(self, host: str, args: list[str], *, timeout: float = 120) -> dict[str, Any]:
        """``twinsite ARGS`` on another host of the scenario, pointed at the same directories."""
        where = ["--config-dir", str(self.config_dir)]
        return twinsite_on(self.s.replication, host, [*args, *where], timeout=timeout, control_dir=self.ssh_dir)

    def answers(self, host: str, timeout: float | None = None) -> bool:
        t = timeout or self.s.monitoring.timeout
        a = run_on(self.s.replication, host, ["true"], timeout=t, control_dir=self.ssh_dir)
        return a.reached and a.code == 0

    @property
    def ssh_dir(self) -> Path:
        return self.place.host.ssh

    def positions(self) -> list[AppliedPosition]:
        return [applied.read(self.recv(i).applied) for i in range(len(self.s.roots))]

    def recv(self, i: int) -> ReceiverState:
        return self.place.receiver(i)
