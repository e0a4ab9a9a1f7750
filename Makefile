# twinsite's single entry point. Every target does its own setup, so each works on a fresh machine as root.
#   make demo    set up, bring the lab up, run the drill (configure.yml first; report in build/drill/)
#   make test    set up, lint, run every test (unit, lab integration, real ansible-playbook runs)
#   make bench   set up, bring the lab up, run the long fuzzing run and the benchmarks (bench/results/latest.{json,md})
#   make fuzz    the long property-based fuzzing run of the decoders and the applier, with its seed printed
#   make lint    ruff, mypy --strict, import layers (import-linter), ansible-lint (production), ansible-test sanity
#   make setup   Debian packages, the .venv, the vCenter simulator build
#   make dist    the artifacts in dist/: the library's wheel and sdist, the collection's tarball (scripts/dist)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# What the lab, the tests and the benchmarks run: sshd for the lab hosts, knot for DNS, Go and govmomi for the
# vCenter simulator, openssl for the lab CA, rsync and lsyncd as benchmark peers, PostgreSQL and SQLite as
# protected applications (and MariaDB and nginx, the lab's second database and web server), nftables/iptables
# for partitions, btrfs-progs for snapshots and send streams, chromium (headless) for the web console's tests.
DEB_PACKAGES := openssh-server openssh-client knot knot-dnsutils golang-go golang-github-vmware-govmomi-dev \
	iproute2 util-linux openssl rsync lsyncd iptables nftables postgresql sqlite3 git btrfs-progs chromium mariadb-server \
	nginx-light

.PHONY: setup deb venv vcsim demo test pytest lint bench fuzz lab-up lab-down clean dist

setup: deb venv vcsim

deb:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

vcsim: venv
	$(BIN)/twinsite lab build

lab-up: setup
	$(BIN)/twinsite lab up

lab-down: venv
	$(BIN)/twinsite lab down

demo: lab-up
	$(BIN)/ansible-playbook -i inventories/lab playbooks/drill.yml

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/import-graph >/dev/null
	$(BIN)/ansible-lint
	scripts/ansible-test-sanity

pytest: setup
	$(BIN)/python -m pytest -p no:cacheprovider -ra

test: setup lint pytest

dist: venv
	$(BIN)/python scripts/dist $(CURDIR)/dist

bench: lab-up fuzz
	$(BIN)/python -m bench

# The long fuzzing run (CI runs the same properties with fewer examples): a fresh seed each time, printed so that
# a failure can be replayed with SEED=<it>.
fuzz: venv
	seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "fuzz seed: $$seed (replay: make fuzz SEED=$$seed)"; \
	TWINSITE_FUZZ=fuzz $(BIN)/python -m pytest -p no:cacheprovider -q tests/unit/test_fuzz.py --hypothesis-seed=$$seed \
	  --hypothesis-show-statistics

clean: lab-down
	rm -rf $(VENV) dist collections/ansible_collections/twinsite/dr/tests/output
