"""Alert secrets (a webhook's URL and headers) never shown: the library redacts what it reports of a declaration
(config.secrets; store.apply's before/after), the host-side module finds the same values for Ansible's own
masking (module_utils._base.alert_secrets); a webhook can read both from files on its host instead
(tests/unit/test_alerts.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.twinsite.dr.plugins.module_utils._base import alert_secrets

from twinsite.config.loader import check_documents
from twinsite.config.secrets import MASK, redacted, secrets
from twinsite.config.store import apply

URL = "https://hooks.example.net/services/T0KEN/B1/s3cr3t?key=abc123"
DEFINITION: dict[str, Any] = {
    "master": "prod1",
    "replicas": ["dr1"],
    "roots": [{"path": "/srv/app"}],
    "alerts": [
        {"type": "syslog"},
        {"type": "webhook", "url": URL, "headers": {"Authorization": "Bearer xyz-987654", "X-Team": "dr-oncall"}},
    ],
}


def test_the_library_and_the_module_find_the_same_secrets_and_redact_them() -> None:
    assert secrets(DEFINITION) == [URL, "Bearer xyz-987654", "dr-oncall"]
    assert alert_secrets(DEFINITION) == secrets(DEFINITION)
    shown = redacted(DEFINITION)
    hook = shown["alerts"][1]
    assert hook["url"] == "https://hooks.example.net/..."
    assert hook["headers"] == {"Authorization": MASK, "X-Team": MASK}
    assert DEFINITION["alerts"][1]["url"] == URL  # (a copy: the declaration itself is untouched)
    assert redacted({"alerts": [{"type": "syslog"}]}) == {"alerts": [{"type": "syslog"}]}


def test_apply_reports_no_secret_but_writes_the_declaration_and_sees_its_changes(tmp_path: Path) -> None:
    first = apply(tmp_path, "app", DEFINITION, "started", check=False)
    assert first.changed
    said = json.dumps(first.to_json())
    assert not [s for s in secrets(DEFINITION) if s in said], said
    assert URL in (tmp_path / "app.yml").read_text()  # (the agent needs it)
    assert not apply(tmp_path, "app", DEFINITION, "started", check=False).changed
    other = json.loads(json.dumps(DEFINITION))
    other["alerts"][1]["url"] = URL.replace("abc123", "def456")  # a new token: a change, though both show alike
    again = apply(tmp_path, "app", other, "started", check=True)
    assert again.changed
    assert "def456" not in json.dumps(again.to_json()) and "abc123" not in json.dumps(again.to_json())


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        ({"type": "webhook"}, "a webhook needs url or url_file; it has neither url nor url_file"),
        ({"type": "webhook", "url": URL, "url_file": "/etc/x"}, "it has both url and url_file"),
        ({"type": "webhook", "url_file": "relative/file"}, "does not match"),
    ],
)
def test_a_webhook_needs_its_url_from_one_place(hook: dict[str, Any], said: str) -> None:
    doc = {**DEFINITION, "name": "app", "alerts": [hook]}
    _docs, problems = check_documents(doc, "f.yml", None)
    assert [str(p) for p in problems if said in str(p)], problems
