"""How the tests and the benchmarks drive the lab, shared by both (neither imports the other).

* :mod:`harness.cli`: the ``twinsite`` console script of this environment and ``ansible``/``ansible-playbook``
  against the lab's inventory (or another named), as the controller runs them;
* :mod:`harness.hosts`: reaching a lab host (over real SSH, or inside it with ``twinsite lab exec``), the JSON
  answer of the twinsite installed there, and what its agent recorded (event log, agent log);
* :mod:`harness.scenarios`: installing the agent bundle, a test's own scenario run by an agent it starts, and
  the lab as ``playbooks/configure.yml`` declares it;
* :mod:`harness.db`: the lab's ``db`` scenario (PostgreSQL replicated prod1 -> dr1): the load generator that
  commits through db.dr.test as users do, the probe of production's replication latency, its role, and
  putting it back;
* :mod:`harness.pgoracle`: the oracle of issue 17, lab-free: a TPC-B workload whose history rows name their client
  and its transaction, and the judge of whether a copy of a PostgreSQL data directory is crash-consistent with
  the clients' logs at a cut (amcheck, the TPC-B balances, each client's committed prefix);
* :mod:`harness.vcenter`: the vCenter simulator through pyVmomi (connect, find by name, wait for a task);
* :mod:`harness.wait`: polling for something observable with the library's ``twinsite.proc.wait_until``.

Importing the package imports nothing else; each module imports only what it needs.
"""
