"""The receiver over a real byte stream, in one process: the frames a sender sends (a hello, batches of
records), a :class:`twinsite.engine.receiver.Receiver` serving them from memory, and every frame it answered,
decoded. And seeded workloads of batches, with the tree of a replica that applied them directly."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from twinsite.config.scenario import Cdp
from twinsite.engine.receiver import Receiver
from twinsite.journal.record import Meta, Op, Record
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.transport.frames import Kind, pack_batch, pack_json, read_frame
from twinsite.tree import Entry, entries

Answers = list[tuple[Kind, dict[str, object]]]


def recs(first: int, n: int) -> list[Record]:
    """Creates of f<first>... f<first+n-1>, at seq first... first+n-1."""
    out = []
    for i in range(first, first + n):
        out.append(Record(seq=i, ts=0.0, op=Op.CREATE, path=f"f{i}".encode(), meta=Meta(0o644, 0, 0, 0)))
    return out


def blob(records: list[Record]) -> bytes:
    """The records as a batch frame carries them."""
    return b"".join(r.encode() for r in records)


def hello(root: Path, scenario: str = "t", **more: object) -> bytes:
    """A sender's HELLO for ``root``, the scenario's first root (and whatever else it says: its epoch and host)."""
    return pack_json(Kind.HELLO, {"scenario": scenario, "root_index": 0, "root": str(root), **more})


def frames(root: Path, batches: list[list[Record]]) -> list[bytes]:
    """A session: the hello, then each batch (uncompressed)."""
    return [hello(root)] + [pack_batch(blob(b), compress=False) for b in batches]


def answers_in(out: io.BytesIO) -> Answers:
    """Every frame the receiver wrote, decoded."""
    out.seek(0)
    answers = []
    while out.tell() < len(out.getvalue()):
        kind, _f, payload = read_frame(out)
        answers.append((kind, json.loads(payload)))
    return answers


def serve(
    root: Path,
    state: ReceiverState,
    sent: list[bytes],
    *,
    raising: bool = False,
    stream: Callable[[bytes], BinaryIO] = io.BytesIO,
    cdp: Cdp | None = None,
    points: bool = False,
) -> Answers:
    """A receiver of ``root`` (its state in ``state``, this host's ``cdp`` and ``points``) serves the frames
    ``sent``, read through ``stream``; its answers. An error ends the session as `twinsite receive` ends it,
    with an ERROR frame, or with ``raising`` is raised."""
    rx = Receiver(root, state, stream(b"".join(sent)), out := io.BytesIO(), cdp=cdp, points=points)
    try:
        rx.serve()
    except Exception as exc:  # (run() sends these as an ERROR frame)
        if raising:
            raise
        out.write(pack_json(Kind.ERROR, {"type": type(exc).__name__, "message": str(exc)}))
    finally:
        rx.close()
    return answers_in(out)


def workload(seed: int, n: int) -> list[list[Record]]:
    """Batches of creates, writes, renames and deletes (each batch replay-safe: one namespace op per name)."""
    rng = random.Random(seed)
    seq, batches, names = 0, [], []
    for b in range(n):
        batch = []
        for _ in range(rng.randint(1, 6)):
            seq += 1
            if names and rng.random() < 0.5:
                name = rng.choice(names)
                data = rng.randbytes(rng.randint(1, 3000))
                batch.append(
                    Record(seq=seq, ts=float(seq), op=Op.WRITE, path=name, offset=rng.randint(0, 100), data=data)
                )
            else:
                name = f"f{b}-{seq}".encode()
                names.append(name)
                batch.append(Record(seq=seq, ts=float(seq), op=Op.CREATE, path=name, meta=Meta(0o644, 0, 0, 0)))
        batches.append(batch)
    return batches


def tree(root: Path) -> dict[bytes, Entry]:
    """The tree as the digest sees it, without modification times (writes here stamp the time of applying)."""
    return {k: dataclasses.replace(e, mtime_ns=0) for k, e in entries(root).items()}


def reference(tmp_path: Path, batches: list[list[Record]]) -> dict[bytes, Entry]:
    """The tree of a replica (under ``tmp_path``) that applied every batch directly."""
    root = tmp_path / "reference"
    serve(root, ReceiverState(tmp_path / "reference-state"), frames(root, batches))
    return tree(root)


TWINSITE = str(Path(sys.executable).parent / "twinsite")  # the installed command, as the forced command runs it
SCENARIO = """\
name: app
master: prod1
replicas: [dr1]
roots:
  - path: {root}
cdp: {{enabled: {cdp}, retention: 1h}}
replication: {{consistency: {consistency}{more}}}
"""


def declare(config: Path, root: Path, *, cdp: bool = True, consistency: str = "file", more: str = "") -> None:
    """Scenario `app` (prod1 to dr1, one root: ``root``) in the config directory ``config``, as dr1 declares it;
    ``more``: more keys of its replication section (", privileged_metadata: keep")."""
    config.mkdir(exist_ok=True)
    text = SCENARIO.format(root=root, cdp=str(cdp).lower(), consistency=consistency, more=more)
    (config / "app.yml").write_text(text)


class Standby:
    """`twinsite receive` as a process, as the forced command runs it: dr1 with the scenario `app` declared
    in its config directory, and its state directory."""

    def __init__(self, tmp: Path, replication: str = "") -> None:
        """``replication``: more keys of its replication section (", privileged_metadata: keep")."""
        self.config, self.state_dir, self.root = tmp / "etc", tmp / "state", tmp / "srv-app"
        declare(self.config, self.root, more=replication)
        self.recv = ScenarioState(self.state_dir, "app").receiver(0)

    def receive(self, *frames: bytes, args: tuple[str, ...] = (), host: str = "dr1") -> Answers:
        """`twinsite receive` on dr1, fed ``frames``; every frame it answered (the process: ``self.last``)."""
        argv = [TWINSITE, "receive", "--config-dir", str(self.config)]
        argv += ["--state-dir", str(self.state_dir), *args]
        env = {**os.environ, "TWINSITE_HOST": host}
        self.last = proc = subprocess.run(argv, input=b"".join(frames), capture_output=True, env=env, timeout=60)
        assert proc.returncode != 0 or not proc.stderr, proc.stderr
        return answers_in(io.BytesIO(proc.stdout))


class Piped:
    """A `twinsite receive` process of ``standby`` as a transport channel (transport.channels.Channel): a real
    session's frames through pipes instead of ssh (the lab's tests go through ssh). Its peak memory is read
    from /proc while it runs."""

    def __init__(self, standby: Standby, host: str = "dr1") -> None:
        argv = [TWINSITE, "receive", "--config-dir", str(standby.config), "--state-dir", str(standby.state_dir)]
        self.err = (standby.state_dir.parent / "receive.err").open("w+b")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, bufsize=0,
            env={**os.environ, "TWINSITE_HOST": host},
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.writer: BinaryIO = self.proc.stdin  # type: ignore[assignment]
        self.reader: BinaryIO = self.proc.stdout  # type: ignore[assignment]

    def peak_rss(self) -> int:
        """The process's high-water mark of resident memory so far, in bytes."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) * 1024

    def stderr_text(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace").strip()

    def close(self) -> None:
        self.writer.close()
        self.proc.wait(timeout=60)
        self.reader.close()
        self.err.close()
