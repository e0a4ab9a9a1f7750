"""The agent's loop: run what this host should run for every scenario, and follow the declarations.

The host is active for a scenario when its role says so (state.role; with none, when it is the declared
master); it then runs a sender to every other host of the scenario, for each root (engine.sender). A standby
runs the scenario's monitor (twinsite.monitor) and its scheduled assured-recovery tests, and cleans up after
a test whose process died (recovery.scheduler). Every ``reload_every`` seconds the configuration directory is
read again: scenarios added, changed, stopped (state.stopped) or removed, and roles switched over, are
followed; a role switched over is followed at once (looked at every ``ROLE_LOOK_EVERY`` seconds). What it
does is logged (twinsite.logs), what it saw is its history (agent.history); where it keeps state is state.layout.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from twinsite.agent.history import Recorder
from twinsite.agent.metrics import Exporter
from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.config.scenario import Scenario
from twinsite.config.store import load_dir
from twinsite.engine.sender import Sender
from twinsite.errors import TwinsiteError
from twinsite.monitor import Monitor
from twinsite.monitor.probe import Probes
from twinsite.recovery.scheduler import Tests
from twinsite.state import role, sender_epoch, stopped
from twinsite.state.layout import ScenarioState
from twinsite.state.role import Stamps
from twinsite.transport.channels import to_receiver

log = logging.getLogger(__name__)


def wanted(
    scenarios: list[Scenario], host: str, config_dir: Path, state_dir: Path
) -> dict[str, tuple[Scenario, int, str, int]]:
    """The senders this host should run, keyed by what identifies their configuration (and the epoch)."""
    out: dict[str, tuple[Scenario, int, str, int]] = {}
    for s in scenarios:
        now = role.current(ScenarioState(state_dir, s.name), s.master)
        if now.active != host or stopped.is_stopped(config_dir, s.name):
            continue
        for i, _root in enumerate(s.roots):
            for replica in role.standbys(now, s.master, s.replicas):
                out[f"{s.name}/{i}/{replica}/{now.epoch}/{hash(s)}"] = (s, i, replica, now.epoch)
    return out


def make_sender(s: Scenario, index: int, replica: str, state_dir: Path, epoch: int = 0) -> Sender:
    root = s.roots[index]
    place = ScenarioState(state_dir, s.name).sender(index, replica)
    if place.dir.exists() and sender_epoch.read(place.epoch) != epoch:
        # a journal of another epoch numbers from another switchover; what it held was either shipped
        # before that switchover (planned) or set aside by `twinsite switchback` (unplanned)
        shutil.rmtree(place.dir)
    place.dir.mkdir(parents=True, exist_ok=True)
    sender_epoch.write(place.epoch, epoch)
    return Sender(
        s,
        root,
        to_receiver(s.replication, replica),
        place,
        replica=replica,
        epoch=epoch,
        alerter=Alerter(state_dir, channels_from(s.alerts)),
    )


def run(
    config_dir: Path, state_dir: Path, host: str, *, reload_every: float = 2.0, metrics: Exporter | None = None
) -> int:
    """Run until SIGTERM/SIGINT, following changes to the config directory (scenarios added, changed,
    stopped or removed) within ``reload_every`` seconds; with ``metrics``, exporting them (agent.metrics)."""
    done = threading.Event()
    if metrics is not None:
        metrics.start()  # (a refused address stops the agent here, before anything runs)

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    running: dict[str, Sender] = {}
    monitors: dict[str, Monitor] = {}
    probes = Probes()  # (one question per active host and round for all the scenarios watched there)
    tests = Tests(host, config_dir, state_dir)
    recorder = Recorder(config_dir, state_dir, host)  # (the history: a sample a minute, agent.history)
    declared: dict[str, str] = {}
    seen: Stamps = ()
    log.info("on %s: watching %s", host, config_dir)
    while not done.is_set():
        try:
            scenarios = load_dir(config_dir)
            declared = _note_changes(declared, scenarios)
            seen = role.stamps(state_dir, declared)  # (before the roles are read: a switchover meanwhile is seen)
            want = wanted(scenarios, host, config_dir, state_dir)
            _follow_monitors(monitors, probes, scenarios, host, config_dir, state_dir)
            tests.follow(scenarios, lambda name: stopped.is_stopped(config_dir, name))
        except TwinsiteError as exc:  # a bad scenario file, an unreadable role file
            log.warning("configuration not reloaded: %s", exc)
            want = {k: (snd.scenario, 0, "", snd.epoch) for k, snd in running.items()}
        for key in [k for k in running if k not in want]:
            running.pop(key).stop()
            log.info("stopped %s", key.rsplit("/", 1)[0])
        for key, (s, i, replica, epoch) in want.items():
            if key not in running:
                snd = make_sender(s, i, replica, state_dir, epoch)
                snd.start()
                running[key] = snd
                log.info("started %s", key.rsplit("/", 1)[0])
        _export(metrics, recorder)
        _pause(done, reload_every, state_dir, list(declared), seen)
    _shut_down(running, monitors, metrics)
    recorder.flush()
    return 0


#: how often the roles of the scenarios are looked at between two reloads (a look is one stat per scenario)
ROLE_LOOK_EVERY = 0.1


def _pause(done: threading.Event, seconds: float, state_dir: Path, names: list[str], seen: Stamps) -> None:
    """Until the next reload: ``seconds``, or less when a switchover changed the role of one of ``names`` since
    ``seen`` (its new active host starts sending at once, and the old one stops)."""
    deadline = time.monotonic() + seconds
    while not done.wait(min(ROLE_LOOK_EVERY, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or role.stamps(state_dir, names) != seen:
            return


def _note_changes(before: dict[str, str], scenarios: list[Scenario]) -> dict[str, str]:
    """Log each scenario declared, changed or removed since the last round; the declarations now."""
    now = {s.name: repr(s) for s in scenarios}
    for name in sorted(now.keys() | before.keys()):
        if name not in before:
            log.info("scenario %s declared", name)
        elif name not in now:
            log.info("scenario %s removed", name)
        elif now[name] != before[name]:
            log.info("scenario %s changed", name)
    return now


def _shut_down(running: dict[str, Sender], monitors: dict[str, Monitor], metrics: Exporter | None) -> None:
    for snd in running.values():
        snd.stop()
    if metrics is not None:
        metrics.stop()
    for mon in monitors.values():
        mon.stop(wait=False)
    for mon in monitors.values():
        mon.join(timeout=5)  # (daemon threads: a round still waiting on ssh ends with the process)


def _export(metrics: Exporter | None, recorder: Recorder) -> None:
    for what, tick in (("metrics", metrics and metrics.tick), ("history", recorder.tick)):
        try:
            if tick:
                tick()
        except (TwinsiteError, OSError, ValueError) as exc:  # the metrics and history must never stop replication
            log.warning("%s not written: %s", what, exc)


def _follow_monitors(
    monitors: dict[str, Monitor],
    probes: Probes,
    scenarios: list[Scenario],
    host: str,
    config_dir: Path,
    state_dir: Path,
) -> None:
    """One monitor per scenario this host is a standby of (monitoring on, scenario not stopped), watching
    the host that is active now; a switchover makes a new one."""
    want: dict[str, tuple[Scenario, role.Role]] = {}
    for s in scenarios:
        now = role.current(ScenarioState(state_dir, s.name), s.master)
        if host not in role.standbys(now, s.master, s.replicas) or not s.monitoring.enabled:
            continue
        if stopped.is_stopped(config_dir, s.name):
            continue
        # (alerts and application settings are not in the scenario's hash: a change to them is a new monitor)
        extra = json.dumps([s.alerts, s.application_settings, s.redirect, repr(s.switchover)], sort_keys=True)
        want[f"{s.name}/{now.active}/{now.epoch}/{hash(s)}/{extra}"] = (s, now)
    gone = [monitors.pop(k) for k in [k for k in monitors if k not in want]]
    for mon in gone:  # all told first, then waited for: no monitor waits for another's round
        mon.stop(wait=False)
    for mon in gone:
        mon.join()
        log.info("stopped monitoring %s", mon.s.name)
    for key, (s, now) in want.items():
        if key not in monitors:
            monitors[key] = Monitor(s, host, state_dir, config_dir, active=now.active, probes=probes)
            monitors[key].start()
            log.info("monitoring %s for %s", now.active, s.name)
