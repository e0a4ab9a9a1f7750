"""docs/getting-started.md, followed word for word as a new user would: the artifacts `make dist` builds are
installed into a fresh virtualenv and a fresh collections path under a fresh home directory, outside the
repository, and every command of the page runs in order against two lab hosts, with the page's names,
addresses and key paths replaced by the lab's. No path of the repository is involved: no ansible.cfg, no
collections path, no PYTHONPATH, not the repository's virtualenv.

The oracles are outside twinsite: the file the page writes is on the standby byte for byte, the whole
root compares equal, and a second configure run changes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import REPO, recap
from harness.hosts import twinsite_on
from harness.scenarios import install, reconfigure
from harness.wait import eventually
from twinsite import __version__
from twinsite.lab.topology import Lab
from twinsite.tree import differences, entries

pytestmark = pytest.mark.lab
PAGE = REPO / "docs" / "getting-started.md"
#: the page's example site -> the lab: client1 (no agent of the lab's own runs there) and dr2
NAMES = [("app1-dr", "dr2"), ("app1", "client1"), ("198.51.100.11", "10.77.0.14"), ("192.0.2.11", "10.77.0.13")]
#: the commands the page runs, in order (a test that would follow another page fails here first)
EXPECTED = ["python3 -m venv", "pip install", "ansible-galaxy collection install", "twinsite.dr.configure --check",
            "twinsite.dr.configure\n", "twinsite.dr.scenario_info", "twinsite status"]  # fmt: skip


def script_of(page: str, lab: Lab) -> str:
    """The page as one shell script: each ```sh block as it is, each ```yaml block written to the file its
    first line names; the example's names, addresses and key paths replaced by the lab's."""
    ssh = lab.root / "ssh"
    subs = [*NAMES, ("~/.ssh/id_ed25519", str(ssh / "id_ed25519")), ("~/.ssh/known_hosts", str(ssh / "known_hosts"))]
    out = ["set -euxo pipefail"]
    for lang, body in re.findall(r"^```(sh|yaml)\n(.*?)^```$", page, re.M | re.S):
        for old, new in subs:
            body = re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w-])", new, body)
        if lang == "sh":
            out.append(body)
            continue
        first = body.splitlines()[0]
        assert first.startswith("# ~/"), f"a yaml block of the page does not say which file it is: {first}"
        out.append(f"cat > {first[2:]} <<'TWINSITE_PAGE_EOF'\n{body}TWINSITE_PAGE_EOF")
    return "\n".join(out) + "\n"


def newcomer_env(home: Path) -> dict[str, str]:
    """A login's environment: the system's PATH, a home of its own, nothing of this repository or of Ansible's
    settings; pip's download cache is shared (only to spare the network)."""
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "ANSIBLE_NOCOLOR": "1",
    }
    return env


