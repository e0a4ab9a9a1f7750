"""The transport interface and its two implementations: the OpenSSH client (default) and paramiko.

A channel runs ``twinsite receive`` on the standby and exposes its stdin/stdout as byte streams. Host keys
are always verified against a known_hosts file and never added; keep-alives detect a cut link in seconds.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from twinsite.config.scenario import Replication
from twinsite.errors import ConfigError, HostUnreachableError
from twinsite.transport.frames import widen_pipe

#: The key a sender uses to reach a standby, when the host has one (the agent role makes it). Each standby lets it
#: run ``twinsite receive`` and nothing else (a forced command with ``restrict`` in authorized_keys), and the
#: receiver takes only a scenario's name and a root's index from the stream (engine.receiver).
REPLICATION_KEY = Path("/etc/twinsite/ssh/replication_ed25519")

#: Options twinsite always sets; the scenario's ssh_options may add others but never change these.
FIXED_OPTIONS = (
    ("BatchMode", "yes"),
    ("StrictHostKeyChecking", "yes"),
    ("ServerAliveInterval", "2"),
    ("ServerAliveCountMax", "3"),
    ("ConnectTimeout", "10"),
    ("Compression", "no"),  # batches are compressed already
)


@dataclass(frozen=True)
class Endpoint:
    host: str
    command: Sequence[str]
    user: str | None = None
    port: int | None = None
    known_hosts: str | None = None
    identity: str | None = None
    options: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    config: str | None = None  # an ssh config file (-F), e.g. the lab's


def to_host(
    rep: Replication,
    host: str,
    command: Sequence[str],
    *,
    options: tuple[tuple[str, str], ...] = (),
    identity: str | None = None,
) -> Endpoint:
    """How a scenario reaches one of its hosts: its known_hosts and ssh_options, plus ``options``, with
    ``identity`` as the only key when given."""
    return Endpoint(
        host=host,
        command=list(command),
        known_hosts=os.path.expanduser(rep.known_hosts),
        options=(*rep.ssh_options, *options),
        identity=identity,
    )


def to_receiver(rep: Replication, host: str) -> Endpoint:
    """How a sender reaches ``twinsite receive`` on a standby: with the replication key where this host has
    one (without, the host's own SSH identity: a setup made without the agent role)."""
    key = str(REPLICATION_KEY) if REPLICATION_KEY.is_file() else None
    return to_host(rep, host, [rep.remote_twinsite, "receive"], identity=key)


def openssh_argv(ep: Endpoint) -> list[str]:
    """The OpenSSH client command that runs ``ep.command`` on ``ep.host`` with twinsite's fixed options."""
    argv = ["ssh", "-T", "-e", "none"]
    if ep.config:
        argv += ["-F", ep.config]
    for key, value in (*FIXED_OPTIONS, *ep.options):
        argv += ["-o", f"{key}={value}"]
    if ep.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={ep.known_hosts}"]
    if ep.identity:
        argv += ["-i", ep.identity, "-o", "IdentitiesOnly=yes"]
    if ep.user:
        argv += ["-l", ep.user]
    if ep.port:
        argv += ["-p", str(ep.port)]
    return [*argv, ep.host, shlex.join(ep.command)]


class Channel(Protocol):
    reader: BinaryIO
    writer: BinaryIO

    def close(self) -> None: ...

    def stderr_text(self) -> str: ...


class OpenSSHChannel:
    """``ssh HOST twinsite receive ...`` as a subprocess; the user's ~/.ssh/config applies."""

    def __init__(self, ep: Endpoint) -> None:
        self.argv = openssh_argv(ep)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # noqa: S101 (Popen with PIPE)
        self.writer: BinaryIO = self.proc.stdin  # type: ignore[assignment]
        self.reader: BinaryIO = self.proc.stdout  # type: ignore[assignment]
        widen_pipe(self.writer)  # (the batches' way to ssh)
        self._err = bytearray()
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()

    def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        while chunk := stream.read(4096):
            self._err += chunk[-65536:]

    def stderr_text(self) -> str:
        return self._err.decode(errors="replace").strip()

    def close(self) -> None:
        for f in (self.writer, self.reader):
            with contextlib.suppress(OSError):
                f.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err_thread.join(timeout=1)


class ParamikoChannel:
    """The same over paramiko (pure Python), for hosts without an OpenSSH client."""

    def __init__(self, ep: Endpoint) -> None:
        try:
            import paramiko
        except ImportError as exc:
            raise ConfigError(
                "the paramiko transport needs paramiko, which this host's twinsite does not include",
                hint="install twinsite[paramiko] (the agent role: twinsite_agent_extras: [paramiko]), or use openssh",
            ) from exc

        if not ep.known_hosts:
            raise ConfigError("the paramiko transport needs a known_hosts file", hint="set replication.known_hosts")
        client = paramiko.SSHClient()
        client.load_host_keys(str(Path(ep.known_hosts).expanduser()))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                ep.host,
                port=ep.port or 22,
                username=ep.user or "root",
                key_filename=ep.identity,
                look_for_keys=ep.identity is None,
                allow_agent=False,
                timeout=10,
                banner_timeout=10,
                auth_timeout=10,
            )
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            raise HostUnreachableError(f"cannot connect to {ep.host} with paramiko: {exc}", where=ep.host) from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(2)
        stdin, stdout, stderr = client.exec_command(shlex.join(ep.command))
        self.client = client
        self.writer = cast(BinaryIO, stdin)
        self.reader = cast(BinaryIO, stdout)
        self._stderr = stderr

    def stderr_text(self) -> str:
        try:
            if self._stderr.channel.recv_stderr_ready():
                return self._stderr.channel.recv_stderr(65536).decode(errors="replace").strip()
        except OSError:
            pass
        return ""

    def close(self) -> None:
        self.client.close()


def open_channel(transport: str, ep: Endpoint) -> Channel:
    if transport == "openssh":
        return OpenSSHChannel(ep)
    if transport == "paramiko":
        return ParamikoChannel(ep)
    raise ConfigError(f"unknown transport {transport!r}", hint="openssh or paramiko")
