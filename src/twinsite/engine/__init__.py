"""The active side of replication: one sender per scenario and standby, fed by capture."""
