"""Monitoring from the standby, on the lab: an agent on dr1 watches prod1 for a scenario; pulling prod1's
cable brings a host-unreachable alert to a real webhook after the configured misses, plugging it back a
resolved one; an application check failing on prod1 brings an application-down alert."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import VENV_BIN
from harness.scenarios import Scenario, install
from tests.integration.webhook import wait_for
from twinsite import lab as labmod
from twinsite.lab.topology import Lab
from twinsite.state.layout import HostState

pytestmark = pytest.mark.lab


def test_the_standby_alerts_when_the_active_host_or_its_application_fails(
    healed: Lab, hook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    lab = healed
    url, got = hook
    install(lab)
    sc = Scenario(lab, "mon")
    doc = sc.definition()
    doc["monitoring"] = {"interval": 1, "misses": 2, "timeout": 3}
    doc["alerts"] = [{"type": "webhook", "url": url}]
    sc.write_definition(doc)
    standby_conf = lab.host("dr1").private_dir("/etc/twinsite") / "only-mon"

    def publish() -> None:  # the same definition on both hosts, as configure.yml keeps it
        shutil.rmtree(standby_conf, ignore_errors=True)
        shutil.copytree(sc.config, standby_conf)

    publish()
    events = HostState(lab.host("dr1").private_dir("/var/lib/twinsite")).events
    sc.start()

    def context() -> str:  # what dr1's agent said and logged, when an alert does not come
        seen = events.read_text()[-1500:] if events.exists() else "(no event log)"
        return f"dr1 agent:\n{watcher_log.read_text(errors='replace')[-1500:]}\ndr1 events:\n{seen}"

    watcher_log = tmp_path / "dr1-agent.log"
    watcher = subprocess.Popen(
        [str(VENV_BIN / "twinsite"), "lab", "exec", "dr1", "--", "/opt/twinsite/bin/twinsite", "agent",
         "--config-dir", sc.config_dir],
        stdout=watcher_log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        sc.wait_synced()
        time.sleep(4)  # a few healthy rounds: no alert
        assert got == []

        labmod.cut(lab, "prod1")
        t0 = time.monotonic()
        alert = wait_for(got, "host-unreachable", 30, context)
        detected = time.monotonic() - t0
        print(f"host-unreachable alert {detected:.1f} s after the cut")
        # worst case: a round in progress when the cable goes waits for ssh's keep-alives (2 s x 3), then
        # misses x (interval + timeout); and a second of slack
        assert detected <= 6 + 2 * (1 + 3) + 1, detected
        assert (alert["scenario"], alert["host"], alert["severity"]) == ("mon", "prod1", "critical")
        assert "prod1 does not answer" in alert["what"] and "switch over" in alert["action"]
        labmod.heal(lab, "prod1")
        wait_for(got, "resolved-host-unreachable", 30, context)

        doc["application"] = {"type": "files", "checks": [{"type": "tcp", "port": 9, "timeout": 1}]}
        sc.write_definition(doc)
        publish()  # the agents reload it; prod1 now checks a port where nothing listens
        app = wait_for(got, "application-down", 30, context)
        assert "files application of mon on prod1 is unhealthy" in app["what"]
        assert "tcp 127.0.0.1:9" in app["details"]["last result"]
        logged = [json.loads(x)["kind"] for x in events.read_text().splitlines() if '"scenario": "mon"' in x]
        assert {"host-unreachable", "resolved-host-unreachable", "application-down"} <= set(logged)
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
        sc.stop()
