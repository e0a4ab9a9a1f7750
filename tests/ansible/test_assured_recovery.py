"""The assured_recovery module through playbooks/assured_recovery.yml, real ansible runs on the lab's `db`
scenario: check mode runs nothing and says whether a test could start; a run tests dr1 (prod1, the active
host, skips); with max_age a recent pass makes the run change nothing; a failing test fails the play with
its evidence."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.cli import ansible, recap
from harness.db import scenario_file
from harness.hosts import twinsite_on
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab


def play(*extra: str, ok: bool = True) -> tuple[str, dict[str, dict[str, int]]]:
    proc = ansible("ansible-playbook", "playbooks/assured_recovery.yml", "-e", "scenario=db", *extra, timeout=900)
    assert (proc.returncode == 0) == ok, proc.stdout[-4000:]
    return proc.stdout, recap(proc.stdout)


def history_on_dr1(lab: Lab) -> list[dict[str, object]]:
    return list(twinsite_on(lab, "dr1", "recover-test", "db", "--history")["result"]["tests"])


def test_the_playbook_checks_tests_and_is_idempotent_with_max_age(db: Lab) -> None:
    def new_tests() -> list[dict[str, object]]:  # (by id: the history keeps only the newest, `keep`)
        return [t for t in history_on_dr1(db) if t["id"] not in before]

    before = {t["id"] for t in history_on_dr1(db)}
    out, rc = play("--check")
    assert rc["dr1"]["changed"] == 1 and rc["prod1"]["changed"] == 0, out[-3000:]
    assert "a test can start now" in out and new_tests() == []  # nothing ran

    out, rc = play()
    assert rc["dr1"]["changed"] == 1 and rc["prod1"]["changed"] == 0, out[-3000:]
    assert "db: passed" in out and "check consistent: ok" in out and "prod1 is the active host" in out
    [test] = new_tests()
    assert test["result"] == "passed"

    out, rc = play("-e", "max_age=3600")
    assert rc["dr1"]["changed"] == 0, out[-3000:]
    assert f"test {test['id']} passed at" in out and new_tests() == [test]


def test_a_failing_test_fails_the_play_with_its_evidence(db: Lab) -> None:
    path = scenario_file(db, "dr1")
    original = path.read_text()
    doc = yaml.safe_load(original)
    doc["assured_recovery"]["checks"] = [{"type": "tcp", "port": 1, "timeout": 1}]
    doc["assured_recovery"]["start_timeout"] = 2
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        out, rc = play(ok=False)
    finally:
        path.write_text(original)
    assert rc["dr1"]["failed"] == 1, out[-3000:]
    assert "the assured-recovery test" in out and "failed: check(s) failed: tcp 127.0.0.1:1" in out
    assert "evidence:" in out and "digests:" in out  # the task's result holds the evidence record
    record = history_on_dr1(db)[-1]
    assert record["result"] == "failed" and json.dumps(record["digests"]).count('"equal": true') == 1
