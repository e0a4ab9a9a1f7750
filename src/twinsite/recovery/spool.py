"""The spool: records a standby receives while its replica must not change, kept durably and acknowledged,
applied in order afterwards.

An assured-recovery test runs the application on the replica's data through an overlay; the data below it
must not change meanwhile. While ``<recv state>/spool/spooling.json`` exists the receiver appends every
batch to ``spool/records/`` (journal segments, fsynced: docs/formats.md) instead of applying it, and
acknowledges it: the active host trims its journal as usual, production never notices. Without the marker,
the receiver first applies what the spool holds (in replay-safe sub-batches, each made durable before the
applied position moves), then empties it, then goes on as before. A crash at any point resumes: the spool
is only removed once everything in it is applied.

The spool has its own cap (``max_size`` in the marker). A batch that would pass it is refused, not
acknowledged: the active host keeps it in its journal, and the test, which watches ``full``, ends at once.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twinsite.durable import fsync_dir, remove, write_json
from twinsite.journal.record import Record
from twinsite.journal.segments import Journal
from twinsite.recovery import RecoveryError

MARKER = "spooling.json"


class Spool:
    def __init__(self, recv_state: Path) -> None:
        self.dir = recv_state / "spool"
        self._journal: Journal | None = None

    # -- the marker ----------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.dir / MARKER).read_text())
        except FileNotFoundError:
            return None
        return data

    @property
    def spooling(self) -> bool:
        return (self.dir / MARKER).exists()

    def start(self, *, max_size: int, reason: str) -> bool:
        """Spool from the next batch on (idempotent: returns False when it already spools)."""
        if self.spooling:
            return False
        write_json(self.dir / MARKER, {"since": time.time(), "max_size": max_size, "reason": reason, "full": False})
        return True

    def stop(self) -> bool:
        """Apply again from the next batch (the receiver first applies what was spooled)."""
        was = self.spooling
        remove(self.dir / MARKER)
        return was

    # -- the records ---------------------------------------------------------------------------------
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.dir / "records", segment_size=16 << 20)
        return self._journal

    def held(self) -> bool:
        d = self.dir / "records"
        return d.is_dir() and any(d.iterdir())

    @property
    def last_seq(self) -> int:
        return self.journal().last_seq if self.held() else 0

    def append(self, records: list[Record]) -> int:
        """Durably keep ``records`` (in seq order, following on); refused past the cap, which is noted."""
        settings = self.settings() or {}
        cap = int(settings.get("max_size", 0))
        j = self.journal()
        size = sum(r.size for r in records)
        if cap and j.disk_bytes() + size > cap:
            if not settings.get("full"):
                write_json(self.dir / MARKER, {**settings, "full": True, "full_at": time.time()})
            raise RecoveryError(
                f"the spool is full ({j.disk_bytes()} of {cap} bytes): nothing more is taken until the test ends",
                where=str(self.dir),
                hint="the active host keeps the changes in its journal; the test ends at once (spool.max_size)",
            )
        if j.last_seq + 1 < records[0].seq:
            j.skip_to(records[0].seq)
        return j.append(records)

    def chunks(self, after: int) -> Iterator[list[Record]]:
        """The spooled records above ``after``, in order, a few MiB at a time (never the whole spool)."""
        j = self.journal()
        reader = j.reader(max(after + 1, j.first_seq()))
        while chunk := reader.read():
            if got := [rec for rec, _raw in chunk if rec.seq > after]:
                yield got

    def clear(self) -> None:
        """Forget the records (all applied)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        shutil.rmtree(self.dir / "records", ignore_errors=True)
        if self.dir.exists():
            fsync_dir(self.dir)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
