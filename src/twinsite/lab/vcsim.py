"""The lab's vCenter: the govmomi simulator (Debian's golang-github-vmware-govmomi-dev), shaped as a DR site."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from importlib import resources
from pathlib import Path

from twinsite.errors import LabError
from twinsite.lab.ca import ensure_server_cert
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.proc import pid_alive, read_pid, run, spawn, stop_pidfile, wait_until

GOPATH = "/usr/share/gocode"


def _source() -> bytes:
    return resources.files("twinsite.lab").joinpath("vcsim/main.go").read_bytes()


def build_cache() -> Path:
    """Where simulator builds are kept, shared by every lab on the machine (TWINSITE_BUILD_CACHE)."""
    return Path(os.environ.get("TWINSITE_BUILD_CACHE", "/var/cache/twinsite")) / "vcsim"


def build() -> Path:
    """Build the simulator once per source version (cold build ~15-25 s, offline, GOPATH mode)."""
    src = _source()
    d = build_cache() / hashlib.sha256(src).hexdigest()[:16]
    exe = d / "vcsim-lab"
    if exe.exists():
        return exe
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.go").write_bytes(src)
    env = dict(
        os.environ, GOPATH=GOPATH, GO111MODULE="off", GOPROXY="off", GOFLAGS="", GOCACHE=str(build_cache() / "gocache")
    )
    run(["go", "build", "-o", str(d / "vcsim-lab.tmp"), "main.go"], cwd=d, env=env, timeout=600)
    (d / "vcsim-lab.tmp").rename(exe)  # atomic: a half-built binary is never taken for a finished one
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
    return read_pid(lab.vcsim_dir / "vcsim.pid", comm="vcsim-lab")


def start(lab: Lab) -> None:
    """Start the simulator in the controller namespace on https://<ctl>:443. Idempotent."""
    if pid(lab) is not None:
        return
    exe = build()
    ensure_password(lab)
    cert, key = ensure_server_cert(
        lab.ca_cert.parent, "vcenter", dns_names=[f"vcenter.{DNS_ZONE}"], ips=[lab.ctl_address]
    )
    d = lab.vcsim_dir
    tmp = d / "tmp"  # the simulator's datastores; a killed simulator leaves its old ones behind
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    log = d / "vcsim.log"
    log.write_text("")
    started = spawn(
        [
            "ip",
            "netns",
            "exec",
            lab.ctl_netns,
            str(exe),
            "-l",
            f"{lab.ctl_address}:443",
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-password-file",
            str(lab.vcenter_password_file),
        ],
        pidfile=d / "vcsim.pid",
        logfile=log,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    wait_until(lambda: "ready " in log.read_text() or not pid_alive(started), timeout=30, what="the vCenter simulator")
    if "ready " not in log.read_text():
        raise LabError("the vCenter simulator exited at start", where=str(log), hint="read its log")


def stop(lab: Lab) -> None:
    stop_pidfile(lab.vcsim_dir / "vcsim.pid", comm="vcsim-lab", timeout=10)
