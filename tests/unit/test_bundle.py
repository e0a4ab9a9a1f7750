"""The host bundle: built from the installed library for the host's own Python version and platform, and
installed as release directories switched with one rename.

This machine has one Python (Debian 12's 3.11) and one architecture, so bundles for another minor version and
another architecture cannot run here: they are checked by what pip itself recorded (each wheel's WHEEL tags)
and by the ELF header of every compiled extension. The bundle for this machine is run."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from twinsite import __version__, bundle
from twinsite.config.store import DEFAULT_CONFIG_DIR
from twinsite.errors import CommandError, ConfigError
from twinsite.plans.hosts import DEFAULT_CLI
from twinsite.state.layout import DEFAULT_STATE_DIR

ELF_MACHINE = {"x86_64": 62, "aarch64": 183}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


def unpacked(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    return into


def wheel_tags(lib: Path) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags, as pip wrote them (``*.dist-info/WHEEL``)."""
    tags = {}
    for wheel in lib.glob("*.dist-info/WHEEL"):
        tags[wheel.parent.name] = [
            ln.split(":", 1)[1].strip() for ln in wheel.read_text().splitlines() if ln.startswith("Tag:")
        ]
    return tags


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int(struct.unpack("<H", head[18:20])[0])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("pypy-3.11-x86_64-glibc-2.36", "CPython"),
        ("cpython-3.12-x86_64-musl-1.2", "glibc"),
        ("cpython-3.11-x86_64-unknown-0.0", "glibc"),
        ("cpython-3.12-riscv64-glibc-2.36", "riscv64"),
        ("cpython-3.9-x86_64-glibc-2.36", "3.11 or newer"),
        ("cpython-3.12-x86_64-glibc-2.3", "older than any manylinux"),
        ("python3.12 on x86_64", "not a bundle target"),
    ],
)
def test_a_target_the_bundle_cannot_serve_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        bundle.Target.parse(text)


def test_the_platform_tags_reach_from_the_hosts_glibc_down_to_the_oldest() -> None:
    t = bundle.Target.parse("cpython-3.12-x86_64-glibc-2.28")
    tags = t.platforms()
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_29_x86_64" not in tags
    assert "manylinux_2_5_x86_64" in tags and "manylinux2014_x86_64" in tags and "manylinux1_x86_64" in tags
    arm = bundle.Target.parse("cpython-3.13-aarch64-glibc-2.17").platforms()
    assert arm[0] == "manylinux_2_17_aarch64" and "manylinux2010_aarch64" not in arm  # (never built for arm)
    assert str(t) == "cpython-3.12-x86_64-glibc-2.28" and t.tag == "cp312-manylinux_2_28_x86_64"


def test_this_machine_is_probed_the_way_hosts_are() -> None:
    """local_target and the agent role run the same probe: on a host it is run by the host's interpreter."""
    out = subprocess.run(["python3", "-c", bundle.PROBE], capture_output=True, text=True, check=True).stdout
    assert bundle.Target.parse(out) == bundle.local_target()


def test_the_paramiko_extra_is_a_choice_and_dev_is_not_one() -> None:
    assert not any(r.startswith("paramiko") for r in bundle.requirements())
    assert any(r.startswith("paramiko") for r in bundle.requirements(("paramiko",)))
    with pytest.raises(ConfigError, match="no such host extra: dev"):
        bundle.requirements(("dev",))


def test_a_bundle_for_another_python_and_architecture_has_only_its_wheels(built: Path, tmp_path: Path) -> None:
    """Python 3.12 on aarch64 with glibc 2.28, which this machine is not: every wheel pip chose is for
    CPython 3.12 (or the stable ABI, or pure Python) and a glibc no newer than 2.28, and every extension
    module is an aarch64 ELF file."""
    target = bundle.Target.parse("cpython-3.12-aarch64-glibc-2.28")
    tarball = bundle.build(built, target, ("paramiko",))
    assert tarball.name.startswith(f"twinsite-{__version__}-cp312-manylinux_2_28_aarch64-")
    lib = unpacked(tarball, tmp_path) / "lib"
    tags = wheel_tags(lib)
    assert any(d.startswith("paramiko-") for d in tags) and any(d.startswith("cryptography-") for d in tags)
    allowed = set(target.platforms()) | {"any"}
    for dist, dist_tags in tags.items():
        assert dist_tags, dist
        for tag in dist_tags:
            py, abi, plat = tag.split("-")
            assert py in ("cp312", "py3", "cp37", "cp38", "cp39", "cp310", "cp311") and abi in ("cp312", "abi3", "none")
            assert abi != "cp312" or py == "cp312", tag
            assert plat in allowed, f"{dist}: {tag} is not for glibc 2.28 on aarch64"
    extensions = list(lib.rglob("*.so"))
    assert len(extensions) >= 6  # yaml, xxhash, zstandard, crc32c, rpds, cryptography...
    for so in extensions:
        assert elf_machine(so) == ELF_MACHINE["aarch64"], so
        assert "cpython-311" not in so.name, so
    assert (lib / "twinsite" / "bundle.py").read_bytes() == Path(bundle.__file__).read_bytes()
    assert "python3.12" in (tmp_path / "bin" / "twinsite").read_text()


