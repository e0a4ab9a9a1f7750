"""The lab's second protected database: a real MariaDB on prod1, data under /srv/mariadb/data (prod1's own
/srv/mariadb, a btrfs subvolume: lab/volumes.py), listening on the lab network (users reach it as
mariadb.dr.test), with a database `shop` and a user `shop` (password `shop`, a lab only) that the lab network
may write with.

`lab up` creates it when /srv/mariadb holds none (mariadb-install-db, the database, the user) and starts it,
through the `mysql` application plugin itself, run inside prod1 with the settings the lab inventory's scenario
`mariadb` gives it (:data:`SETTINGS`), so that the plugin finds it running later. Its socket and pid file are in
/srv/mariadb/run: the lab's hosts share the machine's /run, and a test copy on dr1 must not find prod1's there.
`lab down` deletes the volume, so the next `lab up` makes a new one.
"""

from __future__ import annotations

import json
import sys

from twinsite.lab import hosts
from twinsite.lab.topology import Lab
from twinsite.proc import run

HOST = "prod1"
ROOT = "/srv/mariadb"
DATA = f"{ROOT}/data"
DATABASE = "shop"
#: The `mysql` plugin's settings for prod1's server, as the lab inventory's scenario `mariadb` has them.
SETTINGS = {
    "type": "mysql",
    "data_dir": DATA,
    "port": 3306,
    "bind_address": "0.0.0.0",  # noqa: S104 (the lab network's users reach it, as db's PostgreSQL)
    "socket": f"{ROOT}/run/mysqld.sock",
    "pid_file": f"{ROOT}/run/mysqld.pid",
    "log_file": f"{ROOT}/mariadb.log",
    "database": DATABASE,
}
SETUP_SQL = (
    f"create database if not exists {DATABASE};"
    f" create user if not exists 'shop'@'10.77.0.%' identified by 'shop';"
    f" grant all on {DATABASE}.* to 'shop'@'10.77.0.%';"
)


def _in_host(lab: Lab, *argv: str, timeout: float = 180) -> str:
    return run(hosts.exec_argv(lab.host(HOST), list(argv)), timeout=timeout).stdout.decode()


def _plugin(lab: Lab, action: str) -> str:
    """Run the `mysql` plugin's ``action`` (start, running) inside prod1, with the controller's own twinsite."""
    code = (
        "import json, sys; from pathlib import Path; from twinsite.apps.mysql import MySQL;"
        f" app = MySQL(json.loads(sys.argv[1]), ({ROOT!r},), Path('/nonexistent'));"
        f" r = app.{action}(); print(json.dumps(r))"
    )
    return _in_host(lab, sys.executable, "-c", code, json.dumps(SETTINGS))


def ensure(lab: Lab) -> None:
    """Create the server's data on prod1 if it is not there, and start it (idempotent)."""
    data = lab.host(HOST).private_dir("/srv") / "mariadb" / "data"
    if not (data / "mysql").is_dir():
        # made from inside the host: /srv/mariadb is prod1's own
        _in_host(lab, "install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0755", f"{ROOT}/run")
        _in_host(lab, "install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0750", DATA)
        _in_host(lab, "mariadb-install-db", "--no-defaults", f"--datadir={DATA}", "--user=mysql",
                 "--auth-root-authentication-method=socket", "--skip-test-db")  # fmt: skip
    _plugin(lab, "start")
    _in_host(lab, "mariadb", "--no-defaults", f"--socket={SETTINGS['socket']}", "-e", SETUP_SQL)


def running(lab: Lab) -> bool:
    return bool(json.loads(_plugin(lab, "running")))
