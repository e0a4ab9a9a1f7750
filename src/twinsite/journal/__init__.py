"""The journal: ordered, checksummed change records, and the append-only segment files that hold them."""
