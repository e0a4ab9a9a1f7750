"""The lab's vCenter: the govmomi simulator (Debian's golang-github-vmware-govmomi-dev), shaped as a DR site."""

from __future__ import annotations

import hashlib
import os
import secrets
from importlib import resources
from pathlib import Path

from twinsite.errors import LabError
from twinsite.lab.ca import ensure_server_cert
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.proc import read_pid, run, spawn, stop_pidfile, wait_until

GOPATH = "/usr/share/gocode"


def _source() -> bytes:
    return resources.files("twinsite.lab").joinpath("vcsim/main.go").read_bytes()


def binary(lab: Lab) -> Path:
    return lab.vcsim_dir / "vcsim-lab"


def build(lab: Lab) -> Path:
    """Build the simulator once per source version (cold build ~15-25 s, offline, GOPATH mode)."""
    d = lab.vcsim_dir
    src = _source()
    digest = hashlib.sha256(src).hexdigest()
    stamp = d / "vcsim-lab.sha256"
    exe = binary(lab)
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        return exe
    build_dir = d / "src"
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "main.go").write_bytes(src)
    env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOPROXY="off", GOFLAGS="", GOCACHE=str(d / "gocache"))
    run(["go", "build", "-o", str(exe), "main.go"], cwd=build_dir, env=env, timeout=600)
    stamp.write_text(digest)
    return exe


def ensure_password(lab: Lab) -> str:
    f = lab.vcenter_password_file
    if not f.exists():
        f.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(18) + "\n")
    return f.read_text().strip()


def pid(lab: Lab) -> int | None:
    return read_pid(lab.vcsim_dir / "vcsim.pid")


def start(lab: Lab) -> None:
    """Start the simulator in the controller namespace on https://<ctl>:443. Idempotent."""
    if pid(lab) is not None:
        return
    exe = build(lab)
    ensure_password(lab)
    cert, key = ensure_server_cert(
        lab.ca_cert.parent, "vcenter", dns_names=[f"vcenter.{DNS_ZONE}"], ips=[lab.ctl_address]
    )
    d = lab.vcsim_dir
    tmp = d / "tmp"
    tmp.mkdir(exist_ok=True)
    log = d / "vcsim.log"
    log.write_text("")
    spawn(["ip", "netns", "exec", lab.ctl_netns, str(exe), "-l", f"{lab.ctl_address}:443", "-cert", str(cert),
           "-key", str(key), "-password-file", str(lab.vcenter_password_file)],
          pidfile=d / "vcsim.pid", logfile=log, env=dict(os.environ, TMPDIR=str(tmp)))
    wait_until(lambda: "ready " in log.read_text() or pid(lab) is None, timeout=30, what="the vCenter simulator")
    if pid(lab) is None:
        raise LabError("the vCenter simulator exited at start", where=str(log), hint="read its log")


def stop(lab: Lab) -> None:
    stop_pidfile(lab.vcsim_dir / "vcsim.pid", timeout=10)
