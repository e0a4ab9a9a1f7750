#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: assured_recovery
short_description: Test a scenario's replica on this standby, without touching production
version_added: 0.1.0
description:
  - Runs an assured-recovery test on a standby. The application starts on the replica's data through a
    throw-away overlay, and the plugin's checks and the scenario's test scripts run, each with its timeout.
    The application then stops and its writes are discarded. Replication goes on meanwhile into a spool and
    is applied afterwards, so the active host notices nothing.
  - Every test writes an evidence record on the standby. It holds the tested seq and the age of its data
    (the real RPO), the time to a healthy application (the real RTO), each check with its output, the
    replica's digests before and after, and the post-test actions (C(assured_recovery.after_pass)).
  - A failing test fails the task. Its evidence is in C(error.evidence), and an alert goes to the
    scenario's channels.
  - On the active host of the scenario nothing runs (RV(skipped_reason) says so). This lets a play target
    every host of a scenario.
  - With O(max_age), a test runs only when the newest passing test here is older. This makes the task
    idempotent for a CI pipeline that wants a recent proof.
  - Check mode says whether a test could start now and why not; nothing runs.
  - With O(hold), the test is interactive. Once its checks pass, the test copy stays up for testers for up
    to O(hold), published as O(expose) (an A record made with the scenario's dns redirect settings), while
    production users keep their names and replication keeps spooling. The task returns as soon as the copy
    is up. The test goes on in its own process on the standby until the hold runs out, O(end), a
    switchover, the spool's cap or the loss of the active host. Then the name is removed, the test's writes
    are discarded and the spool is applied. Its evidence records who tested, for how long, and how it ended.
  - With O(end), the test running on this standby is ended and its evidence returned (not changed when no
    test runs).
author:
  - twinsite developers (@twinsite)
options:
  scenario:
    description: The scenario.
    type: str
    required: true
  max_age:
    description:
      - Run only when no test passed here within this many seconds (0 always runs one). Not for O(hold).
    type: int
    default: 0
  hold:
    description:
      - An interactive test; how long testers may use the copy, a duration such as C(30m) or C(2h)
        (at most the scenario's C(assured_recovery.interactive.max_hold)).
    type: str
  expose:
    description:
      - With O(hold), the test name testers reach the copy by, e.g. C(db-test.dr.test). It must be inside the
        zone of the scenario's dns redirect and must not be one of its production names.
    type: str
  end:
    description:
      - End the test running on this standby (an interactive one, usually) and return its evidence.
    type: bool
    default: false
extends_documentation_fragment:
  - twinsite.dr.cli
  - twinsite.dr.cli.dirs
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.host]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.host).
  check_mode:
    support: full
    description: Whether a test could start now (the preflight's answer), or with O(end) whether one runs; nothing
      runs or ends.
  diff_mode:
    support: none
    description: A test changes no declared state; its evidence is the result.
notes:
  - >-
    Runbook, assured-recovery tests (running, scheduling and reading tests):
    C(docs/runbooks/assured-recovery.md) in the twinsite repository.
"""

EXAMPLES = r"""
- name: Test db's replica on this standby
  twinsite.dr.assured_recovery:
    scenario: db

- name: Make sure a test passed within the last day (CI)
  twinsite.dr.assured_recovery:
    scenario: db
    max_age: 86400

- name: Let testers use db's test copy for two hours as db-test.dr.test
  twinsite.dr.assured_recovery:
    scenario: db
    hold: 2h
    expose: db-test.dr.test

- name: End it sooner
  twinsite.dr.assured_recovery:
    scenario: db
    end: true
"""

RETURN = r"""
result:
  description: C(passed); a failed test fails the task.
  returned: when a test ran
  type: str
  sample: passed
id:
  description: The test's id (C(twinsite recover-test SCENARIO --report ID) on the standby).
  returned: when a test ran, or the recent one when O(max_age) skipped it
  type: str
tested:
  description: Per root, the tested C(seq), the source time of its data and C(age_seconds).
  returned: when a test ran
  type: list
  elements: dict
rto_seconds:
  description: From the application's start to every check passing.
  returned: when a test ran
  type: float
checks:
  description: Each check with C(name), C(ok), C(output), C(seconds).
  returned: when a test ran
  type: list
  elements: dict
actions:
  description: The post-test actions and their results (snapshot, archive, script).
  returned: when a test ran
  type: list
  elements: dict
evidence:
  description: The whole evidence record.
  returned: when a test ran
  type: dict
report:
  description: The evidence for people, line by line.
  returned: when a test ran
  type: list
  elements: str
ready:
  description: In check mode, whether a test could start now.
  returned: check mode
  type: bool
held:
  description: With O(hold), the test copy is up for testers (the test goes on in its own process).
  returned: with O(hold)
  type: bool
until:
  description: With O(hold), when the hold runs out (UTC).
  returned: with O(hold)
  type: str
test_name:
  description: With O(expose), the published C(name) and the standby's C(address) it points at.
  returned: with O(hold) and O(expose)
  type: dict
hold:
  description: With O(end), how the hold went (C(held_seconds), C(requested_seconds), C(ended), C(exposed)).
  returned: with O(end), when an interactive test ended
  type: dict
skipped_reason:
  description: Why no test ran (the active host, a recent passing test).
  returned: when no test ran
  type: str
"""

import time

from ansible_collections.twinsite.dr.plugins.module_utils._base import TwinsiteModule, dirs_args, dirs_argument_spec


def logic(module):
    p = module.params
    where = dirs_args(p)
    role = module.twinsite(["role", p["scenario"], *where])
    if role["active"] == role["host"]:
        return dict(changed=False, skipped_reason="%s is the active host: tests run on standbys" % role["host"])
    if p["end"]:
        return _end(module, where)
    if p["expose"] and not p["hold"]:
        module.fail_json(msg="expose is for an interactive test: give hold too")
    if p["max_age"] > 0 and not p["hold"]:
        tests = module.twinsite(["recover-test", p["scenario"], "--history", *where])["tests"]
        recent = [t for t in tests if t["result"] == "passed" and time.time() - t["started_ts"] < p["max_age"]]
        if recent:
            return dict(
                changed=False,
                id=recent[-1]["id"],
                skipped_reason="test %s passed at %s" % (recent[-1]["id"], recent[-1]["started"]),
            )
    if module.check_mode:
        plan = module.twinsite(["recover-test", p["scenario"], "--dry-run", *where])
        return dict(changed=plan["ready"], ready=plan["ready"], msg=plan["why"], steps=plan["steps"])
    if p["hold"]:
        extra = ["--expose", p["expose"]] if p["expose"] else []
        held = module.twinsite(["recover-test", p["scenario"], "--hold", p["hold"], *extra, "--background", *where])
        return dict(
            changed=True,
            held=True,
            id=held["id"],
            until=held["until"],
            test_name=held["test_name"],
            msg=_held_text(p["scenario"], held),
        )
    done = module.twinsite(["recover-test", p["scenario"], *where])
    return _ran(done)


def _held_text(scenario, held):
    name = " as %s" % held["test_name"]["name"] if held["test_name"] else ""
    return "the test copy of %s is up on %s%s until %s (end it with end: true)" % (
        scenario,
        held["host"],
        name,
        held["until"],
    )


def _end(module, where):
    p = module.params
    if module.check_mode:
        plan = module.twinsite(["recover-test", p["scenario"], "--dry-run", *where])
        return dict(changed=plan["running"], msg="a test runs here" if plan["running"] else "no test runs here")
    done = module.twinsite(["recover-test", p["scenario"], "--end", *where])
    if not done["changed"]:
        return dict(changed=False, msg="no test of %s runs here" % p["scenario"])
    return dict(_ran(done), hold=done.get("hold"))


def _ran(done):
    return dict(
        changed=True,
        result=done["result"],
        id=done["id"],
        tested=done["tested"],
        rto_seconds=done["rto_seconds"],
        checks=done["checks"],
        actions=done["actions"],
        evidence={k: v for k, v in done.items() if k != "changed"},
        report=_text(done),
    )


def _text(record):
    lines = ["%s: %s (test %s)" % (record["scenario"], record["result"], record["id"])]
    for t in record["tested"]:
        lines.append("tested %s at seq %s, data %s s old" % (t["root"], t["seq"], t["age_seconds"]))
    lines.append("time to a healthy application: %s s" % record["rto_seconds"])
    if record.get("hold"):
        lines.append("held for testers %s s: %s" % (round(record["hold"]["held_seconds"]), record["hold"]["ended"]))
    lines += ["check %s: %s" % (c["name"], "ok" if c["ok"] else "FAILED") for c in record["checks"]]
    for a in record["actions"]:
        lines.append("after: %s %s" % (a["type"], "ok" if a["ok"] else "FAILED: " + a.get("detail", "")))
    return lines


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            scenario=dict(type="str", required=True),
            max_age=dict(type="int", default=0),
            hold=dict(type="str"),
            expose=dict(type="str"),
            end=dict(type="bool", default=False),
            **dirs_argument_spec(),
        ),
        supports_check_mode=True,
        mutually_exclusive=[("end", "hold"), ("end", "expose")],
    )
    module.run(logic)


if __name__ == "__main__":
    main()
