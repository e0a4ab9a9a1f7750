"""Initial sync, resync and the per-change delta: comparing a source tree with what the replica holds."""
