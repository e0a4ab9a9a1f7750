"""A vCenter session: login with verified certificates, finding objects by name, waiting for tasks.

Every failure becomes a :class:`VSphereError` that says what failed and where: wrong credentials, an
unreachable or untrusted vCenter, an unknown object (with the names that do exist), a failed task (with
vCenter's own message). The password is never part of a message or a ``repr``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from twinsite.errors import VSphereError

T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    hostname: str
    username: str
    password: str = field(repr=False)
    port: int = 443
    validate_certs: bool = True  # off only on an explicit opt-out
    ca_file: str | None = None  # a private CA that signed vCenter's certificate
    timeout: float = 30.0

    @property
    def where(self) -> str:
        return f"vCenter {self.hostname}:{self.port}"

    @classmethod
    def from_settings(cls, spec: Mapping[str, Any]) -> Credentials:
        """From a scenario's vCenter settings (a fence, a post-test snapshot): hostname, username,
        password_file (read here, on the host that acts), port, validate_certs, ca_file, timeout."""
        from twinsite.config.scenario import parse_duration
        from twinsite.errors import ConfigError

        try:
            password = Path(spec["password_file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the vCenter password file: {exc.strerror}", where=str(spec["password_file"])
            ) from exc
        return cls(
            hostname=str(spec["hostname"]),
            username=str(spec["username"]),
            password=password,
            port=int(spec.get("port", 443)),
            validate_certs=bool(spec.get("validate_certs", True)),
            ca_file=spec.get("ca_file"),
            timeout=parse_duration(spec.get("timeout", 30)),
        )


def _ssl_context(creds: Credentials) -> ssl.SSLContext:
    if not creds.validate_certs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        return ssl.create_default_context(cafile=creds.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise VSphereError(f"cannot read the CA file: {exc}", where=creds.ca_file) from exc


class Session:
    """A logged-in vCenter connection. Use :func:`connect` (a context manager that logs out)."""

    def __init__(self, si: Any, creds: Credentials) -> None:
        self.si = si
        self.creds = creds
        self.content = si.RetrieveContent()

    # -- finding things ------------------------------------------------------------------------------
    def all(self, kind: type[T], within: Any = None) -> list[T]:
        view = self.content.viewManager.CreateContainerView(within or self.content.rootFolder, [kind], True)
        try:
            return list(view.view)
        finally:
            view.Destroy()

    def properties(self, kind: type[T], paths: list[str], within: Any = None) -> list[tuple[T, dict[str, Any]]]:
        """Every object of ``kind`` (under ``within``) with the properties at ``paths``, in one round trip
        (reading them object by object costs one each); a property an object does not have is left out."""
        pc = vmodl.query.PropertyCollector
        view = self.content.viewManager.CreateContainerView(within or self.content.rootFolder, [kind], True)
        try:
            spec = pc.FilterSpec(
                objectSet=[
                    pc.ObjectSpec(
                        obj=view,
                        skip=True,
                        selectSet=[pc.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)],
                    )
                ],
                propSet=[pc.PropertySpec(type=kind, pathSet=paths)],
            )
            found = self.content.propertyCollector.RetrieveContents([spec])
        finally:
            view.Destroy()
        return [(o.obj, {p.name: p.val for p in o.propSet or []}) for o in found]

    def find(self, kind: type[T], name: str, *, within: Any = None, what: str, where: str = "") -> T:
        """The one object of ``kind`` called ``name`` (under ``within``); unknown or ambiguous names fail."""
        candidates = self.all(kind, within)
        found = [o for o in candidates if name_of(o) == name]
        place = f" in {where}" if where else ""
        if not found:
            names = sorted({name_of(o) for o in candidates} - {""})
            raise VSphereError(
                f"no {what} named {name!r}{place}",
                where=self.creds.where,
                hint=f"{what}s there: {', '.join(names) if names else 'none'}",
            )
        if len(found) > 1 and len({o._moId for o in found}) > 1:  # type: ignore[attr-defined]
            raise VSphereError(f"{len(found)} {what}s are named {name!r}{place}", where=self.creds.where)
        return found[0]

    def datacenter(self, name: str) -> vim.Datacenter:
        return self.find(vim.Datacenter, name, what="datacenter")

    def cluster(self, dc: vim.Datacenter, name: str) -> vim.ClusterComputeResource:
        return self.find(vim.ClusterComputeResource, name, within=dc.hostFolder, what="cluster", where=dc.name)

    def vm(self, name: str, *, within: Any = None, where: str = "") -> vim.VirtualMachine:
        return self.find(vim.VirtualMachine, name, within=within, what="virtual machine", where=where)

    def datastore(self, dc: vim.Datacenter, name: str) -> vim.Datastore:
        return self.find(vim.Datastore, name, within=dc.datastoreFolder, what="datastore", where=dc.name)

    def folder(self, dc: vim.Datacenter, path: str | None) -> vim.Folder:
        """The VM folder at ``path`` (e.g. "replicas/db") under the datacenter's VM folder; "" or None: that one."""
        folder = dc.vmFolder
        for part in [p for p in (path or "").split("/") if p]:
            children = {c.name: c for c in folder.childEntity if isinstance(c, vim.Folder)}
            if part not in children:
                raise VSphereError(
                    f"no VM folder {path!r} in datacenter {dc.name} (missing: {part!r})",
                    where=self.creds.where,
                    hint=f"folders at that level: {', '.join(sorted(children)) or 'none'}",
                )
            folder = children[part]
        return folder

    def vm_or_none(self, name: str, *, within: Any = None) -> vim.VirtualMachine | None:
        found = [v for v in self.all(vim.VirtualMachine, within) if name_of(v) == name]
        if len(found) > 1:
            raise VSphereError(f"{len(found)} virtual machines are named {name!r}", where=self.creds.where)
        return found[0] if found else None

    # -- tasks ---------------------------------------------------------------------------------------
    def wait(self, task: Any, what: str, timeout: float = 600) -> Any:
        """Wait for a vCenter task; its error becomes a VSphereError naming ``what``."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            info = task.info
            if info.state == vim.TaskInfo.State.success:
                return info.result
            if info.state == vim.TaskInfo.State.error:
                raise VSphereError(f"{what} failed: {fault_text(info.error)}", where=self.creds.where)
            if time.monotonic() > deadline:
                raise VSphereError(f"{what} did not finish in {timeout:.0f} s", where=self.creds.where)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def call(self, what: str, fn: Any, *args: Any, timeout: float = 600, **kwargs: Any) -> Any:
        """Run a task method and wait for it (``timeout`` s); a fault raised by the call itself is translated too."""
        try:
            task = fn(*args, **kwargs)
        except vmodl.MethodFault as exc:
            raise VSphereError(f"{what} failed: {fault_text(exc)}", where=self.creds.where) from exc
        return self.wait(task, what, timeout)


def name_of(obj: Any) -> str:
    """An object's name, or \"\" when it was removed meanwhile."""
    try:
        return str(obj.name)
    except vmodl.fault.ManagedObjectNotFound:
        return ""  # removed while we looked


