"""One root of one scenario, replicated to one standby: capture -> plan -> journal -> ship -> acknowledge.

Two threads share the journal:

* the **planner** turns captured changes into records and appends them to the journal, fsynced, whether
  or not the standby is reachable. Past the journal's cap it stops and lets capture accumulate dirty
  paths instead (never blocking production); they are planned when the standby has caught up.
  The records of an initial sync or resync (the whole tree compared with the replica's manifest) are not
  journaled: they are copies of source files, which stay their own durable copy. They go to the shipper
  through a short in-memory queue; if the link or the process fails mid-sync, the next attempt asks the
  replica what it has again and sends only what is still missing.
  In continuous mode with ``consistency: file`` the planner's picture of the replica is kept (sync.index),
  committed each time everything capture saw up to a moment is journaled; the first sync of a restarted
  agent takes it instead of the replica's listing when the journal and the standby are where it says, and
  compares only what changed at the source since that moment (sync.since).
* the **shipper** (engine.shipper) keeps a connection to ``twinsite receive`` on the standby, sends every
  journal record above the acknowledged seq, and trims the journal as acknowledgements arrive. A cut link is
  retried with backoff and jitter and resumes from the last acknowledged seq.

With ``consistency: points`` (docs/replication.md) the planner never reads the live root. Every
``point_interval`` it takes a read-only snapshot (capture.snapshots), asks the filesystem what changed since
the previous one (btrfs send --no-data: renames, names, and the exact ranges written), plans exactly that from
the new snapshot, and journals a POINT record after it: every record up to a POINT describes the root as it
was at one instant. The initial sync and every resync read a snapshot too, and end with a POINT. A snapshot is
removed once the next one is planned: the journal holds what was read from it, so at most two exist (and
after a restart the store is emptied: the resync that follows takes a new one).

Status (state, positions, lag, backlog, errors) is written durably to ``status.json`` for the CLI
(state.sender_status).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from twinsite.alerts import Alert
from twinsite.alerts.dispatch import Alerter
from twinsite.apply.batching import wire_batches
from twinsite.apps import load as load_application
from twinsite.capture.inotify import Watcher
from twinsite.capture.snapshots import Btrfs, changeset
from twinsite.config.scenario import POINT_STORE, Root, Scenario
from twinsite.engine.shipper import Shipper
from twinsite.errors import CaptureError, ConfigError, LinkError, TwinsiteError
from twinsite.journal.record import Op, Record
from twinsite.journal.segments import Journal
from twinsite.locks import held
from twinsite.proc import wait_until
from twinsite.state.layout import SenderState
from twinsite.state.role import this_host
from twinsite.state.sender_status import SenderStatus
from twinsite.sync.changes import ChangeSet
from twinsite.sync.index import RemoteTree, Stamp
from twinsite.sync.index import failure as index_failure
from twinsite.sync.manifest import decode as decode_manifest
from twinsite.sync.manifest import shared as shared_in_manifest
from twinsite.sync.planner import Planner, merged
from twinsite.sync.progress import SyncProgress, measure
from twinsite.sync.since import changed_since
from twinsite.transport.channels import Endpoint
from twinsite.transport.frames import Kind
from twinsite.transport.link import Link
from twinsite.tree import Entry

log = logging.getLogger(__name__)

BATCH_BYTES = 4 << 20
BATCH_RECORDS = 2000
PROGRESS_EVERY = 0.5  # seconds between status updates during a sync
DIRECT_DEPTH = 4  # sync batches waiting for the shipper (memory: DIRECT_DEPTH x BATCH_BYTES)
KEPT_POINTS = 16  # point snapshots kept at most (from the standby's last acknowledged point on)
EARLY_POINT = 0.2  # seconds: the soonest a snapshot follows the previous one (see _next_point)
FAILURES_ALERTED = 3  # failed syncs in a row that raise a replication-failing alert


class SyncInterrupted(TwinsiteError):
    """The link was lost (or replaced) during a sync: the next attempt compares again from the manifest."""


def replica_pages(link: Link) -> Iterator[list[dict[str, Any]]]:
    """The replica's manifest, asked of its receiver a page at a time (sync.manifest.Listing)."""
    req: dict[str, bool] = {}
    while True:
        page = link.request(Kind.MANIFEST_REQ, req, Kind.MANIFEST, timeout=600)
        yield page["entries"]
        if not page.get("more"):
            return
        req = {"more": True}


