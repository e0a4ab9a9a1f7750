"""The scenario reference (docs/scenario-reference.md), rendered from the scenario schema, never written by hand.

Every key has its path (``switchover.fence.vms``, ``roots[].path``), its type with the allowed values, its
default or that it is required, and its description. ``$ref`` is resolved where it is used, so the reference
reads top-down: one section per top-level key, then one per variant of a mapping chosen by its ``type``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from twinsite.config.loader import LIST_KEYS, schema
from twinsite.config.plans import PLANS_KEY

#: How the committed reference is regenerated (its header says so, and the test that checks it).
COMMAND = "twinsite schema --reference > docs/scenario-reference.md"
#: The ``$defs`` that are value types (described once, at the top) rather than mappings.
VALUE_TYPES = ("size", "duration")

_NOUNS = {"string": "string", "integer": "integer", "number": "number", "boolean": "true or false"}
_PLURAL = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "true or false"}


@dataclass(frozen=True)
class Key:
    path: str
    kind: str
    default: Any
    required: bool
    description: str
    has_default: bool = False
    section: bool = False  # a top-level key with a section of its own (linked)


@dataclass
class Section:
    title: str
    intro: str = ""
    keys: list[Key] = field(default_factory=list)
    variants: list[Section] = field(default_factory=list)


def _defs() -> dict[str, Any]:
    defs: dict[str, Any] = schema()["$defs"]
    return defs


def resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``node`` with its ``$ref`` replaced by the definition (the node's own keys win), and the definition's name."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, None
    name = ref.rsplit("/", 1)[-1]
    target, _ = resolve(_defs()[name])
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}, name


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def _range(s: dict[str, Any]) -> str:
    low = s.get("minimum")
    if low is not None and "maximum" in s:
        return f"from {low} to {s['maximum']}"
    if low is not None:
        return f"≥ {low}"
    if "exclusiveMinimum" in s:
        return f"> {s['exclusiveMinimum']}"
    return f"≤ {s['maximum']}" if "maximum" in s else ""


def _scalar_kind(s: dict[str, Any], types: str, plural: bool) -> str:
    words = [(_PLURAL if plural else _NOUNS)[types]]
    if types in ("integer", "number"):
        words.append(_range(s))
    if s.get("minLength") == 1:
        words.insert(0, "non-empty")
    elif "minLength" in s:
        words.append(f"of at least {s['minLength']} characters")
    if "maxLength" in s:
        words.append(f"of at most {s['maxLength']} characters")
    if "pattern" in s:
        words.append(f"matching `{s['pattern']}`")
    return " ".join(w for w in words if w)


def kind(node: dict[str, Any], *, plural: bool = False) -> str:
    """What a value must be, in words: ``integer from 1 to 65535``, ``one of `manual`, `automatic```."""
    s, name = resolve(node)
    if name in VALUE_TYPES:
        return f"[{name}{'s' if plural else ''}](#value-types)"
    if "enum" in s:
        return "one of " + ", ".join(_code(v) for v in s["enum"])
    alternatives = s.get("anyOf") or s.get("oneOf")
    if alternatives:
        return " or ".join(kind(a, plural=plural) for a in alternatives)
    types = s.get("type", "object")
    if isinstance(types, list):
        return " or ".join(kind({**s, "type": t}, plural=plural) for t in types)
    if types == "object":
        return _mapping_kind(s, plural)
    if types == "array":
        return _list_kind(s)
    return _scalar_kind(s, types, plural)


def _mapping_kind(s: dict[str, Any], plural: bool) -> str:
    out = "mappings" if plural else "mapping"
    extra = s.get("additionalProperties")
    if isinstance(extra, dict) and "properties" not in s:
        names = s.get("propertyNames", {})
        allowed = f" matching `{names['pattern']}`" if "pattern" in names else ""
        refused = names.get("not", {}).get("enum")
        out += f" of names{allowed} to {kind(extra, plural=True)}"
        if refused:
            out += ", except " + ", ".join(_code(r) for r in refused)
    if "minProperties" in s:
        out += f" (at least {s['minProperties']})"
    return out


def _list_kind(s: dict[str, Any]) -> str:
    size = [f"at least {s['minItems']}"] if "minItems" in s else []
    if s.get("uniqueItems"):
        size.append("no repeats")
    return f"list of {kind(s.get('items', {}), plural=True)}" + (f" ({', '.join(size)})" if size else "")


def _object_of(node: dict[str, Any]) -> dict[str, Any] | None:
    """The mapping (with properties) a value is or holds: itself, a list's item, or one alternative."""
    s, _ = resolve(node)
    if "properties" in s:
        return s
    if s.get("type") == "array" and isinstance(s.get("items"), dict):
        return _object_of(s["items"])
    for alt in s.get("anyOf") or s.get("oneOf") or []:
        found = _object_of(alt)
        if found is not None:
            return found
    return None


