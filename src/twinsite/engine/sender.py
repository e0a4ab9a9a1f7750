"""One root of one scenario, replicated to one standby: capture -> plan -> journal -> ship -> acknowledge.

Two threads share the journal:

* the **planner** turns captured changes into records and appends them to the journal, fsynced, whether
  or not the standby is reachable. Past the journal's cap it stops and lets capture accumulate dirty
  paths instead (never blocking production); they are planned when the standby has caught up.
  The records of an initial sync or resync (the whole tree compared with the replica's manifest) are not
  journaled: they are copies of source files, which stay their own durable copy. They go to the shipper
  through a short in-memory queue; if the link or the process fails mid-sync, the next attempt asks the
  replica what it has again and sends only what is still missing.
* the **shipper** keeps a connection to ``twinsite receive`` on the standby, sends every journal record
  above the acknowledged seq, and trims the journal as acknowledgements arrive. A cut link is retried with
  backoff and jitter and resumes from the last acknowledged seq.

Status (state, positions, lag, backlog, errors) is written atomically to ``status.json`` for the CLI.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import stat as st
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from twinsite.alerts import Alert
from twinsite.alerts.dispatch import Alerter
from twinsite.apply.batching import BatchCutter
from twinsite.capture.inotify import Watcher
from twinsite.config.scenario import Root, Scenario
from twinsite.errors import TwinsiteError
from twinsite.journal.record import Record
from twinsite.journal.segments import Journal
from twinsite.roles import SupersededError, this_host
from twinsite.sync.changes import ChangeSet
from twinsite.sync.planner import Planner, RemoteEntry
from twinsite.sync.progress import SyncProgress, measure
from twinsite.transport.channels import Endpoint, open_channel
from twinsite.transport.frames import Kind
from twinsite.transport.link import Link

log = logging.getLogger(__name__)

BATCH_BYTES = 4 << 20
BATCH_RECORDS = 2000
WINDOW_BYTES = 64 << 20
PROGRESS_EVERY = 0.5  # seconds between status updates during a sync
STATUS_EVERY = 0.2  # at most this often is status.json rewritten for acknowledgements
DIRECT_DEPTH = 4  # sync batches waiting for the shipper (memory: DIRECT_DEPTH x BATCH_BYTES)


class SyncInterrupted(TwinsiteError):
    """The link was lost (or replaced) during a sync: the next attempt compares again from the manifest."""


@dataclass
class SenderStatus:
    scenario: str
    root: str
    replica: str
    state: str = "starting"  # starting, syncing, replicating, disconnected, degraded, superseded, stopped
    planned_seq: int = 0
    sent_seq: int = 0
    acked_seq: int = 0
    lag_seconds: float = 0.0
    ack_latency_seconds: float = 0.0  # the age of the newest acknowledged change when it was acknowledged
    backlog_bytes: int = 0
    bytes_sent: int = 0
    connects: int = 0
    resyncs: int = 0
    overflows: int = 0
    divergences: int = 0
    rescans: int = 0
    rescan_records: int = 0  # records a rescan found necessary: changes capture did not report
    journal_overflow: bool = False
    sync: dict[str, Any] | None = None  # progress of the current (or the last) initial sync / resync
    last_error: str | None = None
    last_error_at: float | None = None
    updated_at: float = field(default_factory=time.time)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def read_status(path: Path) -> SenderStatus | None:
    """The status a sender wrote (``status.json``), None when there is none. Keys of another version are
    dropped and missing ones take their defaults, so readers always see this version's fields."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    known = {f.name for f in fields(SenderStatus)}
    return SenderStatus(**{k: v for k, v in data.items() if k in known})


def remote_from_manifest(entries: list[dict[str, Any]]) -> dict[bytes, RemoteEntry]:
    out: dict[bytes, RemoteEntry] = {}
    for e in entries:
        mode = int(e["m"])
        if st.S_ISDIR(mode):
            kind = "dir"
        elif st.S_ISREG(mode):
            kind = "file"
        elif st.S_ISLNK(mode):
            kind = "link"
        elif st.S_ISFIFO(mode):
            kind = "fifo"
        else:
            continue
        xattrs = tuple((bytes.fromhex(k), bytes.fromhex(v)) for k, v in e.get("x", []))
        out[bytes.fromhex(e["p"])] = RemoteEntry(
            kind,
            st.S_IMODE(mode),
            int(e["u"]),
            int(e["g"]),
            int(e.get("s", 0)) if kind == "file" else 0,
            int(e.get("mt", 0)) if kind == "file" else 0,
            bytes.fromhex(e.get("t", "")),
            xattrs if kind != "link" else (),
        )
    return out


