"""``rewind.json``: where a rewound replica stands (cdp.rewind moves it). While the file exists the replica is
*rewound* and the receiver applies nothing; at the head it is removed.

``{"head", "at", "sub", "direction", "target", "run_end"}``: the replica is the state after seq ``at`` plus
``sub`` sub-batches of the run being moved through (``direction`` -1 undoing it, +1 redoing it, the run ending
at ``run_end``), on its way to ``target``; ``head`` is the last applied seq, where forward ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from twinsite.durable import read_json, remove, write_json
from twinsite.errors import RewindError


@dataclass(frozen=True)
class RewindPosition:
    head: int  # the last applied seq: where forward ends
    at: int  # the replica is the state after this seq ...
    sub: int = 0  # ... plus this many sub-batches of the run being moved through
    direction: int = 0  # -1 undoing that run, +1 redoing it
    target: int = 0
    run_end: int = 0  # where that run ends (the point after its last group)

    @property
    def rewound(self) -> bool:
        """Not at the head, or on the way away from it: the receiver applies nothing meanwhile."""
        return self.at != self.head or self.sub != 0 or self.target != self.head

    @property
    def settled(self) -> bool:
        """At a point (not between two, not on the way to another)."""
        return self.sub == 0 and self.target == self.at


def read(path: Path) -> RewindPosition | None:
    data = read_json(
        path,
        what="the rewind position",
        hint="run the same `twinsite rewind` again, or --resume, to write it again",
        error=RewindError,
    )
    return None if data is None else RewindPosition(**data)


def store(path: Path, pos: RewindPosition | None) -> None:
    """Durably; at the head (or None) the file goes: the replica is not rewound."""
    if pos is None or not pos.rewound:
        remove(path)
    else:
        write_json(path, asdict(pos), indent=None)
