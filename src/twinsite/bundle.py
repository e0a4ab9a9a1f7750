"""The host bundle: twinsite and its dependencies as one tarball the controller builds and copies to hosts.

Lab hosts and many DR sites reach no package index, so hosts never run pip. The controller builds one bundle
per **target**, the host's interpreter and platform (:class:`Target`, for example ``cpython-3.12-aarch64-glibc-2.36``):

* ``lib/twinsite``: the installed package itself, copied from where the controller imports it (a wheel's install
  or an editable checkout alike: no source checkout is needed);
* ``lib/``: its dependencies, installed by pip from wheels **for the target** (``--python-version``,
  ``--platform manylinux_*``, ``--only-binary=:all:``), so a host may run another Python minor version or
  another architecture than the controller; with ``wheelhouse`` pip reads only that directory (no index);
* ``bin/twinsite``: a wrapper running the host's ``pythonX.Y`` (or ``python3``) on ``lib/``;
* ``VERSION``: last in the tarball, so a directory holding it was unpacked whole.

Why pip's own cross-platform download and not pex: hosts then need nothing but the Python they have, the result
is a plain directory anyone can inspect, and the wheels are the ones the project declares, resolved by the same
resolver that installed the controller.

On a host, each bundle is unpacked into its own release directory, ``<install>/releases/<release>``, and
:func:`activate` switches ``<install>/current`` to it with one rename, after compiling it with the host's own
interpreter, which the release's wrapper runs from then on (``python`` in the release); ``<install>/bin`` is a
link to ``current/bin``. A process that started from the previous release
keeps its files: the previous releases stay until more than ``keep`` are there.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import twinsite
from twinsite import __version__
from twinsite.durable import fsync_dir, write_text
from twinsite.errors import CommandError, ConfigError

#: The architectures manylinux wheels are built for (PEP 600), as ``platform.machine()`` names them.
ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "i686", "armv7l")
#: The extras a bundle may include: the optional dependencies of twinsite that run on hosts.
HOST_EXTRAS = ("paramiko",)
#: The oldest glibc manylinux wheels target (manylinux1).
OLDEST_GLIBC_MINOR = 5

WRAPPER = """#!/bin/sh
# twinsite {version}, built for CPython {pyver} on {arch}: runs the bundled library with the host's python{pyver}.
here=$(dirname "$(readlink -f "$0")")/..
# (the interpreter that activated this release, recorded in ./python; else python{pyver} or python3 on PATH)
py=${{TWINSITE_PYTHON:-$(cat "$here/python" 2>/dev/null || command -v python{pyver} || command -v python3)}}
if [ -z "$py" ]; then
    echo "twinsite: neither python{pyver} nor python3 is on PATH (set TWINSITE_PYTHON)" >&2
    exit 127
fi
exec env PYTHONPATH="$here/lib" PYTHONDONTWRITEBYTECODE=1 "$py" -c '
import sys
if sys.version_info[:2] != ({major}, {minor}):
    sys.exit("twinsite: this bundle was built for Python {pyver}, not %d.%d: set TWINSITE_PYTHON or rebuild it"
             % sys.version_info[:2])
