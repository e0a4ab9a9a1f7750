"""The test name of an interactive test (``recover-test --hold --expose NAME``): an A record for NAME pointing at
this standby, made with the scenario's own ``dns`` redirect settings (its server, zone, TSIG key and TTL), and
removed when the test ends.

A test name must be inside the redirect's zone and must not be one of the scenario's redirect names (those are
the production users' names: a test must never move them). It must not resolve to another host when the test
begins: a name someone else uses is refused, not taken over. One that already points here (a crash's leftover)
is taken. Withdrawing is idempotent, so the cleanup of a test whose process died runs it again safely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from twinsite.config.scenario import Scenario
from twinsite.errors import ConfigError, RecoveryError, TwinsiteError
from twinsite.redirect.dns import TsigKey, lookup, update_address
from twinsite.redirect.methods import address_of


@dataclass(frozen=True)
class TestName:
    __test__ = False  # (not a pytest test class)

    name: str
    address: str  # this standby's, as the scenario's redirect would give it to users
    server: str
    port: int
    zone: str
    key_file: str
    ttl: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestName:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def _inside(name: str, zone: str) -> bool:
    bare, z = name.rstrip(".").lower(), zone.rstrip(".").lower()
    return bare.endswith("." + z)


def plan(s: Scenario, host: str, name: str) -> TestName:
    """The test name ``name`` for ``host``, checked against the scenario's redirect and the DNS server now."""
    dns = [r for r in s.redirect if r.get("type") == "dns"]
    if not dns:
        raise RecoveryError(
            f"--expose {name}: scenario {s.name} has no dns redirect to publish a test name with",
            hint="add a redirect of type dns (docs/switchover.md), or test without --expose",
        )
    spec = dns[0]
    if not _inside(name, spec["zone"]):
        raise RecoveryError(
            f"--expose {name}: not a name inside zone {spec['zone']} (the scenario's dns redirect)",
            hint=f"for example {s.name}-test.{spec['zone'].rstrip('.')}",
        )
    taken = [r["name"] for r in dns if r["name"].rstrip(".").lower() == name.rstrip(".").lower()]
    if taken:
        raise RecoveryError(
            f"--expose {name}: that is a production name of {s.name} (its redirect): its users would reach the "
            "test copy",
            hint=f"use a name of its own, e.g. {s.name}-test.{spec['zone'].rstrip('.')}",
        )
    try:
        address = address_of(spec, host)
    except ConfigError as exc:
        raise RecoveryError(f"--expose {name}: {exc.message}", hint=exc.hint) from exc
    t = TestName(
        name=name.rstrip("."),
        address=address,
        server=str(spec["server"]),
        port=int(spec.get("port", 53)),
        zone=str(spec["zone"]),
        key_file=str(spec["key_file"]),
        ttl=int(spec.get("ttl", 60)),
    )
    now = _resolve(t)
    if now and now != [t.address]:
        raise RecoveryError(
            f"--expose {name}: the name resolves to {', '.join(now)}, not this host ({t.address}): someone else "
            "uses it",
            where=f"DNS server {t.server}:{t.port}",
            hint="choose a name nobody uses",
        )
    TsigKey.load(Path(t.key_file))  # (readable and well-formed, before the test starts anything)
    return t


def _resolve(t: TestName) -> list[str]:
    return lookup(server=t.server, name=t.name, port=t.port)[0]


def publish(t: TestName) -> dict[str, Any]:
    """Point the test name at this standby, and read it back from the server."""
    update_address(
        server=t.server, zone=t.zone, name=t.name, addresses=[t.address], ttl=t.ttl, key=TsigKey.load(Path(t.key_file)),
        port=t.port,
    )  # fmt: skip
    got = _resolve(t)
    if got != [t.address]:
        raise RecoveryError(
            f"{t.name} resolves to {', '.join(got) or 'nothing'} after the update, not {t.address}",
            where=f"DNS server {t.server}:{t.port}",
        )
    return {"name": t.name, "address": t.address, "ttl": t.ttl}


def withdraw(t: TestName) -> dict[str, Any]:
    """Remove the test name (idempotent); what the server answers afterwards, or the error."""
    try:
        if _resolve(t) == [t.address]:  # (pointed elsewhere meanwhile: someone else's now, left alone)
            update_address(
                server=t.server, zone=t.zone, name=t.name, addresses=[], ttl=t.ttl,
                key=TsigKey.load(Path(t.key_file)), port=t.port,
            )  # fmt: skip
        left = _resolve(t)
    except TwinsiteError as exc:
        return {"name": t.name, "removed": False, "error": exc.message}
    if left:
        return {"name": t.name, "removed": False, "error": f"it resolves to {', '.join(left)}, left as it is"}
    return {"name": t.name, "removed": True}
