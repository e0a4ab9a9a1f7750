"""Automatic switchover: what the standby's monitor does when the active host stops answering.

Only with a second opinion. A lost link between the two hosts looks exactly like a dead active host from
the standby, and switching over then would make two active hosts. So, once the active host has missed
``monitoring.misses`` rounds in a row and the scenario says ``switchover.mode: automatic``:

1. every witness (``switchover.witness.hosts``) is asked over SSH whether *it* reaches the active host
   (a TCP connection to ``witness.port``, 22 by default; a refused connection still means the host is up);
2. if any witness reaches it: no switchover, a ``switchover-withheld`` alert (split brain avoided); the
   monitor keeps watching and asks again while the outage lasts;
3. if the witnesses that answered all fail to reach it (at least one answered): an unplanned switchover
   starts (``twinsite switchover SCENARIO --automatic --second-opinion witness``, its own process);
4. if no witness answered (or none is configured): the switchover starts only when a fence is configured,
   which must then succeed before this host takes over (``--second-opinion fence``); otherwise a
   ``switchover-withheld`` alert says why, and nothing happens.

An automatic switchover interrupted (the process killed, the host restarted) is started again by the
monitor while the active host stays unreachable: the run continues where it stopped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from twinsite.config.scenario import Scenario
from twinsite.proc import read_pid, spawn
from twinsite.state.layout import ScenarioState
from twinsite.transport.remote import run_on

# On the witness: connect to the active host; "refused" is an answer (the host is up, nothing listens).
PROBE = (
    'out=$(timeout "$2" bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$0" "$1" 2>&1); rc=$?; '
    'case "$out" in *refused*) echo alive-refused;; *) if [ $rc = 0 ]; then echo alive; else echo down; fi;; esac'
)


@dataclass(frozen=True)
class Opinion:
    verdict: str  # alive | down | unknown (no witness answered)
    detail: str
    witness: str | None = None


def second_opinion(s: Scenario, active: str, *, timeout: float = 2.0) -> Opinion:
    so = s.switchover
    downs = []
    silent = []
    for w in so.witness:
        a = run_on(
            s.replication, w, ["sh", "-c", PROBE, active, str(so.witness_port), str(int(timeout))], timeout=timeout + 8
        )
        answer = a.out.strip().splitlines()[-1] if a.reached and a.out.strip() else ""
        if answer.startswith("alive"):
            return Opinion("alive", f"witness {w} reaches {active} ({answer})", w)
        if answer == "down":
            downs.append(w)
        else:
            silent.append(f"{w}: {(a.err or a.out).strip()[-120:] or 'no answer'}")
    if downs:
        return Opinion("down", f"witness(es) {', '.join(downs)} cannot reach {active} either", downs[0])
    why = "; ".join(silent) if silent else "no witness is configured (switchover.witness)"
    return Opinion("unknown", f"no witness could tell: {why}")


def running(state_dir: Path, scenario: str) -> int | None:
    """The pid of a switchover of ``scenario`` running on this host, if one is."""
    return read_pid(ScenarioState(state_dir, scenario).switchover_pid, argv_has="switchover")


def start(s: Scenario, state_dir: Path, config_dir: Path, second: str) -> int:
    """Start the unplanned switchover as a process of its own (it survives the monitor, and resumes)."""
    place = ScenarioState(state_dir, s.name)
    argv = [sys.executable, "-m", "twinsite.cli.main", "switchover", s.name, "--automatic", "--second-opinion",
            second, "--config-dir", str(config_dir), "--state-dir", str(state_dir)]  # fmt: skip
    return spawn(argv, pidfile=place.switchover_pid, logfile=place.switchover_log)
