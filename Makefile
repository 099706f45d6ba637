# Everything runs from the project's virtualenv; nothing else is needed on a
# fresh Debian host as root. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BUILD := $(CURDIR)/build
# Playbooks and molecule find the collection here (a link to this tree);
# ansible-test needs a real copy, made under $(BUILD)/sanity.
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/myaas/myaas
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_HOME := $(BUILD)/ansible-home
export ANSIBLE_LOCALHOST_WARNING := false
export ANSIBLE_INVENTORY_UNPARSED_WARNING := false

.PHONY: help venv collection demo test lint sanity ansible-lint unit integration molecule bench bench-quick build ee-context clean

help:
	@echo "make demo         provision localhost, import the sample dump and print a new instance's connection data"
	@echo "make test         everything CI runs: lint, sanity, molecule, unit and integration tests"
	@echo "make lint         ansible-lint --profile production and ansible-test sanity"
	@echo "make unit         unit tests (pytest)"
	@echo "make integration  integration tests on the real rig (btrfs, dockerd, MariaDB)"
	@echo "make molecule     the molecule scenario of the host role (localhost)"
	@echo "make bench        the benchmark on the real rig (bench/results/); make bench-quick for small machines"
	@echo "make build        the collection tarball"
	@echo "make ee-context   the AWX execution environment's build context (build/ee)"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	@# Debian's python3 comes without venv/ensurepip; install them once.
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

collection: venv
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)

demo: collection
	ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml

test: collection
	tests/run_all.sh

lint: ansible-lint sanity

ansible-lint: collection
	ansible-lint --offline --profile production

sanity: venv
	tests/sanity.sh

unit: collection
	pytest tests/unit

integration: collection
	pytest -n $${MYAAS_TEST_WORKERS:-3} --dist loadfile --no-loadscope-reorder tests/integration

molecule: collection
	cd extensions && molecule test --scenario-name host

bench: collection
	python bench/bench.py

bench-quick: collection
	python bench/bench.py --quick

build: venv
	mkdir -p $(BUILD)/dist
	ansible-galaxy collection build --force --output-path $(BUILD)/dist .

# The execution environment's build context (extensions/awx): this checkout's
# collection, then ansible-builder; build the image with docker or podman.
ee-context: build
	mkdir -p $(BUILD)/ee-src
	cp $$(ls -t $(BUILD)/dist/myaas-myaas-*.tar.gz | head -1) $(BUILD)/ee-src/myaas-myaas.tar.gz
	ansible-builder create --file extensions/awx/execution-environment.yml --output-filename Dockerfile \
		--context $(BUILD)/ee

clean:
	rm -rf $(BUILD) .ansible .pytest_cache
