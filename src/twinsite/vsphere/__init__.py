"""vSphere at the DR site: replica VMs, the DR cluster's HA/DRS/anti-affinity, placement, snapshots, fencing.

Everything here runs on the controller (or wherever vCenter is reachable) with pyVmomi; nothing here
imports Ansible. :mod:`placement` is pure computation and needs no vCenter.
"""

from __future__ import annotations

from twinsite.errors import TwinsiteError


class VSphereError(TwinsiteError):
    """vCenter refused or could not do something: wrong credentials, unreachable, unknown object, failed task."""

    exit_code = 15


class PlacementError(TwinsiteError):
    """The protected servers cannot be placed on the DR hosts under the rules (the message says why)."""

    exit_code = 16
