"""Typed, frozen scenario values, built only from documents the schema has accepted."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(value: int | str) -> int:
    """512 -> 512, '20MiB' -> 20971520, '1.5GB' -> 1500000000 (the schema has checked the form)."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: float | str) -> float:
    """90 -> 90.0, '15m' -> 900.0, '24h' -> 86400.0 (the schema has checked the form)."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*", value)
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _SECONDS[m.group(2)]


@dataclass(frozen=True)
class Root:
    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def selects(self, rel: str) -> bool:
        """Whether the root-relative path ``rel`` is replicated (include first, then exclude)."""
        if self.include and not any(fnmatch.fnmatchcase(rel, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(rel, p) for p in self.exclude)

    def selects_bytes(self, rel: bytes) -> bool:
        """:meth:`selects` for a path as the file system gives it (bytes; undecodable bytes kept as escapes)."""
        return self.selects(os.fsdecode(rel))


@dataclass(frozen=True)
class Replication:
    mode: str = "continuous"
    interval: float = 60.0
    sync_method: str = "metadata"
    compression: str = "zstd"
    bandwidth_limit: int = 0
    transport: str = "openssh"
    ssh_options: tuple[tuple[str, str], ...] = ()
    known_hosts: str = "~/.ssh/known_hosts"
    batch_ms: int = 20
    block_size: int = 4096
    remote_twinsite: str = "/opt/twinsite/bin/twinsite"
    rescan_interval: float = 600.0


@dataclass(frozen=True)
class Journal:
    max_size: int = 2**30
    segment_size: int = 64 * 2**20


@dataclass(frozen=True)
class Cdp:
    enabled: bool = False
    retention: float = 86400.0
    max_size: int = 10 * 2**30


@dataclass(frozen=True)
class Monitoring:
    enabled: bool = True
    interval: float = 5.0
    misses: int = 3
    timeout: float = 5.0
    max_lag: float = 300.0


@dataclass(frozen=True)
class Switchover:
    """How a switchover of the scenario goes (docs/switchover.md)."""

    mode: str = "manual"  # manual | automatic
    witness: tuple[str, ...] = ()  # hosts asked whether they still reach the active host
    witness_port: int = 22  # what a witness tries to connect to on the active host
    fence: dict[str, Any] | None = field(default=None, hash=False)  # {type: vsphere|script, ...}
    checks: str = "full"  # full | quick: the application checks after the start
    drain_timeout: float = 300.0
    verify_from: tuple[str, ...] = ()  # users' hosts that must reach the application after the redirect
    verify_port: int | None = None
    verify_timeout: float = 60.0
    resync_timeout: float = 3600.0


@dataclass(frozen=True)
class AssuredRecovery:
    """Tests of the replica on the standby (docs/assured-recovery.md)."""

    schedule: str | None = None  # a cron expression (twinsite.recovery.schedule), run by the agent
    spool_max_size: int = 10 * 2**30  # most disk the spool may use during a test; past it the test ends
    checks: tuple[dict[str, Any], ...] = field(default=(), hash=False)  # scripts run besides the plugin's
    application: dict[str, Any] = field(default_factory=dict, hash=False)  # settings over the scenario's
    after_pass: tuple[dict[str, Any], ...] = field(default=(), hash=False)  # snapshot | archive | script
    start_timeout: float | None = None  # default: the application's start_timeout (60 s)
    drain_timeout: float = 300.0  # how long the test waits for the receiver to apply the spool
    keep: int = 100  # evidence records kept


@dataclass(frozen=True)
class Scenario:
    name: str
    master: str
    replicas: tuple[str, ...]
    roots: tuple[Root, ...]
    application: str = "files"
    replication: Replication = field(default_factory=Replication)
    journal: Journal = field(default_factory=Journal)
    cdp: Cdp = field(default_factory=Cdp)
    monitoring: Monitoring = field(default_factory=Monitoring)
    # (not part of the hash, which the agent uses to see that replication settings changed: these are
    # mappings, and replication does not depend on them)
    alerts: tuple[dict[str, Any], ...] = field(default=(), hash=False)  # twinsite.alerts.dispatch.channels_from
    application_settings: dict[str, Any] = field(default_factory=dict, hash=False)  # twinsite.apps.load
    switchover: Switchover = field(default_factory=Switchover, hash=False)
    redirect: tuple[dict[str, Any], ...] = field(default=(), hash=False)  # twinsite.redirect.methods
    assured_recovery: AssuredRecovery = field(default_factory=AssuredRecovery, hash=False)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Scenario:
        rep = dict(doc.get("replication", {}))
        if "bandwidth_limit" in rep:
            rep["bandwidth_limit"] = parse_size(rep["bandwidth_limit"])
        for key in ("interval", "rescan_interval"):
            if key in rep:
                rep[key] = float(rep[key])
        rep["ssh_options"] = tuple(sorted((str(k), str(v)) for k, v in rep.get("ssh_options", {}).items()))
        jr = {k: parse_size(v) for k, v in doc.get("journal", {}).items()}
        cdp = dict(doc.get("cdp", {}))
        if "retention" in cdp:
            cdp["retention"] = parse_duration(cdp["retention"])
        if "max_size" in cdp:
            cdp["max_size"] = parse_size(cdp["max_size"])
        mon = dict(doc.get("monitoring", {}))
        for key in ("interval", "timeout", "max_lag"):
            if key in mon:
                mon[key] = parse_duration(mon[key])
        return cls(
            name=doc["name"],
            master=doc["master"],
            replicas=tuple(doc["replicas"]),
            roots=tuple(
                Root(
                    path=r["path"].rstrip("/") or "/",
                    include=tuple(r.get("include", ())),
                    exclude=tuple(r.get("exclude", ())),
                )
                for r in doc["roots"]
            ),
            application=app if isinstance(app := doc.get("application", "files"), str) else app["type"],
            application_settings={} if isinstance(app, str) else {k: v for k, v in app.items() if k != "type"},
            replication=Replication(**rep),
            journal=Journal(**jr),
            cdp=Cdp(**cdp),
            monitoring=Monitoring(**mon),
            alerts=tuple(dict(a) for a in doc.get("alerts", ())),
            switchover=_switchover(doc.get("switchover", {})),
            redirect=tuple(dict(r) for r in doc.get("redirect", ())),
            assured_recovery=_assured_recovery(doc.get("assured_recovery", {})),
        )


def _assured_recovery(doc: dict[str, Any]) -> AssuredRecovery:
    ar = dict(doc)
    spool = ar.pop("spool", {})
    if "max_size" in spool:
        ar["spool_max_size"] = parse_size(spool["max_size"])
    for key in ("start_timeout", "drain_timeout"):
        if key in ar:
            ar[key] = parse_duration(ar[key])
    ar["checks"] = tuple(dict(c) for c in ar.get("checks", ()))
    ar["after_pass"] = tuple(dict(a) for a in ar.get("after_pass", ()))
    ar["application"] = dict(ar.get("application", {}))
    return AssuredRecovery(**ar)


def _switchover(doc: dict[str, Any]) -> Switchover:
    so = dict(doc)
    witness = so.pop("witness", {})
    if witness:
        so["witness"] = tuple(witness.get("hosts", ()))
        if "port" in witness:
            so["witness_port"] = int(witness["port"])
    verify = so.pop("verify", {})
    if verify:
        so["verify_from"] = tuple(verify.get("from", ()))
        if "port" in verify:
            so["verify_port"] = int(verify["port"])
        if "timeout" in verify:
            so["verify_timeout"] = parse_duration(verify["timeout"])
    for key in ("drain_timeout", "resync_timeout"):
        if key in so:
            so[key] = parse_duration(so[key])
    if so.get("fence") is not None:
        so["fence"] = dict(so["fence"])
    return Switchover(**so)
