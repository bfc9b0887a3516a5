# mtls.rollout — developer entry points. `make help` lists them.
#
# Everything runs from a local virtualenv (.venv) and, for containers, from
# podman's Docker-compatible socket (MTLS_ENGINE=docker uses a Docker engine).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
MTLS_ENGINE ?= podman
BENCH_HOSTS ?= 50,200
# Longest first, so that the lanes of `make molecule` end close together; any scenario not
# named here runs after these.
SCENARIO_ORDER := lifecycle renewal rotation faults nginx_mtls embedded default step_ca_install modules
ALL_SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
SCENARIOS ?= $(filter $(ALL_SCENARIOS),$(SCENARIO_ORDER)) $(filter-out $(SCENARIO_ORDER),$(ALL_SCENARIOS))
# Scenarios run at once by `make molecule` (each has its own names and ports).
MOLECULE_JOBS ?= 2

export PATH := $(VENV)/bin:$(PATH)
export MTLS_ENGINE
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/build/collections
# Test state stays in the checkout: ansible-core's tmp and caches, Molecule's state, and the
# copy of the collection that ansible-lint installs (a custom ANSIBLE_* path makes it use
# ANSIBLE_HOME instead of its per-project cache; the default is ~/.ansible, where the copy
# would shadow this checkout for any later ansible-playbook). tests/check-home.sh checks it.
export ANSIBLE_HOME := $(CURDIR)/.ansible
export MTLS_STEP_CA_BINARY := $(CURDIR)/build/step-ca
ifeq ($(MTLS_ENGINE),podman)
export DOCKER_HOST := unix://$(CURDIR)/.run/podman.sock
endif

COLLECTION_LINK := build/collections/ansible_collections/mtls/rollout
VENV_STAMP := $(VENV)/.installed-$(shell sha256sum requirements-dev.txt | cut -c1-12)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: demo
demo: setup ## Roll out mTLS into local containers (ca, web, client) and show curl 403/200
	ansible-playbook inventories/demo/up.yml
	ansible-playbook -i inventories/demo/hosts.yml site.yml

.PHONY: demo-down
demo-down: ## Remove the demo containers
	ansible-playbook inventories/demo/down.yml

.PHONY: test
test: lint unit package molecule ## Lint, unit tests, package check, then every Molecule scenario

.PHONY: setup
setup: venv step-ca engine ## Everything the tests need: venv, step-ca, container engine, base image

.PHONY: venv
venv: $(VENV_STAMP) $(COLLECTION_LINK)

$(VENV_STAMP): requirements-dev.txt
	@test -x $(VENV)/bin/python || { \
	  $(PYTHON) -m venv $(VENV) 2>/dev/null || { scripts/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }; }
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@) && ln -sfn ../../../.. $@

.PHONY: step-ca
step-ca: ## Build step-ca 0.19 from Debian's Go sources (cached) into build/step-ca
	scripts/build-step-ca.sh >/dev/null

.PHONY: engine
engine: ## Container engine, base image (cached), and proof that containers resolve each other's names
ifeq ($(MTLS_ENGINE),podman)
	scripts/podman-up.sh >/dev/null
else
	scripts/build-base-image.sh
	scripts/check-container-dns.sh
endif

.PHONY: image
image: engine ## Build the Debian 12 systemd base image for the test containers (cached)

.PHONY: lint
lint: venv sanity importer ## yamllint, ansible-lint (production profile), ruff, Python 3.8 check of plugins/, sanity, galaxy-importer, docs, EE
	yamllint --strict .
	@mkdir -p build && touch build/.lint-start
	ansible-lint
	tests/check-home.sh build/.lint-start
	ruff check .
	ruff format --check .
	python tests/check_managed_python.py plugins
	python scripts/docs.py --check
	ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false antsibull-docs lint-collection-docs --plugin-docs \
	  --validate-collection-refs dependent --disallow-unknown-collection-refs .
	@echo "antsibull-docs lint-collection-docs: no problems"
	tests/check-ee.sh

.PHONY: docs
docs: venv ## Regenerate docs/reference/ and the roles' README variable tables from argument_specs and DOCUMENTATION
	python scripts/docs.py

.PHONY: ee
ee: venv ## Execution environment build context for AWX/AAP in build/ee/context (docs/awx.md)
	tests/check-ee.sh

.PHONY: sanity
sanity: venv ## Every ansible-test sanity test (compile and import on each installed managed-host Python)
	tests/sanity.sh

.PHONY: importer
importer: venv ## galaxy-importer (Galaxy's upload checks) on a freshly built tarball, local mode
	tests/galaxy-importer.sh

.PHONY: unit
unit: venv step-ca ## Unit tests for module_utils and modules (real step-ca on loopback)
	@# The renewal timer's units are checked with systemd's own parser.
	@command -v systemd-analyze >/dev/null || scripts/apt-install.sh systemd
	pytest tests/unit

.PHONY: molecule
molecule: setup ## Run every Molecule scenario, MOLECULE_JOBS at a time (SCENARIOS="a b" to choose)
	python scripts/run-scenarios.py --jobs $(MOLECULE_JOBS) $(SCENARIOS)

.PHONY: package
package: venv ## Build and install the tarball; no test or cache files in it; ansible-doc renders all from the install
	rm -rf build/package && mkdir -p build/package
	ansible-galaxy collection build --output-path build/package
	cd build/package && ansible-galaxy collection install --force \
	  --collections-path installed mtls-rollout-*.tar.gz
	tests/check-package.sh build/package/mtls-rollout-*.tar.gz build/package/installed

.PHONY: changelog
changelog: venv ## Write CHANGELOG.md for galaxy.yml's version from changelogs/fragments (re-runnable)
	antsibull-changelog lint
	antsibull-changelog release --reload-plugins --update-existing \
	  --refresh-fragments without-archives 2>&1 | { grep -v "no release_summary section" || true; }
	@echo "changelog: CHANGELOG.md for $$(awk '/^version:/ { print $$2 }' galaxy.yml)"

.PHONY: bench
bench: venv step-ca ## Benchmarks: fleet rollout vs community.crypto and naive signing, and batch signing
	python bench/fleet.py --hosts $(BENCH_HOSTS) --keep-logs build/bench
	python bench/sign_batch.py --count 200 --rounds 3

.PHONY: clean
clean: ## Destroy test containers, stop the podman service, remove build links
	-@for scenario in $(SCENARIOS); do molecule destroy -s $$scenario >/dev/null 2>&1 || true; done
	-@test ! -f inventories/demo/down.yml || ansible-playbook inventories/demo/down.yml >/dev/null 2>&1 || true
	scripts/podman-down.sh
	rm -rf build .run .pytest_cache .ruff_cache

.PHONY: distclean
distclean: clean ## Also remove the virtualenv and the artefact cache
	rm -rf $(VENV) $${MTLS_CACHE_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/mtls-rollout}
