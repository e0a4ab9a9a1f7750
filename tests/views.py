"""Reading twinsite's operator views as monitoring reads them: the published schema of ``status --json``,
and Prometheus's own text-format parser over the agent's metrics (its loopback endpoint, its textfile)."""

from __future__ import annotations

import json
from importlib import resources

from prometheus_client.parser import text_string_to_metric_families

SCHEMA = json.loads(resources.files("twinsite").joinpath("schemas/status.schema.json").read_text())


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and labels, through Prometheus's own text-format parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