from twinsite.cli.main import main
sys.argv[0] = "twinsite"
sys.exit(main())
' "$@"
"""

#: What the agent role runs with the host's interpreter to learn its target (printed as Target.parse reads it).
PROBE = (
    "import platform, sys; v = sys.version_info; libc = platform.libc_ver(); print('-'.join(["
    "sys.implementation.name, '%d.%d' % v[:2], platform.machine(), libc[0] or 'unknown', libc[1] or '0']))"
)


@dataclass(frozen=True)
class Target:
    """A host's interpreter and platform: what a bundle's compiled dependencies must fit."""

    python: tuple[int, int]
    arch: str
    glibc: tuple[int, int]

    _FORM = re.compile(r"(?P<impl>[a-z]+)-(?P<py>\d+\.\d+)-(?P<arch>[A-Za-z0-9_]+)-(?P<libc>[a-z]+)-(?P<ver>\d+\.\d+)")

    @classmethod
    def parse(cls, text: str) -> Target:
        """``cpython-3.11-x86_64-glibc-2.36``, as :data:`PROBE` prints it on a host."""
        m = cls._FORM.fullmatch(text.strip())
        if not m:
            raise ConfigError(
                f"not a bundle target: {text.strip()!r}",
                hint="IMPLEMENTATION-PYTHON-ARCH-LIBC-VERSION, e.g. cpython-3.11-x86_64-glibc-2.36",
            )
        if m["impl"] != "cpython":
            raise ConfigError(f"twinsite runs on CPython, and this host's python is {m['impl']}", where=text.strip())
        if m["libc"] != "glibc":
            raise ConfigError(
                f"the host bundle needs a glibc-based Linux (manylinux wheels); this host's C library is {m['libc']}",
                where=text.strip(),
            )
        if m["arch"] not in ARCHES:
            raise ConfigError(f"no manylinux wheels for architecture {m['arch']!r}", hint=f"one of {', '.join(ARCHES)}")
        py = tuple(int(x) for x in m["py"].split("."))
        glibc = tuple(int(x) for x in m["ver"].split("."))
        if py < (3, 11):
            raise ConfigError(f"twinsite needs Python 3.11 or newer on hosts, and this one has {m['py']}")
        if glibc[0] != 2 or glibc[1] < OLDEST_GLIBC_MINOR:
            raise ConfigError(f"glibc {m['ver']} is older than any manylinux wheel (2.{OLDEST_GLIBC_MINOR})")
        return cls((py[0], py[1]), m["arch"], (glibc[0], glibc[1]))

    def __str__(self) -> str:
        return f"cpython-{self.pyver}-{self.arch}-glibc-{self.glibc[0]}.{self.glibc[1]}"

    @property
    def pyver(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def tag(self) -> str:
        """The wheel-style tag in the bundle's name: ``cp311-manylinux_2_36_x86_64``."""
        return f"cp{self.python[0]}{self.python[1]}-manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.arch}"

    def platforms(self) -> list[str]:
        """Every manylinux platform tag this host runs, newest first: a wheel for any glibc up to the host's
        (pip does not widen ``manylinux_2_X`` by itself), and the legacy names of 2.17, 2.12 and 2.5."""
        tags = [f"manylinux_2_{minor}_{self.arch}" for minor in range(self.glibc[1], OLDEST_GLIBC_MINOR - 1, -1)]
        for legacy, minor in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
            if self.glibc[1] >= minor and (legacy != "manylinux2010" or self.arch in ("x86_64", "i686")):
                tags.append(f"{legacy}_{self.arch}")
        return tags


def local_target() -> Target:
    """The target of the interpreter running this (the controller's, or a lab host's: they share it), found by
    the very probe the agent role runs on hosts."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(PROBE, {})  # noqa: S102 (our own constant: the one description of a target, here and on hosts)
    return Target.parse(out.getvalue())


def requirements(extras: tuple[str, ...] = ()) -> list[str]:
    """The installed twinsite's dependencies (its metadata), with those of ``extras``."""
    unknown = sorted(set(extras) - set(HOST_EXTRAS))
    if unknown:
        raise ConfigError(f"no such host extra: {', '.join(unknown)}", hint=f"one of {', '.join(HOST_EXTRAS)}")
    out = []
    for req in importlib.metadata.requires("twinsite") or []:
        spec, _, marker = req.partition(";")
        m = re.fullmatch(r"""\s*extra\s*==\s*["']([\w-]+)["']\s*""", marker)
        if not marker.strip() or (m and m[1] in extras):
            out.append(spec.strip())
        elif not m:
            raise ConfigError(f"twinsite's dependency {req!r} has a marker the bundle cannot evaluate for a host")
    return out


