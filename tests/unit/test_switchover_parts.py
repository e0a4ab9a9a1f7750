"""The switchover's parts that need no lab: DNS names within a zone, users' addresses, what a switch-back
sets aside, the report's RTO and RPO, the role command, the schema of switchover and redirect, and the
runner's fault hook (a real process killed after a step's work)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.cli import twinsite_cmd
from twinsite.cdp.rewind import pause
from twinsite.config.loader import check_documents
from twinsite.config.store import load_dir
from twinsite.errors import ConfigError, SwitchoverError
from twinsite.locks import held
from twinsite.ops.runner import Context, Result, Runner, Step
from twinsite.ops.site import Site
from twinsite.redirect.dns import _relative
from twinsite.redirect.methods import address_of
from twinsite.state import rewind, runs
from twinsite.state.applied import AppliedFile
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.state.rewind import RewindPosition
from twinsite.state.role import Role, store
from twinsite.switchover import handover
from twinsite.switchover.preflight import Preflight, Request, rewound_roots, same_rewind
from twinsite.switchover.report import summarize, text
from twinsite.switchover.switchback import copy_differences
from twinsite.tree import entries

BASE = {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/db"}]}


@pytest.mark.parametrize("name", ["db", "db.dr.test", "db.dr.test."])
def test_a_name_inside_the_zone_is_updated_as_itself(name: str) -> None:
    assert str(_relative(name, "dr.test")) == "db"


def test_a_name_outside_the_zone_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"not inside zone dr\.test"):
        _relative("db.example.org.", "dr.test")


def test_users_are_sent_to_the_given_address_and_never_to_a_loopback_one() -> None:
    assert address_of({"addresses": {"dr1": "10.0.0.12"}}, "dr1") == "10.0.0.12"
    with pytest.raises(ConfigError, match="loopback"):
        address_of({}, "localhost")


def test_a_switch_back_sets_aside_what_differs_here_and_only_that(tmp_path: Path) -> None:
    here, active, aside = tmp_path / "here", tmp_path / "active", tmp_path / "aside"
    for d in (here, active):
        (d / "sub").mkdir(parents=True)
        (d / "same").write_bytes(b"same on both")
        os.utime(d / "same", ns=(10**18, 10**18))
    (here / "sub" / "diverged").write_bytes(b"written here during the split")
    (active / "sub" / "diverged").write_bytes(b"the active host's version")
    (here / "only-here").write_bytes(b"made here only")
    (active / "only-there").write_bytes(b"made there only")
    os.symlink("same", here / "link")
    items = copy_differences(here, entries(here), entries(active), aside, unshipped={b"sub/diverged"})
    got = {i["path"]: (i["why"], i["unreplicated"]) for i in items}
    assert got == {
        "sub/diverged": ("differs", True),
        "only-here": ("only here", False),
        "only-there": ("only on the active host", False),
        "link": ("only here", False),
    }
    assert (aside / "sub" / "diverged").read_bytes() == b"written here during the split"
    assert (aside / "only-here").read_bytes() == b"made here only"
    assert not (aside / "same").exists() and not (aside / "only-there").exists()
    assert next(i for i in items if i["path"] == "link")["target"] == "same"


@dataclass(frozen=True)
class Given(Result):
    """A step's result as the report reads it back from the run file."""

    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.facts)


def test_the_report_measures_the_outage_from_the_failure_and_the_loss_from_the_last_applied_change(
    tmp_path: Path,
) -> None:
    names = ["preflight", "promote", "start-application", "check-application", "redirect", "verify-users"]
    results = {
        "preflight": {
            "mode": "unplanned",
            "old_active": "prod1",
            "new_active": "dr1",
            "epoch": 1,
            "failure_at": 1000.0,
        },
        "promote": {"rpo_seconds": 1.5, "last_applied_at": 998.0, "failure_at": 999.5},
        "verify-users": {"probes": [{"ok": True}]},
    }
    runner = Runner(
        tmp_path / "run.json",
        "switchover",
        [Step(n, n, lambda ctx, n=n: Given(results.get(n, {}))) for n in names],
        error=SwitchoverError,
    )
    run = runner.run({"scenario": "db"})
    r = summarize(run, "db", "dr1")
    verify_end = run.steps[-1].ended
    # (the failure is when the old host was last heard, 999.5, not when the monitor noticed, 1000.0)
    assert r["rto"]["outage_seconds"] == pytest.approx(verify_end - 999.5, abs=0.001)
    assert (r["rpo"]["seconds"], r["mode"], r["from"], r["to"], r["result"]) == (
        1.5,
        "unplanned",
        "prod1",
        "dr1",
        "done",
    )
    assert "RPO: 1.50 s: changes made on prod1 between" in text(r)


