"""A controller-side module (twinsite.dr.recovery_plan) run by real ``ansible`` with the twinsite library
missing, of another JSON API, or incomplete: each is a clear failure that says what to install, never a
traceback as the message.

The library of another version and the incomplete one are stand-ins: a package named ``twinsite`` put first
on the module's path, with nothing but the attributes said; the missing one is Debian's own python3, which has
no twinsite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import ansible

ARGS = json.dumps({"plan": "site", "action": "test", "scenarios": [], "plans": [], "hosts": {}})


def run(*extra: str) -> dict[str, object]:
    done = ansible("ansible", "localhost", "-m", "twinsite.dr.recovery_plan", "-a", ARGS, *extra, "-o")
    assert done.returncode != 0, done.stdout
    got: dict[str, object] = json.loads(done.stdout.split("=>", 1)[1])
    return got


def stub(tmp_path: Path, init: str) -> Path:
    (tmp_path / "twinsite").mkdir()
    (tmp_path / "twinsite" / "__init__.py").write_text(init)
    return tmp_path


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="Debian's python3 is the one without twinsite")
def test_the_library_missing_says_what_to_install() -> None:
    got = run("-e", "ansible_python_interpreter=/usr/bin/python3")
    assert "Failed to import the required Python library (twinsite (of this collection's version" in str(got["msg"])
    assert "requirements.txt" in str(got["msg"])


def test_a_library_of_another_json_api_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(stub(tmp_path, '__version__ = "9.0.0"\nJSON_API = 2\n')))
    got = run()
    assert got["msg"] == (
        "the twinsite library on the controller (version 9.0.0) speaks JSON api 2; this collection understands "
        "[1]: install the library of the collection's version (its requirements.txt)"
    )


def test_a_library_missing_a_part_is_a_clear_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(stub(tmp_path, '__version__ = "0.0.1"\nJSON_API = 1\n')))
    got = run()
    msg = str(got["msg"])
    assert msg.startswith("the twinsite library on the controller (version 0.0.1) is incomplete or of another version")
    assert "No module named 'twinsite." in msg
    assert "Traceback" not in msg
