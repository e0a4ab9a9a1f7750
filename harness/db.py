"""The lab's ``db`` scenario: its real PostgreSQL on prod1, replicated to dr1 as ``playbooks/configure.yml``
declares it. A load generator that commits as users do (through db.dr.test, following DNS), a probe of
production's replication latency, SQL on either host, the scenario's role and declaration, and putting the
lab back whatever a test or a benchmark did."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from harness.hosts import TWINSITE, agent_log, log_size, on_host, reset_roles, twinsite_on, wait_logged
from harness.scenarios import ensure_configured
from harness.vcenter import power_on
from harness.wait import eventually
from twinsite import lab as labmod
from twinsite.errors import TwinsiteError
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.redirect.dns import TsigKey, resolve_addresses, update_address
from twinsite.state import sender_status
from twinsite.state.layout import ScenarioState

DB_NAME = f"db.{DNS_ZONE}"
TABLE = "switchover_load"


@dataclass(frozen=True)
class Commit:
    n: int  # the client's own number for it (stored in the row: ids can be reissued after a failover)
    at: float  # when the commit was acknowledged to the client
    server: str  # the address it was committed on


class Load(threading.Thread):
    """Commits one row per transaction through db.dr.test (resolved at the lab's DNS server at every
    connection, as a user's client without a cache would), recording every acknowledged commit."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.acked: list[Commit] = []
        self.errors = 0
        self.next = 1
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                address = resolve_addresses(server=self.lab.ctl_address, name=DB_NAME)[0]
                conn = psycopg2.connect(
                    host=address,
                    port=5432,
                    user="postgres",
                    dbname="shop",
                    connect_timeout=2,
                    keepalives=1,
                    keepalives_idle=1,
                    keepalives_interval=1,
                    keepalives_count=2,
                    tcp_user_timeout=2000,
                )
            except (psycopg2.Error, IndexError, OSError):
                self.errors += 1
                time.sleep(0.1)
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute("set statement_timeout = 3000")
                    while not self.stopping.is_set():
                        n = self.next
                        self.next += 1
                        cur.execute(f"insert into {TABLE}(note) values (%s)", (f"c{n}",))  # noqa: S608
                        conn.commit()
                        self.acked.append(Commit(n, time.time(), address))
                        time.sleep(0.005)
            except psycopg2.Error:
                self.errors += 1
            finally:
                conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    def wait_for(self, n: int, *, on: str | None = None, timeout: float = 60) -> None:
        """Until ``n`` commits were acknowledged (on the server at address ``on``, if given)."""
        if not eventually(
            lambda: sum(1 for c in self.acked if on is None or c.server == on) >= n,
            timeout=timeout,
            interval=0.05,
            what=f"{n} commits",
        ):
            raise AssertionError(
                f"not {n} commits{' on ' + on if on else ''} within {timeout} s ({len(self.acked)} in all)"
            )


class Latency(threading.Thread):
    """Samples prod1's sender status: the age of the newest change dr1 acknowledged, at each acknowledgement."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.file = ScenarioState(lab.host("prod1").private_dir("/var/lib/twinsite"), "db").sender(0, "dr1").status
        self.samples: list[tuple[float, float, int]] = []  # (when, latency, acked seq)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                st = sender_status.read(self.file)
                if st is not None:
                    self.samples.append((time.time(), st.ack_latency_seconds, st.acked_seq))
            except (OSError, TwinsiteError):
                pass
            time.sleep(0.05)

    def between(self, t0: float, t1: float) -> list[float]:
        """One latency per acknowledgement seen in [t0, t1] (the status is rewritten at most 5 times a second)."""
        seen: dict[int, float] = {}
        for at, latency, acked in self.samples:
            if t0 <= at <= t1:
                seen.setdefault(acked, latency)
        return list(seen.values())


def psql(lab: Lab, host: str, sql: str) -> subprocess.CompletedProcess[str]:
    """``psql -Atc SQL`` on the database shop of the PostgreSQL running on ``host``, as postgres."""
    argv = ["runuser", "-u", "postgres", "--", "psql", "-h", "/srv/db/data", "-d", "shop", "-Atc", sql]
    return on_host(lab, host, *argv)


def notes_on(lab: Lab, host: str) -> list[str]:
    """Every row's note in the load table, read from the PostgreSQL running on ``host``."""
    p = psql(lab, host, f"select note from {TABLE} order by id")  # noqa: S608 (a constant)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return p.stdout.splitlines()


def commits_on(lab: Lab, host: str) -> set[int]:
    """The load generator's commits (by its own numbers) that the PostgreSQL on ``host`` holds."""
    return {int(x[1:]) for x in notes_on(lab, host) if x.startswith("c") and x[1:].isdigit()}


def role(lab: Lab, host: str) -> dict[str, Any]:
    """``twinsite role db`` on ``host``: which host is active, at which epoch, as ``host`` knows it."""
    body = twinsite_on(lab, host, "role", "db")
    if not body["ok"]:
        raise AssertionError(body)
    return dict(body["result"])


def create_table(lab: Lab) -> None:
    p = psql(lab, "prod1", f"create table if not exists {TABLE}(id bigserial primary key, note text)")
    if p.returncode != 0:
        raise AssertionError(p.stderr)


def wait_replicating(lab: Lab, active: str, timeout: float = 120, scenario: str = "db") -> None:
    """Until ``active`` replicates ``scenario`` with everything it planned acknowledged."""
    rows: list[dict[str, Any]] = []

    def replicating() -> bool:
        body = twinsite_on(lab, active, "status")
        rows[:] = [r for r in body["result"]["scenarios"] if r["scenario"] == scenario and r["role"] == "active"]
        return bool(rows) and all(r["state"] == "replicating" and r["acked_seq"] == r["planned_seq"] for r in rows)

    if not eventually(replicating, timeout=timeout, interval=0.5, what=f"{scenario} replicating from {active}"):
        raise AssertionError(f"{scenario} is not replicating from {active}: {rows}")


def scenario_file(lab: Lab, host: str) -> Path:
    """db's declaration on ``host``, as configure.yml writes it."""
    return lab.host(host).private_dir("/etc/twinsite") / "scenarios" / "db.yml"


def set_mode(lab: Lab, **monitoring: Any) -> None:
    """db in automatic mode with fast monitoring, on both hosts; returns once the agents reloaded it: prod1's
    restarted its sender (the monitoring settings are part of what identifies it) and dr1's monitors prod1
    with it. (prod1 is active, as the db fixture leaves it; ``monitoring`` differs from the declared one.)"""
    logs = {h: agent_log(lab, h) for h in ("prod1", "dr1")}
    ends = {h: log_size(f) for h, f in logs.items()}
    for h in ("prod1", "dr1"):
        f = scenario_file(lab, h)
        doc = yaml.safe_load(f.read_text())
        doc["switchover"]["mode"] = "automatic"
        doc["monitoring"] = monitoring
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
    wait_logged(logs["prod1"], "twinsite agent: started db/0/dr1/", after=ends["prod1"], timeout=30)
    wait_logged(logs["dr1"], "twinsite agent: monitoring prod1 for db", after=ends["dr1"], timeout=30)


def prepare_db(lab: Lab) -> None:
    """The `db` scenario as configure.yml declares it, prod1 active, replicating, with the load's table."""
    ensure_configured(lab)
    restore_db(lab)  # (an earlier failed run may have left dr1 active)
    create_table(lab)
    wait_replicating(lab, "prod1")


def restore_db(lab: Lab) -> None:
    """Put the lab back as configure.yml left it, whatever a failed test did: prod1 active, PostgreSQL on
    prod1 only, db.dr.test -> prod1, prod1-vm on. (Data written while dr1 was active may be lost here.)"""
    for h in lab.hosts:
        labmod.heal(lab, h.name)
    views = [role(lab, h) for h in ("prod1", "dr1")]
    if all(v["active"] == "prod1" for v in views) and views[0]["epoch"] == views[1]["epoch"]:
        return
    on_host(lab, "dr1", TWINSITE, "app", "db", "stop")
    reset_roles(lab, "db", ("prod1", "dr1"), "prod1")
    key = TsigKey.load(lab.tsig_file)
    update_address(
        server=lab.ctl_address, zone=DNS_ZONE, name=DB_NAME, addresses=[lab.host("prod1").address], ttl=60, key=key
    )
    on_host(lab, "prod1", TWINSITE, "app", "db", "start")
    power_on(lab, "prod1-vm")
