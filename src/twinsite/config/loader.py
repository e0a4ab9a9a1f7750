"""Load scenario files and validate them against the one schema, reporting every error at once.

Each error names the file, the line, the key path, what was wrong and, for a misspelt key, what was meant.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from twinsite.config.scenario import Scenario
from twinsite.errors import ConfigError
from twinsite.recovery.schedule import parse as parse_schedule

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
        allowed = sorted(sub.get("properties", {}))
        out = []
        for key in sorted(set(err.instance) - set(allowed)):
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(allowed)}"
            knode = _key_node(node, key)
            kline = knode.start_mark.line + 1 if knode is not None else line
            out.append(Problem(file, kline, _path_text([*path, key]), f"unknown key '{key}': {hint}"))
        return out
    message = err.message
    if err.validator == "enum":
        message = f"{err.instance!r} is not one of {', '.join(map(repr, sub.get('enum', [])))}"
    elif err.validator in ("type", "pattern", "minimum", "maximum", "exclusiveMinimum", "minItems", "minLength"):
        desc = sub.get("description")
        message = f"{err.message}" + (f" (expected: {desc})" if desc else "")
    elif err.validator in ("oneOf", "anyOf") and "description" in sub:
        message = f"{err.instance!r} is not valid: expected {sub['description']}"
    return [Problem(file, line, _path_text(path), message)]


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
    problems.sort(key=lambda p: (p.line or 0, p.path))
    return [d for d in docs if isinstance(d, dict)], problems


def _schedule_problems(doc: Any, file: str, root: yaml.Node | None, here: list[str | int]) -> list[Problem]:
    """A cron expression the schema lets through (a string) but that is not one."""
    ar = doc.get("assured_recovery") if isinstance(doc, dict) else None
    text = ar.get("schedule") if isinstance(ar, dict) else None
    if not isinstance(text, str):
        return []
    try:
        parse_schedule(text)
    except ConfigError as exc:
        path = [*here, "assured_recovery", "schedule"]
        return [Problem(file, _line(root, path), _path_text(path), f"{exc.message} ({exc.hint or 'see docs'})")]
    return []


def _line(root: yaml.Node | None, path: list[str | int]) -> int | None:
    node = _node_at(root, path)
    return node.start_mark.line + 1 if node is not None else None


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
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [], [
            Problem(file, mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")
        ]
    return check_documents(data, file, root)


def parse_scenarios(docs: list[dict[str, Any]]) -> list[Scenario]:
    return [Scenario.from_document(d) for d in docs]


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
