"""The lab's vCenter simulator through pyVmomi, independently of twinsite's own vSphere code: a verified
connection as the lab's user, objects found by name, tasks waited for, and a VM's power state."""

from __future__ import annotations

import contextlib
import ssl
import time
from typing import Any
from xml.parsers.expat import ExpatError

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from harness.wait import eventually
from twinsite.lab.topology import VCENTER_USER, Lab


def connect(lab: Lab, *, password: str | None = None, context: ssl.SSLContext | None = None) -> Any:
    """A session as the lab's vCenter user, the certificate checked against the lab's CA (unless ``context``)."""
    return SmartConnect(
        host=lab.ctl_address,
        port=443,
        user=VCENTER_USER,
        pwd=password if password is not None else lab.vcenter_password_file.read_text().strip(),
        sslContext=context or ssl.create_default_context(cafile=str(lab.ca_cert)),
    )


def wait_task(task: Any, timeout: float = 30) -> None:
    """Poll ``task.info.state`` until the task is over; fail on an error or a timeout."""
    if not eventually(lambda: task.info.state in ("success", "error"), timeout=timeout, interval=0.05, what="a task"):
        raise AssertionError(f"task still {task.info.state} after {timeout} s")
    if task.info.state != "success":
        raise AssertionError(task.info.error)


def by_name(content: Any, kind: Any) -> dict[str, Any]:
    """Every object of a kind (``vim.VirtualMachine``...) in the inventory, by name."""
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return {o.name: o for o in view.view}
    finally:
        view.Destroy()


def power_on(lab: Lab, vm_name: str) -> None:
    """Power the VM on unless it is on (a fenced production VM, after the test)."""
    si = connect(lab)
    try:
        vm = by_name(si.RetrieveContent(), vim.VirtualMachine)[vm_name]
        if vm.runtime.powerState != "poweredOn":
            wait_task(vm.PowerOnVM_Task())
    finally:
        Disconnect(si)


def power_state(lab: Lab, vm_name: str) -> str:
    si = connect(lab)
    try:
        return str(by_name(si.RetrieveContent(), vim.VirtualMachine)[vm_name].runtime.powerState)
    finally:
        Disconnect(si)


class Vc:
    """An independent pyVmomi view of the simulator."""

    def __init__(self, lab: Lab) -> None:
        self.si = connect(lab)
        self.content = self.si.RetrieveContent()

    def vms(self) -> dict[str, Any]:
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.VirtualMachine], True)
        return {v.name: v for v in view.view}

    def cluster(self) -> Any:
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.ClusterComputeResource], True)
        return next(c for c in view.view if c.name == "DR-Cluster")

    def wait(self, task: Any) -> Any:
        while task.info.state not in ("success", "error"):
            time.sleep(0.05)
        if task.info.state != "success":
            raise AssertionError(task.info.error)
        return task.info.result

    def datacenter(self, name: str = "DR") -> Any:
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.Datacenter], True)
        return next(d for d in view.view if d.name == name)

    def clone(self, source: str, name: str, *, extra_config: list[Any] | None = None) -> Any:
        """A VM ``name`` cloned from ``source`` in the DR cluster, powered off (made by the test, not by twinsite;
        ``extra_config`` as a hand-made clone of a VM would carry its advanced settings)."""
        pool = self.cluster().resourcePool
        spec = vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(pool=pool),
            powerOn=False,
            template=False,
            config=vim.vm.ConfigSpec(extraConfig=extra_config) if extra_config else None,
        )
        return self.wait(self.vms()[source].CloneVM_Task(folder=self.datacenter().vmFolder, name=name, spec=spec))

    def remove_vms(self, prefix: str) -> None:
        """Power off and remove every VM whose name starts with ``prefix`` (what a test made)."""
        for name, vm in self.vms().items():
            if name.startswith(prefix):
                if vm.runtime.powerState != "poweredOff":
                    self.wait(vm.PowerOffVM_Task())
                self.wait(vm.Destroy_Task())

    def refresh_datastores(self) -> None:
        """Set the simulator's free space of each datastore to what its directory really has free: it lowers the
        figure by the full size of every disk added or grown and never raises it when a VM is removed, so tests
        that make disks call this when they are done (real vCenter keeps the figure right by itself)."""
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.Datastore], True)
        for ds in view.view:
            with contextlib.suppress(ExpatError):  # the 0.24 simulator refreshes, then answers with an empty body
                ds.RefreshDatastore()

    def reconfigure_cluster(self, spec: Any) -> None:
        self.wait(self.cluster().ReconfigureComputeResource_Task(spec=spec, modify=True))
