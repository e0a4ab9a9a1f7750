"""``role.json``: which host of a scenario is active, kept in state on every host, not in the declaration.

A scenario declares its ``master`` (the host active when it is created) and its ``replicas``. A switchover
moves the active role; the declaration stays as it is, so that the next ``configure.yml`` run does not
flip the roles back. Each host keeps its own view in ``<state>/<scenario>/role.json``::

    {"scenario": "db", "active": "dr1", "epoch": 1, "since": 1764612345.2, "previous": "prod1", "run": "..."}

No file means epoch 0 with the declared master active. Every switchover raises the epoch by one. The
epoch is what keeps two hosts from both acting as the active one: a sender says its epoch when it connects,
and a receiver accepts it only when the epoch equals its own and it does not believe itself active
(:func:`check_sender`). An old active host that comes back after a failover is refused that way, loudly,
until ``twinsite switchback`` makes it a standby of the new active host. A standby that missed a switchover
follows the first sender of the newer epoch that reaches it (:func:`followed`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from twinsite.durable import read_json, write_json
from twinsite.errors import SupersededError, TwinsiteError
from twinsite.state.layout import ScenarioState


def this_host() -> str:
    """This host's name in the scenarios: TWINSITE_HOST, or the hostname."""
    return os.environ.get("TWINSITE_HOST") or socket.gethostname()


@dataclass(frozen=True)
class Role:
    scenario: str
    active: str
    epoch: int = 0
    since: float = 0.0
    previous: str | None = None
    run: str | None = None  # the switchover that made it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_file(path: Path) -> dict[str, Any] | None:
    hint = "restore it from another host of the scenario (twinsite role SCENARIO --json there)"
    data = read_json(path, what="the role file", hint=hint)
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("active"), str) or not isinstance(data.get("epoch"), int):
        raise TwinsiteError("the role file has no active host or epoch", where=str(path))
    return data


def current(place: ScenarioState, master: str) -> Role:
    """This host's view of the scenario's role (the declared master at epoch 0 when nothing was switched)."""
    data = read_file(place.role)
    if data is None:
        return Role(scenario=place.name, active=master)
    return Role(
        scenario=place.name,
        active=str(data["active"]),
        epoch=int(data["epoch"]),
        since=float(data.get("since") or 0.0),
        previous=data.get("previous"),
        run=data.get("run"),
    )


#: what a set of role files is at a moment (role.stamps)
Stamps = tuple[tuple[int, int] | None, ...]


def stamps(state_dir: Path, names: Iterable[str]) -> Stamps:
    """What the role files of ``names`` are now (inode and modification time; None: none), for noticing a switchover
    without reading them: each is written whole under a new name, so a new role is a new stamp."""
    out: list[tuple[int, int] | None] = []
    for name in names:
        try:
            st = ScenarioState(state_dir, name).role.stat()
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_mtime_ns))
    return tuple(out)


def store(place: ScenarioState, role: Role) -> None:
    write_json(place.role, role.to_json())


def advanced(role: Role, active: str, run: str | None) -> Role:
    """The role after a switchover to ``active``."""
    return Role(
        scenario=role.scenario, active=active, epoch=role.epoch + 1, since=time.time(), previous=role.active, run=run
    )


def members(master: str, replicas: tuple[str, ...]) -> list[str]:
    return [master, *[r for r in replicas if r != master]]


def standbys(role: Role, master: str, replicas: tuple[str, ...]) -> list[str]:
    return [h for h in members(master, replicas) if h != role.active]


def check_sender(
    path: Path, host: str, sender_epoch: int, sender_host: str | None, *, master: str | None = None
) -> int:
    """Whether a receiver on ``host`` may take a stream from a sender of ``sender_epoch``; returns the epoch.

    ``path`` is the scenario's role file on the receiver's host (ReceiverState.role). Without one, only epoch 0
    is taken. With ``master`` (the scenario's declared master; given for a HELLO, not for each batch), a
    standby that missed a switchover follows: a sender of a newer epoch, when this host is not the active one
    by its own view, is recorded as the active host (:func:`followed`)."""
    data = read_file(path)
    epoch = int(data["epoch"]) if data else 0
    active = str(data["active"]) if data else None
    who = sender_host or "the sender"
    if master is not None and sender_host and sender_epoch > epoch and (active or master) != host:
        followed(path, sender_host, sender_epoch, previous=active or master)
        return sender_epoch
    if active == host:
        raise SupersededError(
            f"{host} is the active host of this scenario (epoch {epoch}): it takes no replication from {who}",
            where=host,
            hint=f"{who} is a stale active host: make it a standby with `twinsite rejoin SCENARIO` on it",
            epoch=epoch,
        )
    if sender_epoch != epoch:
        newer = sender_epoch < epoch
        raise SupersededError(
            f"{who} replicates at epoch {sender_epoch}, but {host} knows epoch {epoch}"
            + (f" with {active} active" if active else ""),
            where=host,
            hint=(
                f"{who} was superseded by a switchover: its changes since are divergent; "
                "run `twinsite rejoin SCENARIO` on it to set them aside and make it a standby"
                if newer
                else f"{host} missed a switchover: run `twinsite rejoin SCENARIO` on {host}"
            ),
            epoch=epoch,
        )
    return epoch


def followed(path: Path, active: str, epoch: int, *, previous: str) -> Role:
    """A standby that was not told of a switchover (it did not answer when the new active host told the
    others) learns it from the new active host's stream: the sender's HELLO, from a host of the scenario at
    a newer epoch, is the proof. Only a standby follows: it holds nothing of its own to set aside."""
    role = Role(scenario=path.parent.name, active=active, epoch=epoch, since=time.time(), previous=previous)
    write_json(path, role.to_json())
    return role