class Sender:
    def __init__(
        self,
        scenario: Scenario,
        root: Root,
        endpoint: Endpoint,
        state_dir: Path,
        *,
        replica: str,
        on_status: Callable[[SenderStatus], None] | None = None,
        epoch: int = 0,
        alerter: Alerter | None = None,
    ) -> None:
        self.scenario = scenario
        self.root = root
        self.rep = scenario.replication
        self.endpoint = endpoint
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(state_dir / "journal", segment_size=scenario.journal.segment_size)
        self.status = SenderStatus(scenario=scenario.name, root=root.path, replica=replica)
        # Under a bandwidth limit a batch takes at most about a quarter of a second on the wire, so that
        # acknowledgements (lag, progress) keep coming.
        limit = self.rep.bandwidth_limit
        self.batch_bytes = min(BATCH_BYTES, max(64 << 10, limit // 4)) if limit else BATCH_BYTES
        self.on_status = on_status
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

    # -- status --------------------------------------------------------------------------------------------
    def publish(self, *, throttle: bool = False, **changes: Any) -> None:
        """Update the status and write status.json; with ``throttle`` (acknowledgements, which can come hundreds
        of times a second) at most every STATUS_EVERY seconds, the shipper writing what is left when idle."""
        with self._status_lock:
            for k, v in changes.items():
                setattr(self.status, k, v)
            if self.status.journal_overflow and self.status.state != "stopped":
                self.status.state = "degraded"  # loud until the standby has caught up, whatever else happens
            self.status.planned_seq = max(self.journal.last_seq, self._seq)  # journaled or sent directly
            progress = self.planner.progress if self.planner else None
            if progress is not None:
                self.status.sync = progress.as_dict()
            now = time.time()
            if throttle and now - self.status.updated_at < STATUS_EVERY:
                self._status_dirty = True
                return
            self.status.updated_at = now
            self._status_dirty = False
            write_json_atomic(self.state_dir / "status.json", asdict(self.status))
        if self.on_status:
            self.on_status(self.status)

    def error(self, exc: BaseException, state: str) -> None:
        self.publish(state=state, last_error=str(exc), last_error_at=time.time())

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.publish(state="starting")  # replaces what a previous run left: never report its positions as ours
        if self.rep.mode == "continuous":
            self.watcher = Watcher(Path(self.root.path))  # capture starts before the scan: nothing is missed
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

    def _fetch_sigs(self, paths: list[bytes]) -> dict[bytes, bytes]:
        link = self._wait_link()
        reply = link.request(
            Kind.SIGS_REQ, {"paths": [p.hex() for p in paths], "block_size": self.rep.block_size}, Kind.SIGS
        )
        return {bytes.fromhex(k): bytes.fromhex(v) for k, v in reply["sigs"].items()}

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

    def _new_planner(self, remote: dict[bytes, RemoteEntry]) -> Planner:
        p = Planner(
            Path(self.root.path),
            block_size=self.rep.block_size,
            next_seq=self._next_seq,
            now=time.time,
            fetch_sigs=self._fetch_sigs,
            select=self.root.selects_bytes,
            checksum=self.rep.sync_method == "checksum",
        )
        p.remote = remote
        return p

    def _plan_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._plan_forever()
            except SyncInterrupted:
                continue  # the shipper reports the lost link; the sync resumes when it is back
            except Exception as exc:  # any failure: report it loudly, then resync
                if self.stop_event.is_set():
                    return
                self.error(
                    exc if isinstance(exc, TwinsiteError) else TwinsiteError(f"planner failed: {exc!r}"), "degraded"
                )
                log.exception("planner failed; resyncing")
                time.sleep(1)

    def _plan_forever(self) -> None:
        # Initial sync / resync: the replica's manifest says what it has; everything else is planned. The
        # journal's records go first, so the manifest describes the replica with all of them applied.
        link, gen = self._wait_link_gen()
        self._wait_shipped(self.journal.last_seq)
        manifest = link.request(Kind.MANIFEST_REQ, {}, Kind.MANIFEST, timeout=600)
        self.publish(state="syncing", resyncs=self.status.resyncs + 1)
        with self.jlock:
            self._seq = max(self.journal.last_seq, self._acked_floor())
        self.planner = self._new_planner(remote_from_manifest(manifest["entries"]))
        files, size = measure(Path(self.root.path), self.root.selects_bytes)
        self.planner.progress = progress = SyncProgress(files_total=files, bytes_total=size)
        self.publish()
        self._send_direct(self.planner.plan_all(), gen)
        self._wait_shipped(self._seq, gen)
        progress.acked(self._seq)  # (files needing no record at all are done too)
        progress.finished_at = time.time()
        self.planner.progress = None
        self.publish(sync=progress.as_dict())
        self.synced = True
        self.publish(state="replicating")
        interval = self.rep.interval if self.rep.mode == "periodic" else 0.2
        last_rescan = time.monotonic()
        while not self.stop_event.is_set():
            changes = self._wait_changes(interval)
            if self.rep.rescan_interval and time.monotonic() - last_rescan >= self.rep.rescan_interval:
                changes.everything()  # the safety net for what capture cannot see; counted when it finds some
                last_rescan = time.monotonic()
                before = self._seq
                self._journal_records(changes.plan(self.planner))
                self.publish(
                    rescans=self.status.rescans + 1, rescan_records=self.status.rescan_records + self._seq - before
                )
                continue
            if self.resync_needed.is_set():
                self.resync_needed.clear()
                self.publish(divergences=self.divergences)
                raise TwinsiteError(
                    f"the replica diverged ({self.divergences} record(s) found nothing to act on): "
                    "comparing everything again"
                )
            if changes:
                self._journal_records(changes.plan(self.planner))

    def _acked_floor(self) -> int:
        return self.status.acked_seq

    def _wait_changes(self, interval: float) -> ChangeSet:
        if self.watcher is None:
            self.stop_event.wait(interval)
            full = ChangeSet()
            full.everything()
            return full
        self.watcher.wake.wait(interval)
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
        for batch, blob in self._batches((rec, rec.encode()) for rec in records):
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
        while self.status.acked_seq < seq and not self.stop_event.is_set():
            if gen is not None and gen != self.link_gen:
                raise SyncInterrupted("the link to the standby was lost during the sync")
            time.sleep(0.01)

    # -- shipping ------------------------------------------------------------------------------------------
    def _ship_loop(self) -> None:
        delay = 0.2
        while not self.stop_event.is_set():
            link = None
            try:
                channel = open_channel(self.rep.transport, self.endpoint)
                link = Link(
                    channel,
                    where=self.endpoint.host,
                    bandwidth_limit=self.rep.bandwidth_limit,
                    on_event=self._wake_shipper,
                )
                hello = {
                    "scenario": self.scenario.name,
                    "root": self.root.path,
                    "cdp": asdict(self.scenario.cdp),
                    "epoch": self.epoch,
                    "host": this_host(),
                }
                ready = link.request(Kind.HELLO, hello, Kind.READY, timeout=30)
                applied = int(ready["applied_seq"])
                link.acked_seq = applied
                with self.planned:
                    self.link_gen += 1
                    self.direct.clear()  # queued for the previous connection: the planner compares again
                    self.link = link
                    self.planned.notify_all()
                self.publish(
                    connects=self.status.connects + 1,
                    acked_seq=applied,
                    last_error=None,
                    state=self._connected_state(),  # (nothing may be left to acknowledge to say so later)
                )
                self.link_ready.set()
                delay = 0.2
                self._ship(link, applied)
            except SupersededError as exc:  # a switchover made another host active: loud; retried calmly
                self._superseded(exc)
                delay = 2.0
            except Exception as exc:  # any failure: report it, reconnect with backoff
                if self.stop_event.is_set():
                    break
                if not isinstance(exc, (TwinsiteError, OSError)):
                    log.exception("shipper failed")
                self.error(exc, "disconnected")
            finally:
                self.link_ready.clear()
                if link is not None:
                    link.close(bye=self.stop_event.is_set())
            if self.stop_event.wait(delay * random.uniform(0.5, 1.5)):  # noqa: S311 -- jitter, not a secret
                break
            delay = min(delay * 2, 10.0)

    def _superseded(self, exc: SupersededError) -> None:
        first = self.status.state != "superseded"
        self.error(exc, "superseded")
        if first and self.alerter is not None:
            self.alerter.send(self._superseded_alert(exc))

    def _superseded_alert(self, exc: SupersededError) -> Alert:
        s, host, peer = self.scenario, this_host(), self.status.replica
        details = (("refusal", exc.message), ("epoch here", str(self.epoch)), (f"epoch on {peer}", str(exc.epoch)))
        if exc.epoch > self.epoch:  # a switchover this host missed: it is the stale one
            return Alert(
                kind="split-brain",
                severity="critical",
                scenario=s.name,
                host=host,
                what=f"{host} still acts as the active host of {s.name}, but {peer} refuses its changes: a "
                "switchover made another host active",
                action=f"stop users from writing on {host}; then `twinsite rejoin {s.name}` (or `twinsite switchback "
                f"{s.name}`) on {host} sets its divergent changes aside and makes it a standby of the active host",
                details=details,
            )
        return Alert(  # the standby is the stale one (a former active host that has not rejoined yet)
            kind="standby-not-rejoined",
            severity="warning",
            scenario=s.name,
            host=peer,
            what=f"{peer} takes no replication from {host}: it has not learnt of the switchover that made {host} "
            f"active (its epoch {exc.epoch}, ours {self.epoch}); {s.name} is not protected until it rejoins",
            action=f"on {peer}: stop users from writing there, then `twinsite rejoin {s.name}` (its divergent "
            "changes are set aside, then it is brought up to date from here)",
            details=details,
        )

    def _wake_shipper(self) -> None:
        with self.planned:
            self.planned.notify_all()

    def _ship(self, link: Link, applied: int) -> None:
        if self.journal.last_seq > applied and self.journal.first_seq() > applied + 1:
            # Records the standby never got were trimmed or lost: only a resync can say what it lacks.
            raise TwinsiteError(f"journal starts at {self.journal.first_seq()} but the standby has {applied}")
        reader = self.journal.reader(applied + 1)
        inflight: collections.deque[tuple[int, int]] = collections.deque()  # (last seq, frame bytes) not yet acked
        while not self.stop_event.is_set():
            gen = self.link_gen
            with self.planned:
                idle = self.journal.last_seq < reader.next_seq and link.acked_seq <= self.status.acked_seq
                if idle and not self.direct:
                    self.planned.wait(STATUS_EVERY if self._status_dirty else 1.0)
                direct = self.direct.popleft() if self.direct else None
                self.planned.notify_all()  # room in the sync queue
            link.check()
            if direct is not None:
                if direct[0] == gen:  # (else queued for an earlier connection)
                    self._send(link, direct[1], direct[2], inflight)
                    reader.next_seq = max(reader.next_seq, direct[1][-1].seq + 1)
                continue
            items = reader.read(2 * self.batch_bytes)
            for batch, blob in self._batches(items):
                self._send(link, batch, blob, inflight)
            if not items:
                link.ping()
            self._note_acks(link)
            if self._status_dirty:
                self.publish(throttle=True)  # what throttling held back
            if time.time() - self.status.updated_at > 5:
                self.publish()  # heartbeat: `twinsite status` tells a running agent from a dead one

    def _send(self, link: Link, batch: list[Record], blob: bytes, inflight: collections.deque[tuple[int, int]]) -> None:
        """Send one batch, keeping at most WINDOW_BYTES unacknowledged on the wire."""
        while inflight and sum(n for _, n in inflight) > WINDOW_BYTES:
            link.wait_acked(inflight[0][0], timeout=1.0)
            while inflight and inflight[0][0] <= link.acked_seq:
                inflight.popleft()
        before = link.bytes_sent
        link.send_batch(blob, batch[-1].seq, compress=self.rep.compression == "zstd")
        inflight.append((batch[-1].seq, link.bytes_sent - before))
        self._note_acks(link)

    def _batches(self, items: Iterable[tuple[Record, bytes | memoryview]]) -> Iterator[tuple[list[Record], bytes]]:
        """Cut records into batches (about batch_bytes, and where replaying would conflict), each with the
        journal's own encoding of its records: the wire carries the bytes that were made durable."""
        cutter = BatchCutter()
        batch: list[Record] = []
        raws: list[bytes | memoryview] = []
        size = 0
        for rec, raw in items:
            if batch and (cutter.conflicts(rec) or size >= self.batch_bytes):
                yield batch, b"".join(raws)
                batch, raws, size = [], [], 0
                cutter.reset()
            batch.append(rec)
            raws.append(raw)
            cutter.add(rec)
            size += len(raw)
        if batch:
            yield batch, b"".join(raws)

    def _connected_state(self) -> str:
        """What a working link means for the state: back to syncing or replicating after a disconnection."""
        if self.status.state != "disconnected":
            return self.status.state
        return "replicating" if self.synced else "syncing"

    def _note_acks(self, link: Link) -> None:
        if link.diverged:
            # the replica is not what the planner believes: compare everything again, loudly
            self.divergences += link.diverged
            link.diverged = 0
            self.resync_needed.set()
        acked = link.acked_seq
        if acked > self.status.acked_seq:
            with self.jlock:
                self.journal.trim(acked)
            with self.planned:
                done = [s for s in self._ts if s <= acked]
                newest = self._ts[max(done)] if done else None  # the newest change now durable on the standby
                for s in done:
                    del self._ts[s]
                oldest = min(self._ts.values(), default=None)  # the oldest change not yet durable on the standby
            now = time.time()
            lag = max(0.0, now - oldest) if oldest is not None else 0.0
            latency = round(max(0.0, now - newest), 3) if newest else self.status.ack_latency_seconds
            progress = self.planner.progress if self.planner else None
            if progress is not None:
                progress.acked(acked)
            self.publish(
                acked_seq=acked,
                sent_seq=link.sent_seq,
                lag_seconds=round(lag, 3),
                ack_latency_seconds=latency,
                backlog_bytes=self.journal.disk_bytes(),
                bytes_sent=link.bytes_sent,
                state=self._connected_state(),
                throttle=True,
            )
