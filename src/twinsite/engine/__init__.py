"""Replication's two ends. On the active host a sender per root and standby (engine.sender, its shipping half
engine.shipper) turns captured changes into journaled records and ships them; on the standby the receiver
(engine.receiver, started as ``twinsite receive`` over SSH) applies them in order, durably, with their undo in
the rewind log first, or keeps them in its spool during an assured-recovery test (engine.spool)."""
