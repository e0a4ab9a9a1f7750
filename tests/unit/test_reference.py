"""The scenario reference is generated from the schema, every key is described, and the schema holds every key
the library reads (and nothing it ignores)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import MISSING
from typing import Any

import pytest

from harness.cli import REPO, twinsite_cmd
from twinsite.config import reference
from twinsite.config.loader import schema
from twinsite.config.plans import PLANS_KEY
from twinsite.config.scenario import keys_read

REFERENCE = REPO / "docs" / "scenario-reference.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    assert REFERENCE.read_text() == reference.markdown(), (
        f"{REFERENCE.relative_to(REPO)} is not what the schema gives: regenerate it with `{reference.COMMAND}`"
    )


def test_the_cli_prints_the_reference_and_the_schema() -> None:
    ref = twinsite_cmd("schema", "--reference")
    assert ref.returncode == 0, ref.stderr
    assert ref.stdout == reference.markdown()
    assert ref.stdout.splitlines()[0].startswith(
        f"<!-- Generated from src/twinsite/schemas/scenario.schema.json by `{reference.COMMAND}`"
    )
    body = json.loads(twinsite_cmd("schema", "--json").stdout)
    assert (body["ok"], body["command"], body["result"]) == (True, "schema", schema())


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (JSON pointer, subschema) of a key in the schema, variants and $defs included."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{where}/properties/{name}", sub
        for k, v in node.items():
            yield from _properties(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _properties(v, f"{where}/{i}")


def _described(sub: dict[str, Any]) -> bool:
    if "description" in sub or set(sub) == {"const"}:  # (a variant's `type`: described with its mapping)
        return True
    target, name = reference.resolve(sub)
    return name is not None and target.get("type") == "object" and bool(target.get("description"))


def test_every_key_of_the_schema_has_a_description() -> None:
    found = list(_properties(schema()))
    assert len(found) > 150
    assert [where for where, sub in found if not _described(sub)] == []
    assert [k.path for k in reference.all_keys() if not k.description] == []


def _gaps() -> tuple[list[str], list[str]]:
    """(keys the library reads that the schema lacks, keys of the schema that nothing reads)."""
    read = {path for path, _ in keys_read()}
    # (the recovery plans beside the scenarios are read by config.plans: tests/unit/test_plans.py checks theirs)
    paths = {k.path for k in reference.all_keys() if not k.path.startswith(PLANS_KEY)}

    def covered(p: str) -> bool:  # read, inside a mapping read whole, or a mapping holding a key read
        return p in read or any(p.startswith((r + ".", r + "[].")) or r.startswith((p + ".", p + "[].")) for r in read)

    return sorted(read - paths), sorted(p for p in paths if not covered(p))


def test_the_schema_has_every_key_the_library_reads_and_no_other() -> None:
    read = [path for path, _ in keys_read()]
    assert {"switchover.witness.port", "roots[].path", "assured_recovery.spool.max_size"} <= set(read)
    assert _gaps() == ([], [])


@pytest.mark.parametrize(
    ("drop", "gap"),
    [
        (("$defs", "replication", "properties", "batch_ms"), (["replication.batch_ms"], [])),
        (("$defs", "switchover", "properties", "witness", "properties", "port"), (["switchover.witness.port"], [])),
    ],
)
def test_the_coverage_check_finds_a_key_missing_from_the_schema(
    monkeypatch: pytest.MonkeyPatch, drop: tuple[str, ...], gap: tuple[list[str], list[str]]
) -> None:
    broken = copy.deepcopy(schema())
    node = broken
    for part in drop[:-1]:
        node = node[part]
    del node[drop[-1]]
    monkeypatch.setattr(reference, "schema", lambda: broken)
    assert _gaps() == gap


def test_the_coverage_check_finds_a_key_nothing_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = copy.deepcopy(schema())
    broken["$defs"]["cdp"]["properties"]["compress"] = {"description": "x", "type": "boolean"}
    monkeypatch.setattr(reference, "schema", lambda: broken)
    assert _gaps() == ([], ["cdp.compress"])


def test_every_default_in_the_reference_is_the_one_the_library_uses() -> None:
    """The reference's defaults come from the schema; each field the library reads must default to the same."""
    defaults = {k.path: k.default for k in reference.all_keys() if k.has_default}
    checked = []
    for path, f in keys_read():
        if path not in defaults:
            continue
        parse = f.metadata.get("parse") or (lambda v: v)
        own = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        assert parse(defaults[path]) == own, f"{path}: the schema says {defaults[path]!r}, the library uses {own!r}"
        checked.append(path)
    assert len(checked) > 30


def test_the_reference_reads_top_down() -> None:
    text = reference.markdown()
    assert text.index("## Value types") < text.index("## The scenario") < text.index("## replication")
    assert "| `switchover.fence.vms` | mapping of names to non-empty strings (at least 1) | **required** |" in text
    assert "### `alerts[]` with `type: email`" in text
    assert "| `replication.batch_ms` | integer from 1 to 10000 | `20` |" in text
    assert "$ref" not in text and "#/$defs" not in text
