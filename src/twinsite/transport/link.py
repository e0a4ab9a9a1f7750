"""A connection to one receiver: requests with replies, batches with acknowledgements, and a reader thread.

The reader thread reads every frame the receiver sends. ACKs advance ``acked_seq`` (and wake waiters);
other replies are handed to the one pending request. A broken stream, an ERROR frame or a silent peer
(no frame for ``idle_timeout`` seconds while something is owed) closes the link with a reason.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from twinsite.errors import HostUnreachableError, LinkError, PeerClosed, ProtocolError, SupersededError, TwinsiteError
from twinsite.transport.channels import Channel
from twinsite.transport.frames import Kind, batch_frame, pack, pack_json, parse_json, read_frame


class Link:
    def __init__(
        self,
        channel: Channel,
        *,
        where: str,
        bandwidth_limit: int | Callable[[], int] = 0,
        idle_timeout: float = 15.0,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self.on_event = on_event  # called (from the reader thread) after an acknowledgement or a failure
        self.where = where
        self.acked_seq = -1
        self.ready_seq = -1  # where the receiver said its replica is when the session began (its READY)
        self.sent_seq = -1
        self.bytes_sent = 0
        self.diverged = 0  # records the receiver found nothing to apply to, outside a replay
        self.error: TwinsiteError | None = None
        self.idle_timeout = idle_timeout
        self._limit_of = bandwidth_limit if callable(bandwidth_limit) else (lambda: bandwidth_limit)
        self.bandwidth_limit = self._limit_of()  # (the limit in force: asked again every second)
        self._limit_t = time.monotonic()
        self._bucket_t = time.monotonic()
        self._bucket_bytes = 0.0
        self._replies: queue.Queue[tuple[Kind, bytes | bytearray]] = queue.Queue()
        self._cond = threading.Condition()
        self._last_heard = time.monotonic()
        self._closed = False
        self._wlock = threading.Lock()  # the planner's requests and the shipper's batches share the stream
        self._reader = threading.Thread(target=self._read_loop, name=f"link-{where}", daemon=True)
        self._reader.start()

    # -- reading ------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                kind, _flags, payload = read_frame(self.channel.reader)
                self._last_heard = time.monotonic()
                if kind == Kind.ACK:
                    ack = parse_json(payload)
                    with self._cond:
                        self.acked_seq = max(self.acked_seq, int(ack["seq"]))
                        self.diverged += int(ack.get("diverged", 0))
                        self._cond.notify_all()
                    if self.on_event:
                        self.on_event()
                elif kind == Kind.PONG:
                    continue  # keep-alive answer: hearing it is all that matters
                elif kind == Kind.ERROR:
                    err = parse_json(payload)
                    where, hint = err.get("where") or self.where, err.get("hint")
                    if err.get("type") == "SupersededError":  # refused by role: not a link failure
                        epoch = int(err.get("epoch", 0))
                        self._fail(SupersededError(str(err.get("message")), where=where, hint=hint, epoch=epoch))
                    else:
                        message, remote = f"the receiver failed: {err.get('message')}", err.get("type")
                        self._fail(LinkError(message, where=where, hint=hint, remote=remote))
                    return
                else:
                    self._replies.put((kind, payload))
        except PeerClosed:
            detail = self.channel.stderr_text()
            self._fail(
                HostUnreachableError(
                    f"connection to {self.where} closed" + (f": {detail}" if detail else ""), where=self.where
                )
            )
        except (ProtocolError, OSError, ValueError) as exc:
            self._fail(LinkError(f"connection to {self.where} broke: {exc}", where=self.where))

    def _fail(self, err: TwinsiteError) -> None:
        with self._cond:
            if self.error is None:
                self.error = err
            self._cond.notify_all()
        self._replies.put((Kind.ERROR, b""))
        if self.on_event:
            self.on_event()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    # -- writing ------------------------------------------------------------------------------------------
    def _write(self, *parts: bytes) -> None:
        self.check()
        size = sum(len(p) for p in parts)
        self._throttle(size)
        with self._wlock:
            try:
                for part in parts:
                    self.channel.writer.write(part)
                self.channel.writer.flush()
            except (OSError, ValueError) as exc:
                self._fail(HostUnreachableError(f"cannot send to {self.where}: {exc}", where=self.where))
            self.bytes_sent += size
        self.check()

    def _throttle(self, n: int) -> None:
        """Token bucket: at most ``bandwidth_limit`` bytes per second on average (bursts of one second); the
        limit is asked again every second (a bandwidth schedule changes it)."""
        now = time.monotonic()
        if now - self._limit_t >= 1.0:
            self.bandwidth_limit, self._limit_t = self._limit_of(), now
        if not self.bandwidth_limit:
            return
        self._bucket_bytes = max(0.0, self._bucket_bytes - (now - self._bucket_t) * self.bandwidth_limit)
        self._bucket_t = now
        self._bucket_bytes += n
        excess = self._bucket_bytes - self.bandwidth_limit
        if excess > 0:
            time.sleep(excess / self.bandwidth_limit)

    def request(self, kind: Kind, obj: dict[str, Any], reply: Kind, *, timeout: float = 120.0) -> dict[str, Any]:
        self._write(pack_json(kind, obj))
        try:
            got, payload = self._replies.get(timeout=timeout)
        except queue.Empty as exc:
            raise LinkError(
                f"no answer from {self.where} to {kind.name} within {timeout:.0f} s", where=self.where
            ) from exc
        self.check()
        if got != reply:
            raise LinkError(f"expected {reply.name} from {self.where}, got {got.name}", where=self.where)
        return parse_json(payload)

    def send_batch(self, blob: bytes, last_seq: int, *, compress: bool) -> None:
        self._write(*batch_frame(blob, compress=compress))
        self.sent_seq = last_seq

    def ping(self) -> None:
        self._write(pack(Kind.PING, b"{}"))

    def wait_acked(self, seq: int, *, timeout: float) -> bool:
        """Wait until ``seq`` is acknowledged; False on timeout. A silent peer owing acks fails the link."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked_seq < seq:
                self.check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if time.monotonic() - self._last_heard > self.idle_timeout:
                    silent = f"{self.where} stopped answering for {self.idle_timeout:.0f} s"
                    self._fail(HostUnreachableError(silent, where=self.where))  # the condition's lock is re-entrant
                    self.check()
                self._cond.wait(min(remaining, 0.5))
        return True

    def close(self, *, bye: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if bye and self.error is None:
            try:
                self.channel.writer.write(pack(Kind.BYE, b"{}"))
                self.channel.writer.flush()
            except (OSError, ValueError):
                pass
        self.channel.close()
        self._reader.join(timeout=5)
