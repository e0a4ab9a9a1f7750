"""The agent: runs every scenario this host is active for, and keeps their state under the state directory.

Layout of ``STATE_DIR/<scenario>/``:

    root-<n>/<replica>/journal/   the journal of root n towards that standby (docs/formats.md)
    root-<n>/<replica>/status.json  the sender's status (what ``twinsite status`` reads)
    recv/root-<n>/applied_seq      on a standby: the durable position of root n
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

from twinsite.config.loader import load_file
from twinsite.config.scenario import Root, Scenario
from twinsite.engine.sender import Sender
from twinsite.errors import ConfigError
from twinsite.transport.channels import Endpoint

DEFAULT_CONFIG_DIR = Path("/etc/twinsite/scenarios")
DEFAULT_STATE_DIR = Path("/var/lib/twinsite")


def this_host() -> str:
    return os.environ.get("TWINSITE_HOST") or socket.gethostname()


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


def receiver_state(state_dir: Path, scenario: str, index: int) -> Path:
    return state_dir / scenario / "recv" / f"root-{index}"


def sender_state(state_dir: Path, scenario: str, index: int, replica: str) -> Path:
    return state_dir / scenario / f"root-{index}" / replica


def endpoint(s: Scenario, root: Root, index: int, replica: str, state_dir: Path) -> Endpoint:
    rep = s.replication
    return Endpoint(
        host=replica,
        command=[
            rep.remote_twinsite,
            "receive",
            "--root",
            root.path,
            "--state",
            str(receiver_state(state_dir, s.name, index)),
        ],
        known_hosts=os.path.expanduser(rep.known_hosts),
        options=rep.ssh_options,
    )


def senders_for(scenarios: list[Scenario], host: str, state_dir: Path) -> list[Sender]:
    out = []
    for s in scenarios:
        if s.master != host:
            continue
        for i, root in enumerate(s.roots):
            for replica in s.replicas:
                out.append(
                    Sender(
                        s,
                        root,
                        endpoint(s, root, i, replica, state_dir),
                        sender_state(state_dir, s.name, i, replica),
                        replica=replica,
                    )
                )
    return out


def run(config_dir: Path, state_dir: Path, host: str) -> int:
    """Run until SIGTERM/SIGINT."""
    scenarios = load_dir(config_dir)
    senders = senders_for(scenarios, host, state_dir)
    done = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for snd in senders:
        snd.start()
    print(
        f"twinsite agent on {host}: {len(senders)} sender(s) for "
        f"{len({s.name for s in scenarios if s.master == host})} scenario(s)",
        flush=True,
    )
    done.wait()
    for snd in senders:
        snd.stop()
    return 0
