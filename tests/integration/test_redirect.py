"""Redirection by a service address and by a site script, on the lab: a planned switchover of a small
file-server scenario moves 10.77.0.100 from prod1 to dr1 with a gratuitous ARP (client1, which had prod1's
MAC cached, reaches dr1 at once), runs the site's redirect script with the switchover's facts, and sends the
switchover's alerts to a real webhook; the switch-back moves the address home."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from harness.cli import VENV_BIN
from harness.hosts import ssh
from harness.scenarios import Scenario, install
from harness.wait import eventually
from tests.integration.webhook import wait_for
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab
VIP = "10.77.0.100"
PORT = 8080
# answers every connection on any address with the host's name (started inside a lab host)
NAME_SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 8080))\n"
    "s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(socket.gethostname().encode() + b'\\n'); c.close()\n"
)
SCRIPT = """#!/bin/sh
env | grep '^TWINSITE_' | sort > /var/lib/twinsite/test-redirect.env
echo "redirected $TWINSITE_SCENARIO to $TWINSITE_NEW_ACTIVE"
"""


def lab_exec(lab: Lab, host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), "lab", "exec", host, "--", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def who_answers(lab: Lab) -> str:
    got = ssh(lab, "client1", f"timeout 5 bash -c 'exec 3<>/dev/tcp/{VIP}/{PORT}; cat <&3'")
    return got.stdout.strip()


@pytest.fixture
def vip(healed: Lab, hook: tuple[str, list[dict[str, Any]]]) -> Iterator[tuple[Scenario, list[dict[str, Any]]]]:
    lab = healed
    url, got = hook
    install(lab)
    sc = Scenario(lab, "vip")
    doc = sc.definition()
    doc["switchover"] = {"verify": {"from": ["client1"], "port": PORT, "timeout": "20s"}}
    doc["redirect"] = [
        {"type": "ip", "address": f"{VIP}/24", "interface": "eth0"},
        {"type": "script", "name": "test-redirect"},
    ]
    doc["alerts"] = [{"type": "webhook", "url": url}]
    sc.write_definition(doc)
    standby_conf = lab.host("dr1").private_dir("/etc/twinsite") / "only-vip"
    shutil.rmtree(standby_conf, ignore_errors=True)
    shutil.copytree(sc.config, standby_conf)
    for h in ("prod1", "dr1"):
        d = lab.host(h).private_dir("/etc/twinsite") / "plugins" / "redirect"
        d.mkdir(parents=True, exist_ok=True)
        (d / "test-redirect").write_text(SCRIPT)
        (d / "test-redirect").chmod(0o755)
        lab_exec(lab, h, "ip", "addr", "del", f"{VIP}/24", "dev", "eth0")  # (left by an interrupted run)
    assert lab_exec(lab, "prod1", "ip", "addr", "add", f"{VIP}/24", "dev", "eth0").returncode == 0
    servers = [
        subprocess.Popen([str(VENV_BIN / "twinsite"), "lab", "exec", h, "--", "python3", "-c", NAME_SERVER])
        for h in ("prod1", "dr1")
    ]
    sc.start()
    dr1_agent = subprocess.Popen(
        [
            str(VENV_BIN / "twinsite"),
            "lab",
            "exec",
            "dr1",
            "--",
            "/opt/twinsite/bin/twinsite",
            "agent",
            "--config-dir",
            sc.config_dir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sc.wait_synced()
        yield sc, got
    finally:
        dr1_agent.terminate()
        dr1_agent.wait(timeout=30)
        sc.stop()
        for p in servers:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
        for h in ("prod1", "dr1"):
            lab_exec(lab, h, "pkill", "-f", "socket.gethostname")
            lab_exec(lab, h, "ip", "addr", "del", f"{VIP}/24", "dev", "eth0")
            shutil.rmtree(lab.host(h).private_dir("/var/lib/twinsite") / "vip", ignore_errors=True)


def switch(lab: Lab, host: str, kind: str, config_dir: str) -> dict[str, Any]:
    p = lab_exec(lab, host, "/opt/twinsite/bin/twinsite", kind, "vip", "--config-dir", config_dir, "--json")
    body: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    assert body["ok"], body
    return dict(body["result"])


def mac(lab: Lab, host: str) -> str:
    return (
        (lab.host(host).dir / "mac").read_text()
        if False
        else lab_exec(lab, host, "cat", "/sys/class/net/eth0/address").stdout.strip()
    )


def test_a_service_address_and_a_script_move_users_and_the_alerts_say_so(
    vip: tuple[Scenario, list[dict[str, Any]]],
) -> None:
    sc, got = vip
    lab = sc.lab
    eventually(lambda: who_answers(lab) == "prod1", timeout=10, interval=0.2, what="prod1 answering")
    assert who_answers(lab) == "prod1"  # client1 now has prod1's MAC for the address in its cache
    cached = ssh(lab, "client1", f"ip neigh show {VIP}").stdout
    assert mac(lab, "prod1") in cached, cached

    r = switch(lab, "dr1", "switchover", sc.config_dir)
    assert r["result"] == "done" and r["mode"] == "planned", r
    ip, script = r["redirect"]
    assert (ip["type"], ip["address"], ip["removed_from_old"], ip["changed"]) == ("ip", f"{VIP}/24", True, True)
    assert script["output"] == "redirected vip to dr1"
    # client1 reached dr1 at its first try, within the switchover's verification: with prod1's MAC still
    # cached (no gratuitous ARP) that first connection would go to prod1 and time out (5 s) first
    verify = next(s for s in r["steps"] if s["step"] == "verify-users")
    assert verify["seconds"] < 3 and verify["result"]["probes"][0]["connected"], verify
    assert mac(lab, "dr1") in ssh(lab, "client1", f"ip neigh show {VIP}").stdout
    assert who_answers(lab) == "dr1"
    assert VIP not in lab_exec(lab, "prod1", "ip", "-4", "addr", "show", "dev", "eth0").stdout
    env = (lab.host("dr1").private_dir("/var/lib/twinsite") / "test-redirect.env").read_text().splitlines()
    assert {
        "TWINSITE_SCENARIO=vip",
        "TWINSITE_NEW_ACTIVE=dr1",
        "TWINSITE_OLD_ACTIVE=prod1",
        "TWINSITE_OLD_REACHABLE=1",
    } <= set(env)
    started = wait_for(got, "switchover-started", 10, lambda: "")
    done = wait_for(got, "switchover-done", 10, lambda: "")
    assert (started["scenario"], started["host"], started["severity"]) == ("vip", "dr1", "warning")
    assert done["severity"] == "info" and "vip is active on dr1" in done["what"]
    assert "after a planned switchover from prod1" in done["what"]
    assert float(done["details"]["RTO (outage, s)"]) > 0 and done["details"]["RPO (s)"] == "0.0"
    assert done["details"]["report"].endswith(f"{r['id']}.txt")

    def replicating_from_dr1() -> bool:  # dr1 replicates to prod1 (its agent follows the role)
        st = json.loads(
            lab_exec(lab, "dr1", "/opt/twinsite/bin/twinsite", "status", "--config-dir", sc.config_dir, "--json").stdout
        )["result"]["scenarios"]
        return [x["state"] for x in st if x["role"] == "active"] == ["replicating"]

    eventually(replicating_from_dr1, timeout=30, interval=0.3, what="dr1 replicating")
    back = switch(lab, "prod1", "switchback", sc.config_dir)
    assert back["result"] == "done" and back["to"] == "prod1"
    assert who_answers(lab) == "prod1"
    assert VIP not in lab_exec(lab, "dr1", "ip", "-4", "addr", "show", "dev", "eth0").stdout
