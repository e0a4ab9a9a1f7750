"""What a scenario's declaration holds that must never be shown: an alert webhook's URL (services put their
tokens in its credentials, path or query) and its headers' values (API keys). Everything that reports a
declaration (the scenario module's before/after and diff, the CLI's answers, errors) shows it redacted; the
secrets can also stay out of the declaration altogether, in files on the host (``url_file``, ``headers_file``).

The host-side Ansible modules cannot import this library; module_utils/_base.py (``alert_secrets``) finds the
same values for Ansible's own masking, and tests/unit/test_secrets.py keeps the two in step.
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

MASK = "********"


def shown_url(url: str) -> str:
    """Only the scheme and host of a URL (and its port)."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    return f"{u.scheme}://{host}{':' + str(u.port) if u.port else ''}/..."


def _webhooks(definition: Any) -> list[dict[str, Any]]:
    alerts = definition.get("alerts") if isinstance(definition, dict) else None
    if not isinstance(alerts, list):
        return []
    return [a for a in alerts if isinstance(a, dict) and a.get("type") == "webhook"]


def secrets(definition: Any) -> list[str]:
    """Every secret value in a declaration (for masking wherever it could appear)."""
    out: list[str] = []
    for hook in _webhooks(definition):
        if isinstance(hook.get("url"), str):
            out.append(hook["url"])
        headers = hook.get("headers")
        if isinstance(headers, dict):
            out.extend(str(v) for v in headers.values())
    return [s for s in out if s]


def redacted(definition: Any) -> Any:
    """A copy of a declaration with its secrets replaced: a webhook's URL by its scheme and host, its headers'
    values by ********."""
    if not _webhooks(definition):
        return definition
    out = copy.deepcopy(definition)
    for hook in _webhooks(out):
        if isinstance(hook.get("url"), str):
            hook["url"] = shown_url(hook["url"])
        headers = hook.get("headers")
        if isinstance(headers, dict):
            hook["headers"] = dict.fromkeys(headers, MASK)
    return out
