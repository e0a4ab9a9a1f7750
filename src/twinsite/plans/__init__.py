"""Recovery plans run from the controller: a site's scenarios failed over, tested or switched back group by
group (:mod:`~twinsite.plans.run`), over SSH to the inventory's hosts (:mod:`~twinsite.plans.hosts`).
The plans themselves are declared and checked in :mod:`twinsite.config.plans`."""
