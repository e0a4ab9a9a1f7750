"""The shipping half of a sender (engine.sender): keep a connection to ``twinsite receive`` on the standby,
send every journal record above the acknowledged seq (and the sync's batches handed over directly), trim the
journal as acknowledgements arrive, and publish the sender's status (state.sender_status).

A cut link is retried with backoff and jitter and resumes from the last acknowledged seq. A standby that
refuses this host's epoch (state.role) is reported loudly, once, as a split brain or a standby that has not
rejoined, and asked again calmly. :class:`Shipper` holds what both halves share; the planning half, in
:class:`~twinsite.engine.sender.Sender`, sets it up.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any

from twinsite.alerts import Alert
from twinsite.alerts.dispatch import Alerter
from twinsite.apply.batching import wire_batches
from twinsite.config.scenario import Replication, Root, Scenario
from twinsite.errors import SupersededError, TwinsiteError
from twinsite.journal.record import Record
from twinsite.journal.segments import Journal
from twinsite.state import sender_status
from twinsite.state.layout import SenderState
from twinsite.state.role import this_host
from twinsite.state.sender_status import SenderStatus
from twinsite.sync.planner import Planner
from twinsite.transport.channels import Endpoint, open_channel
from twinsite.transport.frames import Kind
from twinsite.transport.link import Link

log = logging.getLogger(__name__)

WINDOW_BYTES = 64 << 20  # unacknowledged bytes on the wire
STATUS_EVERY = 0.2  # at most this often is status.json rewritten for acknowledgements


class Shipper:
    """What the planning and the shipping threads of one sender share, and the shipping thread itself."""

    scenario: Scenario
    root: Root
    rep: Replication
    endpoint: Endpoint
    place: SenderState
    journal: Journal
    status: SenderStatus
    batch_bytes: int
    epoch: int
    alerter: Alerter | None
    stop_event: threading.Event
    jlock: threading.Lock  # journal appends vs reads/trims
    planned: threading.Condition  # the shipper waits on it: new records, an acknowledgement, a failure
    link: Link | None
    link_ready: threading.Event
    link_gen: int  # one per connection: sync batches queued for an earlier one are dropped
    direct: collections.deque[tuple[int, list[Record], bytes]]  # sync batches: (gen, batch, blob)
    synced: bool
    planner: Planner | None
    resync_needed: threading.Event
    divergences: int
    _status_lock: threading.Lock
    _status_dirty: bool  # changes not yet written (throttled)
    _seq: int  # the last seq the planner gave out
    _ts: dict[int, float]  # seq -> source time of the newest unacknowledged batches (for lag)
    _points: dict[int, tuple[int, float]]  # seq of a POINT not yet acknowledged -> (its id, its snapshot's time)

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
            self.status.unsettled = len(self.planner.unsettled) if self.planner else 0
            progress = self.planner.progress if self.planner else None
            if progress is not None:
                self.status.sync = progress.as_dict()
            now = time.time()
            if throttle and now - self.status.updated_at < STATUS_EVERY:
                self._status_dirty = True
                return
            self.status.updated_at = now
            self._status_dirty = False
            sender_status.write(self.place.status, self.status)

    def error(self, exc: BaseException, state: str) -> None:
        self.publish(state=state, last_error=str(exc), last_error_at=time.time())

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
                    bandwidth_limit=self.rep.bandwidth_now,
                    on_event=self._wake_shipper,
                )
                hello = {  # (what the standby does with it is its own declaration's: engine.receiver)
                    "scenario": self.scenario.name,
                    "root_index": self.scenario.roots.index(self.root),
                    "root": self.root.path,
                    "epoch": self.epoch,
                    "host": this_host(),
                }
                ready = link.request(Kind.HELLO, hello, Kind.READY, timeout=30)
                applied = int(ready["applied_seq"])
                link.acked_seq = link.ready_seq = applied
                with self.planned:
                    self.link_gen += 1
                    self.direct.clear()  # queued for the previous connection: the planner compares again
                    self.link = link
                    self.planned.notify_all()
                failing = self.status.failures > 0  # (the planner's syncs fail: connecting is not enough)
                self.publish(
                    connects=self.status.connects + 1,
                    acked_seq=applied,
                    last_error=self.status.last_error if failing else None,
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
                self.error(exc, "degraded" if self.status.failures else "disconnected")
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
            for batch, blob in wire_batches(items, self.batch_bytes):
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

    def _connected_state(self) -> str:
        """What a working link means for the state: back to syncing or replicating after a disconnection."""
        if self.status.failures:
            return "degraded"
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
                reached = [s for s in self._points if s <= acked]
                point = self._points[max(reached)] if reached else None  # the newest point now complete there
                for s in reached:
                    del self._points[s]
            now = time.time()
            lag = max(0.0, now - oldest) if oldest is not None else 0.0
            latency = round(max(0.0, now - newest), 3) if newest else self.status.ack_latency_seconds
            progress = self.planner.progress if self.planner else None
            if progress is not None:
                progress.acked(acked)
            reached_point = {"point_id": point[0], "point_ts": point[1]} if point is not None else {}
            self.publish(
                **reached_point,
                acked_seq=acked,
                sent_seq=link.sent_seq,
                lag_seconds=round(lag, 3),
                ack_latency_seconds=latency,
                backlog_bytes=self.journal.disk_bytes(),
                bytes_sent=link.bytes_sent,
                state=self._connected_state(),
                throttle=True,
            )
