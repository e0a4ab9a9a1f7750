"""For the switchover tests: a load generator that commits to the lab's PostgreSQL as users do (through
db.dr.test, following DNS), running twinsite on a lab host, reading its state, and putting the lab back."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from tests.conftest import VENV_BIN
from twinsite import lab as labmod
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.redirect.dns import TsigKey, resolve_addresses, update_address

DB_NAME = f"db.{DNS_ZONE}"
TWINSITE = "/opt/twinsite/bin/twinsite"
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for c in self.acked if on is None or c.server == on) >= n:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"not {n} commits{' on ' + on if on else ''} within {timeout} s ({len(self.acked)} in all)"
        )


def on_host(
    lab: Lab, host: str, *argv: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command inside a lab host (not over SSH: a process killed there reports its own signal)."""
    prefix = ["env", *[f"{k}={v}" for k, v in (env or {}).items()]] if env else []
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), "lab", "exec", host, "--", *prefix, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def twinsite_on(
    lab: Lab, host: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``twinsite ARGS --json`` on a lab host; the whole JSON answer (ok or not)."""
    p = on_host(lab, host, TWINSITE, *args, "--json", timeout=timeout, env=env)
    try:
        body: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise AssertionError(
            f"twinsite {' '.join(args)} on {host}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        ) from exc
    return body


def psql(lab: Lab, host: str, sql: str) -> subprocess.CompletedProcess[str]:
    """``psql -Atc SQL`` on the database shop of the PostgreSQL running on ``host``, as postgres."""
    argv = ["runuser", "-u", "postgres", "--", "psql", "-h", "/srv/db/data", "-d", "shop", "-Atc", sql]
    return on_host(lab, host, *argv)


def notes_on(lab: Lab, host: str) -> list[str]:
    """Every row's note in the load table, read from the PostgreSQL running on ``host``."""
    p = psql(lab, host, f"select note from {TABLE} order by id")  # noqa: S608 (a constant)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def commits_on(lab: Lab, host: str) -> set[int]:
    """The load generator's commits (by its own numbers) that the PostgreSQL on ``host`` holds."""
    return {int(x[1:]) for x in notes_on(lab, host) if x.startswith("c") and x[1:].isdigit()}


def role(lab: Lab, host: str) -> dict[str, Any]:
    body = twinsite_on(lab, host, "role", "db")
    assert body["ok"], body
    return dict(body["result"])


def events(lab: Lab, host: str, since: float = 0.0) -> list[dict[str, Any]]:
    f = lab.host(host).private_dir("/var/lib/twinsite") / "events.jsonl"
    if not f.exists():
        return []
    out = []
    for line in f.read_text().splitlines():
        e = json.loads(line)
        at = e.get("at", "")
        if "kind" in e and (not since or at >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since - 1))):
            out.append(e)
    return out


def wait_event(lab: Lab, host: str, kind: str, since: float, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(lab, host, since) if e["kind"] == kind]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(
        f"no {kind} event on {host} within {timeout} s: {[e['kind'] for e in events(lab, host, since)]}"
    )


def create_table(lab: Lab) -> None:
    p = psql(lab, "prod1", f"create table if not exists {TABLE}(id bigserial primary key, note text)")
    assert p.returncode == 0, p.stderr


def wait_replicating(lab: Lab, active: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        body = twinsite_on(lab, active, "status")
        rows = [r for r in body["result"]["scenarios"] if r["scenario"] == "db" and r["role"] == "active"]
        if rows and all(r["state"] == "replicating" and r["acked_seq"] == r["planned_seq"] for r in rows):
            return
        time.sleep(0.5)
    raise AssertionError(f"db is not replicating from {active}: {rows}")


def scenario_file(lab: Lab, host: str) -> Path:
    return lab.host(host).private_dir("/etc/twinsite") / "scenarios" / "db.yml"


_DECLARED: dict[str, bytes] = {}  # every host's scenario declarations as configure.yml last left them


def _declarations(lab: Lab) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for h in lab.hosts:
        d = lab.host(h.name).private_dir("/etc/twinsite") / "scenarios"
        if d.is_dir():
            found |= {f"{h.name}/{f.name}": f.read_bytes() for f in sorted(d.iterdir()) if f.is_file()}
    return found


def ensure_configured(lab: Lab) -> None:
    """The lab as playbooks/configure.yml declares it: the playbook runs unless it already ran in this session
    and every host's scenario declarations are still byte for byte as it left them, with both agents running
    (a test that changed a declaration, stopped a scenario or an agent gets a real run)."""
    from tests.ansible.test_playbooks import ansible

    if _DECLARED and _declarations(lab) == _DECLARED:
        running = [twinsite_on(lab, h, "service", "status").get("result", {}).get("running") for h in ("prod1", "dr1")]
        if all(running):
            return
    configured = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
    assert configured.returncode == 0, configured.stdout[-3000:]
    _DECLARED.clear()
    _DECLARED.update(_declarations(lab))


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
    if role(lab, "prod1")["active"] == "prod1" and role(lab, "dr1")["active"] == "prod1":
        return
    on_host(lab, "dr1", TWINSITE, "app", "db", "stop")
    for h in ("prod1", "dr1"):
        state = lab.host(h).private_dir("/var/lib/twinsite") / "db"
        for f in (state / "role.json", state / "switchover.json"):
            f.unlink(missing_ok=True)
    key = TsigKey.load(lab.tsig_file)
    update_address(
        server=lab.ctl_address, zone=DNS_ZONE, name=DB_NAME, addresses=[lab.host("prod1").address], ttl=60, key=key
    )
    on_host(lab, "prod1", TWINSITE, "app", "db", "start")
    power_on(lab, "prod1-vm")


def power_on(lab: Lab, vm_name: str) -> None:
    from pyVim.connect import Disconnect
    from pyVmomi import vim

    from tests.integration.test_vcenter import by_name, connect, wait_task

    si = connect(lab)
    try:
        vm = by_name(si.RetrieveContent(), vim.VirtualMachine)[vm_name]
        if vm.runtime.powerState != "poweredOn":
            wait_task(vm.PowerOnVM_Task())
    finally:
        Disconnect(si)


def power_state(lab: Lab, vm_name: str) -> str:
    from pyVim.connect import Disconnect
    from pyVmomi import vim

    from tests.integration.test_vcenter import by_name, connect

    si = connect(lab)
    try:
        return str(by_name(si.RetrieveContent(), vim.VirtualMachine)[vm_name].runtime.powerState)
    finally:
        Disconnect(si)
