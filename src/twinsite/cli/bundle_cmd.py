"""``twinsite bundle``: build the tarball hosts install twinsite from (no package index needed on hosts), and
``twinsite install-release``: switch a host to an unpacked bundle (run from that bundle)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twinsite import bundle


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bundle", help="build the host bundle (twinsite + dependencies) for the agent role")
    p.add_argument("--out", type=Path, default=Path("build"), help="directory for the bundles (default: build/)")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        help="a host's interpreter and platform, as the probe prints it (e.g. cpython-3.12-x86_64-glibc-2.36); "
        "repeat for several; default: this controller's",
    )
    p.add_argument("--extra", action="append", default=[], choices=bundle.HOST_EXTRAS, help="an optional part")
    p.add_argument("--wheelhouse", type=Path, default=None, help="take the dependencies' wheels from here (no index)")
    p.add_argument("--probe", action="store_true", help="print the Python that tells a host's target, and stop")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_bundle)

    p = sub.add_parser("install-release", help="make an unpacked bundle the one a host runs (the agent role runs it)")
    p.add_argument("release", help="its directory's name under INSTALL_DIR/releases")
    p.add_argument("--install-dir", type=Path, default=Path("/opt/twinsite"))
    p.add_argument("--keep", type=int, default=3, help="releases kept, the current one included (default: 3)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_install_release)


def _bundle(args: argparse.Namespace) -> tuple[Any, str]:
    if args.probe:
        return {"probe": bundle.PROBE}, bundle.PROBE
    targets = [bundle.Target.parse(t) for t in args.target] or [bundle.local_target()]
    built = {}
    for target in targets:
        path = bundle.build(args.out, target, tuple(args.extra), args.wheelhouse).resolve()
        built[str(target)] = {"bundle": str(path), "name": path.name, "release": bundle.release_of(path)}
    return {"bundles": built}, "\n".join(b["bundle"] for b in built.values())


def _install_release(args: argparse.Namespace) -> tuple[Any, str]:
    changed = bundle.activate(args.install_dir, args.release, args.keep)
    kept = [p.name for p in bundle.releases(args.install_dir)]
    return {"changed": changed, "current": args.release, "releases": kept}, f"current: {args.release}"