def replica_listing(link: Link) -> Iterator[tuple[bytes, Entry]]:
    """What the replica holds, by path (read a page at a time)."""
    for page in replica_pages(link):
        yield from decode_manifest(page).items()


def replica_tree(link: Link, path: Path | None = None) -> RemoteTree:
    """The planner's picture of the replica, from its listing: its entries, and which names are one file there
    (taken in page by page: nothing of the whole listing is held in memory); kept at ``path`` if given."""
    remote = RemoteTree() if path is None else RemoteTree.fresh(path)
    for page in replica_pages(link):
        remote.add(decode_manifest(page).items())
        remote.group_by(shared_in_manifest(page))
    return remote


def replica_signatures(link: Link, block: int, rel: bytes, first: int, count: int) -> bytes:
    """The replica's signatures of blocks ``first`` to ``first + count - 1`` of ``rel``, asked of its receiver
    (the planner asks a page at a time)."""
    req = {"paths": [rel.hex()], "block_size": block, "first": first, "count": count}
    reply = link.request(Kind.SIGS_REQ, req, Kind.SIGS)
    return bytes.fromhex(reply["sigs"].get(rel.hex(), ""))


@dataclass(frozen=True)
class Snap:
    """A consistency point being read: its id, path in the store and time. The snapshot holds the root as it
    was at one instant between the id (milliseconds of the time it was asked for) and ``ts`` (when it was
    there): records carry ``ts``, so an RPO measured to it is never too small."""

    id: int
    path: Path
    ts: float

    @property
    def name(self) -> str:
        return self.path.name


def changed_bytes(changes: ChangeSet, snapshot: Path) -> int:
    """What a point's change list says changed, in bytes: the ranges written, and each file made anew whole
    (the data a point must ship at least; the wire's bytes are compared with it)."""
    total = 0
    base = os.fsencode(snapshot)
    for path, ranges in changes.extents.items():
        try:
            st = os.lstat(base + b"/" + path)
        except OSError:
            continue  # (gone again: nothing of it ships)
        if not stat.S_ISREG(st.st_mode):
            continue
        size = st.st_size
        total += size if ranges is None else sum(end - start for start, end in merged(ranges, size))
    return total


