#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/myaas/myaas as a
# real directory (it refuses links), so sanity runs on a fresh copy of the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=build/sanity/ansible_collections/myaas/myaas
rm -rf build/sanity
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dest"
# ansible-test tests what git knows, so the copy gets a repository of its own.
git -C "$dest" init -q && git -C "$dest" add -A

# ansible-test bootstraps pip in its venvs with a script it downloads from a host
# outside the package registries (ansible/ansible#77304). A stand-in at the path
# it caches the script to does the same from the wheel bundled with Python.
pip_version=$(python3 -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))' \
    | xargs -I{} grep -ho "pip='[0-9.]*'" {}/_internal/python_requirements.py | tr -dc '0-9.')
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
cat > "$cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Stand-in for pip's get-pip.py: ensurepip, then pip install the arguments."""
import subprocess
import sys

# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own
# environment, which would hide the machine's pip settings from the install.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
PY

cd "$dest"
ansible-test sanity --color no --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --requirements
