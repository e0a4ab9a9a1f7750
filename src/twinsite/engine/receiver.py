"""The standby's end of replication: ``twinsite receive`` reads frames on stdin and answers on stdout.

It applies records strictly in seq order (single writer), makes them durable (syncfs), stores the applied
seq durably, and only then acknowledges. Records at or below the applied seq (a replayed batch) are
ignored; a gap is refused. Every error is sent to the sender as an ERROR frame and ends the session.

The sender is trusted with data, never with policy. The HELLO names the scenario and the root's index, nothing
more: ``twinsite receive`` looks both up in this host's own declaration (its config directory, see :func:`run`)
and refuses a scenario this host does not serve. Where the replica is, where its state lives, whether CDP keeps a
rewind log and how long, and whether points are kept: all from that declaration.

With continuous data protection (the scenario's ``cdp``, as this host declares it) every batch is first appended to the
rewind log with its undo, fsynced, then applied (cdp/log.py). A replica that is rewound (state.rewind)
applies nothing: the receiver refuses the session until ``twinsite rewind --resume``. Each batch is applied
holding ``apply.lock`` (twinsite.locks), which a rewind takes to wait for the batch in progress.

Roles (state.role): a session is taken only from a sender of this host's epoch, and never while this host
is itself the active one; the role is checked again before every batch, so that a switchover that promotes
this host (holding ``apply.lock`` while it writes the role) stops replication into it at a batch boundary. A
position stored under another epoch counts from another switchover's numbering: it is reset, and with it the
rewind log and the bookmarks (set aside as ``bookmarks.epoch-<n>.json``), and the sender compares the trees.

Consistency points (``replication.consistency: points``): a POINT record ends each point. The records up to a
POINT are applied as a group of their own, and once they are durable the point is stored (state.point): the
replica's last complete point. Without CDP the rewind log is kept all the same, for the undo of the open
point only (cdp.rewind.to_point undoes it before the replica is made live), and cut back at every point.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from twinsite import __version__
from twinsite.apply import overlay
from twinsite.apply.applier import Applier
from twinsite.apply.batching import cut
from twinsite.apply.paths import open_regular, parent_fd
from twinsite.cdp.log import RewindLog, make_group
from twinsite.cdp.undo import capture
from twinsite.config.scenario import Cdp, Scenario
from twinsite.config.store import load_dir
from twinsite.engine.spool import Spool
from twinsite.errors import (
    ConfigError,
    LinkError,
    PeerClosed,
    ProtocolError,
    RecoveryError,
    RewindError,
    TwinsiteError,
    UnsafePathError,
)
from twinsite.journal.record import Op, Record, decode
from twinsite.locks import held
from twinsite.state import bookmarks, heard, point, rewind
from twinsite.state import session as sessions
from twinsite.state.applied import AppliedFile, AppliedPosition
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.state.role import check_sender, this_host
from twinsite.sync import manifest
from twinsite.sync.signatures import DIGEST, signatures
from twinsite.transport.frames import MAX_FRAME, Kind, batch_payload, pack_json, parse_json, read_frame, widen_pipe

DRAIN_RECORDS = 2000  # records per durable sub-batch when the spool is applied (like the sender's batches)


def check_root(root: Path) -> Path:
    if not root.is_absolute() or str(root) in ("/", "") or ".." in root.parts:
        raise ConfigError(f"refusing to replicate into {root!s}: an absolute directory other than / is needed")
    return root


ALL_BLOCKS = 1 << 62


def replica_signatures(
    root_fd: int, rel: bytes, block: int, first: int = 0, count: int = ALL_BLOCKS, *, room: int = MAX_FRAME
) -> bytes:
    """The replica's signatures of blocks ``first`` to ``first + count - 1`` of ``rel`` (b"" when it is not a
    regular file), refused before any is computed when in hex they would take more than ``room`` bytes of the
    SIGS frame (a sender asks for a big file's signatures a page at a time: an answer that big is not one
    of ours)."""
    try:
        with parent_fd(root_fd, rel) as (pfd, name):
            fd = open_regular(pfd, name, os.O_RDONLY)  # (never a FIFO: a read of one would wait for a writer)
    except (OSError, UnsafePathError):
        return b""
    try:
        size = os.fstat(fd).st_size
        blocks = max(0, min(-(-size // block), first + count) - first)
        if blocks * DIGEST.size * 2 > room:
            raise ProtocolError(
                f"the signatures of {rel.decode(errors='replace')!r} ({blocks} blocks of {block} bytes) do not fit"
                f" in a SIGS frame of at most {MAX_FRAME} bytes"
            )
        return signatures(fd, min(size, (first + blocks) * block), block, first=first)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Serving:
    """One root of a scenario as this host declares it: the only source of the receiver's policy."""

    scenario: Scenario
    index: int
    state: ReceiverState

    @property
    def root(self) -> Path:
        return Path(self.scenario.roots[self.index].path)


