"""The spool: records a standby receives while its replica must not change, kept durably and acknowledged,
applied in order afterwards.

An assured-recovery test runs the application on the replica's data through an overlay; the data below it
must not change meanwhile. While the marker ``spool/spooling.json`` exists (state.spool) the receiver appends every
batch to ``spool/records/`` (journal segments, fsynced: docs/formats.md) instead of applying it, and
acknowledges it: the active host trims its journal as usual, production never notices. Without the marker,
the receiver first applies what the spool holds (in replay-safe sub-batches, each made durable before the
applied position moves), then empties it, then goes on as before. A crash at any point resumes: the spool
is only removed once everything in it is applied.

The spool has its own cap (``max_size`` in the marker). A batch that would pass it is refused, not
acknowledged: the active host keeps it in its journal, and the test, which watches ``full``, ends at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

from twinsite.durable import fsync_dir
from twinsite.errors import RecoveryError
from twinsite.journal.record import Record
from twinsite.journal.segments import Journal
from twinsite.locks import held
from twinsite.state import spool as marker
from twinsite.state.layout import ReceiverState
from twinsite.state.spool import SpoolMarker

HOLD_REASON = "verify"  # the marker's reason while `twinsite verify` holds the replica at a point (ops.at_point)


class Spool:
    def __init__(self, recv: ReceiverState) -> None:
        self.dir = recv.spool
        self.marker = recv.spool_marker
        self.records = recv.spool_records
        self.hold_lock = recv.hold_lock
        self._journal: Journal | None = None

    # -- the marker (state.spool) ------------------------------------------------------------------------
    def settings(self) -> SpoolMarker | None:
        return marker.read(self.marker)

    @property
    def full(self) -> bool:
        """The cap was reached: a test watching this ends."""
        now = self.settings()
        return now is not None and now.full

    @property
    def spooling(self) -> bool:
        return self.marker.exists()

    def start(self, *, max_size: int, reason: str) -> bool:
        """Spool from the next batch on (idempotent: returns False when it already spools)."""
        return marker.start(self.marker, max_size=max_size, reason=reason)

    def stop(self) -> bool:
        """Apply again from the next batch (the receiver first applies what was spooled)."""
        return marker.stop(self.marker)

    def end_stale_hold(self) -> bool:
        """A verify's hold whose process is gone (killed: its lock is free) ends here; True when it did."""
        now = self.settings()
        if now is None or now.reason != HOLD_REASON:
            return False
        with held(self.hold_lock, wait=False) as free:
            return free and self.stop()

    # -- the records ---------------------------------------------------------------------------------
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.records, segment_size=16 << 20)
        return self._journal

    def held(self) -> bool:
        return self.records.is_dir() and any(self.records.iterdir())

    @property
    def last_seq(self) -> int:
        return self.journal().last_seq if self.held() else 0

    def append(self, records: list[Record]) -> int:
        """Durably keep ``records`` (in seq order, following on); refused past the cap, which is noted."""
        settings = self.settings()
        cap = settings.max_size if settings else 0
        j = self.journal()
        size = sum(r.size for r in records)
        if cap and j.disk_bytes() + size > cap:
            if settings is not None:
                marker.mark_full(self.marker, settings)
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
        shutil.rmtree(self.records, ignore_errors=True)
        if self.dir.exists():
            fsync_dir(self.dir)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
