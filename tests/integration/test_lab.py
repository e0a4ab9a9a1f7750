"""The lab's hosts: real sshd per host, own hostnames and directories, cut/heal, exec, and a clean down."""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.cli import twinsite_cmd
from harness.hosts import ssh
from twinsite import lab as labmod
from twinsite.capture.sendstream import read as read_sendstream
from twinsite.errors import LabError
from twinsite.lab import hosts, netns, volumes
from twinsite.lab.topology import PRIVATE_DIRS, Lab
from twinsite.proc import pid_alive, run

pytestmark = pytest.mark.lab


def test_up_twice_is_harmless(lab: Lab) -> None:
    before = labmod.status(lab)
    labmod.up(lab)
    after = labmod.status(lab)
    assert after["state"] == "up"
    assert after == before  # same pids, same links: nothing was restarted


@pytest.mark.parametrize("host", ["prod1", "dr1", "client1"])
def test_each_host_answers_ssh_with_its_own_hostname(lab: Lab, host: str) -> None:
    proc = ssh(lab, host, "hostname; cat /etc/hostname >/dev/null; echo $SSH_CONNECTION")
    assert proc.returncode == 0, proc.stderr
    name, conn = proc.stdout.split("\n", 1)
    assert name == host
    assert conn.split()[2] == lab.host(host).address  # the server end is the host's own address


@pytest.mark.parametrize("path", PRIVATE_DIRS)
def test_each_host_has_its_own_private_directories(lab: Lab, path: str) -> None:
    marker = f"{path}/.twinsite-test-{time.monotonic_ns()}"
    assert ssh(lab, "prod1", f"echo prod1 > {marker}").returncode == 0
    try:
        assert ssh(lab, "prod1", f"cat {marker}").stdout == "prod1\n"
        for other in ("dr1", "client1"):
            assert ssh(lab, other, f"test -e {marker}").returncode == 1, f"{marker} visible on {other}"
        assert not Path(marker).exists(), f"{marker} visible on the controller"
    finally:
        ssh(lab, "prod1", f"rm -f {marker}")


