"""The collection builds into a tarball that installs and whose modules load."""

import os
import subprocess

from rig import ENV, ROOT


def run(argv, env):
    return subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)


def test_build_and_install(tmp_path):
    env = dict(ENV, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"), ANSIBLE_HOME=str(tmp_path / "home"))
    built = run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), ROOT], env)
    assert built.returncode == 0, built.stdout
    tarball = tmp_path / "myaas-myaas-0.1.0.tar.gz"
    listing = run(["tar", "tzf", str(tarball)], env).stdout.split()
    assert "plugins/modules/myaas_template.py" in listing and "roles/host/meta/argument_specs.yml" in listing
    assert not [name for name in listing if name.startswith((".venv", "build/", ".ansible"))]
    installed = run(["ansible-galaxy", "collection", "install", str(tarball), "-p", str(tmp_path / "installed")], env)
    assert installed.returncode == 0, installed.stdout
    assert os.path.isfile(tmp_path / "installed/ansible_collections/myaas/myaas/plugins/modules/myaas_instance.py")
    for module in ("myaas_template", "myaas_instance", "myaas_info"):
        doc = run(["ansible-doc", "myaas.myaas." + module], env)
        assert doc.returncode == 0 and "EXAMPLES" in doc.stdout, doc.stdout
