"""What may follow a passing test (``assured_recovery.after_pass``), while the replica still holds exactly the
data that was tested: a vSphere snapshot of the replica VM, a copy of the replica VM on other storage, an
archive of the data (a compressed tar and a manifest of every file's digest), a site script. Each returns its
result for the evidence; a failing action is recorded (and alerted by the test) but does not make the test
fail: the data was proved recoverable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twinsite.apps.checks import run as run_script
from twinsite.apps.checks import site_script
from twinsite.config.scenario import parse_duration
from twinsite.durable import fsync_dir, private_opener, remove, write_json
from twinsite.errors import TwinsiteError
from twinsite.tree import entries

SNAPSHOT_PREFIX = "twinsite-test-"


def run_all(
    specs: Sequence[dict[str, Any]], *, facts: dict[str, Any], roots: Sequence[Path], plugins: Path
) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        t0 = time.monotonic()
        try:
            if spec["type"] == "snapshot":
                detail = snapshot(spec, facts)
            elif spec["type"] == "vm_copy":
                detail = vm_copy(spec, facts)
            elif spec["type"] == "archive":
                detail = archive(spec, facts, roots)
            else:
                detail = script(spec, facts, plugins)
            out.append({"type": spec["type"], "ok": True, **detail})
        except (TwinsiteError, OSError) as exc:
            out.append({"type": spec["type"], "ok": False, "detail": str(exc)})
        out[-1]["seconds"] = round(time.monotonic() - t0, 3)
    return out


def snapshot(spec: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """A snapshot of the replica VM named for the test; the oldest of the tests' snapshots past ``keep`` go."""
    from twinsite.vsphere.connection import Credentials, connect
    from twinsite.vsphere.snapshot import SnapshotSpec, ensure, snapshots

    name = f"{SNAPSHOT_PREFIX}{facts['id']}"
    seqs = ", ".join(f"{t['root']} at seq {t['seq']}" for t in facts["tested"])
    with connect(Credentials.from_settings(spec)) as session:
        made = ensure(
            session,
            SnapshotSpec(
                vm=spec["vm"],
                datacenter=spec.get("datacenter"),
                name=name,
                description=f"twinsite assured-recovery test {facts['id']} of {facts['scenario']} passed: {seqs}",
                memory=bool(spec.get("memory", False)),
                quiesce=bool(spec.get("quiesce", False)),
            ),
        )
        vm = session.vm(spec["vm"], where=spec.get("datacenter") or "")
        ours = [s for s, _obj in snapshots(vm) if s["name"].startswith(SNAPSHOT_PREFIX)]
        ours.sort(key=lambda s: (s["created"] or "", s["id"]))
        removed = []
        for old in ours[: -int(spec.get("keep", 3))]:
            ensure(
                session, SnapshotSpec(vm=spec["vm"], datacenter=spec.get("datacenter"), id=old["id"], state="absent")
            )
            removed.append(old["name"])
    snap = made.snapshot or {}
    return {
        "vm": spec["vm"],
        "snapshot": name,
        "id": snap.get("id"),
        "removed": removed,
        "detail": f"{spec['vm']}: {name}",
    }