def datacenter_of(obj: Any) -> Any:
    """The datacenter an object (a VM, a datastore, a folder) is in; None for one outside every datacenter."""
    while obj is not None and not isinstance(obj, vim.Datacenter):
        obj = obj.parent
    return obj


def fault_text(fault: Any) -> str:
    msg = getattr(fault, "msg", None) or ""
    kind = type(fault).__name__.rsplit(".", 1)[-1]
    return f"{kind}: {msg}" if msg else kind


@contextlib.contextmanager
def connect(creds: Credentials) -> Iterator[Session]:
    """Log in to vCenter (certificate verified unless ``validate_certs`` is off), log out at the end."""
    if not creds.hostname:
        raise VSphereError("no vCenter hostname given", hint="set hostname (or TWINSITE_VCENTER_HOSTNAME)")
    if not creds.username or not creds.password:
        raise VSphereError(
            "no vCenter user name or password given",
            where=creds.where,
            hint="set username and password (from Ansible Vault, or TWINSITE_VCENTER_USERNAME/PASSWORD)",
        )
    ctx = _ssl_context(creds)
    previous = socket.getdefaulttimeout()
    # (pyVmomi asks vCenter for its API versions before the login, on a connection that takes no
    # timeout of its own: without the default, a host that accepts and never answers hangs us forever)
    socket.setdefaulttimeout(creds.timeout)
    try:
        si = SmartConnect(
            host=creds.hostname,
            port=creds.port,
            user=creds.username,
            pwd=creds.password,
            sslContext=ctx,
            httpConnectionTimeout=creds.timeout,
        )
    except vim.fault.InvalidLogin as exc:
        raise VSphereError(
            f"vCenter refused the login of {creds.username!r}: wrong user name or password",
            where=creds.where,
            hint="check the credentials (the password is not shown)",
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise VSphereError(
            f"the certificate of vCenter is not trusted: {exc.verify_message}",
            where=creds.where,
            hint="give the CA that signed it (ca_file); turn validate_certs off only for a lab",
        ) from exc
    except (OSError, http.client.HTTPException) as exc:  # (TimeoutError is an OSError)
        raise VSphereError(
            f"cannot reach vCenter: {exc or type(exc).__name__}",
            where=creds.where,
            hint="check the hostname and port, and that vCenter is up and reachable from here",
        ) from exc
    except vmodl.MethodFault as exc:
        raise VSphereError(f"vCenter refused the login: {fault_text(exc)}", where=creds.where) from exc
    except Exception as exc:  # pyVmomi's own "... is not a VIM server" and the like
        raise VSphereError(
            f"no vCenter answers there: {exc}",
            where=creds.where,
            hint="check the hostname and port: something answered, but not the vSphere API",
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
    try:
        yield Session(si, creds)
    except vmodl.MethodFault as exc:  # the one translation point for faults the code above did not expect
        raise VSphereError(f"vCenter refused: {fault_text(exc)}", where=creds.where) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise VSphereError(f"the connection to vCenter failed: {exc or type(exc).__name__}", where=creds.where) from exc
    finally:
        with contextlib.suppress(Exception):
            Disconnect(si)
