"""Application plugins: how to start, stop and check a protected application, and where its data lives.

A scenario names its application type (``application: postgresql``, or a mapping with ``type`` and the
plugin's settings). Built in: ``files`` (data only), ``sqlite``, ``service`` (start/stop/status commands
or a systemd unit) and ``postgresql``. A site adds its own as YAML definitions of the ``service`` kind
in the plugins directory (``apps/<name>.yml``), with scripts for custom checks in ``checks/``.

Every operation has a timeout; every check returns a :class:`CheckResult` with its output, never raises
for a failing application (only for a plugin that cannot even be run: :class:`AppError`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.errors import TwinsiteError

DEFAULT_PLUGINS_DIR = Path("/etc/twinsite/plugins")


class AppError(TwinsiteError):
    """The application could not be started, stopped or checked (the message says what and why)."""

    exit_code = 18


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    output: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "output": self.output, "seconds": round(self.seconds, 3)}


def timed(name: str, fn: Callable[[], tuple[bool, str]]) -> CheckResult:
    t0 = time.monotonic()
    try:
        ok, out = fn()
    except AppError as exc:
        ok, out = False, str(exc)
    return CheckResult(name, ok, out.strip()[-2000:], time.monotonic() - t0)


class Application:
    """The interface every plugin implements. ``settings`` are the scenario's application mapping."""

    kind = "application"

    def __init__(self, settings: dict[str, Any], roots: tuple[str, ...], plugins_dir: Path) -> None:
        self.settings = settings
        self.roots = roots
        self.plugins_dir = plugins_dir

    def data_paths(self) -> list[Path]:
        """Where the application's data lives (inside the scenario's roots)."""
        return [Path(r) for r in self.roots]

    def start(self) -> None:
        """Start it and wait until it runs (idempotent: a running application is left alone)."""

    def stop(self) -> None:
        """Stop it cleanly and wait until it is down (idempotent)."""

    def running(self) -> bool:
        return True

    def checks(self, *, quick: bool = False) -> list[CheckResult]:
        """The plugin's own checks, then the scenario's extra ones (tcp ports, scripts). ``quick`` leaves
        out what reads a lot (PostgreSQL's full scan): what monitoring runs every round."""
        from twinsite.apps.checks import extra_checks

        return self.own_checks(quick=quick) + extra_checks(self.settings.get("checks", []), self.plugins_dir)

    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        return []

    def healthy(self, *, quick: bool = False) -> tuple[bool, list[CheckResult]]:
        results = self.checks(quick=quick)
        return all(r.ok for r in results), results


def wait_healthy(
    app: Application, *, quick: bool, timeout: float, between: Callable[[], None] | None = None
) -> tuple[bool, list[CheckResult]]:
    """Check ``app`` until every check passes or ``timeout`` s have passed (an application coming up fails
    its first rounds); the last round's results. ``between`` runs before each retry (it may raise to end it)."""
    deadline = time.monotonic() + timeout
    while True:
        ok, results = app.healthy(quick=quick)
        if ok or time.monotonic() > deadline:
            return ok, results
        if between is not None:
            between()
        time.sleep(0.5)


def load(application: str | dict[str, Any], roots: tuple[str, ...], plugins_dir: Path | None = None) -> Application:
    """The plugin for a scenario's ``application`` value (a type name, or a mapping with ``type``)."""
    from twinsite.apps.builtin import BUILTIN, site_definition

    settings = {"type": application} if isinstance(application, str) else dict(application)
    kind = str(settings.get("type", "files"))
    where = plugins_dir or Path(os.environ.get("TWINSITE_PLUGINS", DEFAULT_PLUGINS_DIR))
    if kind in BUILTIN:
        return BUILTIN[kind](settings, roots, where)
    defined = site_definition(where, kind)
    if defined is None:
        raise AppError(
            f"no application plugin {kind!r}",
            hint=f"built in: {', '.join(sorted(BUILTIN))}; or define it in {where / 'apps' / (kind + '.yml')}",
        )
    from twinsite.apps.builtin import Service

    return Service({**defined, **{k: v for k, v in settings.items() if k != "type"}}, roots, where)


def for_scenario(scenario: Any, plugins_dir: Path | None = None) -> Application:
    """The application plugin of a scenario (twinsite.config.scenario.Scenario)."""
    roots = tuple(r.path for r in scenario.roots)
    return load({**scenario.application_settings, "type": scenario.application}, roots, plugins_dir)
