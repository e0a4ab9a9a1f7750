"""Applying change records to a replica root: safely (never outside the root), idempotently, durably."""
