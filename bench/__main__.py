"""Run every benchmark against the lab and write bench/results/latest.json and latest.md.

A run of some benchmarks (``python -m bench switchover``) replaces their comparisons in latest.json and keeps
the others'. Each benchmark returns comparisons: {"name", "unit", "twinsite": {...}, "peer": {"name", ...},
"ratio"}, where ``ratio`` is twinsite's figure over the peer's for the named metric (its meaning is in
``ratio_meaning``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import bigfile, cdp, consistency, million, recovery, replication, scale, site, ssh_channel, switchover, wan
from twinsite import __version__
from twinsite.lab.topology import Lab

BENCHMARKS = {
    "ssh_channel": ssh_channel.run,
    "replication": replication.run,
    "cdp": cdp.run,
    "switchover": switchover.run,
    "recovery": recovery.run,
    "scale": scale.run,
    "site": site.run,
    "million": million.run,
    "bigfile": bigfile.run,
    "wan": wan.run,
    "consistency": consistency.run,
}
RESULTS = Path(__file__).parent / "results"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# twinsite benchmarks ({report['generated']})",
        "",
        f"twinsite {report['twinsite_version']}, {report['machine']['cpus']} CPUs, "
        f"Python {report['machine']['python']}",
        "",
        "| comparison | twinsite | peer | ratio | meaning |",
        "|---|---|---|---|---|",
    ]
    for c in report["comparisons"]:
        lines.append(
            f"| {c['name']} | {c['twinsite']['value']:.1f} {c['unit']} | {c['peer']['name']}: "
            f"{c['peer']['value']:.1f} {c['unit']} | {c['ratio']:.2f} | {c['ratio_meaning']} |"
        )
        if "peer_durable" in c:  # context: the peer made durable too (not the target's peer)
            d = c["peer_durable"]
            lines.append(
                f"| (same, peer made durable) | {c['twinsite']['value']:.1f} {c['unit']} | {d['name']}: "
                f"{d['value']:.1f} {c['unit']} | {c['ratio_durable']:.2f} | for context: both on disk at the end |"
            )
    lines += ["", "Further figures of twinsite (and of its peer, where it has some):", ""]
    for c in report["comparisons"]:
        for who, extra in (
            ("", {k: v for k, v in c["twinsite"].items() if k != "value"}),
            (f" (peer: {c['peer']['name']})", {k: v for k, v in c["peer"].items() if k not in ("name", "value")}),
        ):
            if extra:
                shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
                lines.append(f"- {c['name']}{who}: {shown}")
    return "\n".join(lines) + "\n"


def _kept(ran: list[str]) -> list[dict[str, Any]]:
    """The comparisons of benchmarks not run this time, from the last results (a partial run updates its own)."""
    try:
        last = json.loads((RESULTS / "latest.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [c for c in last.get("comparisons", []) if c.get("benchmark") and c["benchmark"] not in ran]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    args = parser.parse_args()
    lab = Lab.from_env()
    names = args.names or list(BENCHMARKS)
    comparisons: list[dict[str, Any]] = []
    for name in names:
        comparisons.extend({**c, "benchmark": name} for c in BENCHMARKS[name](lab, quick=args.quick))
    comparisons = _kept(names) + comparisons
    report = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "twinsite_version": __version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "comparisons": comparisons,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
