"""The artifacts `make dist` builds (scripts/dist): the library's wheel and sdist and the collection's tarball,
read back as a user's pip and ansible-galaxy get them: one version everywhere (the one in
src/twinsite/__init__.py, which `twinsite --version` shows), the LICENSE in each, no placeholder metadata."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from types import ModuleType

import pytest

from twinsite import __version__

ROOT = Path(__file__).resolve().parent.parent.parent
LICENSE = (ROOT / "LICENSE").read_bytes()


def _script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("twinsite_dist", str(ROOT / "scripts" / "dist"))
    spec = importlib.util.spec_from_loader("twinsite_dist", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "dist"), str(out)], check=True, capture_output=True)
    return out


def test_the_wheel_has_the_version_the_license_and_no_placeholder(built: Path) -> None:
    with zipfile.ZipFile(built / f"twinsite-{__version__}-py3-none-any.whl") as whl:
        info = f"twinsite-{__version__}.dist-info"
        meta = Parser().parsestr(whl.read(f"{info}/METADATA").decode())
        assert meta["Version"] == __version__
        assert meta["License-Expression"] == "GPL-3.0-or-later"
        assert whl.read(f"{info}/licenses/LICENSE") == LICENSE
        assert "twinsite/schemas/scenario.schema.json" in whl.namelist()
        assert not [n for n in whl.namelist() if b"example.invalid" in whl.read(n)]


def test_the_sdist_has_the_license(built: Path) -> None:
    with tarfile.open(built / f"twinsite-{__version__}.tar.gz") as sdist:
        f = sdist.extractfile(f"twinsite-{__version__}/LICENSE")
        assert f is not None and f.read() == LICENSE


def test_the_collection_has_the_same_version_the_license_and_no_placeholder(built: Path) -> None:
    with tarfile.open(built / f"twinsite-dr-{__version__}.tar.gz") as coll:
        manifest = json.loads(coll.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
        info = manifest["collection_info"]
        assert (info["namespace"], info["name"], info["version"]) == ("twinsite", "dr", __version__)
        assert info["license"] == ["GPL-3.0-or-later"]
        f = coll.extractfile("LICENSE")
        assert f is not None and f.read() == LICENSE
        for m in coll.getmembers():
            if m.isfile():
                assert b"example.invalid" not in coll.extractfile(m).read(), m.name  # type: ignore[union-attr]


def test_twinsite_shows_the_version_kept_in_one_place() -> None:
    got = subprocess.run(
        [sys.executable, "-m", "twinsite.cli.main", "--version"], capture_output=True, text=True, check=True
    )
    assert got.stdout.split()[:2] == ["twinsite", __version__]
    assert _script().version() == __version__


def test_dist_refuses_a_collection_of_another_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dist = _script()
    coll = tmp_path / "dr"
    coll.mkdir()
    (coll / "galaxy.yml").write_text("namespace: twinsite\nname: dr\nversion: 9.9.9\n")
    (coll / "requirements.txt").write_text(f"twinsite=={__version__}\n")
    (coll / "LICENSE").write_bytes(LICENSE)
    monkeypatch.setattr(dist, "COLLECTION", coll)
    with pytest.raises(SystemExit, match=f"says version 9.9.9, src/twinsite/__init__.py says {__version__}"):
        dist.check()
    (coll / "galaxy.yml").write_text(f"version: {__version__}\n")
    (coll / "requirements.txt").write_text("# the library\ntwinsite==0.0.9\n")
    with pytest.raises(SystemExit, match=r"asks for twinsite \['0.0.9'\]"):
        dist.check()
    (coll / "requirements.txt").write_text(f"twinsite=={__version__}\n")
    (coll / "LICENSE").write_text("another licence\n")
    with pytest.raises(SystemExit, match="is not the repository's LICENSE"):
        dist.check()


def test_an_execution_environment_gets_the_collections_requirements(built: Path, tmp_path: Path) -> None:
    """ansible-builder reads what the installed collection declares (meta/execution-environment.yml): the library
    of its version, and the OpenSSH client (no container engine is needed to read them)."""
    bindir = Path(sys.executable).parent
    tarball = built / f"twinsite-dr-{__version__}.tar.gz"
    subprocess.run(
        [
            str(bindir / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--force",
            "-p",
            str(tmp_path),
            str(tarball),
        ],
        check=True,
        capture_output=True,
    )
    got = subprocess.run(
        [str(bindir / "ansible-builder"), "introspect", "--sanitize", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"twinsite=={__version__}  # from collection twinsite.dr" in got
    assert "openssh-client [platform:dpkg]  # from collection twinsite.dr" in got


def install_tarball(built: Path, into: Path) -> Path:
    """The collection's tarball installed the way a user's ansible-galaxy does; its directory."""
    tarball = built / f"twinsite-dr-{__version__}.tar.gz"
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    cmd = [str(galaxy), "collection", "install", "--offline", "--force", "-p", str(into), str(tarball)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=into)
    return into / "ansible_collections" / "twinsite" / "dr"


def test_every_module_and_the_role_document_themselves_from_the_installed_tarball(built: Path, tmp_path: Path) -> None:
    """ansible-doc of the installed tarball, not of the repository (no ansible.cfg, its own collections path)."""
    installed = install_tarball(built, tmp_path)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}
    doc = Path(sys.executable).parent / "ansible-doc"
    modules = sorted(p.stem for p in (installed / "plugins" / "modules").glob("*.py"))
    repo = sorted(p.stem for p in (ROOT / "collections/ansible_collections/twinsite/dr/plugins/modules").glob("*.py"))
    assert modules == repo and (installed / "playbooks" / "configure.yml").is_file()
    got = subprocess.run(
        [str(doc), "--json", *[f"twinsite.dr.{m}" for m in modules]],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    docs = json.loads(got.stdout)
    assert sorted(docs) == [f"twinsite.dr.{m}" for m in modules], got.stderr
    for name, entry in docs.items():
        assert entry["doc"]["filename"].startswith(str(installed)), name
        assert entry["doc"]["short_description"] and entry["doc"]["options"] is not None, name
    role = subprocess.run(
        [str(doc), "-t", "role", "--json", "twinsite.dr.agent"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    options = json.loads(role.stdout)["twinsite.dr.agent"]["entry_points"]["main"]["options"]
    assert {"twinsite_agent_python", "twinsite_agent_extras", "twinsite_agent_keep_releases"} <= set(options)


def test_ansible_test_sanity_passes_on_the_built_collection(built: Path, tmp_path: Path) -> None:
    """The same sanity tests as `make lint`, on what the tarball installs (what users run)."""
    installed = install_tarball(built, tmp_path)
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ansible-test-sanity")],
        env=dict(os.environ, COLLECTION_DIR=str(installed)), capture_output=True, text=True, check=False,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert 'Running sanity test "validate-modules"' in proc.stdout + proc.stderr


def test_the_collections_readme_lists_every_module_and_role() -> None:
    coll = ROOT / "collections" / "ansible_collections" / "twinsite" / "dr"
    readme = (coll / "README.md").read_text()
    modules = [f.stem for f in (coll / "plugins" / "modules").glob("*.py") if f.stem != "__init__"]
    roles = [d.name for d in (coll / "roles").iterdir() if d.is_dir()]
    assert modules and roles
    missing = [n for n in modules + roles if f"`twinsite.dr.{n}`" not in readme]
    assert missing == []
