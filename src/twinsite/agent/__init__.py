"""The agent: the one long-running process per host (``twinsite agent``).

:mod:`~twinsite.agent.loop` runs the senders of the scenarios this host is active for, the monitors and the
scheduled tests of those it is a standby of, and follows the declarations; :mod:`~twinsite.agent.service`
keeps it running where there is no systemd; :mod:`~twinsite.agent.metrics` exports what it does to
Prometheus.
"""
