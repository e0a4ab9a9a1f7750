"""``<config>/<scenario>.stopped``: an empty marker beside a scenario's declaration. A stopped scenario keeps
its definition; the agent runs neither its senders nor its monitor nor its scheduled tests."""

from __future__ import annotations

from pathlib import Path

from twinsite.durable import remove, write_text


def marker(config_dir: Path, name: str) -> Path:
    return config_dir / f"{name}.stopped"


def is_stopped(config_dir: Path, name: str) -> bool:
    return marker(config_dir, name).exists()


def mark(config_dir: Path, name: str, stopped: bool) -> None:
    if stopped:
        write_text(marker(config_dir, name), "")
    else:
        remove(marker(config_dir, name))
