"""``twinsite console -i INVENTORY``: the read-only web console of the whole site (site.console), and
``--set-password`` to add a user for a console served beyond loopback."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from twinsite.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("console", help="serve a read-only web console of the whole site (loopback by default)")
    p.add_argument("-i", "--inventory", help="the Ansible inventory (what ansible-playbook -i takes)")
    p.add_argument("--vault-password-file", default=None, help="for an inventory with vault-encrypted values")
    p.add_argument("--listen", default="127.0.0.1:8470", help="ADDR:PORT (default 127.0.0.1:8470); an address "
                   "other than loopback needs --tls-cert, --tls-key and --users")  # fmt: skip
    p.add_argument("--tls-cert", type=Path, help="the server's certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    p.add_argument("--users", type=Path, help="the users file (NAME:scrypt hash lines, mode 0600)")
    p.add_argument("--set-password", metavar="NAME", help="add NAME to --users (or change its password) and exit; "
                   "the password is read from the terminal, or from standard input")  # fmt: skip
    p.add_argument("--refresh", type=float, default=15.0, help="seconds between two rounds of questions (default 15)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds each host has to answer (default 10)")
    p.add_argument("--since", default="30d", help="the period of the history and report pages (default 30d)")
    p.set_defaults(handler=_console)


def _console(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.config.units import parse_duration
    from twinsite.site import console, inventory

    if args.set_password:
        if not args.users:
            raise ConfigError("--set-password needs --users FILE")
        password = _password()
        new = console.set_password(args.users, args.set_password, password)
        return {"user": args.set_password, "new": new}, f"{args.set_password}: {'added' if new else 'changed'}"
    if not args.inventory:
        raise ConfigError("the console needs -i INVENTORY")
    inv = inventory.read(args.inventory, vault_password_file=args.vault_password_file)
    hosts, names = inv.hosts()
    c = console.Console(
        hosts,
        names,
        inv.scenarios,
        args.inventory,
        timeout=args.timeout,
        refresh=args.refresh,
        period_seconds=parse_duration(args.since),
    )

    def ready(where: tuple[str, int], _stop: Callable[[], None]) -> None:
        scheme = "https" if args.tls_cert else "http"
        host = f"[{where[0]}]" if ":" in where[0] else where[0]
        print(f"twinsite console: {scheme}://{host}:{where[1]}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(KeyboardInterrupt):  # (Ctrl-C or SIGTERM: the end of serving)
        console.serve(c, args.listen, tls_cert=args.tls_cert, tls_key=args.tls_key, users_file=args.users, ready=ready)
    return {"stopped": True}, "twinsite console: stopped"


def _password() -> str:
    if sys.stdin.isatty():
        first, again = getpass.getpass("password: "), getpass.getpass("again: ")
        if first != again:
            raise ConfigError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")
