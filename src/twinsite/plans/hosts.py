"""How the controller reaches the hosts of an inventory: over OpenSSH, with the connection settings the
playbooks use (``ansible_host``, ``ansible_user``, ``ansible_port``, ``ansible_ssh_private_key_file``,
``ansible_ssh_common_args``), and twinsite's fixed options (host keys checked, never added; batch mode;
keep-alives). The library never reads an inventory: the module passes each host's settings.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite import audit
from twinsite.errors import ConfigError, TimedOut
from twinsite.transport.channels import Endpoint
from twinsite.transport.remote import TIMED_OUT, json_answer, multiplexed, run_endpoint

#: Where the twinsite CLI is on the hosts (the agent role installs it there).
DEFAULT_CLI = "/opt/twinsite/bin/twinsite"
#: What an ``-o`` option may not say: host keys are always checked against the known hosts, never added.
_REFUSED = {"stricthostkeychecking": "yes"}


@dataclass(frozen=True)
class HostAccess:
    name: str  # the inventory name
    address: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    config: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    #: where the agent role put twinsite on this host, when not where it puts it by default
    cli: str | None = None
    config_dir: str | None = None
    state_dir: str | None = None

    @classmethod
    def from_vars(cls, name: str, given: Mapping[str, Any]) -> HostAccess:
        """A host's access from its connection settings (Ansible's names); a ConfigError names what is not
        understood (only ``-o``, ``-i``, ``-F``, ``-l`` and ``-p`` are taken from the extra arguments)."""
        where = f"host {name}"
        port = given.get("ansible_port")
        out: dict[str, Any] = {
            "user": given.get("ansible_user") or None,
            "port": int(port) if port else None,
            "identity": given.get("ansible_ssh_private_key_file") or None,
            # (the agent role's own variables: the one place they are turned into the CLI's path and options)
            "cli": f"{given['twinsite_agent_install_dir']}/bin/twinsite"
            if given.get("twinsite_agent_install_dir")
            else None,
            "config_dir": given.get("twinsite_agent_config_dir") or None,
            "state_dir": given.get("twinsite_agent_state_dir") or None,
        }
        options: list[tuple[str, str]] = []
        for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
            words = shlex.split(str(given.get(key) or ""))
            _take(words, out, options, f"{where}: {key}")
        return cls(name, str(given.get("ansible_host") or name), options=tuple(options), **out)

    def dirs(self) -> list[str]:
        """The CLI's options for this host's directories, where they are not the defaults."""
        out = ["--config-dir", self.config_dir] if self.config_dir else []
        return out + (["--state-dir", self.state_dir] if self.state_dir else [])

    def endpoint(self, command: Sequence[str], more: tuple[tuple[str, str], ...] = ()) -> Endpoint:
        """The endpoint running ``command``; ``more`` options come after the host's own (ssh takes the first
        value given for an option: a host's own settings win)."""
        return Endpoint(
            host=self.address,
            command=list(command),
            user=self.user,
            port=self.port,
            identity=self.identity,
            config=self.config,
            options=self.options + more,
        )


def _take(words: list[str], out: dict[str, Any], options: list[tuple[str, str]], where: str) -> None:
    flags = {"-i": "identity", "-F": "config", "-l": "user", "-p": "port"}
    i = 0
    while i < len(words):
        word = words[i]
        flag, value = (word[:2], word[2:]) if len(word) > 2 and word[:2] in (*flags, "-o") else (word, None)
        if flag not in (*flags, "-o"):
            raise ConfigError(
                f"{where}: '{word}' is not an ssh option twinsite takes",
                hint="give ssh options as -o Key=Value (and -i, -F, -l, -p)",
            )
        if value is None:
            i += 1
            if i == len(words):
                raise ConfigError(f"{where}: '{flag}' has no value")
            value = words[i]
        i += 1
        if flag != "-o":
            out[flags[flag]] = int(value) if flag == "-p" else value
            continue
        k, _, v = value.partition("=") if "=" in value else value.partition(" ")
        k, v = k.strip(), v.strip()
        wanted = _REFUSED.get(k.lower())
        if wanted is not None and v.lower() != wanted:
            raise ConfigError(
                f"{where}: {k}={v} is refused: host keys are checked against the known hosts, never added",
                hint="put the hosts' keys in a known_hosts file and name it with -o UserKnownHostsFile=FILE",
            )
        options.append((k, v))


class Hosts:
    """The inventory's hosts, reached from the controller."""

    def __init__(
        self, access: Mapping[str, HostAccess], cli: str = DEFAULT_CLI, control_dir: Path | None = None
    ) -> None:
        self.access = dict(access)
        self.cli = cli
        #: with it, one persistent connection per host (transport.remote.multiplexed): a plan asks each host
        #: once per scenario to look, and again to act, often from several threads at once
        self.control_dir = control_dir

    @classmethod
    def from_vars(cls, hosts: Mapping[str, Mapping[str, Any]], cli: str = DEFAULT_CLI) -> Hosts:
        return cls({name: HostAccess.from_vars(name, given) for name, given in hosts.items()}, cli)

    def command(self, access: HostAccess, args: Sequence[str]) -> list[str]:
        """``twinsite ARGS --json`` as the host runs it: its own CLI and directories where it has them, told who
        asks (the controller's user and host, for the record of what it changes: twinsite.audit)."""
        return ["env", f"{audit.ENV}={audit.asked_by()}", access.cli or self.cli, *args, *access.dirs(), "--json"]

    def twinsite(self, host: str, args: Sequence[str], *, timeout: float) -> dict[str, Any]:
        """``twinsite ARGS --json`` on ``host``: its result, or the error it reported (raised with its exit
        code), HostUnreachableError (ssh failed), or TimedOut (no answer within ``timeout``)."""
        access = self.access.get(host)
        if access is None:
            raise ConfigError(
                f"{host} is not a host of the inventory", hint="add it, or fix the scenario's name for it"
            )
        a = run_endpoint(access.endpoint(self.command(access, args), multiplexed(self.control_dir)), timeout=timeout)
        if a.code == TIMED_OUT:
            raise TimedOut(
                f"`twinsite {' '.join(args[:2])}` on {host} did not end within {timeout:g} s",
                where=host,
                hint="it may still be running there: run the plan again to see where it stands",
            )
        return json_answer(a, host, args)