@pytest.fixture
def newcomer(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    """A fresh home holding the release; afterwards client1 and dr2 are put back as the lab has them."""
    home = tmp_path / "home"
    release = home / "twinsite-release"
    subprocess.run([sys.executable, str(REPO / "scripts" / "dist"), str(release)], check=True, capture_output=True)
    # client1 as a new host, twinsite never installed: its twinsite directories emptied (their contents kept
    # aside, and put back afterwards with its authorized keys: the lab's users' probes run twinsite there)
    client1 = lab.host("client1")
    kept = tmp_path / "client1"
    keys = client1.private_dir("/root/.ssh") / "authorized_keys"
    authorized = keys.read_bytes() if keys.exists() else None  # (a fresh lab's client1 has none: no agent there)
    for d in ("/opt/twinsite", "/etc/twinsite", "/var/lib/twinsite"):
        (kept / d.strip("/")).mkdir(parents=True)
        for p in client1.private_dir(d).iterdir():
            p.rename(kept / d.strip("/") / p.name)
    # (what an interrupted run may have left on dr2)
    twinsite_on(lab, "dr2", "scenario", "files", "--state", "absent")
    shutil.rmtree(lab.host("dr2").private_dir("/srv") / "files", ignore_errors=True)
    try:
        yield home
    finally:
        twinsite_on(lab, "client1", "service", "stop")
        twinsite_on(lab, "dr2", "scenario", "files", "--state", "absent")
        for h in ("client1", "dr2"):
            shutil.rmtree(lab.host(h).private_dir("/srv") / "files", ignore_errors=True)
        for d in ("/opt/twinsite", "/etc/twinsite", "/var/lib/twinsite"):
            for p in client1.private_dir(d).iterdir():
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            for p in (kept / d.strip("/")).iterdir():
                p.rename(client1.private_dir(d) / p.name)
        if authorized is None:
            keys.unlink(missing_ok=True)
        else:
            keys.write_bytes(authorized)
        install(lab)  # (the lab's own release on client1 again, where the lab's users' probes run twinsite)
        reconfigure(lab)  # (dr2's agent, release and authorized replication keys as the lab's configure.yml has them)


def test_the_getting_started_page_protects_a_directory_from_the_release_files(lab: Lab, newcomer: Path) -> None:
    page = PAGE.read_text()
    script = script_of(page, lab)
    at = [script.find(cmd) for cmd in EXPECTED]
    assert -1 not in at and at == sorted(at), f"the page no longer runs {EXPECTED} in this order"
    # (after the check run, a look at client1: a new host on which --check must have left nothing)
    client1 = {d: lab.host("client1").private_dir(d) for d in ("/opt/twinsite", "/etc/twinsite")}
    look = f"find {client1['/opt/twinsite']} {client1['/etc/twinsite']} -mindepth 1 > {newcomer / 'after-check.txt'}"
    script = re.sub(r"^(.*twinsite\.dr\.configure --check.*)$", rf"\1\n{look}", script, count=1, flags=re.M)
    (newcomer / "page.sh").write_text(script)
    proc = subprocess.run(
        ["bash", str(newcomer / "page.sh")], cwd=newcomer, env=newcomer_env(newcomer),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500, check=False,
    )  # fmt: skip
    out = proc.stdout  # (with the commands, as bash -x shows them, in order)
    assert proc.returncode == 0, out[-6000:]

    # what the page installed is what was used: the wheel in the virtualenv, the tarball under the fresh home
    assert f"twinsite {__version__} " in proc.stdout
    venv = newcomer / "twinsite-venv"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import twinsite, ansible; print(twinsite.__file__, ansible.__file__)"],
        env=newcomer_env(newcomer), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(REPO) not in where and where.count(str(venv / "lib")) == 2, where
    collection = newcomer / ".ansible" / "collections" / "ansible_collections" / "twinsite" / "dr"
    assert (collection / "MANIFEST.json").is_file() and (collection / "playbooks" / "configure.yml").is_file()
    assert str(REPO) not in out

    # the check run changed nothing and said what the real run would do; the real run did it
    assert (newcomer / "after-check.txt").read_text() == "", "configure --check changed client1"
    check_run, real_run = out.split("twinsite.dr.configure --check --diff")[1].split("twinsite.dr.configure\n", 1)
    assert "scenario files on client1: declared" in check_run, check_run[-3000:]
    assert "scenario files on dr2: declared" in check_run, check_run[-3000:]
    assert recap(check_run)["client1"]["failed"] == 0
    rows = recap(real_run.split("twinsite.dr.scenario_info")[0])
    assert rows["client1"]["changed"] > 0 and rows["dr2"]["changed"] > 0
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in rows.values()), rows

    # the file the page wrote is on the standby, byte for byte, and the whole root is the same
    src, dst = (lab.host(h).private_dir("/srv") / "files" for h in ("client1", "dr2"))
    assert eventually(lambda: (dst / "hello.txt").is_file(), timeout=120, interval=0.5, what="hello.txt on dr2")
    assert (dst / "hello.txt").read_bytes() == (src / "hello.txt").read_bytes() == b"hello from client1\n"
    # (without privileged metadata, which a scenario drops by default)
    assert differences({k: e.unprivileged() for k, e in entries(src).items()}, entries(dst)) == []

    def files_row() -> dict[str, object]:
        rows = twinsite_on(lab, "client1", "status")["result"]["scenarios"]
        return next(r for r in rows if r["scenario"] == "files")

    assert eventually(lambda: files_row()["state"] == "replicating", timeout=120, interval=1, what="replicating")
    assert files_row()["replica"] == "dr2" and files_row()["role"] == "active"

    # each host runs the bundle built for its own Python from the installed wheel, and a second run changes nothing
    for host in ("client1", "dr2"):
        current = os.readlink(lab.host(host).private_dir("/opt/twinsite") / "current")
        assert current.startswith(f"releases/twinsite-{__version__}-cp{sys.version_info[0]}{sys.version_info[1]}-")
    again = subprocess.run(
        ["bash", "-c", ". ~/twinsite-venv/bin/activate && cd ~/dr && "
         "ansible-playbook -i inventory twinsite.dr.configure"],
        env=newcomer_env(newcomer), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(r["changed"] == 0 for r in recap(again.stdout).values()), again.stdout[-3000:]
