"""Typed, frozen scenario values, built only from documents the schema has accepted."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from twinsite.config.bandwidth import BandwidthSchedule, limit_now
from twinsite.config.bandwidth import parse as parse_bandwidth
from twinsite.config.units import parse_duration as parse_duration  # (found here by the rest of the library)
from twinsite.config.units import parse_size as parse_size

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def _read(
    key: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    *,
    of: type[Any] | None = None,
    many: bool = False,
) -> dict[str, Any]:
    """A field's metadata: where :func:`build` reads it in its section of the document (a dotted ``key``, by
    default the field's name) and how it converts it: ``parse``, or into the dataclass ``of`` (a list of them
    with ``many``). What the library reads of a scenario file is exactly these keys (:func:`keys_read`)."""
    return {"key": key, "parse": parse, "of": of, "many": many}


def _dicts(items: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(dict(i) for i in items)


#: The directory at the top of a root that holds its consistency points (capture.snapshots): a btrfs
#: subvolume of its own, so never part of the root's snapshots, and never replicated.
POINT_STORE = ".twinsite-points"


def reserved(rel: str) -> bool:
    """Whether a root-relative path is twinsite's own (the point store or something in it)."""
    return rel == POINT_STORE or rel.startswith(POINT_STORE + "/")


@dataclass(frozen=True)
class Root:
    path: str = field(metadata=_read(parse=lambda p: p.rstrip("/") or "/"))
    include: tuple[str, ...] = field(default=(), metadata=_read(parse=tuple))
    exclude: tuple[str, ...] = field(default=(), metadata=_read(parse=tuple))

    def selects(self, rel: str) -> bool:
        """Whether the root-relative path ``rel`` is replicated (include first, then exclude; never the point
        store)."""
        if reserved(rel):
            return False
        if self.include and not any(fnmatch.fnmatchcase(rel, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(rel, p) for p in self.exclude)

    def selects_bytes(self, rel: bytes) -> bool:
        """:meth:`selects` for a path as the file system gives it (bytes; undecodable bytes kept as escapes)."""
        return self.selects(os.fsdecode(rel))


@dataclass(frozen=True)
class Replication:
    mode: str = "continuous"
    consistency: str = "points"  # points | file (docs/replication.md)
    point_interval: float = field(default=1.0, metadata=_read(parse=float))
    privileged_metadata: str = "drop"  # drop | keep: setuid/setgid bits of files, capabilities, trusted.* xattrs
    accept_torn_database_copies: bool = False
    interval: float = field(default=60.0, metadata=_read(parse=float))
    sync_method: str = "metadata"
    compression: str = "zstd"
    bandwidth_limit: int = field(default=0, metadata=_read(parse=parse_size))
    bandwidth_schedule: BandwidthSchedule | None = field(default=None, metadata=_read(parse=parse_bandwidth))
    transport: str = "openssh"
    ssh_options: tuple[tuple[str, str], ...] = field(
        default=(), metadata=_read(parse=lambda o: tuple(sorted((str(k), str(v)) for k, v in o.items())))
    )
    known_hosts: str = "~/.ssh/known_hosts"
    batch_ms: int = 20
    block_size: int = 4096
    remote_twinsite: str = "/opt/twinsite/bin/twinsite"
    rescan_interval: float = field(default=600.0, metadata=_read(parse=float))

    def bandwidth_now(self) -> int:
        """The wire's rate limit in force now (bytes per second, 0: none): the schedule's, or bandwidth_limit."""
        return limit_now(self.bandwidth_limit, self.bandwidth_schedule)

    def bandwidth_lowest(self) -> int:
        """The lowest limit there can be (0: none ever): what the sender sizes its batches for."""
        limits = (
            [self.bandwidth_limit, *(w.limit for w in self.bandwidth_schedule.windows)]
            if self.bandwidth_schedule
            else [self.bandwidth_limit]
        )
        return min((x for x in limits if x), default=0)


@dataclass(frozen=True)
class Journal:
    max_size: int = field(default=2**30, metadata=_read(parse=parse_size))
    segment_size: int = field(default=64 * 2**20, metadata=_read(parse=parse_size))


@dataclass(frozen=True)
class Cdp:
    enabled: bool = False
    retention: float = field(default=86400.0, metadata=_read(parse=parse_duration))
    max_size: int = field(default=10 * 2**30, metadata=_read(parse=parse_size))


@dataclass(frozen=True)
class Monitoring:
    enabled: bool = True
    interval: float = field(default=5.0, metadata=_read(parse=parse_duration))
    misses: int = 3
    timeout: float = field(default=5.0, metadata=_read(parse=parse_duration))
    max_lag: float = field(default=300.0, metadata=_read(parse=parse_duration))


@dataclass(frozen=True)
class Switchover:
    """How a switchover of the scenario goes (docs/switchover.md)."""

    mode: str = "manual"  # manual | automatic
    # hosts asked whether they still reach the active host, and what they try to connect to there
    witness: tuple[str, ...] = field(default=(), metadata=_read("witness.hosts", tuple))
    witness_port: int = field(default=22, metadata=_read("witness.port", int))
    fence: dict[str, Any] | None = field(default=None, hash=False, metadata=_read(parse=dict))  # {type: ...}
    checks: str = "full"  # full | quick: the application checks after the start
    drain_timeout: float = field(default=300.0, metadata=_read(parse=parse_duration))
    # users' hosts that must reach the application after the redirect
    verify_from: tuple[str, ...] = field(default=(), metadata=_read("verify.from", tuple))
    verify_port: int | None = field(default=None, metadata=_read("verify.port", int))
    verify_timeout: float = field(default=60.0, metadata=_read("verify.timeout", parse_duration))
    resync_timeout: float = field(default=3600.0, metadata=_read(parse=parse_duration))


@dataclass(frozen=True)
class AssuredRecovery:
    """Tests of the replica on the standby (docs/assured-recovery.md)."""

    schedule: str | None = None  # a cron expression (twinsite.config.cron), run by the agent
    # most disk the spool may use during a test; past it the test ends
    spool_max_size: int = field(default=10 * 2**30, metadata=_read("spool.max_size", parse_size))
    # scripts run besides the plugin's
    checks: tuple[dict[str, Any], ...] = field(default=(), hash=False, metadata=_read(parse=_dicts))
    # settings over the scenario's
    application: dict[str, Any] = field(default_factory=dict, hash=False, metadata=_read(parse=dict))
    # snapshot | archive | script
    after_pass: tuple[dict[str, Any], ...] = field(default=(), hash=False, metadata=_read(parse=_dicts))
    # default: the application's start_timeout (60 s)
    start_timeout: float | None = field(default=None, metadata=_read(parse=parse_duration))
    # how long the test waits for the receiver to apply the spool
    drain_timeout: float = field(default=300.0, metadata=_read(parse=parse_duration))
    keep: int = 100  # evidence records kept
    # interactive tests (recover-test --hold): settings over the test's while testers use the copy
    interactive_application: dict[str, Any] = field(
        default_factory=dict, hash=False, metadata=_read("interactive.application", dict)
    )
    # the longest hold an interactive test may ask for
    max_hold: float = field(default=8 * 3600.0, metadata=_read("interactive.max_hold", parse_duration))


@dataclass(frozen=True)
class Scenario:
    name: str
    master: str
    replicas: tuple[str, ...] = field(metadata=_read(parse=tuple))
    roots: tuple[Root, ...] = field(metadata=_read(of=Root, many=True))
    # the report's target for the lag (twinsite.history); None: no target
    rpo_target: float | None = field(default=None, hash=False, metadata=_read(parse=parse_duration))
    # the type name: `application` is a name or a mapping with `type` and the plugin's settings
    application: str = field(default="files", metadata=_read(parse=lambda a: a if isinstance(a, str) else a["type"]))
    replication: Replication = field(default_factory=Replication, metadata=_read(of=Replication))
    journal: Journal = field(default_factory=Journal, metadata=_read(of=Journal))
    cdp: Cdp = field(default_factory=Cdp, metadata=_read(of=Cdp))
    monitoring: Monitoring = field(default_factory=Monitoring, metadata=_read(of=Monitoring))
    # (not part of the hash, which the agent uses to see that replication settings changed: these are
    # mappings, and replication does not depend on them)
    alerts: tuple[dict[str, Any], ...] = field(  # twinsite.alerts.dispatch.channels_from
        default=(), hash=False, metadata=_read(parse=_dicts)
    )
    application_settings: dict[str, Any] = field(  # twinsite.apps.load
        default_factory=dict,
        hash=False,
        metadata=_read(
            "application", lambda a: {} if isinstance(a, str) else {k: v for k, v in a.items() if k != "type"}
        ),
    )
    switchover: Switchover = field(default_factory=Switchover, hash=False, metadata=_read(of=Switchover))
    redirect: tuple[dict[str, Any], ...] = field(  # twinsite.redirect.methods
        default=(), hash=False, metadata=_read(parse=_dicts)
    )
    assured_recovery: AssuredRecovery = field(
        default_factory=AssuredRecovery, hash=False, metadata=_read(of=AssuredRecovery)
    )

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Scenario:
        return build(cls, doc)


def build(cls: type[T], doc: Mapping[str, Any]) -> T:
    """``cls`` from its section ``doc`` of a document the schema has accepted: each field read at its key and
    converted (:func:`_read`); a key that is absent leaves the field's default."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        found, value = _lookup(doc, _key(f).split("."))
        if not found:
            continue
        of, parse = f.metadata.get("of"), f.metadata.get("parse")
        if of is not None:
            value = tuple(build(of, v) for v in value) if f.metadata["many"] else build(of, value)
        values[f.name] = parse(value) if parse else value
    return cls(**values)


def keys_read(cls: type[DataclassInstance] = Scenario, prefix: str = "") -> Iterator[tuple[str, Field[Any]]]:
    """Every key path the library reads of a scenario (``replication.interval``, ``roots[].path``) and the field it
    goes to; a key read as a whole mapping (``alerts``, ``switchover.fence``) is passed on to the code that uses it."""
    for f in fields(cls):
        of = f.metadata.get("of")
        if of is None:
            yield prefix + _key(f), f
        else:
            yield from keys_read(of, prefix + _key(f) + ("[]." if f.metadata["many"] else "."))


def _key(f: Field[Any]) -> str:
    return f.metadata.get("key") or f.name


def _lookup(doc: Mapping[str, Any], path: list[str]) -> tuple[bool, Any]:
    node: Any = doc
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node
