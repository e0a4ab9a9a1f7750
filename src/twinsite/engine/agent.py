"""The agent: runs every scenario this host is active for, and keeps their state under the state directory.

Layout of ``STATE_DIR/<scenario>/``:

    root-<n>/<replica>/journal/   the journal of root n towards that standby (docs/formats.md)
    root-<n>/<replica>/status.json  the sender's status (what ``twinsite status`` reads)
    root-<n>/<replica>/epoch       the epoch its journal belongs to (another epoch's journal is dropped)
    recv/root-<n>/applied_seq      on a standby: the durable position of root n
    role.json                      which host is active, at which epoch (twinsite.roles)

The host is active for a scenario when its role file says so (or, with none, when it is the declared
master); it then runs a sender to every other host of the scenario. A standby runs the scenario's monitor
and its scheduled assured-recovery tests, and cleans up after a test whose process died
(twinsite.recovery.scheduler).
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.apply.applier import Position, SeqFile
from twinsite.config.loader import load_file
from twinsite.config.scenario import Root, Scenario
from twinsite.errors import ConfigError, TwinsiteError
from twinsite.roles import Role, current, standbys
from twinsite.transport.channels import Endpoint, to_host

if TYPE_CHECKING:  # (imported where used: the CLI's short commands read this module and must start fast)
    from twinsite.engine.sender import Sender
    from twinsite.metrics import Exporter
    from twinsite.monitor import Monitor

DEFAULT_CONFIG_DIR = Path("/etc/twinsite/scenarios")
DEFAULT_STATE_DIR = Path("/var/lib/twinsite")


def load_dir(config_dir: Path) -> list[Scenario]:
    """Every scenario in ``config_dir/*.yml``; all files are checked before any is used."""
    if not config_dir.is_dir():
        return []
    scenarios: list[Scenario] = []
    for f in sorted(config_dir.glob("*.yml")) + sorted(config_dir.glob("*.yaml")):
        scenarios.extend(load_file(f))
    names = [s.name for s in scenarios]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(f"scenario names used more than once: {', '.join(dups)}", where=str(config_dir))
    return scenarios


def find_scenario(config_dir: Path, name: str) -> Scenario:
    """The scenario called ``name`` in ``config_dir``, or a ConfigError naming the ones there are."""
    found = {s.name: s for s in load_dir(config_dir)}
    if name not in found:
        raise ConfigError(f"no scenario {name!r} in {config_dir}", hint=f"known: {', '.join(found) or 'none'}")
    return found[name]


def receiver_state(state_dir: Path, scenario: str, index: int) -> Path:
    return state_dir / scenario / "recv" / f"root-{index}"


def applied_position(state_dir: Path, scenario: str, index: int) -> Position:
    """What a standby has durably applied of a root (seq 0 when it never received any)."""
    f = receiver_state(state_dir, scenario, index) / "applied_seq"
    if not f.exists():
        return Position()
    sf = SeqFile(f)
    try:
        return sf.position()
    finally:
        sf.close()


def sender_state(state_dir: Path, scenario: str, index: int, replica: str) -> Path:
    return state_dir / scenario / f"root-{index}" / replica


def endpoint(s: Scenario, root: Root, index: int, replica: str, state_dir: Path) -> Endpoint:
    rep = s.replication
    state = str(receiver_state(state_dir, s.name, index))
    return to_host(rep, replica, [rep.remote_twinsite, "receive", "--root", root.path, "--state", state])


def is_stopped(config_dir: Path, name: str) -> bool:
    return (config_dir / f"{name}.stopped").exists()


def role_of(s: Scenario, state_dir: Path) -> Role:
    return current(state_dir, s.name, s.master)


def wanted(
    scenarios: list[Scenario], host: str, config_dir: Path, state_dir: Path
) -> dict[str, tuple[Scenario, int, str, int]]:
    """The senders this host should run, keyed by what identifies their configuration (and the epoch)."""
    out: dict[str, tuple[Scenario, int, str, int]] = {}
    for s in scenarios:
        role = role_of(s, state_dir)
        if role.active != host or is_stopped(config_dir, s.name):
            continue
        for i, _root in enumerate(s.roots):
            for replica in standbys(role, s.master, s.replicas):
                out[f"{s.name}/{i}/{replica}/{role.epoch}/{hash(s)}"] = (s, i, replica, role.epoch)
    return out


def make_sender(s: Scenario, index: int, replica: str, state_dir: Path, epoch: int = 0) -> Sender:
    from twinsite.engine.sender import Sender

    root = s.roots[index]
    state = sender_state(state_dir, s.name, index, replica)
    mark = state / "epoch"
    if state.exists() and (mark.read_text().strip() if mark.exists() else "0") != str(epoch):
        # a journal of another epoch numbers from another switchover; what it held was either shipped
        # before that switchover (planned) or set aside by `twinsite switchback` (unplanned)
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    mark.write_text(f"{epoch}\n")
    return Sender(
        s,
        root,
        endpoint(s, root, index, replica, state_dir),
        state,
        replica=replica,
        epoch=epoch,
        alerter=Alerter(state_dir, channels_from(s.alerts)),
    )


def run(
    config_dir: Path, state_dir: Path, host: str, *, reload_every: float = 2.0, metrics: Exporter | None = None
) -> int:
    """Run until SIGTERM/SIGINT, following changes to the config directory (scenarios added, changed,
    stopped or removed) within ``reload_every`` seconds; with ``metrics``, exporting them (twinsite.metrics)."""
    done = threading.Event()
    if metrics is not None:
        metrics.start()  # (a refused address stops the agent here, before anything runs)

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    running: dict[str, Sender] = {}
    monitors: dict[str, Monitor] = {}
    from twinsite.recovery.scheduler import Tests

    tests = Tests(host, config_dir, state_dir, lambda text: print(f"twinsite agent: {text}", flush=True))
    print(f"twinsite agent on {host}: watching {config_dir}", flush=True)
    while not done.is_set():
        try:
            scenarios = load_dir(config_dir)
            want = wanted(scenarios, host, config_dir, state_dir)
            _follow_monitors(monitors, scenarios, host, config_dir, state_dir)
            tests.follow(scenarios, lambda name: is_stopped(config_dir, name))
        except TwinsiteError as exc:  # a bad scenario file, an unreadable role file
            print(f"twinsite agent: configuration not reloaded: {exc}", flush=True)
            want = {k: (snd.scenario, 0, "", snd.epoch) for k, snd in running.items()}
        for key in [k for k in running if k not in want]:
            running.pop(key).stop()
            print(f"twinsite agent: stopped {key.rsplit('/', 1)[0]}", flush=True)
        for key, (s, i, replica, epoch) in want.items():
            if key not in running:
                snd = make_sender(s, i, replica, state_dir, epoch)
                snd.start()
                running[key] = snd
                print(f"twinsite agent: started {key.rsplit('/', 1)[0]}", flush=True)
        _export(metrics)
        done.wait(reload_every)
    _shut_down(running, monitors, metrics)
    return 0


def _shut_down(running: dict[str, Sender], monitors: dict[str, Monitor], metrics: Exporter | None) -> None:
    for snd in running.values():
        snd.stop()
    if metrics is not None:
        metrics.stop()
    for mon in monitors.values():
        mon.stop(wait=False)
    for mon in monitors.values():
        mon.join(timeout=5)  # (daemon threads: a round still waiting on ssh ends with the process)


def _export(metrics: Exporter | None) -> None:
    if metrics is None:
        return
    try:
        metrics.tick()
    except (TwinsiteError, OSError, ValueError) as exc:  # the metrics must never stop replication
        print(f"twinsite agent: metrics not written: {exc}", flush=True)


def _follow_monitors(
    monitors: dict[str, Monitor], scenarios: list[Scenario], host: str, config_dir: Path, state_dir: Path
) -> None:
    """One monitor per scenario this host is a standby of (monitoring on, scenario not stopped), watching
    the host that is active now; a switchover makes a new one."""
    want: dict[str, tuple[Scenario, Role]] = {}
    for s in scenarios:
        role = role_of(s, state_dir)
        if host not in standbys(role, s.master, s.replicas) or not s.monitoring.enabled:
            continue
        if is_stopped(config_dir, s.name):
            continue
        # (alerts and application settings are not in the scenario's hash: a change to them is a new monitor)
        extra = json.dumps([s.alerts, s.application_settings, s.redirect, repr(s.switchover)], sort_keys=True)
        want[f"{s.name}/{role.active}/{role.epoch}/{hash(s)}/{extra}"] = (s, role)
    gone = [monitors.pop(k) for k in [k for k in monitors if k not in want]]
    for mon in gone:  # all told first, then waited for: no monitor waits for another's round
        mon.stop(wait=False)
    for mon in gone:
        mon.join()
        print(f"twinsite agent: stopped monitoring {mon.s.name}", flush=True)
    from twinsite.monitor import Monitor

    for key, (s, role) in want.items():
        if key not in monitors:
            monitors[key] = Monitor(s, host, state_dir, config_dir, active=role.active)
            monitors[key].start()
            print(f"twinsite agent: monitoring {role.active} for {s.name}", flush=True)
