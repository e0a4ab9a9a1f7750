"""The lab's vCenter simulator: verified HTTPS, one user, and a DR-shaped inventory."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from twinsite.lab.topology import VCENTER_USER, Lab

pytestmark = pytest.mark.lab


def connect(lab: Lab, *, password: str | None = None, context: ssl.SSLContext | None = None) -> Any:
    return SmartConnect(
        host=lab.ctl_address,
        port=443,
        user=VCENTER_USER,
        pwd=password if password is not None else lab.vcenter_password_file.read_text().strip(),
        sslContext=context or ssl.create_default_context(cafile=str(lab.ca_cert)),
    )


def test_pyvmomi_finds_the_dr_cluster_and_the_template(lab: Lab) -> None:
    si = connect(lab)
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ClusterComputeResource], True)
        clusters = {c.name: c for c in view.view}
        dr = clusters["DR-Cluster"]
        assert dr.parent.parent.name == "DR"  # host folder -> datacenter
        assert sorted(h.name for h in dr.host) == ["esx-dr-1", "esx-dr-2", "esx-dr-3"]
        vms = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True).view
        by_name = {v.name: v for v in vms}
        assert by_name["linux-template"].config.template is True
        assert by_name["prod1-vm"].config.template is False
    finally:
        Disconnect(si)


def test_wrong_password_is_refused(lab: Lab) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        connect(lab, password="not-the-password")


def test_certificate_is_checked_against_the_lab_ca(lab: Lab) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(lab, context=ssl.create_default_context())  # system CAs only: the lab CA is not among them
