"""Sizes and durations as scenarios write them (the schema has checked the form)."""

from __future__ import annotations

import re

from twinsite.errors import ConfigError

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(value: int | str) -> int:
    """512 -> 512, '20MiB' -> 20971520, '1.5GB' -> 1500000000 (the schema has checked the form)."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def size_of(value: object, where: str, key: str, *, minimum: int = 0) -> int:
    """Bytes from input no schema has checked (a placement file, a module option): an integer, or a size with a
    unit as scenarios write them ("20GiB", "1.5TB"); anything else is a ConfigError naming ``where`` and ``key``."""
    if isinstance(value, str):
        try:
            value = parse_size(value)
        except ValueError:
            raise ConfigError(
                f"{key} must be a size (bytes, or a number with a unit: 20GiB, 1.5TB), got {value!r}", where=where
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {type(value).__name__} {value!r}", where=where)
    if value < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"{key} must be {bound}, got {value}", where=where)
    return value


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: float | str) -> float:
    """90 -> 90.0, '15m' -> 900.0, '24h' -> 86400.0 (the schema has checked the form)."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*", value)
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _SECONDS[m.group(2)]
