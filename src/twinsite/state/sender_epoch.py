"""``epoch``: the epoch a sender's journal belongs to (``root-<n>/<standby>/epoch``, text).

A journal numbers its records within one epoch (state.role); a journal of another epoch is dropped when the
sender starts (what it held was shipped before that switchover, or set aside by ``twinsite switchback``).
No file reads as epoch 0: journals from before epochs.
"""

from __future__ import annotations

from pathlib import Path

from twinsite.durable import write_text


def read(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        return 0
    except ValueError:
        return -1  # (damaged: belongs to no epoch, so the journal is dropped and the trees compared)


def write(path: Path, epoch: int) -> None:
    write_text(path, f"{epoch}\n")
