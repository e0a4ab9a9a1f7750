"""The lab's protected application: a real PostgreSQL on prod1 that client1 uses as db.dr.test, replicated
to dr1 by the `db` scenario (configure.yml), and checked by its application plugin on prod1."""

from __future__ import annotations

import json

import pytest

from harness.hosts import ssh
from harness.scenarios import ensure_configured
from harness.wait import eventually
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab


def test_client1_writes_to_db_on_prod1_which_replicates_to_dr1(lab: Lab) -> None:
    ensure_configured(lab)
    sql = (
        "create table if not exists orders(id serial primary key, note text);"
        " insert into orders(note) values ('from client1') returning id"
    )
    w = ssh(lab, "client1", f'psql -h db.dr.test -U postgres -d shop -Atq -c "{sql}"')
    assert w.returncode == 0, w.stderr
    assert int(w.stdout.strip()) >= 1
    where = ssh(lab, "client1", "psql -h db.dr.test -U postgres -d shop -Atc 'select inet_server_addr()'")
    assert where.stdout.strip() == lab.host("prod1").address  # users reach prod1

    check = ssh(lab, "prod1", "/opt/twinsite/bin/twinsite app db check --json")
    assert check.returncode == 0, check.stdout + check.stderr
    names = [c["name"] for c in json.loads(check.stdout)["result"]["checks"]]
    assert names == ["accepting connections", "query", "consistent"]
    assert ssh(lab, "dr1", "/opt/twinsite/bin/twinsite app db status --json").stdout.count('"running": false') == 1

    prod_data = lab.host("prod1").private_dir("/srv") / "db" / "data"
    dr_data = lab.host("dr1").private_dir("/srv") / "db" / "data"
    eventually((dr_data / "global" / "pg_control").exists, timeout=120, interval=0.5, what="pg_control on dr1")
    assert (dr_data / "PG_VERSION").read_text() == (prod_data / "PG_VERSION").read_text()
    assert (prod_data / "postmaster.pid").exists() and not (dr_data / "postmaster.pid").exists()  # excluded
    status = json.loads(ssh(lab, "prod1", "/opt/twinsite/bin/twinsite status --json").stdout)["result"]["scenarios"]
    assert [r["state"] for r in status if r["scenario"] == "db"] in (["replicating"], ["syncing"])
