"""The CLI's two faces: text for people and the versioned JSON contract for machines.

Every ``--json`` answer is one JSON object on stdout::

    {"api": 1, "version": "0.1.0", "command": "lab status", "ok": true, "result": {...}}
    {"api": 1, "version": "0.1.0", "command": "lab up", "ok": false, "error": {"type": ..., "message": ...,
     "where": ..., "hint": ..., "exit_code": 5}}

``api`` is :data:`twinsite.JSON_API`; the collection refuses an answer whose major version it does not know.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twinsite import JSON_API, __version__
from twinsite.errors import TwinsiteError


def envelope(command: str, *, result: Any = None, error: TwinsiteError | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"api": JSON_API, "version": __version__, "command": command, "ok": error is None}
    if error is None:
        body["result"] = result
    else:
        body["error"] = error.to_json()
    return body


def print_json(body: dict[str, Any]) -> None:
    json.dump(body, sys.stdout, indent=None, sort_keys=True, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()
