"""Running twinsite and Ansible on the controller: the ``twinsite`` console script of this environment, and
``ansible``/``ansible-playbook`` of this environment with the repository's ansible.cfg (the collection, the
connection settings) and an inventory named on the command line: the lab's unless the caller names another
(ansible.cfg names none, so that no command runs against the lab by accident)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: The inventory the harness's Ansible runs use unless they name another: the lab's.
LAB_INVENTORY = "inventories/lab"


def twinsite_cmd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `twinsite` console script of this environment."""
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
        check=False,
    )


def controller_env() -> dict[str, str]:
    """What the controller's commands (``twinsite site status``, ``report``, ``console``) run with in the tests:
    this environment's commands first, the repository's ansible.cfg, and nothing else of the caller's."""
    return {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": "/root", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}


def on_controller(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``twinsite ARGS`` as a user runs it on the controller, from the repository (``-i inventories/...``)."""
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), *args],
        cwd=REPO,
        env=controller_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ansible(
    tool: str, *args: str, inventory: str | Path = LAB_INVENTORY, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``TOOL -i INVENTORY ARGS``: ``ansible``, ``ansible-playbook``... of this environment, run from the
    repository (its ansible.cfg), against ``inventory`` (a path relative to the repository, or absolute)."""
    env = dict(
        os.environ,
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return subprocess.run(
        [str(VENV_BIN / tool), "-i", str(inventory), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ``ansible-playbook`` output: per host, its counters (ok, changed, failed...)."""
    rows = {}
    for m in re.finditer(r"^(\S+)\s+: ((?:\w+=\d+\s*)+)$", output, re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows
