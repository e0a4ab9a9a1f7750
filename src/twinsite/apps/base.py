"""The interface every application plugin implements (twinsite.apps), and where site plugins live."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twinsite.apps.checks import CheckResult, extra_checks
from twinsite.errors import AppError

DEFAULT_PLUGINS_DIR = Path("/etc/twinsite/plugins")


class Application:
    """The interface every plugin implements. ``settings`` are the scenario's application mapping."""

    kind = "application"
    #: a database: replicated with consistency points only, unless the scenario accepts torn copies
    #: (config.loader.DATABASE_TYPES names the built-in ones for validate; the agent asks the plugin)
    database = False

    def __init__(self, settings: dict[str, Any], roots: tuple[str, ...], plugins_dir: Path) -> None:
        self.settings = settings
        self.roots = roots
        self.plugins_dir = plugins_dir

    def find_data_dir(
        self, markers: Sequence[str], what: str, *, beside: Callable[[Path], bool] = lambda _: True
    ) -> Path:
        """The data directory: the ``data_dir`` setting, else the first directory inside the roots (up to two
        levels down) holding one of ``markers`` (and, with ``beside``, that it accepts); ``what`` says in the
        error what was looked for."""
        given = self.settings.get("data_dir")
        if given:
            return Path(given)
        for root in self.roots:
            for depth in ("", "*/", "*/*/"):
                for marker in markers:
                    for found in sorted(Path(root).glob(depth + marker)):
                        if beside(found.parent):
                            return found.parent
        raise AppError(f"no {what} under {', '.join(self.roots)}", hint="set application.data_dir in the scenario")

    def data_paths(self) -> list[Path]:
        """Where the application's data lives (inside the scenario's roots)."""
        return [Path(r) for r in self.roots]

    @property
    def port(self) -> int | None:
        """The TCP port its users reach it on (what a switchover checks from their side), if it has one."""
        return None

    def start(self) -> None:
        """Start it and wait until it runs (idempotent: a running application is left alone)."""

    def stop(self) -> None:
        """Stop it cleanly and wait until it is down (idempotent)."""

    def running(self) -> bool:
        return True

    def checks(self, *, quick: bool = False) -> list[CheckResult]:
        """The plugin's own checks, then the scenario's extra ones (tcp ports, scripts). ``quick`` leaves
        out what reads a lot (PostgreSQL's full scan): what monitoring runs every round."""
        return self.own_checks(quick=quick) + extra_checks(self.settings.get("checks", []), self.plugins_dir)

    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        return []

    def healthy(self, *, quick: bool = False) -> tuple[bool, list[CheckResult]]:
        results = self.checks(quick=quick)
        return all(r.ok for r in results), results
