"""The lab's web server: nginx on prod1 serving /srv/web/html on port 8088 with the configuration in
/srv/web/nginx.conf (users reach it as web.dr.test). The scenario `web` of the lab inventory replicates both to
dr1, starts and stops it as a `service` application with these commands (:data:`START`, :data:`STOP`,
:data:`STATUS`), and checks it with an `http` check (docs/applications.md).

Everything nginx writes (pid file, logs, temporary files) is in /srv/web/run, which the scenario leaves out:
the lab's hosts share the machine's /run and /var/lib/nginx. `lab up` writes the page when /srv/web has none,
and the configuration whenever it is not this one (then a running server reloads it), and starts the server;
`lab down` stops it with the host.
"""

from __future__ import annotations

from twinsite.lab import hosts
from twinsite.lab.topology import Lab
from twinsite.proc import run

HOST = "prod1"
ROOT = "/srv/web"
PORT = 8088  # (8080 is the redirect tests' name server, tests/integration/test_redirect.py)
PAGE = "twinsite lab web: the orders front page"  # what the http check looks for
_RUN = f"{ROOT}/run"
_NGINX = f"nginx -c {ROOT}/nginx.conf -e {_RUN}/error.log"
#: The `service` application's commands, as the lab inventory's scenario `web` has them.
START = f"mkdir -p {_RUN} && {_NGINX}"
STOP = f"p=$(cat {_RUN}/nginx.pid) && {_NGINX} -s quit && while kill -0 $p 2>/dev/null; do sleep 0.1; done"
STATUS = f"test -s {_RUN}/nginx.pid && kill -0 $(cat {_RUN}/nginx.pid)"

CONFIG = f"""# The lab's web server (twinsite lab up; the scenario `web` replicates this file and html/ to dr1).
pid {_RUN}/nginx.pid;
error_log {_RUN}/error.log;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log {_RUN}/access.log;
    client_body_temp_path {_RUN}/body;
    proxy_temp_path {_RUN}/proxy;
    fastcgi_temp_path {_RUN}/fastcgi;
    uwsgi_temp_path {_RUN}/uwsgi;
    scgi_temp_path {_RUN}/scgi;
    default_type text/html;
    server {{
        listen {PORT};
        root {ROOT}/html;
    }}
}}
"""


def ensure(lab: Lab) -> None:
    """Write the site on prod1 if it has none, and start nginx (idempotent)."""
    root = lab.host(HOST).private_dir("/srv") / "web"
    if not (root / "html" / "index.html").exists():
        (root / "html").mkdir(parents=True, exist_ok=True)
        (root / "html" / "index.html").write_text(f"<!doctype html><title>orders</title><h1>{PAGE}</h1>\n")
    conf = root / "nginx.conf"
    changed = not conf.exists() or conf.read_text() != CONFIG
    if changed:
        conf.write_text(CONFIG)
    h = lab.host(HOST)
    if run(hosts.exec_argv(h, ["sh", "-c", STATUS]), check=False).returncode != 0:
        run(hosts.exec_argv(h, ["sh", "-c", START]), timeout=60)
    elif changed:
        run(hosts.exec_argv(h, ["sh", "-c", f"{_NGINX} -s reload"]), timeout=60)