def test_a_bundle_for_another_python_refuses_to_run_on_this_one(built: Path, tmp_path: Path) -> None:
    tarball = bundle.build(built, bundle.Target.parse("cpython-3.12-x86_64-glibc-2.17"))
    root = unpacked(tarball, tmp_path)
    proc = subprocess.run(
        [str(root / "bin" / "twinsite"), "--version"],
        env=dict(os.environ, TWINSITE_PYTHON="python3"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "this bundle was built for Python 3.12, not 3.11" in proc.stderr
    for so in (root / "lib").rglob("*.so"):
        assert elf_machine(so) == ELF_MACHINE["x86_64"] and "cpython-311" not in so.name, so
    assert not list((root / "lib").glob("paramiko*")), "paramiko was not asked for"


def test_the_bundle_for_this_machine_runs_and_is_built_once(built: Path, tmp_path: Path) -> None:
    first = bundle.build(built)
    mtime = first.stat().st_mtime_ns
    assert bundle.build(built) == first and first.stat().st_mtime_ns == mtime  # (cached)
    assert bundle.build(built, extras=("paramiko",)) != first  # (other contents, other name)
    with tarfile.open(first) as tar:
        assert tar.getnames()[-1] == "VERSION"  # last: a directory holding it was unpacked whole
    install = tmp_path / "opt"
    release = bundle.unpack(first, install)
    assert bundle.activate(install, release.name)
    out = subprocess.run([str(install / "bin" / "twinsite"), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"twinsite {__version__} ")
    assert (release / "python").read_text().strip() and list((release / "lib" / "twinsite").glob("__pycache__/*.pyc"))


def test_releases_switch_in_one_rename_and_the_oldest_are_pruned(built: Path, tmp_path: Path) -> None:
    """Four releases activated in turn with keep 3: bin/twinsite never disappears while they switch (a reader
    polls it the whole time), the current one is the last activated, and the first is gone."""
    tarball = bundle.build(built)
    install = tmp_path / "opt"
    first = bundle.unpack(tarball, install)
    names = ["r1", "r2", "r3", "r4"]
    for name in names:
        subprocess.run(["cp", "-a", str(first), str(install / "releases" / name)], check=True)
    bundle.activate(install, "r1", keep=10)
    # (the reader is another process, on the other core, so that it can look between any two system calls)
    stop = tmp_path / "stop"
    poll = (
        "import os, sys\n"
        "misses = looks = 0\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    looks += 1\n"
        "    misses += not os.path.exists(sys.argv[1])\n"
        "print(misses, looks)\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", poll, str(install / "bin" / "twinsite"), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(50):
            for name in names:
                bundle.activate(install, name, keep=10)
    finally:
        stop.touch()
        misses, looks = map(int, reader.communicate(timeout=30)[0].split())
    assert looks > 1000 and misses == 0, f"bin/twinsite was missing {misses} times in {looks} looks"
    assert not bundle.activate(install, "r4", keep=3)  # (already current: nothing changes)
    assert os.readlink(install / "current") == "releases/r4"
    kept = [p.name for p in bundle.releases(install)]
    assert kept == ["r4", "r3", "r2"]
    with pytest.raises(ConfigError, match="at least 2"):
        bundle.activate(install, "r4", keep=1)
    with pytest.raises(ConfigError, match="not a whole unpacked bundle"):
        bundle.activate(install, "r1")


def test_an_install_from_before_release_directories_is_taken_over(built: Path, tmp_path: Path) -> None:
    install = tmp_path / "opt"
    for d in ("bin", "lib", "bundles"):
        (install / d).mkdir(parents=True)
    (install / "bin" / "twinsite").write_text("#!/bin/sh\necho old\n")
    (install / "VERSION").write_text("0.0.9 twinsite-0.0.9-abc.tar.gz\n")
    release = bundle.unpack(bundle.build(built), install)
    assert bundle.activate(install, release.name)
    assert os.readlink(install / "bin") == "current/bin"
    assert sorted(p.name for p in install.iterdir()) == ["bin", "current", "releases"]


def test_building_from_an_empty_wheelhouse_fails_saying_so(tmp_path: Path) -> None:
    target = bundle.Target.parse("cpython-3.13-x86_64-glibc-2.36")
    with pytest.raises(ConfigError, match="no wheelhouse"):
        bundle.build(tmp_path / "out", target, wheelhouse=tmp_path / "nowhere")
    (tmp_path / "wheels").mkdir()
    with pytest.raises(CommandError, match=r"installing twinsite's dependencies for cpython-3\.13"):
        bundle.build(tmp_path / "out", target, wheelhouse=tmp_path / "wheels")
    assert not list((tmp_path / "out").iterdir())  # (nothing half built left)


def test_every_variable_of_the_agent_role_has_its_argument_spec_and_the_same_default() -> None:
    """The role's defaults and its argument specs say the same, and its directories are the host-side modules'
    defaults (what module_defaults falls back to when the inventory sets none)."""
    role = Path(__file__).resolve().parents[2] / "collections/ansible_collections/twinsite/dr/roles/agent"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    internal = {"twinsite_agent_metrics_args"}  # (derived from the metrics settings; "not meant to be set")
    assert set(defaults) - internal == set(specs)
    for name, spec in specs.items():
        shown, actual = str(spec.get("default")), str(defaults[name])
        if name == "twinsite_agent_bundle_dir":
            actual = actual.replace("{{ lookup('ansible.builtin.env', 'HOME') }}", "~")
        assert shown == actual, f"{name}: the spec says {shown!r}, the default is {actual!r}"
    assert all(n.startswith("twinsite_agent_") for n in defaults)
    assert defaults["twinsite_agent_config_dir"] == str(DEFAULT_CONFIG_DIR)
    assert defaults["twinsite_agent_state_dir"] == str(DEFAULT_STATE_DIR)
    assert f"{defaults['twinsite_agent_install_dir']}/bin/twinsite" == DEFAULT_CLI
