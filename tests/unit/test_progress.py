"""Sync progress: the tree's totals (as replicated: no symlinks followed, excludes honoured), rate, ETA."""

from __future__ import annotations

import os
from pathlib import Path

from twinsite.sync.progress import SyncProgress, describe, human_bytes, measure


def test_measure_counts_regular_files_without_following_links_and_honours_select(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "b").write_bytes(b"y" * 24)
    (tmp_path / "d" / "skip.tmp").write_bytes(b"z" * 5000)
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (outside / "big").write_bytes(b"w" * 9000)
    (tmp_path / "link").symlink_to(outside)  # a directory symlink: replicated as a link, never walked
    os.mkfifo(tmp_path / "fifo")
    assert measure(tmp_path) == (3, 6024)
    assert measure(tmp_path, lambda p: not p.endswith(b".tmp")) == (2, 1024)
    assert measure(tmp_path / "missing") == (0, 0)


def test_progress_rate_eta_and_finish() -> None:
    p = SyncProgress(files_total=4, bytes_total=400, started_at=100.0)
    p.planned(3, 60)  # the first part of a file ...
    p.planned(4, 40, files=1)  # ... and the rest, with its last record
    for seq in (7, 8, 12):
        p.planned(seq, 100, files=1)
    p.acked(5)  # done when the standby has acknowledged the records
    d = p.as_dict(now=102.0)
    assert (d["percent"], d["rate_bytes_per_s"], d["eta_seconds"]) == (25.0, 50, 6.0)
    assert describe(d) == "25.0% - 100 B of 400 B, 1 of 4 files - 50 B/s - about 6 s left"
    p.acked(11)
    assert p.files_done == 3
    p.acked(12)
    p.bytes_sent = 150
    p.finished_at = 104.0
    d = p.as_dict(now=999.0)  # a finished sync's figures stay those of its end
    assert (d["percent"], d["eta_seconds"], d["elapsed_seconds"]) == (100.0, 0.0, 4.0)
    assert describe(d).endswith("done in 4.0 s, 150 B sent")


def test_empty_tree_is_complete_and_sizes_read_well() -> None:
    assert SyncProgress().as_dict(now=0.0)["percent"] == 100.0
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 << 20, 3 << 30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]