def vm_copy(spec: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """A copy of the replica VM named ``<vm>-copy-<test id>`` on another datastore (or datacenter), powered off;
    the VM's copies past ``keep`` go, oldest first. Its current state is copied (the replica holds the tested
    data until the spool is applied, after the actions), or with ``from_snapshot`` the snapshot this test's
    ``snapshot`` action took just before (the loader checks that one comes first)."""
    from twinsite.vsphere.connection import Credentials, connect
    from twinsite.vsphere.vm_copy import CopySpec, ensure

    seqs = ", ".join(f"{t['root']} at seq {t['seq']}" for t in facts["tested"])
    with connect(Credentials.from_settings(spec)) as session:
        out = ensure(
            session,
            CopySpec(
                vm=spec["vm"],
                name=f"{spec['vm']}-copy-{facts['id']}",
                datastore=spec["datastore"],
                datacenter=spec.get("datacenter"),
                folder=spec.get("folder"),
                cluster=spec.get("cluster"),
                resource_pool=spec.get("resource_pool"),
                snapshot=f"{SNAPSHOT_PREFIX}{facts['id']}" if spec.get("from_snapshot") else None,
                keep=int(spec.get("keep", 2)),
                label=f"assured-recovery test {facts['id']} of {facts['scenario']} ({seqs})",
                timeout=parse_duration(spec.get("copy_timeout", "1h")),
            ),
        )
    copy = out.copy
    return {
        "vm": spec["vm"],
        "copy": copy["name"],
        "datastore": copy["datastore"],
        "datacenter": copy["datacenter"],
        "snapshot": copy["snapshot"],
        "made": out.made,
        "removed": list(out.removed),
        "in_use": list(out.in_use),
        "detail": f"{spec['vm']} -> {copy['name']} on {copy['datastore']} in {copy['datacenter']}",
    }


def archive(spec: dict[str, Any], facts: dict[str, Any], roots: Sequence[Path]) -> dict[str, Any]:
    """``<directory>/<scenario>-<time>-<test>.tar.gz`` of the roots, and beside it ``.manifest.json``: every
    entry's digest (the tree listing the replica is compared with) and the archive's sha256."""
    directory = Path(spec["directory"])
    for root in roots:
        if directory.resolve().is_relative_to(root.resolve()):
            raise TwinsiteError(f"the archive directory {directory} is inside the root {root}", where=str(directory))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{facts['scenario']}-{stamp}-{facts['id']}"
    path, tmp = directory / f"{base}.tar.gz", directory / f".{base}.tar.gz.tmp"
    for left in directory.glob(f".{facts['scenario']}-*.tar.gz.tmp"):
        left.unlink()  # (an archive a crash interrupted)
    # (copies of the replica's data: readable by root only, whatever the umask or the directory's mode)
    with open(tmp, "wb", opener=private_opener) as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
        for root in roots:
            tar.add(str(root), arcname=str(root).lstrip("/") or ".", recursive=True)
    sha = hashlib.sha256()
    with open(tmp, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
        os.fsync(f.fileno())
    os.replace(tmp, path)
    files = []
    for root in roots:
        for rel, e in sorted(entries(root).items()):
            files.append(
                {"root": str(root), "path": os.fsdecode(rel), "kind": e.kind, "size": e.size, "xxh3_128": e.content}
            )
    manifest = directory / f"{base}.manifest.json"
    write_json(
        manifest,
        {
            "scenario": facts["scenario"],
            "test": facts["id"],
            "tested": facts["tested"],
            "archive": path.name,
            "sha256": sha.hexdigest(),
            "files": files,
        },
        private=True,
    )
    fsync_dir(directory)
    kept = sorted(directory.glob(f"{facts['scenario']}-*.tar.gz"))
    removed = []
    for old in kept[: -int(spec.get("keep", 3))]:
        remove(old)
        remove(old.with_name(old.name.removesuffix(".tar.gz") + ".manifest.json"))
        removed.append(old.name)
    return {
        "archive": str(path),
        "manifest": str(manifest),
        "bytes": path.stat().st_size,
        "files": len(files),
        "sha256": sha.hexdigest(),
        "removed": removed,
        "detail": f"{path} ({path.stat().st_size} bytes, {len(files)} entries)",
    }


def script(spec: dict[str, Any], facts: dict[str, Any], plugins: Path) -> dict[str, Any]:
    """``<plugins>/recovery/NAME``, with the test's facts as TWINSITE_* variables (exit 0 = success)."""
    path = site_script(plugins, "recovery", spec["name"])
    env = {
        **os.environ,
        "TWINSITE_SCENARIO": facts["scenario"],
        "TWINSITE_TEST_ID": facts["id"],
        "TWINSITE_HOST": facts["host"],
        "TWINSITE_ROOTS": "\n".join(t["root"] for t in facts["tested"]),
        "TWINSITE_TESTED_SEQ": ",".join(str(t["seq"]) for t in facts["tested"]),
        "TWINSITE_TESTED": json.dumps(facts["tested"]),
    }
    code, out = run_script(
        [str(path)], timeout=parse_duration(spec.get("timeout", 300)), what=f"script {spec['name']}", env=env
    )
    if code != 0:
        raise TwinsiteError(f"script {spec['name']} failed (exit {code}): {out.strip()[-300:]}")
    return {"script": spec["name"], "output": out.strip()[-500:], "detail": out.strip()[-200:] or "exit 0"}