def package_dir() -> Path:
    """Where the controller imports twinsite from (a wheel's install, or the checkout of an editable one)."""
    return Path(twinsite.__file__).resolve().parent


def _package_files(pkg: Path) -> list[Path]:
    return sorted(f for f in pkg.rglob("*") if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc")


def bundle_name(target: Target, extras: tuple[str, ...] = ()) -> str:
    """``twinsite-<version>-<target tag>-<hash>.tar.gz``; the hash covers the package's files, the dependencies
    and the extras, so a changed library gets a new bundle and an unchanged one is built once."""
    pkg = package_dir()
    h = hashlib.sha256()
    for f in _package_files(pkg):
        h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    h.update("\0".join([*requirements(extras), str(target), *sorted(extras)]).encode())
    return f"twinsite-{__version__}-{target.tag}-{h.hexdigest()[:12]}.tar.gz"


def release_of(bundle: Path | str) -> str:
    """The release directory's name for a bundle file: its name without ``.tar.gz``."""
    return Path(bundle).name.removesuffix(".tar.gz")


def build(
    out_dir: Path, target: Target | None = None, extras: tuple[str, ...] = (), wheelhouse: Path | None = None
) -> Path:
    """Build the bundle for ``target`` (default: this interpreter's) once per library version; return its path."""
    target = target or local_target()
    extras = tuple(sorted(set(extras)))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / bundle_name(target, extras)
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(prefix="twinsite-bundle-") as tmp:
        stage = Path(tmp) / "twinsite"
        lib = stage / "lib"
        pkg = package_dir()
        for f in _package_files(pkg):
            dest = lib / "twinsite" / f.relative_to(pkg)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        _install_dependencies(lib, target, requirements(extras), wheelhouse)
        (stage / "bin").mkdir()
        wrapper = stage / "bin" / "twinsite"
        major, minor = target.python
        wrapper.write_text(
            WRAPPER.format(version=__version__, pyver=target.pyver, arch=target.arch, major=major, minor=minor)
        )
        wrapper.chmod(0o755)
        (stage / "VERSION").write_text(f"{__version__} {out.name} {target}\n")
        partial = out.with_name(f".{out.name}.partial")
        with tarfile.open(partial, "w:gz") as tar:
            for part in ("lib", "bin", "VERSION"):  # VERSION last: a release directory holding it is whole
                tar.add(stage / part, arcname=part)
        partial.rename(out)
    return out


def pip_command(lib: Path, target: Target, reqs: list[str], wheelhouse: Path | None = None) -> list[str]:
    """pip, installing ``reqs`` into ``lib`` from wheels built for ``target`` (never for the controller)."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    cmd += ["--target", str(lib), "--only-binary=:all:", "--implementation", "cp", "--python-version", target.pyver]
    for tag in target.platforms():
        cmd += ["--platform", tag]
    if wheelhouse is not None:
        cmd += ["--no-index", "--find-links", str(wheelhouse)]
    return [*cmd, *reqs]


def _install_dependencies(lib: Path, target: Target, reqs: list[str], wheelhouse: Path | None) -> None:
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise ConfigError(f"no wheelhouse at {wheelhouse}", hint="a directory of wheels (pip download -d DIR ...)")
    proc = subprocess.run(
        pip_command(lib, target, reqs, wheelhouse), capture_output=True, text=True, check=False, timeout=900
    )
    if proc.returncode != 0:
        raise CommandError(
            f"installing twinsite's dependencies for {target} failed: {proc.stderr.strip()[-2000:]}",
            hint="pip needs a package index or --wheelhouse with wheels for that Python and platform",
        )
    shutil.rmtree(lib / "bin", ignore_errors=True)


def unpack(bundle: Path, install_dir: Path) -> Path:
    """Unpack ``bundle`` into its release directory under ``install_dir`` unless it is there whole already
    (the agent role does the same with ``unarchive``). Returns the release directory."""
    release = install_dir / "releases" / release_of(bundle)
    if (release / "VERSION").is_file():
        return release
    release.parent.mkdir(parents=True, exist_ok=True)
    partial = release.with_name(f".{release.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(bundle) as tar:
        tar.extractall(partial, filter="data")
    shutil.rmtree(release, ignore_errors=True)
    partial.rename(release)
    return release


def activate(install_dir: Path, release: str, keep: int = 3) -> bool:
    """Make ``release`` (unpacked under ``install_dir/releases``) the one ``install_dir/bin/twinsite`` runs:
    compile it with this interpreter (the host's), switch ``current`` to it with one rename, and remove the
    oldest releases beyond ``keep`` (never the current one). Returns True if ``current`` changed."""
    if keep < 2:
        raise ConfigError(f"keep {keep} releases: at least 2 (the current one and the one to go back to)")
    here = install_dir / "releases" / release
    if "/" in release or not (here / "VERSION").is_file():
        raise ConfigError(f"{here} is not a whole unpacked bundle (it has no VERSION)", hint="unpack it again")
    if not (here / "python").exists():  # (written once compiled: the interpreter the wrapper runs from now on)
        _compile(here / "lib")
        write_text(here / "python", f"{sys.executable}\n")
    current = install_dir / "current"
    changed = not current.is_symlink() or os.readlink(current) != f"releases/{release}"
    if changed:
        _link(current, f"releases/{release}")
        # (activation order, which prune goes by: after every other release's, however coarse the clock)
        newest = max((p.stat().st_mtime_ns for p in releases(install_dir)), default=0)
        stamp = max(time.time_ns(), newest + 1)
        os.utime(here, ns=(stamp, stamp))
    _take_over_bin(install_dir)
    prune(install_dir, keep)
    return changed


def _link(path: Path, target: str) -> None:
    """``path`` becomes a symlink to ``target`` in one rename: a reader sees the old link or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _take_over_bin(install_dir: Path) -> None:
    """``bin`` is a link to ``current/bin``. An install made before release directories has ``bin``, ``lib``,
    ``VERSION`` and ``bundles`` of its own: they are replaced (the one moment ``bin/twinsite`` is missing is the
    rename between the two)."""
    binp = install_dir / "bin"
    if binp.is_symlink() and os.readlink(binp) == "current/bin":
        return
    old = install_dir / f".bin-old.{os.getpid()}"
    if binp.exists() and not binp.is_symlink():
        binp.rename(old)
    _link(binp, "current/bin")
    shutil.rmtree(old, ignore_errors=True)
    for leftover in ("lib", "bundles"):
        if (install_dir / leftover).is_dir() and not (install_dir / leftover).is_symlink():
            shutil.rmtree(install_dir / leftover)
    (install_dir / "VERSION").unlink(missing_ok=True)


def releases(install_dir: Path) -> list[Path]:
    """The release directories, most recently activated first."""
    root = install_dir / "releases"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)  # (activate stamps it to the ns)


def prune(install_dir: Path, keep: int) -> list[str]:
    """Remove the releases beyond the ``keep`` most recently activated (never the current one), and what an
    interrupted unpack left. Returns the names removed."""
    current = os.readlink(install_dir / "current") if (install_dir / "current").is_symlink() else ""
    removed = []
    for i, rel in enumerate(releases(install_dir)):
        if i >= keep and f"releases/{rel.name}" != current:
            shutil.rmtree(rel)
            removed.append(rel.name)
    root = install_dir / "releases"
    for partial in root.glob(".*.partial") if root.is_dir() else []:
        if time.time() - partial.stat().st_mtime > 3600:  # (not one being unpacked now)
            shutil.rmtree(partial, ignore_errors=True)
    return removed


def _compile(lib: Path) -> None:
    """Bytecode for every module, checked by source hash (not mtime, which unpacking may change): every
    `twinsite receive` the sender starts would otherwise compile the library from source first."""
    cmd = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "checked-hash", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise CommandError(f"compiling the host bundle failed: {(proc.stdout + proc.stderr).strip()[-2000:]}")
