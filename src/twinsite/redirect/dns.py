"""User redirection by DNS: RFC 2136 dynamic updates signed with TSIG, and read-back.

Used by the switchover's redirect step and by the lab's checks. A failed or refused update raises
:class:`DnsError` naming the server, the name and the server's answer; it never passes silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from twinsite.errors import ConfigError, DnsError

ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
}


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key. ``repr`` hides the secret so it never lands in a log."""

    name: str
    algorithm: str
    secret: str

    def __repr__(self) -> str:
        return f"TsigKey(name={self.name!r}, algorithm={self.algorithm!r}, secret=<hidden>)"

    @classmethod
    def load(cls, path: Path) -> TsigKey:
        """Read a key file: JSON with ``name``, ``algorithm`` and ``secret`` (base64)."""
        try:
            data = json.loads(path.read_text())
            key = cls(name=data["name"], algorithm=data.get("algorithm", "hmac-sha256"), secret=data["secret"])
        except FileNotFoundError as exc:
            raise ConfigError("TSIG key file not found", where=str(path)) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                "not a TSIG key file: expected JSON with name, algorithm and secret", where=str(path)
            ) from exc
        key.validate(where=str(path))
        return key

    def validate(self, *, where: str) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"unsupported TSIG algorithm {self.algorithm!r}", where=where, hint=f"use one of {sorted(ALGORITHMS)}"
            )

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        try:
            ring: dict[dns.name.Name, dns.tsig.Key] = dns.tsigkeyring.from_text(
                {self.name: (ALGORITHMS[self.algorithm], self.secret)}
            )
        except (ValueError, dns.exception.DNSException) as exc:
            raise ConfigError(f"TSIG key {self.name!r} has an invalid secret (base64 expected)") from exc
        return ring


def _relative(name: str, zone: str) -> dns.name.Name:
    """``name`` relative to ``zone``: "db", "db.dr.test" and "db.dr.test." in zone dr.test are all "db"."""
    origin = dns.name.from_text(zone)
    bare = name.rstrip(".")
    inside = bare == zone.rstrip(".") or bare.endswith("." + zone.rstrip("."))
    fq = dns.name.from_text(bare + "." if inside or name.endswith(".") else name, origin=origin)
    if not fq.is_subdomain(origin):
        raise ConfigError(f"{name} is not inside zone {zone}")
    return fq.relativize(origin)


def update_address(
    *,
    server: str,
    zone: str,
    name: str,
    addresses: list[str],
    ttl: int,
    key: TsigKey,
    port: int = 53,
    timeout: float = 5.0,
) -> None:
    """Replace the A records of ``name`` in ``zone`` by ``addresses``, signed with ``key``.

    The update is atomic on the server (one UPDATE message). Raises :class:`DnsError` unless the server
    answers NOERROR with a valid signature.
    """
    rel = _relative(name, zone)
    upd = dns.update.UpdateMessage(
        zone, keyring=key.keyring(), keyname=dns.name.from_text(key.name), keyalgorithm=ALGORITHMS[key.algorithm]
    )
    upd.delete(rel, "A")
    for address in addresses:
        upd.add(rel, ttl, "A", address)
    where = f"DNS server {server}:{port}, zone {zone}"
    try:
        answer = dns.query.tcp(upd, server, port=port, timeout=timeout)
    except dns.tsig.PeerError as exc:
        raise DnsError(
            f"update of {name} refused: the server rejected TSIG key {key.name!r} ({type(exc).__name__})",
            where=where,
            hint="check the key name, algorithm and secret against the server's configuration",
        ) from exc
    except (OSError, dns.exception.DNSException) as exc:
        raise DnsError(f"update of {name} failed: {exc or type(exc).__name__}", where=where) from exc
    rcode = answer.rcode()
    if rcode != dns.rcode.NOERROR:
        raise DnsError(
            f"update of {name} refused with {dns.rcode.to_text(rcode)}",
            where=where,
            hint="the key may not be allowed to update this zone from this address",
        )


def resolve_addresses(*, server: str, name: str, port: int = 53, timeout: float = 2.0) -> list[str]:
    """The A records of ``name`` as the server answers them now (no cache), sorted."""
    return lookup(server=server, name=name, port=port, timeout=timeout)[0]


def lookup(*, server: str, name: str, port: int = 53, timeout: float = 2.0) -> tuple[list[str], int | None]:
    """The A records of ``name`` (sorted) and their TTL (None without any), as the server answers now."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        answer = dns.query.udp(query, server, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException) as exc:
        raise DnsError(
            f"query for {name} failed: {exc or type(exc).__name__}", where=f"DNS server {server}:{port}"
        ) from exc
    sets = [rrset for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A]
    return sorted(rr.address for rrset in sets for rr in rrset), (min(r.ttl for r in sets) if sets else None)