def test_host_keys_are_verified_not_added(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = ssh(lab, "dr1", "true", known_hosts=empty)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
    assert empty.read_text() == ""  # nothing was added


def test_hosts_reach_each_other_by_name_with_verified_keys(lab: Lab) -> None:
    proc = ssh(lab, "prod1", "ssh -o BatchMode=yes dr1 'hostname; echo $SSH_CLIENT'")
    assert proc.returncode == 0, proc.stderr
    name, client = proc.stdout.split("\n", 1)
    assert name == "dr1"
    assert client.split()[0] == lab.host("prod1").address


def test_cut_fails_ssh_fast_while_others_answer_and_heal_restores(healed: Lab) -> None:
    lab = healed
    labmod.cut(lab, "prod1")
    assert {h["name"]: h["link"] for h in labmod.status(lab)["hosts"]}["prod1"] == "cut"
    t0 = time.monotonic()
    proc = ssh(lab, "prod1", "true", timeout=20)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 255
    assert elapsed < 10, f"ssh to a cut host took {elapsed:.1f} s to fail"
    assert ssh(lab, "dr1", "hostname").stdout == "dr1\n"
    # prod1 is cut off from the other site too, not only from the controller
    assert ssh(lab, "dr1", "ssh -o BatchMode=yes -o ConnectTimeout=2 prod1 true").returncode == 255
    labmod.heal(lab, "prod1")
    assert ssh(lab, "prod1", "hostname").stdout == "prod1\n"


def test_cut_through_the_cli(healed: Lab) -> None:
    proc = twinsite_cmd("lab", "cut", "client1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert ssh(healed, "client1", "true", timeout=20).returncode == 255
    assert twinsite_cmd("lab", "heal", "client1").returncode == 0
    assert ssh(healed, "client1", "hostname").stdout == "client1\n"


def test_cut_of_an_unknown_host_is_refused(lab: Lab) -> None:
    proc = twinsite_cmd("lab", "cut", "prod9")
    assert proc.returncode == 3
    assert "no lab host called 'prod9'" in proc.stderr


def test_exec_passes_stdin_stdout_stderr_and_exit_code(lab: Lab) -> None:
    proc = subprocess.run(
        [
            str(Path(twinsite_cmd.__globals__["VENV_BIN"]) / "twinsite"),
            "lab",
            "exec",
            "dr1",
            "--",
            "sh",
            "-c",
            "hostname; cat; echo oops >&2; exit 7",
        ],
        input="from stdin\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 7
    assert proc.stdout == "dr1\nfrom stdin\n"
    assert proc.stderr == "oops\n"


def test_exec_sees_the_hosts_network_and_mounts(lab: Lab) -> None:
    proc = twinsite_cmd("lab", "exec", "client1", "--", "sh", "-c", "ip -4 -o addr show dev eth0; findmnt -n /srv")
    assert proc.returncode == 0, proc.stderr
    assert f"inet {lab.host('client1').address}/24" in proc.stdout
    assert str(lab.host("client1").private_dir("/srv")) in proc.stdout


@pytest.mark.parametrize("host", ["prod1", "dr1"])
def test_srv_db_is_a_btrfs_subvolume_with_read_only_points_inside_the_host(lab: Lab, host: str) -> None:
    store, name = "/srv/db/.twinsite-points", f"test-{time.monotonic_ns()}"
    point = f"{store}/{name}"
    shown = ssh(lab, host, "btrfs subvolume show /srv/db")
    assert shown.returncode == 0, shown.stderr
    made_store = ssh(lab, host, f"test -e {store}").returncode != 0
    try:
        made = ssh(
            lab,
            host,
            f"set -e; [ -e {store} ] || btrfs subvolume create {store}; btrfs subvolume snapshot -r /srv/db {point};"
            f" btrfs property get -ts {point} ro; btrfs send -q --no-data {point} | btrfs receive --dump",
        )
        assert made.returncode == 0, made.stderr
        assert "ro=true" in made.stdout
        assert f"subvol          ./{name} " in made.stdout  # btrfs's own reader took the stream to its end
        # ... and so does twinsite's (capture.sendstream), reading the stream the host's btrfs sends
        stream = run(hosts.exec_argv(lab.host(host), ["btrfs", "send", "-q", "--no-data", point])).stdout
        commands = list(read_sendstream(io.BytesIO(stream)))
        assert commands[0].name == "subvol" and commands[0].path == name.encode()
        assert commands[-1].name == "end"
    finally:
        deleted = ssh(lab, host, f"btrfs subvolume delete {point}" + (f" {store}" if made_store else ""))
    assert deleted.returncode == 0, deleted.stderr
    assert ssh(lab, host, f"test -e {point}").returncode == 1


@pytest.mark.parametrize("host", ["prod1", "dr1"])
def test_the_controller_sees_the_hosts_srv_db_volume_and_the_rest_of_srv_stays_plain(lab: Lab, host: str) -> None:
    h = lab.host(host)
    mine = h.private_dir("/srv") / "db"
    marker = f".twinsite-test-{time.monotonic_ns()}"
    try:
        assert ssh(lab, host, f"echo from {host} > /srv/db/{marker}").returncode == 0
        assert (mine / marker).read_text() == f"from {host}\n"  # written in the host, read on the controller
        (mine / marker).write_text("from the controller\n")
        assert ssh(lab, host, f"cat /srv/db/{marker}").stdout == "from the controller\n"
    finally:
        (mine / marker).unlink(missing_ok=True)
    # the very same subvolume (UUIDs are per subvolume), and only /srv/db is on it
    inside = ssh(lab, host, "btrfs subvolume show /srv/db | grep '^\\s*UUID:'; stat -f -c %T /srv /srv/db")
    outside = run(["btrfs", "subvolume", "show", str(mine)]).stdout.decode()
    uuid_line, srv_fs, db_fs = inside.stdout.splitlines()
    assert uuid_line.split()[-1] in outside.split()
    assert db_fs == "btrfs"
    assert srv_fs == run(["stat", "-f", "-c", "%T", str(h.private_dir("/srv"))]).stdout.decode().strip() != "btrfs"


def test_client1_has_no_btrfs_volume(lab: Lab) -> None:
    assert ssh(lab, "client1", "findmnt -n /srv/db").returncode == 1


def test_an_older_labs_plain_srv_db_moves_into_the_volume_and_a_conflict_is_refused(tmp_path: Path) -> None:
    # volumes.ensure/remove on a lab that is never started (no namespaces needed): what `lab up` does first
    other = Lab.create(name="twy", root=tmp_path / "lab", network="10.77.8.0/24")
    h = other.host("dr1")
    old = h.private_dir("/srv") / "db"
    (old / "data").mkdir(parents=True)
    (old / "data" / "f").write_text("kept\n")
    (old / "link").symlink_to("data/f")
    os.chown(old / "data" / "f", 1234, 5678)
    old.chmod(0o750)
    (v,) = [v for v in volumes.volumes(h) if v.path == "/srv/db"]  # (dr1 has /srv/mariadb's too)
    try:
        volumes.ensure(other, h)
        volumes.ensure(other, h)  # twice is harmless
        assert run(["btrfs", "subvolume", "show", str(old)]).returncode == 0
        assert (old / "data" / "f").read_text() == "kept\n"
        assert ((old / "data" / "f").stat().st_uid, (old / "data" / "f").stat().st_gid) == (1234, 5678)
        assert os.readlink(old / "link") == "data/f"
        assert old.stat().st_mode & 0o7777 == 0o750
        assert not v.aside.exists()
        # unmounted (as after a reboot), the loop file is reused with its data ...
        run(["umount", str(old)])
        assert not (old / "data").exists()
        volumes.ensure(other, h)
        assert (old / "data" / "f").read_text() == "kept\n"
        # ... but not mixed with a plain directory that holds files too: refused, both left as they were
        run(["umount", str(old)])
        (old / "stray").write_text("also data\n")
        with pytest.raises(LabError, match="both as a plain directory"):
            volumes.ensure(other, h)
        assert (old / "stray").exists() and volumes.mount_at(old) is None and not v.aside.exists()
        (old / "stray").unlink()
        volumes.ensure(other, h)
    finally:
        volumes.remove(h)
        volumes.remove(h)  # twice is harmless
    assert volumes.mount_at(old) is None
    assert not v.image.exists()
    assert str(other.root) not in run(["losetup", "-a"]).stdout.decode()


def test_a_second_lab_comes_up_and_down_leaving_nothing(tmp_path: Path, lab: Lab) -> None:
    other = Lab.create(name="twx", root=tmp_path / "lab", network="10.77.9.0/24")
    labmod.up(other)
    labmod.up(other)  # twice is harmless
    st = labmod.status(other)
    assert st["state"] == "up"
    pids = [h["sshd_pid"] for h in st["hosts"]] + [st["dns"]["pid"], st["vcenter"]["pid"]]
    assert ssh_other(other, "dr1") == "dr1"
    volumes = [other.host(n).dir / "srv_db.btrfs" for n in ("prod1", "dr1")]
    assert all(str(v) in run(["losetup", "-a"]).stdout.decode() for v in volumes)
    labmod.down(other)
    labmod.down(other)  # twice is harmless
    assert labmod.status(other)["state"] == "down"
    assert not [ns for ns in Path("/run/netns").iterdir() if ns.name.startswith("twx-")]
    assert not netns.link_exists(other.uplink)
    assert not [p for p in pids if pid_alive(p)]  # (a zombie waiting for init to reap it is not running)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(other.root) not in mounts
    assert str(other.root) not in run(["losetup", "-a"]).stdout.decode()  # loop devices detached
    assert not [v for v in volumes if v.exists()]  # and their files deleted
    assert not [m for m in mounts.splitlines() if "/run/netns/twx-" in m]
    # the demo lab was not disturbed
    assert labmod.status(lab)["state"] == "up"


def ssh_other(lab: Lab, host: str) -> str:
    return ssh(lab, host, "hostname").stdout.strip()


ECHO = """
import statistics, subprocess, sys, time
p = subprocess.Popen(["ssh", "-p", sys.argv[1], "dr1", "cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
times = []
for _ in range(7):
    t = time.monotonic()
    p.stdin.write(b"x\\n")
    p.stdin.flush()
    p.stdout.readline()
    times.append(time.monotonic() - t)
p.stdin.close()
p.wait()
print(statistics.median(times[1:]))
"""


def _round_trip(lab: Lab, port: int) -> float:
    """The median time for a line to go from prod1 to dr1 and back through an ssh session's `cat`."""
    proc = ssh(lab, "prod1", f"python3 -c '{ECHO}' {port}")
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout)


def _seconds_for(lab: Lab, mib: int, port: int) -> float:
    """Seconds for ``mib`` MiB to go from prod1 to dr1 through ssh (timed here: the ssh to prod1 adds a little)."""
    t0 = time.monotonic()
    proc = ssh(lab, "prod1", f"head -c {mib}M /dev/urandom | ssh -p {port} dr1 'cat >/dev/null'")
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - t0


def test_a_wan_path_has_its_round_trip_through_the_relay_and_its_rate(lab: Lab) -> None:
    """`twinsite lab wan`: port 2222 of dr1 adds the round trip (a relay: no netem here), and the link has the
    rate (tc tbf), measured from prod1 through real ssh sessions; --off removes both."""
    assert _round_trip(lab, 22) < 0.03
    try:
        proc = twinsite_cmd("lab", "wan", "dr1", "--rtt", "80ms", "--rate", "20mbit")
        assert proc.returncode == 0, proc.stderr
        assert 0.08 <= _round_trip(lab, 2222) < 0.2
        assert _round_trip(lab, 22) < 0.03  # port 22: the rate only
        took = _seconds_for(lab, 8, 22)
        assert 8 * 2**20 / took < 20e6 / 8 * 1.15, took  # (a first burst of 64 KB is allowed)
        assert 8 * 2**20 / took > 20e6 / 8 * 0.5, took
    finally:
        off = twinsite_cmd("lab", "wan", "dr1", "--off")
    assert off.returncode == 0, off.stderr
    assert _seconds_for(lab, 8, 22) < 2.0
    assert ssh(lab, "prod1", "ssh -p 2222 -o ConnectTimeout=2 dr1 true").returncode != 0  # the relay is gone
