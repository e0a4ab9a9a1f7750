"""Load scenario files and validate them against the one schema, reporting every error at once.

Each error names the file, the line, the key path, what was wrong and what was expected (:data:`EXPECTED`), and for
a misspelt key or value what was meant.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from twinsite.config.bandwidth import parse as parse_bandwidth
from twinsite.config.cron import parse as parse_schedule
from twinsite.config.plans import PLANS_KEY, RecoveryPlan
from twinsite.config.plans import problems as plan_problems
from twinsite.config.scenario import Scenario
from twinsite.errors import ConfigError

#: Keys under which a file may hold a list of scenarios (a scenario file, or an inventory's group_vars).
LIST_KEYS = ("scenarios", "twinsite_scenarios")


@cache
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("twinsite").joinpath("schemas/scenario.schema.json").read_text())
    return data


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top)'}: {self.message}"


def _node_at(node: yaml.Node | None, path: list[str | int]) -> yaml.Node | None:
    """The YAML node at a JSON path (for its line number); the deepest one found if the path runs out."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            return node
        node = nxt
    return node


def _key_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((k for k, _ in node.value if getattr(k, "value", None) == key), None)
    return None


def _path_text(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _problems(
    err: jsonschema.ValidationError, file: str, root: yaml.Node | None, prefix: list[str | int]
) -> list[Problem]:
    if err.validator in ("anyOf", "oneOf") and err.context and isinstance(err.instance, dict):
        branch = _matching_branch(err)
        if branch:  # the alternative whose type fits the value: its own errors say what is wrong
            return [p for e in branch for p in _problems(e, file, root, prefix)]
    path = prefix + list(err.absolute_path)
    sub: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    node = _node_at(root, path)
    line = node.start_mark.line + 1 if node is not None else None
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        return _unknown_keys(err.instance, sub, file, node, line, path)
    if "propertyNames" in err.absolute_schema_path:  # the key itself is wrong: point at it
        knode = _key_node(node, str(err.instance))
        line = knode.start_mark.line + 1 if knode is not None else line
        path = [*path, str(err.instance)]
    explain = EXPECTED.get(str(err.validator))
    return [Problem(file, line, _path_text(path), explain(err, sub) if explain else err.message)]


def _unknown_keys(
    instance: dict[str, Any], sub: dict[str, Any], file: str, node: yaml.Node | None, line: int | None, path: list[Any]
) -> list[Problem]:
    allowed = sorted(sub.get("properties", {}))
    out = []
    for key in sorted(set(instance) - set(allowed), key=str):
        near = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(allowed)}"
        knode = _key_node(node, key)
        kline = knode.start_mark.line + 1 if knode is not None else line
        out.append(Problem(file, kline, _path_text([*path, key]), f"unknown key '{key}': {hint}"))
    return out


_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}


def _what(value: Any) -> str:
    """What kind of YAML value ``value`` is, in the words of :data:`_JSON_TYPES`."""
    if isinstance(value, bool):
        return "true or false"
    for kind, cls in (("string", str), ("integer", int), ("number", float), ("array", list), ("object", dict)):
        if isinstance(value, cls):
            return _JSON_TYPES[kind]
    return "empty (null)" if value is None else type(value).__name__


