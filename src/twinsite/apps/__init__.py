"""Application plugins: how to start, stop and check a protected application, and where its data lives.

A scenario names its application type (``application: postgresql``, or a mapping with ``type`` and the
plugin's settings). Built in: ``files`` (data only), ``sqlite``, ``service`` (start/stop/status commands
or a systemd unit), ``postgresql`` and ``mysql`` (MariaDB or MySQL). A site adds its own as YAML definitions
of the ``service`` kind in the plugins directory (``apps/<name>.yml``), with scripts for custom checks in
``checks/``.

Every operation has a timeout; every check returns a :class:`CheckResult` with its output, never raises
for a failing application (only for a plugin that cannot even be run: :class:`AppError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinsite.apps.base import DEFAULT_PLUGINS_DIR, Application
from twinsite.apps.builtin import BUILTIN, Service, site_definition
from twinsite.apps.checks import CheckResult
from twinsite.errors import AppError
from twinsite.proc import wait_until

__all__ = ["DEFAULT_PLUGINS_DIR", "Application", "CheckResult", "for_scenario", "load", "wait_healthy"]


def wait_healthy(
    app: Application, *, quick: bool, timeout: float, between: Callable[[], None] | None = None
) -> tuple[bool, list[CheckResult]]:
    """Check ``app`` until every check passes or ``timeout`` s have passed (an application coming up fails
    its first rounds); the last round's results. ``between`` runs before each retry (it may raise to end it)."""
    rounds: list[tuple[bool, list[CheckResult]]] = []

    def healthy() -> bool:
        if rounds and between is not None:
            between()
        rounds.append(app.healthy(quick=quick))
        return rounds[-1][0]

    wait_until(healthy, timeout=timeout, interval=0.5)
    return rounds[-1]


def load(application: str | dict[str, Any], roots: tuple[str, ...], plugins_dir: Path | None = None) -> Application:
    """The plugin for a scenario's ``application`` value (a type name, or a mapping with ``type``)."""
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
    return Service({**defined, **{k: v for k, v in settings.items() if k != "type"}}, roots, where)


def for_scenario(scenario: Any, plugins_dir: Path | None = None) -> Application:
    """The application plugin of a scenario (twinsite.config.scenario.Scenario)."""
    roots = tuple(r.path for r in scenario.roots)
    return load({**scenario.application_settings, "type": scenario.application}, roots, plugins_dir)
