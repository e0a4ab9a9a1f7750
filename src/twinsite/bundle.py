"""The host bundle: twinsite and its dependencies as one tarball the controller builds and copies to hosts.

Lab hosts and many DR sites reach no package index, so hosts never run pip. The controller builds
``twinsite-<version>-<hash>.tar.gz`` holding ``lib/`` (twinsite and its dependencies, installed with
``pip install --target``, with their bytecode) and ``bin/twinsite`` (a wrapper running the host's python3
on ``lib/``). The agent role unpacks it to /opt/twinsite. Built wheels are for the controller's Python version and
architecture; hosts must run the same Python minor version (checked by the wrapper at start).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from twinsite import __version__
from twinsite.errors import CommandError, ConfigError

WRAPPER = """#!/bin/sh
# twinsite {version}: runs the bundled library with the host's python3 (built for Python {pyver}).
here=$(dirname "$(readlink -f "$0")")/..
exec env PYTHONPATH="$here/lib" PYTHONDONTWRITEBYTECODE=1 "${{TWINSITE_PYTHON:-python3}}" -c '
import sys
if sys.version_info[:2] != ({major}, {minor}):
    sys.exit("twinsite: this bundle was built for Python {pyver}, not %d.%d: set TWINSITE_PYTHON or rebuild it"
             % sys.version_info[:2])
from twinsite.cli.main import main
sys.argv[0] = "twinsite"
sys.exit(main())
' "$@"
"""


def source_dir() -> Path:
    """The project checkout this package runs from (an editable install)."""
    here = Path(__file__).resolve().parent.parent.parent
    if not (here / "pyproject.toml").exists():
        raise ConfigError("twinsite is not running from a source checkout", hint="pass --source DIR")
    return here


def source_hash(src: Path) -> str:
    h = hashlib.sha256()
    for f in sorted([src / "pyproject.toml", *(src / "src" / "twinsite").rglob("*")]):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def build(out_dir: Path, src: Path | None = None) -> Path:
    """Build the bundle once per source version; return its path."""
    src = src or source_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"twinsite-{__version__}-{source_hash(src)}.tar.gz"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="twinsite-bundle-") as tmp:
        stage = Path(tmp) / "twinsite"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(stage / "lib"),
            str(src),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
        if proc.returncode != 0:
            raise CommandError(f"building the host bundle failed: {proc.stderr.strip()[-2000:]}")
        shutil.rmtree(stage / "lib" / "bin", ignore_errors=True)
        _compile(stage / "lib")
        (stage / "bin").mkdir()
        wrapper = stage / "bin" / "twinsite"
        major, minor = sys.version_info[:2]
        wrapper.write_text(WRAPPER.format(version=__version__, pyver=f"{major}.{minor}", major=major, minor=minor))
        wrapper.chmod(0o755)
        (stage / "VERSION").write_text(f"{__version__} {target.name}\n")
        partial = target.with_suffix(".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(stage, arcname=".")
        partial.rename(target)
    return target


def _compile(lib: Path) -> None:
    """Bytecode for every module, checked by source hash (not mtime, which unpacking may change): every
    `twinsite receive` the sender starts would otherwise compile the library from source first."""
    cmd = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "checked-hash", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise CommandError(f"compiling the host bundle failed: {(proc.stdout + proc.stderr).strip()[-2000:]}")


def extract(bundle: Path, dest: Path) -> bool:
    """Unpack ``bundle`` into ``dest`` unless that exact bundle is there already. Returns True if it changed."""
    marker = dest / "VERSION"
    if marker.exists() and marker.read_text().split()[-1] == bundle.name:
        return False
    for sub in ("lib", "bin"):
        shutil.rmtree(dest / sub, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    return True
