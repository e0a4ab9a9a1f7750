"""The bookmark and rewind modules and playbooks/rewind.yml, through real ansible runs on the lab's `app`
scenario (CDP on, as the lab inventory declares it): bookmark, damage, rewind, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.cli import ansible, recap
from harness.scenarios import ensure_configured
from harness.wait import eventually
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab


def wait_for(path: Path, content: bytes, timeout: float = 30) -> None:
    if not eventually(
        lambda: path.exists() and path.read_bytes() == content, timeout=timeout, interval=0.05, what=str(path)
    ):
        raise AssertionError(f"{path} never held {content[:40]!r}")


def module(name: str, args: str, *extra: str) -> dict[str, object]:
    proc = ansible("ansible", "dr1", "-m", f"twinsite.dr.{name}", "-a", args, "-o", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, object] = json.loads(proc.stdout.split("=>", 1)[1])
    return out


def test_bookmark_rewind_confirmation_and_resume(lab: Lab) -> None:
    ensure_configured(lab)
    try:
        _scenario(lab)
    finally:  # never leave the lab's replica rewound (replication of `app` would wait for good)
        ansible(
            "ansible-playbook", "playbooks/rewind.yml", "-e", "scenario=app", "-e", "resume=true", "-e", "confirm=true"
        )


def _scenario(lab: Lab) -> None:
    src = lab.host("prod1").private_dir("/srv") / "app" / f"ledger-{time.monotonic_ns()}"
    dst = lab.host("dr1").private_dir("/srv") / "app" / src.name
    src.write_bytes(b"good ledger\n" * 1000)
    wait_for(dst, src.read_bytes())
    name = f"good-{src.name[7:]}"

    check = module("bookmark", f"scenario=app name={name}", "--check")
    assert check["changed"] is True
    made = module("bookmark", f"scenario=app name={name}")
    assert made["changed"] is True
    assert module("bookmark", f"scenario=app name={name}")["changed"] is False  # idempotent

    src.write_bytes(b"\xde\xad" * 5000)  # the damage, replicated
    wait_for(dst, src.read_bytes())

    plan = module("rewind", f"scenario=app to={name}", "--check", "--diff")
    assert plan["changed"] is True and src.name in plan["files"]  # type: ignore[operator]
    assert dst.read_bytes() == b"\xde\xad" * 5000  # check mode changed nothing

    refused = ansible("ansible-playbook", "playbooks/rewind.yml", "-e", "scenario=app", "-e", f"to={name}")
    assert refused.returncode != 0 and "not confirmed" in refused.stdout, refused.stdout[-3000:]
    assert dst.read_bytes() == b"\xde\xad" * 5000  # without confirmation nothing moves

    done = ansible(
        "ansible-playbook", "playbooks/rewind.yml", "-e", "scenario=app", "-e", f"to={name}", "-e", "confirm=true"
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert src.name in done.stdout  # what will be undone is printed first
    assert dst.read_bytes() == b"good ledger\n" * 1000
    assert recap(done.stdout)["dr1"]["changed"] == 1

    resumed = ansible(
        "ansible-playbook", "playbooks/rewind.yml", "-e", "scenario=app", "-e", "resume=true", "-e", "confirm=true"
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    wait_for(dst, src.read_bytes())  # forward again: the replica follows the source
    src.write_bytes(b"after the resume")
    wait_for(dst, b"after the resume")
    again = ansible(
        "ansible-playbook", "playbooks/rewind.yml", "-e", "scenario=app", "-e", "resume=true", "-e", "confirm=true"
    )
    assert recap(again.stdout)["dr1"]["changed"] == 0  # at the head already: nothing to do