def _type(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    wanted = sub.get("type")
    names = wanted if isinstance(wanted, list) else [wanted]
    return f"{err.instance!r} is {_what(err.instance)}; expected {' or '.join(_JSON_TYPES[str(n)] for n in names)}"


def _enum(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    allowed = sub.get("enum", [])
    out = f"{err.instance!r} is not one of {', '.join(map(repr, allowed))}"
    near = difflib.get_close_matches(str(err.instance), [str(a) for a in allowed], n=1)
    return out + (f": did you mean {near[0]!r}?" if near and isinstance(err.instance, str) else "")


def _pattern(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    out = f"{err.instance!r} does not match {sub.get('pattern')}"
    return out + (f"; expected: {sub['description']}" if "description" in sub else "")


def _alternatives(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    forms = sub.get("description") or " or ".join(
        _JSON_TYPES.get(str(alt.get("type")), "another form") for alt in sub.get(str(err.validator), [])
    )
    return f"{err.instance!r} is not valid; expected: {forms}"


def _size(err: jsonschema.ValidationError, limit: str, one: str, many: str) -> str:
    """A list, string or mapping of the wrong length: how long it is, and the limit."""
    value: Any = err.instance
    bound = err.validator_value
    have = "should be non-empty" if not value else f"has {len(value)} {one if len(value) == 1 else many}"
    return f"{value!r} {have}; expected {limit} {bound} {one if bound == 1 else many}"


def _not(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    refused = ", ".join(map(repr, sub.get("not", {}).get("enum", [])))
    return f"{err.instance!r} is not allowed here; expected: {sub.get('description') or 'anything but ' + refused}"


def _required(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    named = re.fullmatch(r"'(.+)' is a required property", err.message)
    missing = f"'{named.group(1)}'" if named else err.message
    return f"missing required key {missing} (required here: {', '.join(sub.get('required', []))})"


def _unique(err: jsonschema.ValidationError, sub: dict[str, Any]) -> str:
    seen: list[Any] = []
    items: Any = err.instance
    for item in items:
        if item in seen:
            return f"{item!r} is listed more than once; expected each item once"
        seen.append(item)
    return f"{err.message}; expected each item once"


#: For each JSON Schema keyword the scenario schema uses: what was wrong, then what was expected.
EXPECTED: dict[str, Callable[[jsonschema.ValidationError, dict[str, Any]], str]] = {
    "type": _type,
    "enum": _enum,
    "const": lambda err, sub: f"{err.instance!r} is not {sub.get('const')!r}; expected {sub.get('const')!r}",
    "pattern": _pattern,
    "anyOf": _alternatives,
    "oneOf": _alternatives,
    "not": _not,
    "required": _required,
    "uniqueItems": _unique,
    "minimum": lambda err, _: f"{err.instance!r} is too small; expected at least {err.validator_value}",
    "exclusiveMinimum": lambda err, _: f"{err.instance!r} is too small; expected more than {err.validator_value}",
    "maximum": lambda err, _: f"{err.instance!r} is too large; expected at most {err.validator_value}",
    "minItems": lambda err, _: _size(err, "at least", "item", "items"),
    "minLength": lambda err, _: _size(err, "at least", "character", "characters"),
    "maxLength": lambda err, _: _size(err, "at most", "character", "characters"),
    "minProperties": lambda err, _: _size(err, "at least", "entry", "entries"),
}


def _matching_branch(err: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors of the one alternative of an anyOf/oneOf whose type fits the value (a mapping given where
    a name or a mapping is allowed: the mapping's errors), or nothing when that is not clear."""
    by_branch: dict[int, list[jsonschema.ValidationError]] = {}
    for e in err.context or []:
        by_branch.setdefault(int(e.schema_path[0]), []).append(e)
    fitting = [
        errs
        for errs in by_branch.values()
        if not any(e.validator == "type" and not list(e.relative_path) for e in errs)
    ]
    return fitting[0] if len(fitting) == 1 else []


def _documents(data: Any) -> tuple[list[Any], list[str | int]] | None:
    if isinstance(data, dict):
        for key in LIST_KEYS:
            if key in data:
                return data[key], [key]
        return [data], []
    return None


def check_documents(data: Any, file: str, root: yaml.Node | None) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Validate every scenario in ``data``; return the documents and every problem found."""
    found = _documents(data)
    if found is None:
        return [], [Problem(file, 1, "", "expected a scenario (a mapping) or a mapping with a 'scenarios' list")]
    docs, prefix = found
    if not isinstance(docs, list):
        return [], [Problem(file, _line(root, prefix), _path_text(prefix), "expected a list of scenarios")]
    validator = jsonschema.Draft202012Validator(schema())
    problems: list[Problem] = []
    names: dict[str, int] = {}
    for i, doc in enumerate(docs):
        here = [*prefix, i] if prefix else []
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            problems.extend(_problems(err, file, root, here))
        problems.extend(_schedule_problems(doc, file, root, here))
        problems.extend(_consistency_problems(doc, file, root, here))
        problems.extend(_webhook_problems(doc, file, root, here))
        problems.extend(_http_check_problems(doc, file, root, here))
        problems.extend(_after_pass_problems(doc, file, root, here))
        name = doc.get("name") if isinstance(doc, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.append(
                    Problem(
                        file,
                        _line(root, [*here, "name"]),
                        _path_text([*here, "name"]),
                        f"scenario name '{name}' is used twice (first as item {names[name]})",
                    )
                )
            names.setdefault(name, i)
    scenarios = [d for d in docs if isinstance(d, dict)]
    if isinstance(data, dict) and PLANS_KEY in data:
        problems.extend(_check_plans(data[PLANS_KEY], scenarios, file, root))
    problems.sort(key=lambda p: (p.line or 0, p.path))
    return scenarios, problems


def _check_plans(plans: Any, scenarios: list[dict[str, Any]], file: str, root: yaml.Node | None) -> list[Problem]:
    """The recovery plans beside the scenarios: against the schema, then against the scenarios they name."""
    prefix: list[str | int] = [PLANS_KEY]
    if not isinstance(plans, list):
        return [Problem(file, _line(root, prefix), PLANS_KEY, "expected a list of recovery plans")]
    validator = jsonschema.Draft202012Validator({"$defs": schema()["$defs"], "$ref": "#/$defs/recovery_plan"})
    out: list[Problem] = []
    for i, doc in enumerate(plans):
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            out.extend(_problems(err, file, root, [*prefix, i]))
    if not out:
        for path, message in plan_problems(plans, scenarios):
            out.append(Problem(file, _line(root, [*prefix, *path]), _path_text([*prefix, *path]), message))
    return out


def _schedule_problems(doc: Any, file: str, root: yaml.Node | None, here: list[str | int]) -> list[Problem]:
    """What the schema lets through but is not right: a cron expression that is not one, a bandwidth schedule
    with an unknown zone, days or hours."""
    out = []
    for section, key, parse in (
        ("assured_recovery", "schedule", parse_schedule),
        ("replication", "bandwidth_schedule", parse_bandwidth),
    ):
        part = doc.get(section) if isinstance(doc, dict) else None
        value = part.get(key) if isinstance(part, dict) else None
        if not isinstance(value, (str, dict)):
            continue
        try:
            parse(value)  # type: ignore[arg-type]
        except ConfigError as exc:
            path = [*here, section, key]
            out.append(Problem(file, _line(root, path), _path_text(path), f"{exc.message} ({exc.hint or 'see docs'})"))
    return out


#: application types that are databases (their plugins say ``database = True``; a test keeps the two in step)
DATABASE_TYPES = frozenset({"postgresql", "sqlite", "mysql"})


def _consistency_problems(doc: Any, file: str, root: yaml.Node | None, here: list[str | int]) -> list[Problem]:
    """A database replicated file by file without saying that torn copies are accepted."""
    if not isinstance(doc, dict):
        return []
    app = doc.get("application", "files")
    kind = app.get("type") if isinstance(app, dict) else app
    rep = doc.get("replication")
    rep = rep if isinstance(rep, dict) else {}
    if kind not in DATABASE_TYPES or rep.get("consistency") != "file" or rep.get("accept_torn_database_copies"):
        return []
    path = [*here, "replication", "consistency"]
    return [
        Problem(
            file,
            _line(root, path),
            _path_text(path),
            f"a {kind} database replicated with consistency: file can reach the standby torn (its files copied "
            "at different moments: the copy may not start, or may hold rows its own checks reject); use "
            "consistency: points (the root on a btrfs subvolume), or add accept_torn_database_copies: true "
            "to say you accept that (docs/replication.md, Consistency)",
        )
    ]


def _webhook_problems(doc: Any, file: str, root: yaml.Node | None, here: list[str | int]) -> list[Problem]:
    """A webhook gets its URL from the declaration or from a file on the host: one of the two."""
    alerts = doc.get("alerts") if isinstance(doc, dict) else None
    out = []
    for i, a in enumerate(alerts if isinstance(alerts, list) else []):
        if not isinstance(a, dict) or a.get("type") != "webhook" or (("url" in a) != ("url_file" in a)):
            continue
        path = [*here, "alerts", i]
        said = "both url and url_file" if "url" in a else "neither url nor url_file"
        out.append(
            Problem(file, _line(root, path), _path_text(path), f"a webhook needs url or url_file; it has {said}")
        )
    return out


def _http_check_problems(doc: Any, file: str, root: yaml.Node | None, here: list[str | int]) -> list[Problem]:
    """An http check's body pattern that is not a regular expression."""
    out = []
    for section in ("application", "assured_recovery"):
        part = doc.get(section) if isinstance(doc, dict) else None
        checks = part.get("checks") if isinstance(part, dict) else None
        for i, c in enumerate(checks if isinstance(checks, list) else []):
            if not isinstance(c, dict) or c.get("type") != "http" or not isinstance(c.get("body"), str):
                continue
            try:
                re.compile(c["body"])
            except re.error as exc:
                path = [*here, section, "checks", i, "body"]
                out.append(Problem(file, _line(root, path), _path_text(path), f"not a regular expression: {exc}"))
    return out


def _after_pass_problems(doc: Any, file: str, root: yaml.Node | None, here: list[str | int]) -> list[Problem]:
    """A vm_copy of the test's snapshot (from_snapshot) without a snapshot action of that VM before it."""
    part = doc.get("assured_recovery") if isinstance(doc, dict) else None
    actions = part.get("after_pass") if isinstance(part, dict) else None
    out = []
    snapped: set[Any] = set()
    for i, a in enumerate(actions if isinstance(actions, list) else []):
        if not isinstance(a, dict):
            continue
        if a.get("type") == "snapshot":
            snapped.add(a.get("vm"))
        elif a.get("type") == "vm_copy" and a.get("from_snapshot") is True and a.get("vm") not in snapped:
            path = [*here, "assured_recovery", "after_pass", i, "from_snapshot"]
            out.append(
                Problem(
                    file,
                    _line(root, path),
                    _path_text(path),
                    f"from_snapshot copies the snapshot the test's snapshot action takes, and no snapshot action of"
                    f" {a.get('vm')!r} comes before this vm_copy: add one before it, or leave from_snapshot out (the"
                    " VM's current state is copied)",
                )
            )
    return out


def _line(root: yaml.Node | None, path: list[str | int]) -> int | None:
    node = _node_at(root, path)
    return node.start_mark.line + 1 if node is not None else None


#: libyaml's parser where PyYAML has it (every command and the agent's reload read every scenario file: the
#: pure-Python parser took most of a command's start at a dozen scenarios); same constructor and resolver
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def validate_file(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Read and validate one file; never raises for bad content (returns the problems instead)."""
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return [], [Problem(file, None, "", f"cannot read: {exc.strerror}")]
    return validate_text(text, file)


def validate_text(text: str, file: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Validate YAML (or JSON) text; ``file`` names it in the problems."""
    try:
        loader = _LOADER(text)
        try:  # (parsed once: the nodes give the problems their lines, the data is made from the same nodes)
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [], [
            Problem(file, mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")
        ]
    return check_documents(data, file, root)


def parse_scenarios(docs: list[dict[str, Any]]) -> list[Scenario]:
    return [Scenario.from_document(d) for d in docs]


def load_site(data: dict[str, Any], where: str) -> tuple[list[Scenario], list[RecoveryPlan]]:
    """The scenarios and recovery plans of an inventory (``twinsite_scenarios``, ``twinsite_recovery_plans``),
    or one ConfigError listing every problem in them (``where`` names their source in it)."""
    docs, problems = check_documents(data, where, None)  # (no lines: the values come from variables)
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in the scenarios and recovery plans:\n"
            + "\n".join(f"  {p}" for p in problems),
            where=where,
            hint="fix them; nothing was changed",
        )
    return parse_scenarios(docs), [RecoveryPlan.from_document(p) for p in data.get(PLANS_KEY) or []]


def load_file(path: Path) -> list[Scenario]:
    """Load a file of scenarios, or raise one ConfigError listing every problem in it."""
    docs, problems = validate_file(path)
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in the scenario configuration:\n" + "\n".join(f"  {p}" for p in problems),
            where=str(path),
            hint="fix them; nothing was changed",
        )
    return parse_scenarios(docs)
