"""The drill's report (twinsite.drill) through the real CLI: phases arranged with their own figures, a stopped
drill fails with what did not run, and a malformed record is refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import twinsite_cmd


def record(*phases: dict[str, object], planned: list[str] | None = None) -> dict[str, object]:
    return {"id": "T1", "planned": planned or [str(p["name"]) for p in phases], "phases": list(phases)}


def phase(name: str, ok: bool = True, t: float = 1_800_000_000.0, **figures: object) -> dict[str, object]:
    return {"name": name, "title": f"the {name}", "ok": ok, "started": t, "ended": t + 2.5, "figures": figures}


def report(tmp_path: Path, doc: object) -> tuple[int, dict[str, object], str]:
    src = tmp_path / "phases.json"
    src.write_text(json.dumps(doc))
    p = twinsite_cmd("drill-report", str(src), "--out-dir", str(tmp_path / "out"), "--json")
    body = json.loads(p.stdout)
    return p.returncode, body, p.stderr


def test_a_passing_drill_is_written_as_json_and_markdown_with_its_figures(tmp_path: Path) -> None:
    doc = record(
        phase("assured-recovery", rto_seconds=5.943, data_age_seconds=3.018),
        phase("failover", t=1_800_000_010.0, rpo_seconds=31.582, rto_seconds=17.306, users_reach="10.77.0.12"),
    )
    rc, body, _ = report(tmp_path, doc)
    assert rc == 0 and body["ok"], body
    r = body["result"]
    assert r["result"] == "passed" and r["not_run"] == [] and r["seconds"] == 5.0
    assert [(h["phase"], h["figure"], h["value"]) for h in r["headline"]] == [
        ("failover", "rpo_seconds", 31.582),
        ("failover", "rto_seconds", 17.306),
        ("assured-recovery", "data_age_seconds", 3.018),
        ("assured-recovery", "rto_seconds", 5.943),
    ]
    assert r["phases"][1]["started_at"] == "2027-01-15T08:00:10Z"
    assert json.loads(Path(r["files"]["json"]).read_text())["phases"] == r["phases"]
    md = Path(r["files"]["markdown"]).read_text()
    assert md.startswith("# DR drill T1: PASSED\n")
    assert "| the failover | pass | 2.5 | rpo_seconds: 31.582; rto_seconds: 17.306; users_reach: 10.77.0.12 |" in md
    text = twinsite_cmd("drill-report", str(tmp_path / "phases.json"), "--out-dir", str(tmp_path / "out")).stdout
    assert text.startswith("drill T1: PASSED (5.0 s)") and "RPO of the failover" in text


def test_a_drill_that_stopped_fails_and_names_the_failed_and_the_unrun_phases(tmp_path: Path) -> None:
    failed = {**phase("failover", ok=False), "error": "Switch over: dr1 is not reachable"}
    rc, body, _ = report(tmp_path, record(phase("lab"), failed, planned=["lab", "failover", "switchback"]))
    assert rc == 0  # the report is written; the playbook fails the drill after it
    r = body["result"]
    assert r["result"] == "failed" and r["not_run"] == ["switchback"]
    md = Path(r["files"]["markdown"]).read_text()
    assert "| the failover | FAIL: Switch over: dr1 is not reachable | 2.5 |" in md
    assert "| switchback | not run | | |" in md


def test_a_malformed_record_is_refused_with_the_reason_and_nothing_written(tmp_path: Path) -> None:
    for doc, why in (
        ({"phases": "all"}, "a drill record is a mapping with a list of phases"),
        (record({**phase("lab"), "ok": "yes"}), "phases[0] (lab): ok must be true or false, not 'yes'"),
        (record({**phase("lab"), "ended": None}), "phases[0] (lab): ended must be a Unix time, not None"),
        ({"phases": [{"ok": True}]}, "phases[0]: a phase is a mapping with a name"),
    ):
        rc, body, _ = report(tmp_path, doc)
        assert rc == 3 and why in body["error"]["message"], body
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    p = twinsite_cmd("drill-report", str(bad), "--out-dir", str(tmp_path / "out"))
    assert p.returncode == 3 and "cannot read the drill's phases" in p.stderr
    assert not (tmp_path / "out").exists()