def serving(config_dir: Path, state_dir: Path, hello: dict[str, Any], *, peer: str | None = None) -> Serving:
    """What a HELLO asks for (a scenario's name, a root's index), looked up in this host's own declaration;
    a stream for anything this host does not serve is refused. ``peer``, the host whose key sent it (named by
    the forced command): it must be a host of the scenario, and the HELLO must not say it is another."""
    name, index = hello.get("scenario"), hello.get("root_index")
    if not isinstance(name, str) or not isinstance(index, int) or isinstance(index, bool):
        raise ProtocolError("a HELLO names a scenario (a string) and a root index (an integer)")
    host = this_host()
    try:
        declared = {s.name: s for s in load_dir(config_dir)}
    except ConfigError as exc:  # (a malformed declaration is not a missing one: say which, and where)
        raise ConfigError(
            f"{host} cannot serve scenario {name!r}: the declarations in {config_dir} do not load: {exc}",
            where=host,
            hint="fix them (playbooks/configure.yml declares every scenario on every host it names)",
        ) from exc
    if name not in declared:
        raise ConfigError(
            f"{host} does not serve scenario {name!r}: it is not declared in {config_dir}",
            where=host,
            hint="declare it on every host it names (playbooks/configure.yml); "
            f"declared here: {', '.join(sorted(declared)) or 'none'}",
        )
    s = declared[name]
    hosts = f"{s.master} -> {', '.join(s.replicas)}"
    if host != s.master and host not in s.replicas:
        raise ConfigError(f"{host} is not a host of scenario {name!r} ({hosts})")
    if peer is not None and (hello.get("host") != peer or (peer != s.master and peer not in s.replicas)):
        raise ConfigError(
            f"a stream for scenario {name!r} ({hosts}) with {peer}'s key, saying it comes from {hello.get('host')}",
            where=host,
        )
    sender = hello.get("host")
    if isinstance(sender, str) and sender not in (s.master, *s.replicas):  # (its epoch may re-point this host)
        raise ConfigError(f"a stream for scenario {name!r} ({hosts}) from {sender!r}, not a host of it", where=host)
    if not 0 <= index < len(s.roots):
        raise ConfigError(f"scenario {name!r} has {len(s.roots)} root(s) here; the sender asked for root {index}")
    return Serving(s, index, ScenarioState(state_dir, name).receiver(index))


@dataclass(frozen=True)
class SigsRequest:
    """What a SIGS_REQ asks for: the signatures of blocks ``first`` to ``first + count - 1`` of each path."""

    block: int
    paths: list[bytes]
    first: int
    count: int


