"""``point.json``: the standby's last **complete** consistency point of a root (docs/replication.md, Consistency).

``{"id", "seq", "ts", "epoch"}``: the replica held, after applying seq ``seq`` of epoch ``epoch``, exactly the
source's root as its snapshot ``id`` held it at source time ``ts``. Written by the receiver after the records up
to that point are durable and the applied position says so; records above ``seq`` form the open point, which
anything that makes the replica live undoes first (cdp.rewind.to_point). No file: no complete point yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from twinsite.durable import read_json, remove, write_json
from twinsite.errors import JournalError


@dataclass(frozen=True)
class Point:
    id: int  # the sender's number for it (a snapshot of the source's root)
    seq: int  # its last record (the POINT record)
    ts: float  # the snapshot's time, source clock: the RPO of a failover to it is measured to this
    epoch: int = 0


def read(path: Path) -> Point | None:
    data = read_json(
        path,
        what="the last complete consistency point",
        hint="the next point the sender completes writes it again; until then nothing can be made live here",
        error=JournalError,
    )
    return None if data is None else Point(**data)


def write(path: Path, point: Point) -> None:
    write_json(path, asdict(point))


def clear(path: Path) -> None:
    remove(path)
