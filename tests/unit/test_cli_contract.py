"""The CLI's JSON contract, read the way the collection reads it, from the real console script."""

from __future__ import annotations

import json

import pytest
from ansible_collections.twinsite.dr.plugins.module_utils._cli import TwinsiteError, parse_answer

from harness.cli import twinsite_cmd
from twinsite import JSON_API, __version__


def test_error_answer_is_json_with_exit_code_and_where() -> None:
    proc = twinsite_cmd("lab", "status", "--json", env={"TWINSITE_LAB_NAME": "BAD"})
    assert proc.returncode == 3  # ConfigError
    body = json.loads(proc.stdout)
    assert body["api"] == JSON_API
    assert body["version"] == __version__
    assert body["ok"] is False
    assert body["command"] == "lab status"
    assert body["error"]["type"] == "ConfigError"
    assert body["error"]["where"] == "TWINSITE_LAB_NAME"
    with pytest.raises(TwinsiteError) as err:
        parse_answer(proc.stdout, proc.returncode, proc.stderr, "lab status")
    assert err.value.message.startswith("twinsite lab status: TWINSITE_LAB_NAME: lab name 'BAD' must be")
    assert "what to do:" in err.value.message
    assert err.value.details["exit_code"] == 3


def test_error_answer_for_people_goes_to_stderr() -> None:
    proc = twinsite_cmd("lab", "status", env={"TWINSITE_LAB_NAME": "BAD"})
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert "TWINSITE_LAB_NAME: lab name 'BAD'" in proc.stderr


@pytest.mark.parametrize(
    ("stdout", "fragment"),
    [
        ("", "printed no JSON"),
        ("Traceback (most recent call last):", "is not JSON"),
        ('{"api": 2, "ok": true, "result": {}}', "speaks JSON api 2"),
        ('["not", "an", "object"]', "speaks JSON api None"),
    ],
)
def test_collection_refuses_answers_it_cannot_trust(stdout: str, fragment: str) -> None:
    with pytest.raises(TwinsiteError) as err:
        parse_answer(stdout, 1, "boom", "status")
    assert fragment in err.value.message


def test_collection_returns_the_result_of_a_good_answer() -> None:
    out = json.dumps({"api": 1, "ok": True, "result": {"state": "up"}})
    assert parse_answer("warming up\n" + out + "\n", 0, "", "lab status") == {"state": "up"}