class Sender(Shipper):
    """The planning half and the lifecycle of a sender; the shipping half is :class:`Shipper`."""

    def __init__(
        self,
        scenario: Scenario,
        root: Root,
        endpoint: Endpoint,
        place: SenderState,
        *,
        replica: str,
        epoch: int = 0,
        alerter: Alerter | None = None,
    ) -> None:
        self.scenario = scenario
        self.root = root
        self.rep = scenario.replication
        self.endpoint = endpoint
        self.place = place
        place.dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(place.journal, segment_size=scenario.journal.segment_size)
        self.status = SenderStatus(scenario=scenario.name, root=root.path, replica=replica)
        # Under a bandwidth limit a batch takes at most about a quarter of a second on the wire, so that
        # acknowledgements (lag, progress) keep coming.
        limit = self.rep.bandwidth_lowest()
        self.batch_bytes = min(BATCH_BYTES, max(64 << 10, limit // 4)) if limit else BATCH_BYTES
        self.epoch = epoch
        self.alerter = alerter
        self.stop_event = threading.Event()
        self.jlock = threading.Lock()  # journal appends vs reads/trims
        self.planned = threading.Condition()  # the shipper waits on it: new records, an acknowledgement, a failure
        self.link: Link | None = None
        self.link_ready = threading.Event()
        self.link_gen = 0  # one per connection: sync batches queued for an earlier one are dropped
        self.direct: collections.deque[tuple[int, list[Record], bytes]] = collections.deque()  # (gen, batch, blob)
        self.synced = False
        self.base = os.fsencode(root.path)
        self.watcher: Watcher | None = None
        self.planner: Planner | None = None
        self._threads: list[threading.Thread] = []
        self._status_lock = threading.Lock()
        self._status_dirty = False  # changes not yet written (throttled)
        self.resync_needed = threading.Event()
        self.divergences = 0
        self._seq = 0  # the last seq the planner gave out
        self._ts: dict[int, float] = {}  # seq -> source time of the newest unacknowledged batches (for lag)
        self._points: dict[int, tuple[int, float]] = {}
        self.points = self.rep.consistency == "points"
        self.snaps = Btrfs(Path(root.path), Path(root.path) / POINT_STORE) if self.points else None
        self._last_point = 0
        self._alerted_points = False
        self._alerted_failing = False
        self._next_scan = 0.0  # (periodic mode: when the next comparison of everything is due)
        # continuous, file by file: the planner's picture is kept (sync.index), and the first sync of a run may
        # take it instead of the replica's listing
        self.kept = self.rep.mode == "continuous" and not self.points
        self._may_take_kept = self.kept
        self._since = 0  # (the moment of the last commit of the picture: _commit)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.publish(state="starting")  # replaces what a previous run left: never report its positions as ours
        if self.rep.mode == "continuous":  # (with points, only to make the next point early: _next_point)
            # capture starts before the scan: nothing is missed
            self.watcher = Watcher(Path(self.root.path), skip=POINT_STORE.encode() if self.points else None)
            self._spawn(self.watcher.run, "capture")
        self._spawn(self._ship_loop, "ship")
        self._spawn(self._plan_loop, "plan")

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=fn, name=f"{self.scenario.name}-{name}", daemon=True)
        self._threads.append(t)
        t.start()

    def stop(self) -> None:
        self.stop_event.set()
        with self.planned:
            self.planned.notify_all()
        if self.watcher:
            self.watcher.stop()
            self.watcher.wake.set()
        if self.link:
            self.link.close()
        for t in self._threads:
            t.join(timeout=10)
        if self.watcher:
            self.watcher.close()
        self.journal.close()
        self.publish(state="stopped")

    # -- planning ------------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _fetch_sigs(self, rel: bytes, first: int, count: int) -> bytes:
        return replica_signatures(self._wait_link(), self.rep.block_size, rel, first, count)

    def _wait_link(self) -> Link:
        return self._wait_link_gen()[0]

    def _wait_link_gen(self) -> tuple[Link, int]:
        """The current connection and its generation (read together)."""
        while not self.stop_event.is_set():
            if self.link_ready.wait(0.5):
                with self.planned:
                    if self.link is not None:
                        return self.link, self.link_gen
        raise TwinsiteError("stopping")

    def _new_planner(self, remote: RemoteTree) -> Planner:
        p = Planner(
            Path(self.root.path),
            block_size=self.rep.block_size,
            next_seq=self._next_seq,
            now=time.time,
            fetch_sigs=self._fetch_sigs,
            select=self.root.selects_bytes,
            checksum=self.rep.sync_method == "checksum",
            drop_privileged=self.rep.privileged_metadata == "drop",
        )
        p.remote = remote
        return p

    def _plan_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._plan_forever()
            except SyncInterrupted as exc:  # the shipper reports the lost link; the sync resumes when it is back
                if not self.stop_event.is_set():  # ... and it counts: a sync the standby never lets finish
                    self._sync_failed(TwinsiteError(f"{exc.message}: {self.status.last_error or 'no error said'}"))
            except Exception as exc:  # any failure: report it loudly, then resync
                if self.stop_event.is_set():
                    return
                err = exc if isinstance(exc, TwinsiteError) else TwinsiteError(f"planner failed: {exc!r}")
                if isinstance(exc, sqlite3.Error):
                    err = index_failure(exc, self.place.index if self.kept else None)
                waiting = isinstance(exc, LinkError) and exc.remote == "RecoveryError"  # (a test holds the replica)
                if not waiting:
                    self._sync_failed(err)
                self.error(err, "degraded")
                if self.snaps is not None and isinstance(exc, (CaptureError, ConfigError)):
                    self._points_failing(err)
                log.exception("planner failed; resyncing")
                self.stop_event.wait(min(30, 2 ** max(0, self.status.failures - 1)))  # (1 s, 2 s, 4 s ... 30 s)

    def _sync_failed(self, err: TwinsiteError) -> None:
        """One more sync that did not go through: counted (status), and alerted at FAILURES_ALERTED in a row."""
        self.publish(failures=self.status.failures + 1, failing_since=self.status.failing_since or time.time())
        if self.status.failures >= FAILURES_ALERTED and not self._alerted_points:
            self._replication_failing(err)

    def _check_consistency(self) -> None:
        """A database replicated file by file needs the scenario's say-so (validate says it too, for the
        built-in plugins; this asks the plugin itself); points need a root that can have them."""
        if self.snaps is not None:
            self.snaps.prepare()
            return
        app = load_application(
            {"type": self.scenario.application, **self.scenario.application_settings},
            tuple(r.path for r in self.scenario.roots),
        )
        if app.database and not self.rep.accept_torn_database_copies:
            raise ConfigError(
                f"{self.scenario.name}: the {app.kind} database is replicated with consistency: file, which can "
                "leave a torn copy on the standby",
                where=self.root.path,
                hint="use consistency: points (the root on a btrfs subvolume), or set "
                "replication.accept_torn_database_copies: true (docs/replication.md)",
            )

    def _points_failing(self, exc: TwinsiteError) -> None:
        """Once per streak of failures: no point can be made, so the standby's last point ages."""
        if self._alerted_points or self.alerter is None:
            return
        self._alerted_points = True
        s, host = self.scenario, this_host()
        self.alerter.send(
            Alert(
                kind="points-failing",
                severity="critical",
                scenario=s.name,
                host=host,
                what=f"{host} cannot make consistency points of {self.root.path} for {s.name}: {exc.message}; "
                f"{self.status.replica}'s last complete point grows older",
                action=exc.hint or "see the agent's log and `twinsite status`",
                details=(("error", str(exc)),),
            )
        )

    def _replication_failing(self, exc: TwinsiteError) -> None:
        """Once per streak of failures: the standby gets nothing new, whatever the link does meanwhile."""
        if self._alerted_failing or self.alerter is None:
            return
        self._alerted_failing = True
        s, host, since = self.scenario, this_host(), self.status.failing_since or time.time()
        self.alerter.send(
            Alert(
                kind="replication-failing",
                severity="critical",
                scenario=s.name,
                host=host,
                what=f"{host} cannot replicate {self.root.path} of {s.name} to {self.status.replica}: {exc.message}",
                action=exc.hint or "see the agent's log and `twinsite status`; it keeps trying",
                since=dt.datetime.fromtimestamp(since, dt.UTC),
                details=(("failed attempts in a row", str(self.status.failures)), ("error", str(exc))),
            )
        )

    def _replicating_again(self) -> None:
        """A sync went through: the streak of failures (if any) is over, and said to be."""
        failures = self.status.failures
        self.publish(failures=0, failing_since=None, last_error=None)
        if self._alerted_failing and self.alerter is not None:
            s, host = self.scenario, this_host()
            self.alerter.send(
                Alert(
                    kind="resolved-replication-failing",
                    severity="resolved",
                    scenario=s.name,
                    host=host,
                    what=f"{host} replicates {self.root.path} of {s.name} to {self.status.replica} again",
                    action="none",
                    details=(("failed attempts before", str(failures)),),
                )
            )
        self._alerted_failing = False

    def _take(self, snaps: Btrfs) -> Snap:
        """A new consistency point of the root, now."""
        ident = max(int(time.time() * 1000), self._last_point + 1)
        self._last_point = ident
        path = snaps.take(str(ident))
        return Snap(ident, path, time.time())

    @staticmethod
    def _read_from(planner: Planner, snap: Snap) -> None:
        planner.read_from(snap.path)
        planner.now = lambda: snap.ts  # records carry the time of the state they describe

    def _end_point(self, snap: Snap) -> None:
        """Journal the POINT after a point's records: the standby's replica is that snapshot once it has it."""
        self._alerted_points = False  # (points are made again)
        rec = Record(seq=self._next_seq(), ts=snap.ts, op=Op.POINT, path=b"", offset=snap.id)
        with self.planned:
            self._points[rec.seq] = (snap.id, snap.ts)
        self._append([rec])

    def _plan_forever(self) -> None:
        # Initial sync / resync: the replica's manifest says what it has; everything else is planned. The
        # journal's records go first, so the manifest describes the replica with all of them applied. The first
        # of a run may instead take the picture the last run kept, when it is in step (see _kept_picture).
        self._check_consistency()
        link, gen = self._wait_link_gen()
        kept = None
        if self._may_take_kept:
            kept = self._kept_picture(link)
        elif self.status.start is None:
            self._started_from("listing", "with consistency points or periodic mode no picture is kept")
        self._may_take_kept = False
        self._wait_shipped(self.journal.last_seq)
        if kept is not None:
            planner = self._resume(*kept)
        else:
            planner, base = self._sync(link, gen)
            if base is not None and self.snaps is not None:
                self._end_point(base)
                self._points_forever(base, self.snaps, planner)
                return
        self.synced = True
        self.publish(state="replicating")
        interval = self.rep.interval if self.rep.mode == "periodic" else 0.2
        last_rescan = time.monotonic()
        self._next_scan = time.monotonic() + interval
        while not self.stop_event.is_set():
            changes = self._wait_changes(interval)
            if self.rep.rescan_interval and time.monotonic() - last_rescan >= self.rep.rescan_interval:
                changes.everything()  # the safety net for what capture cannot see; counted when it finds some
                last_rescan = time.monotonic()
                before = self._seq
                self._plan_changes(changes, planner)
                self.publish(
                    rescans=self.status.rescans + 1, rescan_records=self.status.rescan_records + self._seq - before
                )
                continue
            self._resync_if_diverged()
            if changes:
                self._plan_changes(changes, planner)
            if planner.unsettled or self.status.unsettled:
                self._journal_records(planner.settle())  # (files read while they were being written)
                self.publish(throttle=True)
                self._commit()

    def _sync(self, link: Link, gen: int) -> tuple[Planner, Snap | None]:
        """Compare everything with the replica's listing and ship the difference: the planner, and with points
        the snapshot the sync read (its POINT is still to be journaled)."""
        began = time.time_ns()  # (what changes from now on may be missed by the comparison: see _commit)
        if self.planner is not None:
            self.planner.remote.close()  # (a picture with uncommitted changes, or another of the replica)
        remote = replica_tree(link, self.place.index if self.kept else None)
        failing = self.status.failures > 0  # (another attempt after failures: loud until one goes through)
        self.publish(state="degraded" if failing else "syncing", resyncs=self.status.resyncs + 1)
        with self.jlock:
            self._seq = max(self.journal.last_seq, self._acked_floor())
        self.planner = planner = self._new_planner(remote)
        base = None
        if self.snaps is not None:
            base = self._take(self.snaps)
            self._read_from(planner, base)
        files, size = measure(base.path if base else Path(self.root.path), self.root.selects_bytes)
        planner.progress = progress = SyncProgress(files_total=files, bytes_total=size)
        self.publish()
        self._send_direct(planner.plan_all(), gen)
        self._wait_shipped(self._seq, gen)
        progress.acked(self._seq)  # (files needing no record at all are done too)
        progress.finished_at = time.time()
        planner.progress = None
        self.publish(sync=progress.as_dict())
        self._commit(began)
        self._replicating_again()
        return planner, base

    # -- the picture kept between runs ------------------------------------------------------------------
    def _identity(self) -> str:
        """What a kept picture must be of: this scenario's root and what is replicated of it, to this standby,
        in this epoch, from this very directory (a root restored, remounted or replaced is another)."""
        st = os.stat(self.root.path)
        rep = self.rep
        what = (self.scenario.name, self.root, self.status.replica, self.epoch, st.st_dev, st.st_ino)
        return xxhash.xxh3_128_hexdigest(
            repr((what, rep.privileged_metadata, rep.sync_method, rep.block_size)).encode()
        )

    def _commit(self, since_ns: int | None = None) -> None:
        """Commit the planner's picture with what it is in step with: every record planned (they are all in the
        journal, or acknowledged), and ``since_ns``, from when the source must be compared again at the next
        start (changes capture saw since then may not be planned yet; an unsettled file's is older). None: the
        moment of the last commit."""
        if not self.kept or self.planner is None:
            return
        if since_ns is not None:
            self._since = since_ns
        settling = [mtime for _, mtime in self.planner.unsettled.values()]
        stamp = Stamp(seq=self._seq, since_ns=min([self._since, *settling]), identity=self._identity())
        self.planner.remote.commit(stamp)

    def _kept_picture(self, link: Link) -> tuple[RemoteTree, Stamp] | None:
        """The picture the last run kept, when the replica is what it describes once the journal is shipped:
        the stamp's seq is where the journal ends (or the standby is at it already), the standby is at most
        there and the journal holds everything above where it is, and it is a picture of this root, standby
        and epoch. Otherwise None, and why is logged and shown (``start`` in the status)."""
        try:
            got = RemoteTree.kept(self.place.index)
        except sqlite3.Error as exc:  # (damaged: the sync that follows replaces it)
            self._started_from("listing", f"the kept picture cannot be read: {exc}")
            return None
        if got is None:
            self._started_from(
                "listing",
                "no picture was kept in step with the journal (a first start, a crash "
                "between a journal append and its commit, or another mode)",
            )
            return None
        remote, stamp = got
        at, last = link.ready_seq, self.journal.last_seq
        why = None
        if stamp.identity != self._identity():
            why = "the kept picture is of another root, selection, standby or epoch"
        elif last > stamp.seq:
            why = f"the journal holds records past the kept picture's seq {stamp.seq} (a stop between the two)"
        elif at > stamp.seq:
            why = f"the standby is at seq {at}, past the kept picture's {stamp.seq}"
        elif at < stamp.seq and (last != stamp.seq or self.journal.first_seq() > at + 1):
            why = f"the standby is at seq {at} and the journal cannot bring it to the kept picture's {stamp.seq}"
        elif time.time_ns() < stamp.since_ns:
            why = "this host's clock is behind the time the picture was kept"
        if why is not None:
            remote.close()
            self._started_from("listing", why)
            return None
        return remote, stamp

    def _started_from(self, source: str, why: str | None = None, **more: float) -> None:
        log.info("%s: starting from the %s%s", self.root.path, source, f" ({why})" if why else "")
        self.publish(start={"from": source, **({"why": why} if why else {}), **more})

    def _resume(self, remote: RemoteTree, stamp: Stamp) -> Planner:
        """Start from the kept picture: compare only what may have changed at the source since its stamp."""
        began, t0 = time.time_ns(), time.monotonic()
        self.publish(state="syncing", start={"from": "kept picture"})
        with self.jlock:
            self._seq = max(self.journal.last_seq, self._acked_floor(), stamp.seq)
        self.planner = planner = self._new_planner(remote)
        compared = 0

        def plan() -> Iterator[Record]:
            nonlocal compared
            for rel in changed_since(planner, stamp.since_ns):
                compared += 1
                yield from planner.plan_path(rel)

        self._journal_records(plan())
        self._wait_shipped(self._seq)
        self._commit(began)
        self._started_from("kept picture", compared=compared, seconds=round(time.monotonic() - t0, 3))
        self._replicating_again()
        return planner

    def _plan_changes(self, changes: ChangeSet, planner: Planner) -> None:
        """Plan and journal what capture saw. Meanwhile ``pending`` in the status says how many paths wait (a big
        file's comparison can take a while, and nothing planned yet must not look like nothing to do)."""
        self.publish(pending=len(changes.dirty) + len(changes.renames) + (1 if changes.full else 0), throttle=True)
        try:
            self._journal_records(changes.plan(planner))
        finally:
            self.publish(pending=0, throttle=True)
        self._commit(changes.complete_to)

    def _resync_if_diverged(self) -> None:
        """Raise (the plan loop then compares everything again) when the shipper saw the replica diverge."""
        if self.resync_needed.is_set():
            self.resync_needed.clear()
            self.publish(divergences=self.divergences)
            raise TwinsiteError(
                f"the replica diverged ({self.divergences} record(s) found nothing to act on): "
                "comparing everything again"
            )

    def _points_forever(self, base: Snap, snaps: Btrfs, planner: Planner) -> None:
        """After a sync: a point every ``point_interval`` while the root changes, each planned from the
        filesystem's own list of changes between the previous snapshot and the new one."""
        self.synced = True
        self.publish(state="replicating")
        last_rescan = time.monotonic()
        try:
            tried = base.ts
            while not self.stop_event.is_set():
                self._next_point(base, tried)
                if self.stop_event.is_set():
                    return
                self._resync_if_diverged()
                if self.watcher is not None:
                    self.watcher.take()  # (what it saw so far is in the snapshot: it wakes for what comes next)
                new = self._take(snaps)
                tried = new.ts
                changes = changeset(snaps.changes(base.name, new.name))
                if self.rep.rescan_interval and time.monotonic() - last_rescan >= self.rep.rescan_interval:
                    changes.everything()  # (the safety net: the point's snapshot compared with the replica's view)
                    last_rescan = time.monotonic()
                    self.publish(rescans=self.status.rescans + 1)
                if not changes:
                    snaps.delete(new.name)  # nothing changed: the next point is compared with the same one
                    continue
                self._read_from(planner, new)
                self._journal_records(changes.plan(planner))
                self._end_point(new)
                self.publish(
                    points=self.status.points + 1,
                    point_extent_bytes=self.status.point_extent_bytes + changed_bytes(changes, new.path),
                    throttle=True,
                )
                base = new
                self._prune_points(snaps, base)
        finally:
            self._prune_points(snaps, None)

    def _next_point(self, base: Snap, tried: float) -> None:
        """Until the next snapshot is due: ``point_interval`` after the last one (``tried``: a snapshot in
        which nothing had changed makes no point), or at once when the root changes after a quiet
        ``point_interval`` (no point since ``base``), inotify saw it and the standby has acknowledged
        everything planned (the link is idle); never sooner than EARLY_POINT after the last snapshot (each
        commits a btrfs transaction). Under a steady load that is one point per interval. Writes through
        mmap wake nothing: the interval takes them."""
        due = tried + self.rep.point_interval
        while not self.stop_event.is_set():
            now = time.time()
            if now >= due:
                return
            quiet = now - base.ts >= self.rep.point_interval and now - tried >= EARLY_POINT
            if quiet and self.watcher is not None and self.watcher.wake.is_set() and self._idle():
                return
            self.stop_event.wait(min(0.05, due - now))

    def _idle(self) -> bool:
        """Everything planned is acknowledged by the standby."""
        return self.status.acked_seq >= self.journal.last_seq

    def _prune_points(self, snaps: Btrfs, base: Snap | None) -> None:
        """Remove the snapshots of points before the standby's last acknowledged one: that one is kept, and
        every later one, so that `twinsite verify` can compare the standby's last complete point with the
        snapshot it was planned from (at most KEPT_POINTS in all, the newest; ``base``, the next point's
        parent, always). Nothing is removed while verify pins them (it holds the lock for a few seconds);
        without ``base`` (the sender ends) everything goes."""
        with held(self.place.points_pin, wait=False) as free:
            if not free:
                return
            acked = (self.status.point_id or 0) if base is not None else None
            names = [n for n in snaps.names() if base is None or n != base.name]
            over = len(names) + (base is not None) - KEPT_POINTS
            for name in names:
                if acked is None or int(name) < acked or over > 0:
                    snaps.delete(name)
                    over -= 1

    def _acked_floor(self) -> int:
        return self.status.acked_seq

    def _wait_changes(self, interval: float) -> ChangeSet:
        """What changed, after ``interval`` (periodic: everything is compared) or sooner: capture woke, or an
        unsettled file is due to be read again (planner.settle)."""
        settle = self.planner.settles_in() if self.planner else math.inf
        if self.watcher is None:
            self.stop_event.wait(max(0.0, min(self._next_scan - time.monotonic(), settle)))
            full = ChangeSet()
            if time.monotonic() >= self._next_scan:
                full.everything()
                self._next_scan = time.monotonic() + interval
            return full
        self.watcher.wake.wait(min(interval, settle))
        if self.rep.batch_ms:
            time.sleep(self.rep.batch_ms / 1000)  # let a burst of writes settle into one batch
        if self.watcher.overflows != self.status.overflows:
            self.publish(overflows=self.watcher.overflows)  # loud: a rescan follows
        return self.watcher.take()

    def _journal_records(self, records: Iterator[Record]) -> None:
        """Append planned records to the journal in fsynced groups; the shipper is told after each."""
        group: list[Record] = []
        size = 0
        limit = min(BATCH_BYTES, self.scenario.journal.max_size // 4)  # so the cap holds with a group waiting
        for rec in records:
            group.append(rec)
            size += rec.size
            if size >= limit or len(group) >= BATCH_RECORDS:
                self._append(group)
                group, size = [], 0
        if group:
            self._append(group)

    def _send_direct(self, records: Iterator[Record], gen: int) -> None:
        """Hand sync records to the shipper in batches, bypassing the journal (see the module's docstring)."""
        for batch, blob in wire_batches(((rec, rec.encode()) for rec in records), self.batch_bytes):
            with self.planned:
                while len(self.direct) >= DIRECT_DEPTH and gen == self.link_gen and not self.stop_event.is_set():
                    self.planned.wait(0.5)
                if gen != self.link_gen or self.stop_event.is_set():
                    raise SyncInterrupted("the link to the standby was lost during the sync")
                self.direct.append((gen, batch, blob))
                self._ts[batch[-1].seq] = batch[-1].ts
                self.planned.notify_all()
            if time.time() - self.status.updated_at >= PROGRESS_EVERY:
                self.publish()  # with the sync's progress

    def _append(self, group: list[Record]) -> None:
        size = sum(r.size for r in group)
        while (
            self.journal.disk_bytes() + size > self.scenario.journal.max_size
            and self.journal.disk_bytes() > 0
            and not self.stop_event.is_set()
        ):
            # Journal full while the standby is behind: production is never blocked. Wait for the
            # shipper to trim; the dirty paths keep accumulating in capture meanwhile.
            self.publish(journal_overflow=True, state="degraded")
            self.stop_event.wait(0.5)
        with self.jlock:
            if self.journal.last_seq + 1 < group[0].seq:
                self.journal.skip_to(group[0].seq)
            self.journal.append(group)
        with self.planned:
            self._ts[group[-1].seq] = group[-1].ts
            self.planned.notify_all()
        if self.status.journal_overflow:
            self.publish(journal_overflow=False, state="replicating" if self.synced else "syncing")

    def _wait_shipped(self, seq: int, gen: int | None = None) -> None:
        """Until the standby has acknowledged ``seq``; with ``gen``, sync records that a lost link took with it
        are never acknowledged: give up then."""

        def shipped() -> bool:
            if self.status.acked_seq >= seq or self.stop_event.is_set():
                return True
            if gen is not None and gen != self.link_gen:
                raise SyncInterrupted("the link to the standby was lost during the sync")
            return False

        wait_until(shipped, timeout=math.inf, interval=0.01)
