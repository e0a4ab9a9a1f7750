"""vSphere at the DR site: replica VMs, the DR cluster's HA/DRS/anti-affinity, placement, snapshots, fencing.

Everything here runs on the controller (or wherever vCenter is reachable) with pyVmomi; nothing here
imports Ansible. :mod:`placement` is pure computation and needs no vCenter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What ensuring a resource did (or, in check mode, would do): its actions and its managed settings
    before and after (diff mode), with facts about the object (``vm`` for a replica VM)."""

    changed: bool
    actions: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]
    vm: dict[str, Any] = field(default_factory=dict)
