"""The lab's protected application: a real PostgreSQL on prod1, data under /srv/db/data (prod1's own /srv/db,
a btrfs subvolume: lab/volumes.py), listening on the lab network (users reach it as db.dr.test), with a
database `shop` to write to.

`lab up` creates it when /srv/db holds none (initdb, access from the lab network, the database) and starts
it; `lab down` deletes the btrfs volume, so the next `lab up` makes a new one. The scenario
`db` of the lab inventory replicates /srv/db to dr1 and names the `postgresql` application plugin, which
is what starts, stops and checks it from then on (docs/applications.md).
"""

from __future__ import annotations

from pathlib import Path

from twinsite.errors import LabError
from twinsite.lab import hosts
from twinsite.lab.topology import Lab
from twinsite.proc import run

HOST = "prod1"
DATA = "/srv/db/data"
PORT = 5432
DATABASE = "shop"  # (also spelt out in the query below)
LOG = "/srv/db/postgresql.log"  # (the scenario does not replicate it)


def bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: float(p.parent.name))
    if not found:
        raise LabError("PostgreSQL is not installed", hint="make setup installs the postgresql package")
    return found[-1]


def _in_host(lab: Lab, *argv: str, timeout: float = 120) -> str:
    h = lab.host(HOST)
    return run(hosts.exec_argv(h, ["runuser", "-u", "postgres", "--", *argv]), timeout=timeout).stdout.decode()


def ensure(lab: Lab) -> None:
    """Create the cluster on prod1 if it is not there, and start it (idempotent)."""
    h = lab.host(HOST)
    data = h.private_dir("/srv") / "db" / "data"
    b = bin_dir()
    if not (data / "PG_VERSION").exists():
        # made from inside the host, as postgres: /srv/db is prod1's own
        for d, mode in (("/srv/db", "0755"), (DATA, "0700")):
            run(hosts.exec_argv(h, ["install", "-d", "-o", "postgres", "-g", "postgres", "-m", mode, d]))
        _in_host(lab, str(b / "initdb"), "-D", DATA, "-U", "postgres", "--auth-local=trust", "--auth-host=trust",
                 "-E", "UTF8", "--locale=C.UTF-8", "--data-checksums")  # fmt: skip
    hba = data / "pg_hba.conf"
    line = f"host all all {lab.network} trust  # the lab network (a lab only)\n"
    if line not in hba.read_text():  # (also when an earlier `lab up` stopped between initdb and here)
        hba.write_text(hba.read_text() + line)
    if not _running(lab):
        opts = f"-p {PORT} -k {DATA} -c listen_addresses=*"
        _in_host(lab, str(b / "pg_ctl"), "-D", DATA, "-l", LOG, "-w", "-o", opts, "start")
    have = _in_host(lab, str(b / "psql"), "-h", DATA, "-p", str(PORT), "-U", "postgres", "-Atc",
                    "select count(*) from pg_database where datname = 'shop'")  # fmt: skip
    if have.strip() == "0":
        _in_host(
            lab, str(b / "psql"), "-h", DATA, "-p", str(PORT), "-U", "postgres", "-c", f"create database {DATABASE}"
        )


def _running(lab: Lab) -> bool:
    h = lab.host(HOST)
    proc = run(
        hosts.exec_argv(h, ["runuser", "-u", "postgres", "--", str(bin_dir() / "pg_ctl"), "-D", DATA, "status"]),
        check=False,
    )
    return proc.returncode == 0
