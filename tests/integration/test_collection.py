"""The collection builds into a tarball that installs and whose modules load."""

import json
import os
import subprocess

import yaml

from rig import ENV, ROOT


def run(argv, env):
    return subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)


def galaxy():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_build_and_install(tmp_path):
    env = dict(ENV, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"), ANSIBLE_HOME=str(tmp_path / "home"))
    built = run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), ROOT], env)
    assert built.returncode == 0, built.stdout
    tarball = tmp_path / ("myaas-myaas-%s.tar.gz" % galaxy()["version"])
    listing = run(["tar", "tzf", str(tarball)], env).stdout.split()
    assert "plugins/modules/myaas_template.py" in listing and "roles/host/meta/argument_specs.yml" in listing
    assert not [name for name in listing if name.startswith((".venv", "build/", ".ansible"))]
    installed = run(["ansible-galaxy", "collection", "install", str(tarball), "-p", str(tmp_path / "installed")], env)
    assert installed.returncode == 0, installed.stdout
    assert os.path.isfile(tmp_path / "installed/ansible_collections/myaas/myaas/plugins/modules/myaas_instance.py")
    for module in ("myaas_template", "myaas_instance", "myaas_info"):
        doc = run(["ansible-doc", "myaas.myaas." + module], env)
        assert doc.returncode == 0 and "EXAMPLES" in doc.stdout, doc.stdout
    assert run(["ansible-doc", "myaas.myaas.myaas_reap"], env).returncode == 0


def test_the_execution_environment_has_a_build_context(tmp_path):
    env = dict(ENV, ANSIBLE_HOME=str(tmp_path / "home"))
    src = os.path.join(ROOT, "build", "ee-src")
    os.makedirs(src, exist_ok=True)
    built = run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(tmp_path), ROOT], env)
    assert built.returncode == 0, built.stdout
    os.replace(tmp_path / ("myaas-myaas-%s.tar.gz" % galaxy()["version"]), os.path.join(src, "myaas-myaas.tar.gz"))
    context = tmp_path / "ee"
    created = run(["ansible-builder", "create", "--file", "extensions/awx/execution-environment.yml",
                   "--output-filename", "Dockerfile", "--context", str(context)], env)
    assert created.returncode == 0, created.stdout
    containerfile = (context / "Dockerfile").read_text()
    assert 'EE_BASE_IMAGE="quay.io/ansible/awx-ee:' in containerfile and "/tmp/myaas-collection/" in containerfile
    assert (context / "_build" / "collections" / "myaas-myaas.tar.gz").is_file()
    galaxy_requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    names = [item["name"] for item in galaxy_requirements["collections"]]
    assert "ansible.posix" in names and "/tmp/myaas-collection/myaas-myaas.tar.gz" in names
    # Every collection the collection depends on is carried.
    assert set(galaxy()["dependencies"]) <= set(names)
    assert "docker" in (context / "_build" / "requirements.txt").read_text()


def test_awx_setup_playbook_and_surveys_fit_the_playbooks(tmp_path):
    env = dict(ENV, ANSIBLE_HOME=str(tmp_path / "home"))
    checked = run(["ansible-playbook", "--syntax-check", "extensions/awx/setup_awx.yml"], env)
    assert checked.returncode == 0, checked.stdout
    # Render every survey the way the setup playbook does, and read them back.
    playbook = tmp_path / "render.yml"
    names = ["new_db", "reset_db", "save_db", "drop_db", "list_dbs", "rehearse_upgrade", "import_templates"]
    content = ("{{ lookup('ansible.builtin.template', '%s/extensions/awx/surveys/' ~ item ~ '.yml.j2')"
               " | from_yaml | to_json }}" % ROOT)
    task = {"ansible.builtin.copy": {"dest": "%s/{{ item }}.json" % tmp_path, "mode": "0600", "content": content},
            "loop": names}
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task],
                                         "vars": {"myaas_awx_templates": ["shop", "crm"],
                                                  "myaas_awx_upgrade_images": ["mariadb:11.8", "postgres:17"]}}]))
    rendered = run(["ansible-playbook", str(playbook)], env)
    assert rendered.returncode == 0, rendered.stdout
    surveys = dict((name, json.loads((tmp_path / (name + ".json")).read_text())) for name in names)
    variables = dict((name, [question["variable"] for question in survey["spec"]]) for name, survey in surveys.items())
    assert variables == {"new_db": ["template", "instance", "ttl", "protected", "as_of"],
                         "reset_db": ["instance", "bookmark"], "save_db": ["instance", "bookmark", "branch"],
                         "drop_db": ["instance", "bookmark"], "list_dbs": ["myaas_hosts"],
                         "rehearse_upgrade": ["template", "image", "instance", "ttl"],
                         "import_templates": ["rehearse_upgrade_to"]}
    template = surveys["new_db"]["spec"][0]
    assert template["type"] == "multiplechoice" and template["choices"] == ["shop", "crm"]
    # Each survey variable is one its playbook reads.
    for name, names in variables.items():
        with open(os.path.join(ROOT, "playbooks", name + ".yml"), encoding="utf-8") as handle:
            text = handle.read()
        # What every playbook imports: the requester's variables, and the hosts (myaas_hosts) it runs on.
        for shared in (os.path.join("vars", "requester.yml"), "check_hosts.yml"):
            with open(os.path.join(ROOT, "playbooks", shared), encoding="utf-8") as handle:
                text += handle.read()
        for variable in names:
            assert variable in text, (name, variable)


def test_an_inventory_without_myaas_hosts_fails_and_says_which_group_to_fill():
    playbooks = sorted(name for name in os.listdir(os.path.join(ROOT, "playbooks"))
                       if name.endswith(".yml") and name not in ("check_hosts.yml", "demo.yml"))
    for name in playbooks:
        with open(os.path.join(ROOT, "playbooks", name), encoding="utf-8") as handle:
            first = yaml.safe_load(handle)[0]
        assert first.get("ansible.builtin.import_playbook") == "check_hosts.yml", name
    # `-i db1,`: a host list on the command line, as the user typed it.
    for extra, says in (([], "is in group myaas"), (["-e", "myaas_hosts=db9"], "-e myaas_hosts=db9 matches no host")):
        done = run(["ansible-playbook", "-i", "db1,", os.path.join(ROOT, "playbooks", "new_db.yml"),
                    "-e", "template=shop"] + extra, ENV)
        assert done.returncode != 0, done.stdout
        assert says in done.stdout, done.stdout
        assert "Create a MyAAS database instance" not in done.stdout