def _walk(obj: dict[str, Any], path: str, section: Section) -> None:
    """Every key of the mapping ``obj`` (at ``path``) and below into ``section``, its variants as sections."""
    required = set(obj.get("required", ()))
    for name, node in obj.get("properties", {}).items():
        if set(node) == {"const"}:
            continue  # a variant's own `type`, described with the mapping
        section.keys.append(_key(f"{path}{name}", node, name in required))
        inner = _object_of(node)
        if inner is not None:
            _walk(inner, _below(f"{path}{name}", node), section)
    for branch in obj.get("allOf", ()):
        value = branch.get("if", {}).get("properties", {}).get("type", {}).get("const")
        if value is None or "then" not in branch:
            raise ValueError(f"{path}: only variants chosen by `type` (if/then) can be rendered: {branch}")
        where = path.rstrip(".")
        variant = Section(f"`{where}` with `type: {value}`", intro=branch["then"].get("description", ""))
        _walk(branch["then"], path, variant)
        section.variants.append(variant)


def sections() -> list[Section]:
    """The reference's sections: the top-level keys, then one section per top-level key that is a mapping,
    then the recovery plans declared beside the scenarios."""
    top = schema()
    first = Section("The scenario", intro=top.get("description", ""))
    out = [first]
    required = set(top.get("required", ()))
    for name, node in top["properties"].items():
        inner = _object_of(node)
        first.keys.append(_key(name, node, name in required, section=inner is not None))
        if inner is not None:
            own = Section(name, intro=first.keys[-1].description)
            _walk(inner, _below(name, node), own)
            out.append(own)
    plan = _defs()["recovery_plan"]
    plans = Section(PLANS_KEY, intro=plan["description"])
    _walk(plan, f"{PLANS_KEY}[].", plans)
    return [*out, plans]


def _key(path: str, node: dict[str, Any], required: bool, *, section: bool = False) -> Key:
    s, _ = resolve(node)
    return Key(path, kind(node), s.get("default"), required, s.get("description", ""), "default" in s, section)


def _below(path: str, node: dict[str, Any]) -> str:
    """The prefix of the keys inside ``path``: ``roots[].`` for a list of mappings, ``replication.`` for a mapping."""
    return path + ("[]." if resolve(node)[0].get("type") == "array" else ".")


def _flat(secs: list[Section]) -> Iterator[Section]:
    for sec in secs:
        yield sec
        yield from _flat(sec.variants)


def all_keys() -> Iterator[Key]:
    """Every key of the reference, variants included."""
    for sec in _flat(sections()):
        yield from sec.keys


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[Key]) -> list[str]:
    out = ["| key | type | default | description |", "|---|---|---|---|"]
    for k in rows:
        path = f"[`{k.path}`](#{k.path})" if k.section else f"`{k.path}`"
        default = "**required**" if k.required else _code(k.default) if k.has_default else "(none)"
        out.append(f"| {path} | {_cell(k.kind)} | {_cell(default)} | {_cell(k.description)} |")
    return out


def _value_types() -> list[str]:
    out = ["## Value types", ""]
    for name in VALUE_TYPES:
        s = _defs()[name]
        forms = " or ".join(kind(alt) for alt in s["oneOf"])
        out.append(f"- **{name}**: {s['description']} Written as {forms}.")
    return out


def markdown() -> str:
    """The whole reference, as committed in docs/scenario-reference.md."""
    out = [
        f"<!-- Generated from src/twinsite/schemas/scenario.schema.json by `{COMMAND}`: do not edit. -->",
        "# Scenario reference",
        "",
        "Every setting of a scenario, from the schema that `twinsite validate` checks files against. A file holds "
        f"one scenario (a mapping) or a list of them under `{LIST_KEYS[0]}:` (`{LIST_KEYS[1]}:` in an inventory's "
        "group_vars). A key path such as `switchover.fence.vms` names a key inside mappings; `[]` stands for each "
        "item of a list. A key whose default is (none) is unset unless given; its description says what then.",
        "",
        *_value_types(),
    ]
    for sec in sections():
        for i, part in enumerate(_flat([sec])):
            out += ["", f"{'##' if i == 0 else '###'} {part.title}", ""]
            if part.intro:
                out += [part.intro, ""]
            out += _table(part.keys)
    return "\n".join(out) + "\n"