def test_the_fault_hook_kills_the_process_after_the_step_and_the_next_run_does_it_again(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    log = tmp_path / "log"
    script.write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        from twinsite.errors import TwinsiteError
        from twinsite.ops.runner import Result, Runner, Step
        def step(name):
            def run(ctx):
                with open({str(log)!r}, "a") as f:
                    f.write(name + "\\n")
                return Result()
            return Step(name, name, run)
        Runner(Path({str(tmp_path / "state.json")!r}), "t", [step("a"), step("b")], error=TwinsiteError).run({{}})
    """)
    )
    crashed = subprocess.run([sys.executable, str(script)], env=dict(os.environ, TWINSITE_CRASH_AFTER="a"), check=False)
    assert crashed.returncode == -9
    state = json.loads((tmp_path / "state.json").read_text())
    assert [s["state"] for s in state["steps"]] == ["running", "pending"]
    subprocess.run([sys.executable, str(script)], check=True)
    assert log.read_text().split() == ["a", "a", "b"]  # a ran again: its work was never recorded as done


def test_a_run_refused_before_any_step_took_new_parameters(tmp_path: Path) -> None:
    calls: list[dict[str, object]] = []

    def pre(ctx: Context) -> Result:
        calls.append(dict(ctx.params))
        if not ctx.params.get("unplanned"):
            raise ConfigError("the active host does not answer")
        return Result()

    runner = Runner(tmp_path / "run.json", "switchover", [Step("preflight", "", pre)], error=SwitchoverError)
    with pytest.raises(Exception, match="does not answer"):
        runner.run({"unplanned": False})
    runner.run({"unplanned": True})  # the same unfinished run, with what the operator said now
    assert [c["unplanned"] for c in calls] == [False, True]


def test_the_role_command_records_a_newer_epoch_once_and_refuses_an_older_one(tmp_path: Path) -> None:
    cfg, state = tmp_path / "cfg", tmp_path / "state"
    cfg.mkdir()
    (cfg / "db.yml").write_text(json.dumps(BASE))
    where = ["--config-dir", str(cfg), "--state-dir", str(state), "--json"]
    env = {"TWINSITE_HOST": "prod1"}
    first = json.loads(twinsite_cmd("role", "db", *where, env=env).stdout)["result"]
    assert (first["active"], first["epoch"], first["changed"]) == ("prod1", 0, False)
    setit = ["role", "db", "--set", "dr1", "--epoch", "1", "--run", "r1", *where]
    assert json.loads(twinsite_cmd(*setit, env=env).stdout)["result"]["changed"] is True
    assert json.loads(twinsite_cmd(*setit, env=env).stdout)["result"]["changed"] is False
    older = twinsite_cmd("role", "db", "--set", "prod1", "--epoch", "0", *where, env=env)
    assert older.returncode == 19 and "newer than 0" in json.loads(older.stdout)["error"]["message"]
    stranger = twinsite_cmd("role", "db", "--set", "dr9", "--epoch", "2", *where, env=env)
    assert stranger.returncode == 3


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"switchover": {"mode": "sometimes"}}, "switchover.mode"),
        (
            {"switchover": {"fence": {"type": "vsphere", "hostname": "vc", "username": "u", "password_file": "/p"}}},
            "switchover.fence",
        ),
        ({"redirect": [{"type": "ip", "address": "10.0.0.1", "interface": "eth0"}]}, "redirect[0].address"),
        (
            {"redirect": [{"type": "dns", "name": "db", "zone": "z", "server": "s", "key_file": "relative.json"}]},
            "redirect[0].key_file",
        ),
        ({"switchover": {"witness": {"hosts": []}}}, "switchover.witness.hosts"),
    ],
)
def test_bad_switchover_and_redirect_settings_are_refused_where_they_are(
    extra: dict[str, object], fragment: str
) -> None:
    _docs, problems = check_documents({**BASE, **extra}, "db.yml", None)
    assert problems and any(fragment in str(p) for p in problems), [str(p) for p in problems]


def test_the_active_host_refuses_to_rewind_its_live_data(tmp_path: Path) -> None:
    cfg, state = tmp_path / "cfg", tmp_path / "state"
    cfg.mkdir()
    (cfg / "db.yml").write_text(json.dumps({**BASE, "cdp": {"enabled": True}}))
    place = ScenarioState(state, "db")
    place.receiver(0).rewind_log.mkdir(parents=True)
    store(place, Role("db", "dr1", 1))  # after a switchover
    where = ["--config-dir", str(cfg), "--state-dir", str(state), "--json"]
    refused = twinsite_cmd("rewind", "db", "--to", "1", *where, env={"TWINSITE_HOST": "dr1"})
    assert refused.returncode == 14, refused.stdout + refused.stderr
    assert "this host is the active host of db" in json.loads(refused.stdout)["error"]["message"]


def _standby_with_rewind(tmp_path: Path) -> tuple[Site, ReceiverState]:
    cfg, state = tmp_path / "cfg", tmp_path / "state"
    cfg.mkdir()
    (cfg / "db.yml").write_text(json.dumps({**BASE, "cdp": {"enabled": True}}))
    s = load_dir(cfg)[0]
    site = Site(s, "dr1", state, cfg, None)
    site.recv(0).rewind_log.mkdir(parents=True)
    return site, site.recv(0)


def _seen(rewound: list[dict[str, Any]]) -> Preflight:
    """What an unplanned preflight to dr1 saw of the rewound roots."""
    return Preflight("prod1", "dr1", epoch=1, mode="unplanned", replication_last_seen=None, rewound=rewound)


def test_a_switchover_to_rewound_data_takes_only_a_finished_point_and_only_the_one_preflight_saw(
    tmp_path: Path,
) -> None:
    site, recv = _standby_with_rewind(tmp_path)
    applied = AppliedFile(recv.applied)
    applied.write(40, 1.0, 0)
    pause(recv, head=40, target=25)  # a rewind under way (interrupted)
    with pytest.raises(SwitchoverError, match="is rewound to seq 40: it is not the latest data"):
        rewound_roots(site, Request())
    with pytest.raises(SwitchoverError, match="the rewind of /srv/db to seq 25 is unfinished"):
        rewound_roots(site, Request(rewound=True))
    rewind.store(recv.rewind, RewindPosition(head=40, at=25, target=25))  # ... and finished
    seen = rewound_roots(site, Request(rewound=True))
    assert seen == [{"root": "/srv/db", "seq": 25, "head": 40}]
    same_rewind(site, _seen(seen))  # nothing moved since: taken
    rewind.store(recv.rewind, RewindPosition(head=40, at=20, target=20))  # rewound further meanwhile
    with pytest.raises(SwitchoverError, match="it is rewound to seq 20 now, and was rewound to seq 25"):
        same_rewind(site, _seen(seen))
    recv.rewind.unlink()  # resumed meanwhile: the head is the data again
    with pytest.raises(SwitchoverError, match="it is not rewound now, and was rewound to seq 25") as e:
        same_rewind(site, _seen(seen))
    assert "`twinsite rewind db --to 25`" in str(e.value.hint)
    applied.write(25, 1.0)  # what settle leaves: the point is the applied position, no rewound state
    same_rewind(site, _seen(seen))
    rewind.store(recv.rewind, RewindPosition(head=40, at=30, target=30))  # a rewind after a plain preflight
    with pytest.raises(SwitchoverError, match="it is rewound to seq 30 now, and was not rewound"):
        same_rewind(site, _seen([]))
    applied.close()


def test_a_standby_refuses_to_rewind_during_an_unfinished_switchover(tmp_path: Path) -> None:
    site, _recv = _standby_with_rewind(tmp_path)
    runs.store(site.place.switchover_run, runs.RunState("r1", "switchover", {}, 0.0, []))  # unfinished
    where = ["--config-dir", str(site.config_dir), "--state-dir", str(site.state_dir), "--json"]
    refused = twinsite_cmd("rewind", "db", "--to", "1", *where, env={"TWINSITE_HOST": "dr1"})
    assert refused.returncode == 14, refused.stdout + refused.stderr
    assert "a switchover of db is unfinished here" in json.loads(refused.stdout)["error"]["message"]


def test_a_promotion_that_cannot_take_every_roots_lock_releases_the_ones_it_took(tmp_path: Path) -> None:
    """Promote holds every root's apply lock while the role changes; when one cannot be taken (here its state
    directory cannot be made), the ones taken already are released: a receiver of the first root would
    otherwise wait for ever, and every later switchover with it."""
    cfg, state = tmp_path / "cfg", tmp_path / "state"
    cfg.mkdir()
    roots = [{"path": "/srv/db"}, {"path": "/srv/logs"}]
    (cfg / "db.yml").write_text(json.dumps({**BASE, "roots": roots}))
    site = Site(load_dir(cfg)[0], "dr1", state, cfg, None)
    site.recv(1).dir.parent.mkdir(parents=True)
    site.recv(1).dir.write_text("a file where root 1's state directory should be")
    pre = Preflight("prod1", "dr1", epoch=1, mode="unplanned", replication_last_seen=None)
    with pytest.raises(FileExistsError) as failed:
        handover._take_over(site, Context("r1", {}, {"preflight": pre.to_json()}), site.role(), changed=True)
    # (while the error is alive, as it is while the runner records it and the caller reports it)
    with held(site.recv(0).apply_lock, wait=False) as free:
        assert free, f"root 0's apply lock is still held after the failed promotion ({failed.value})"
    assert site.role().active == "prod1"  # and nothing was switched