def sigs_request(req: dict[str, Any]) -> SigsRequest:
    """A SIGS_REQ's block size (a power of two from 512 B to 16 MiB), paths (hex strings) and range of blocks
    (``first``, default 0; ``count``, default all), or a ProtocolError saying what is wrong with it."""
    block, paths = req.get("block_size"), req.get("paths")
    first, count = req.get("first", 0), req.get("count", ALL_BLOCKS)
    if not isinstance(block, int) or isinstance(block, bool) or block < 512 or block > 16 << 20 or block & (block - 1):
        raise ProtocolError(f"a SIGS_REQ with block_size {block!r}: a power of two from 512 to 16777216 is needed")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ProtocolError("a SIGS_REQ's paths are a list of hex strings")
    for what, n in (("first", first), ("count", count)):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= ALL_BLOCKS:
            raise ProtocolError(f"a SIGS_REQ with {what} {n!r}: a block number from 0 is needed")
    try:
        return SigsRequest(block, [bytes.fromhex(p) for p in paths], first, count)
    except ValueError as exc:
        raise ProtocolError(f"a SIGS_REQ path is not hex: {exc}") from None


class Receiver:
    """Applies one stream into ``root``, keeping its state in ``state``, with the CDP policy ``cdp``,
    consistency points when ``points``, privileged metadata dropped when ``drop_privileged``: all as this host
    declares them (:func:`serving`)."""

    def __init__(
        self,
        root: Path,
        state: ReceiverState,
        inp: BinaryIO,
        out: BinaryIO,
        *,
        cdp: Cdp | None = None,
        points: bool = False,
        drop_privileged: bool = False,
        master: str | None = None,
    ) -> None:
        self.root = check_root(root)
        self.state = state
        state.dir.mkdir(parents=True, exist_ok=True)
        self.inp, self.out = inp, out
        self.applied = AppliedFile(state.applied)
        self.applier = Applier(self.root, drop_privileged=drop_privileged)
        self.batches = 0
        self.rewind_log: RewindLog | None = None
        self.cdp = cdp or Cdp()
        self.points = points  # consistency points are kept: the open point's undo even without CDP
        self.last_point = point.read(state.point)
        self._pruned_at = 0.0
        self.epoch = 0
        self.sender_host: str | None = None
        self.session = 0  # this session's number (state.session), from its HELLO
        self.host = this_host()
        self.master = master  # the declared master: with it, a standby that missed a switchover follows (state.role)
        self.spool = Spool(state)
        self._heard_at = 0.0
        self.listing: manifest.Listing | None = None  # the replica's listing being sent, a page at a time

    def _setup_cdp(self, applied_seq: int) -> int:
        """Open the rewind log when the scenario asks for it; returns the applied seq.

        A group logged but not yet acknowledged (a crash between the log's fsync and the applied seq), or an
        open point undone before the replica was made live (cdp.rewind.to_point), is applied again here from
        the log: its records are durable and were acknowledged, and the sender, whatever it resends, numbers
        from the seq this returns (while a test's spool is on, once the spool is applied: drain_spool). A log
        that does not reach the applied seq (CDP was off meanwhile) cannot
        rewind from here: it is removed, as it is when CDP is turned off."""
        log_dir = self.state.rewind_log
        if not self.cdp.enabled and not self.points:
            shutil.rmtree(log_dir, ignore_errors=True)
            return applied_seq
        max_size = self.cdp.max_size if self.cdp.enabled else 16 << 20
        segment = max(1 << 20, min(64 << 20, max_size // 8))  # the cap then holds within an eighth
        log = RewindLog(log_dir, segment_size=segment)
        self.rewind_log = log
        if log.last_seq > applied_seq:
            if self.spool.spooling:  # a test runs on the point it was undone to: forward once it ends
                return log.last_seq
            return self._redo(applied_seq)
        if log.last_seq and log.last_seq < applied_seq:
            log.close()
            shutil.rmtree(log_dir)
            self.rewind_log = RewindLog(log_dir, segment_size=segment)
        return applied_seq

    def _ahead(self, applied_seq: int) -> bool:
        """Whether the rewind log holds records above the replica's position (see _setup_cdp)."""
        return self.rewind_log is not None and self.rewind_log.last_seq > applied_seq

    def _redo(self, applied_seq: int) -> int:
        """Apply again, in order, what the rewind log holds above ``applied_seq``; the new applied seq."""
        log = self.rewind_log
        if log is None or log.last_seq <= applied_seq:
            return applied_seq
        self.applier.ensure_current()  # (a session begun during a test holds the overlay: apply below it)
        ts = 0.0
        for group in reversed(list(log.newest_first(above=applied_seq))):
            for rec in group.forward_records():
                if rec.seq > applied_seq:
                    self.applier.apply(rec)
                    ts = rec.ts
        self.applier.commit()
        self.applied.write(log.last_seq, ts, self.epoch)
        return log.last_seq

    def send(self, kind: Kind, obj: dict[str, Any]) -> None:
        self.out.write(pack_json(kind, obj))
        self.out.flush()

    def serve(self, first: tuple[Kind, int, bytearray] | None = None) -> None:
        """Serve frames until BYE or the end of the stream; ``first``, a frame already read (run's HELLO)."""
        applied_seq = self.applied.read()
        for kind, flags, payload in self._frames(first):
            if kind == Kind.HELLO:
                applied_seq = self._hello(parse_json(payload))
                self.send(Kind.READY, {"applied_seq": applied_seq, "version": __version__})
            elif kind == Kind.MANIFEST_REQ:
                self._manifest_page(parse_json(payload))
            elif kind == Kind.SIGS_REQ:
                req = sigs_request(parse_json(payload))
                self._refuse_if_spooled("compared block by block")
                self._catch_up()
                sigs: dict[str, str] = {}
                room = MAX_FRAME
                for p in req.paths:
                    sigs[p.hex()] = replica_signatures(
                        self.applier.root_fd, p, req.block, req.first, req.count, room=room
                    ).hex()
                    room -= len(sigs[p.hex()]) + 2 * len(p) + 8  # (a bound on what JSON adds: quotes, colon, comma)
                self.send(Kind.SIGS, {"sigs": sigs})
            elif kind == Kind.BATCH:
                self.listing = None  # (a listing is of the replica as it was: asking for more of it is an error)
                skipped = self.applier.stats.skipped_missing - self.applier.stats.refused_parents
                refused = self.applier.stats.refused_parents
                with held(self.state.apply_lock):
                    self._may_apply()
                    applied_seq = self._batch(batch_payload(flags, payload), applied_seq)
                # The first batch of a session may replay records already applied before a crash: skipping
                # them is expected. Later, a record whose file is missing means the replica is not what the
                # sender believes: say so, so that the sender compares everything again (a verified resync).
                stats = self.applier.stats
                diverged = stats.skipped_missing - stats.refused_parents - skipped if self.batches else 0
                diverged += stats.refused_parents - refused  # a file or link where a directory was: never a replay
                self.batches += 1
                self._heard()
                self.send(Kind.ACK, {"seq": applied_seq, "diverged": diverged})
            elif kind == Kind.PING:
                self.spool.end_stale_hold()  # (a verify's hold whose process was killed)
                if not self.spool.spooling and (self.spool.held() or self._ahead(self.applied.read())):
                    # a test ended while nothing was sent
                    with held(self.state.apply_lock):
                        self._may_apply()
                        applied_seq = max(applied_seq, self.drain_spool())
                self._heard()
                self.send(Kind.PONG, {"applied_seq": applied_seq})
            elif kind == Kind.BYE:
                return
            else:
                raise ProtocolError(f"unexpected {kind.name} frame")

    def _manifest_page(self, req: dict[str, Any]) -> None:
        """A page of the replica's listing: the first of a new one, or (``{"more": true}``) the next of the
        listing begun. Nothing is applied between the pages of a listing: a sender lists, then plans."""
        if not req.get("more"):
            self._refuse_if_spooled("listed")
            self._catch_up()
            self.listing = manifest.Listing(self.root)
        elif self.listing is None:
            raise ProtocolError("a MANIFEST_REQ for more of a listing, with none begun")
        entries, more = self.listing.page()
        if not more:
            self.listing = None
        self.send(Kind.MANIFEST, {"entries": entries, "more": more})

    def _frames(self, first: tuple[Kind, int, bytearray] | None) -> Iterator[tuple[Kind, int, bytearray]]:
        if first is not None:
            yield first
        while True:
            try:
                yield read_frame(self.inp)
            except PeerClosed:
                return

    def _hello(self, hello: dict[str, Any]) -> int:
        """Check the sender and return the position to resume from (applied, or spooled). Nothing it says but
        its epoch and host (checked against the role, state.role) changes what happens here."""
        if str(hello.get("root")) != str(self.root):
            raise ConfigError(
                f"the sender replicates {hello.get('root')}, this host declares {self.root} for that root",
                where=str(self.root),
                hint="the scenario differs between its hosts: declare it the same on all (playbooks/configure.yml)",
            )
        self._refuse_if_rewound()
        with held(self.state.apply_lock):
            self.sender_host, epoch = hello.get("host"), hello.get("epoch", 0)
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise ProtocolError(f"a HELLO with epoch {epoch!r}: a switchover count is needed")
            if self.sender_host is not None and not isinstance(self.sender_host, str):
                raise ProtocolError(f"a HELLO with host {self.sender_host!r}: a host name is needed")
            self.epoch = check_sender(self.state.role, self.host, epoch, self.sender_host, master=self.master)
            self.session = sessions.begin(self.state.session)  # (an older session applies nothing from now on)
            applied_seq = self._follow_epoch(self.applied.position())
            applied_seq = self._setup_cdp(applied_seq)
            if not self.spool.spooling:
                applied_seq = self.drain_spool()  # (a test ended while no sender was connected)
            return max(applied_seq, self.spool.last_seq)  # spooled counts as received

    def _refuse_if_spooled(self, what: str) -> None:
        """While the spool holds records the replica is behind what it acknowledged: comparing it now would
        plan against a stale picture (and while a test runs, its overlay is what the root's path shows). The sender
        waits (its journal keeps the changes) until the spool is applied."""
        if self.spool.spooling or self.spool.held():
            raise RecoveryError(
                f"the replica cannot be {what} while its spool holds records (an assured-recovery test runs)",
                where=str(self.root),
                hint="it is taken again once the test ends and the spool is applied",
            )

    def _catch_up(self) -> None:
        """The replica as it was acknowledged, before it is listed or compared: what the rewind log holds above
        its position (an open point undone for a test that has ended) is applied again first. Listed as it is,
        its files could hold bytes older than the acknowledged ones under the same size and time, and a
        comparison would plan against them."""
        if self._ahead(self.applied.read()):
            with held(self.state.apply_lock):
                self._may_apply()
                self.drain_spool()

    def _heard(self) -> None:
        """Note (at most once a second) that the sender was heard: an unplanned switchover's RPO runs from
        the last change applied to the last time the old active host was heard, not to when it was missed."""
        now = time.time()
        if now - self._heard_at >= 1.0:
            self._heard_at = now
            heard.write(self.state.heard, now)

    def _follow_epoch(self, pos: AppliedPosition) -> int:
        """The applied seq to resume from: the stored one, or 0 when it was stored under another epoch (what a
        spool of that epoch holds was acknowledged: it is applied first, in that epoch's numbering)."""
        if pos.epoch == self.epoch:
            return pos.seq
        if self.spool.spooling:
            raise RecoveryError(
                f"a sender of epoch {self.epoch} while an assured-recovery test runs here (epoch {pos.epoch})",
                where=str(self.root),
                hint="it is taken once the test ends (a switchover to this host ends it first)",
            )
        if self.spool.held():
            now, self.epoch = self.epoch, pos.epoch
            self.spool.stop()
            self.drain_spool()
            self.epoch = now
        shutil.rmtree(self.state.rewind_log, ignore_errors=True)  # its seqs are another epoch's numbering
        point.clear(self.state.point)  # (so is its last point's: none in this epoch yet)
        self.last_point = None
        bookmarks.set_aside(self.state.bookmarks, self.state.old_bookmarks(pos.epoch))
        self.applied.write(0, 0.0, self.epoch)
        return 0

    def _may_apply(self) -> None:
        """Before this session writes to the replica (the caller holds the apply lock): the replica is not
        rewound, this session is the newest (state.session), and this host still takes this sender's stream.
        A switchover may have promoted it since the session began (a session of the old active host outlives
        a cut link and resumes when it heals): what it would apply, or apply again, is not the live data's."""
        self._refuse_if_rewound()
        check_sender(self.state.role, self.host, self.epoch, self.sender_host)
        if self.session and sessions.read(self.state.session) != self.session:
            raise LinkError(
                "a newer session of this root began (its sender reconnected): this one applies nothing more",
                where=str(self.root),
            )

    def _refuse_if_rewound(self) -> None:
        pos = rewind.read(self.state.rewind)
        if pos is not None:
            raise RewindError(
                f"the replica is rewound to seq {pos.at} (replication stopped at {pos.head}); "
                "nothing is applied until it is brought forward",
                where=str(self.root),
                hint="twinsite rewind SCENARIO --resume (or switch over to the rewound data)",
            )

    def _batch(self, blob: bytes | bytearray, applied_seq: int) -> int:
        """A received batch: spooled while the spool is on, else applied (after what the spool holds)."""
        new = self._new_records(blob, applied_seq)
        if not new:
            return applied_seq
        if self.spool.spooling:
            return self.spool.append(new)  # durable: acknowledged, not applied
        self.drain_spool()
        return self._apply(new)

    def drain_spool(self) -> int:
        """Apply what the spool holds, in order and in replay-safe sub-batches, then empty it (call it holding
        the apply lock). Returns the applied seq."""
        applied = self.applied.read()
        if not self.spool.held() and not self._ahead(applied):
            return applied
        if overlay.mounted(self.root):
            raise RecoveryError(
                "a test's overlay is still mounted on the replica: the spool is applied once it is removed",
                where=str(self.root),
                hint=f"the test's cleanup removes it (twinsite recover-test SCENARIO --cleanup), or umount {self.root}",
            )
        applied = self._redo(applied)  # (an open point undone for the test first)
        for chunk in self.spool.chunks(applied):
            for sub in cut(chunk, DRAIN_RECORDS):
                applied = self._apply(sub)
        self.spool.clear()
        return applied

    def _new_records(self, blob: bytes | bytearray, applied_seq: int) -> list[Record]:
        pos, last = 0, applied_seq
        new: list[Record] = []
        while pos < len(blob):
            got = decode(blob, pos)
            if got is None:
                raise ProtocolError("batch ends inside a record")
            rec, pos = got
            if rec.seq <= last:
                continue  # already applied: a replayed batch
            if rec.seq != last + 1:
                raise ProtocolError(f"sequence gap: applied up to {last}, got {rec.seq}")
            new.append(rec)
            last = rec.seq
        return new

    def _apply(self, new: list[Record]) -> int:
        """Apply records (with their undo first, under CDP or with points), durably, then store the position;
        a point's last records (up to its POINT) apart from what follows, and then the point."""
        start = 0
        for i, rec in enumerate(new):
            if rec.op == Op.POINT:
                self._apply_run(new[start : i + 1])
                self.last_point = point.Point(id=rec.offset, seq=rec.seq, ts=rec.ts, epoch=self.epoch)
                point.write(self.state.point, self.last_point)  # (after the position: never ahead of it)
                if self.rewind_log is not None and not self.cdp.enabled:
                    self.rewind_log.prune(max_age=0, max_size=None, keep_above=rec.seq)  # only the open point
                start = i + 1
        if start < len(new):
            self._apply_run(new[start:])
        return new[-1].seq

    def _apply_run(self, new: list[Record]) -> int:
        last = new[-1].seq
        if self.spool.spooling:  # (never: every caller looks first; this is what must never happen)
            raise RecoveryError("nothing is applied while a test's spool is on", where=str(self.root))
        self.applier.ensure_current()  # (opened while a test's overlay was mounted: the replica is below it)
        log = self.rewind_log
        if log is not None:
            log.append(make_group(new, capture(self.applier.root_fd, new, lazy=True)))  # fsynced before applying
        for rec in new:
            self.applier.apply(rec)
        self.applier.commit()  # data and names durable ...
        self.applied.write(last, new[-1].ts, self.epoch)  # ... before the position that acknowledges them
        if log is not None and self.cdp.enabled:
            self._prune(log)
        return last

    def _prune(self, log: RewindLog) -> None:
        """Retention: every 10 s, and whenever the log is past its cap."""
        max_size = self.cdp.max_size
        if time.monotonic() - self._pruned_at > 10 or log.disk_bytes() > max_size:
            self._pruned_at = time.monotonic()
            keep = self.last_point.seq if self.points and self.last_point is not None else None
            log.prune(max_age=self.cdp.retention, max_size=max_size, keep_above=keep)

    def close(self) -> None:
        self.spool.close()
        self.applier.close()
        self.applied.close()
        if self.rewind_log is not None:
            self.rewind_log.close()


def run(config_dir: Path, state_dir: Path, *, peer: str | None = None) -> int:
    """Entry point of ``twinsite receive``: a :func:`session` on stdin and stdout."""
    out = sys.stdout.buffer
    inp = sys.stdin.buffer
    widen_pipe(inp)  # (the batches' way from sshd)
    sys.stdout = sys.stderr  # nothing but frames may ever reach the sender
    return session(config_dir, state_dir, inp, out, peer=peer)


def session(config_dir: Path, state_dir: Path, inp: BinaryIO, out: BinaryIO, *, peer: str | None = None) -> int:
    """One sender's session: the first frame, a HELLO, names a scenario and a root, looked up in ``config_dir``
    (this host's declaration, :func:`serving`, for ``peer``); then serve until the sender says BYE or the
    stream ends. Whatever goes wrong ends it with an ERROR frame saying what; returns the exit code."""
    receiver = None
    root: Path | str = "the stream"
    try:
        try:
            first = read_frame(inp)
        except PeerClosed:
            return 0
        if first[0] != Kind.HELLO:
            raise ProtocolError(f"a session begins with a HELLO, not {first[0].name}")
        ours = serving(config_dir, state_dir, parse_json(first[2]), peer=peer)
        root = ours.root
        receiver = Receiver(root, ours.state, inp, out, **policy(ours.scenario))
        receiver.serve(first)
        return 0
    except TwinsiteError as exc:
        out.write(pack_json(Kind.ERROR, exc.to_json()))
        out.flush()
        return exc.exit_code
    except OSError as exc:
        about = f" ({os.fsdecode(exc.filename)})" if exc.filename else ""
        err = TwinsiteError(f"receiver I/O error: {exc.strerror}{about}", where=str(root))
        out.write(pack_json(Kind.ERROR, err.to_json()))
        out.flush()
        return 2
    except Exception as exc:  # a defect, not the peer's input: said all the same, and the traceback logged
        traceback.print_exc()
        err = TwinsiteError(f"receiver failed: {type(exc).__name__}: {exc}", where=str(root))
        out.write(pack_json(Kind.ERROR, err.to_json()))
        out.flush()
        return 70
    finally:
        if receiver is not None:
            receiver.close()


def policy(s: Scenario) -> dict[str, Any]:
    """A Receiver's policy keywords, from this host's declaration of the scenario."""
    rep = s.replication
    return {
        "cdp": s.cdp,
        "points": rep.consistency == "points",
        "drop_privileged": rep.privileged_metadata == "drop",
        "master": s.master,
    }


def apply_here(root: Path, state: ReceiverState, s: Scenario) -> int:
    """Apply what a spool holds without a sender: a switchover promoting this host, from which no receiver
    will be started again. Under the apply lock, with the rewind log as the scenario has it. Returns the
    applied seq."""
    import io

    with held(state.apply_lock):
        receiver = Receiver(root, state, io.BytesIO(), io.BytesIO(), **policy(s))
        try:
            receiver.spool.stop()
            receiver.epoch = receiver.applied.position().epoch
            receiver._setup_cdp(receiver.applied.read())
            return receiver.drain_spool()
        finally:
            receiver.close()
