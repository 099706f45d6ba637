#!/usr/bin/env bash
# `make test`: every check CI runs, in one go. The pytest run comes last so that
# its summary line closes the output. The host role (in molecule and in the
# integration tests) installs the packages and starts dockerd when missing; a
# dockerd that was not running before is stopped again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# Plain output: CI logs are read as text.
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 PY_COLORS=0

dockerd_was_up=false
if docker info >/dev/null 2>&1; then dockerd_was_up=true; fi
stop_our_dockerd() {
    "$dockerd_was_up" || tests/stop_dockerd.sh >/dev/null 2>&1 || true
}
trap stop_our_dockerd EXIT

step() { printf '\n=== %s\n' "$*"; }

# ansible-test's shellcheck test is skipped, not failed, without the tool.
if ! command -v shellcheck >/dev/null; then
    step "installing shellcheck for ansible-test sanity"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck
fi

step "ansible-lint --profile production"
ansible-lint --offline --profile production

step "ansible-test sanity"
tests/sanity.sh

step "molecule test (host role on localhost)"
(cd extensions && molecule test --scenario-name host)

step "benchmark, quick mode (figures only; the full run is make bench)"
python bench/bench.py --quick --output build/bench-quick

# Three workers, each on a pool of its own, one dockerd: the tests wait on
# servers and disks more than on the CPU (two workers left a third to half of
# two cores idle). A test module runs on one worker, the longest first
# (conftest.py); MYAAS_TEST_WORKERS=1 runs them in turn.
step "pytest: unit and integration tests"
pytest -n "${MYAAS_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder tests/unit tests/integration
