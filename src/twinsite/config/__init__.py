"""Scenario configuration: one JSON Schema, one loader, typed values. Used by the CLI, the agent and the modules."""

from twinsite.config.loader import load_file, parse_scenarios, validate_file
from twinsite.config.scenario import Journal, Replication, Root, Scenario

__all__ = ["Journal", "Replication", "Root", "Scenario", "load_file", "parse_scenarios", "validate_file"]
