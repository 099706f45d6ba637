"""The host role on the real machine: idempotence and the refusal to format a device with data."""

import hashlib
import json
import os
import re

from rig import ENV, ansible_playbook, sh


def recap(output):
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), (int(n) for n in match.groups())))


def test_first_run_provisioned_the_pool(rig):
    assert recap(rig.provision.stdout)["failed"] == 0
    assert sh("findmnt", "--noheadings", "--output", "FSTYPE", "--mountpoint", rig.pool).stdout.strip() == "btrfs"
    for folder in ("templates", "instances", "dumps", "locks"):
        assert os.path.isdir(os.path.join(rig.pool, folder))
    assert sh("docker", "image", "inspect", rig.image).returncode == 0


def test_second_run_changes_nothing(rig):
    again = ansible_playbook("playbooks/provision.yml", "-e", "@" + rig.vars_file)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again.stdout)["changed"] == 0, again.stdout[-5000:]


def test_check_mode_runs_and_changes_nothing(rig):
    before = sorted(os.listdir(rig.pool))
    checked = ansible_playbook("playbooks/provision.yml", "--check", "-e", "@" + rig.vars_file)
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert recap(checked.stdout) == dict(recap(checked.stdout), changed=0, failed=0), checked.stdout[-5000:]
    assert sorted(os.listdir(rig.pool)) == before


def test_the_role_records_the_image_of_each_engine(rig):
    with open(os.path.join(rig.pool, "host.json"), encoding="utf-8") as handle:
        assert json.load(handle) == {"images": {"mariadb": rig.image, "postgresql": "myaas/postgresql:15",
                                                "mysql": "myaas/mysql:9.7"},
                                     "metrics_dir": os.path.join(rig.pool, "metrics")}


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_device_with_ext4_is_refused_and_untouched(rig, workdir):
    image = os.path.join(workdir, "ext4.img")
    sh("truncate", "--size", "300M", image)
    sh("mkfs.ext4", "-q", "-F", image)
    loop = sh("losetup", "--find", "--show", image).stdout.strip()
    try:
        before = digest(loop)
        run = ansible_playbook("playbooks/provision.yml", "-e", "@" + rig.vars_file,
                               "-e", "host_pool_device=" + loop, "-e", "host_pool_path=" + os.path.join(workdir, "p"))
        assert run.returncode != 0
        assert "%s holds a ext4 filesystem" % loop in run.stdout
        assert "wipefs" in run.stdout
        assert digest(loop) == before
        assert sh("blkid", "-p", "-o", "value", "-s", "TYPE", loop).stdout.strip() == "ext4"
        assert not os.path.ismount(os.path.join(workdir, "p"))
    finally:
        sh("losetup", "--detach", loop)


def test_path_that_is_not_a_block_device_is_refused(rig, workdir):
    run = ansible_playbook("playbooks/provision.yml", "-e", "@" + rig.vars_file,
                           "-e", "host_pool_device=/etc/hostname", "-e", "host_pool_path=" + workdir + "/p")
    assert run.returncode != 0
    assert "host_pool_device /etc/hostname is not a block device" in run.stdout


# The role's image tasks alone, for images that must not reach the rig's
# host.json (the playbook stops before the role would record them).
IMAGE_PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: myaas.myaas.host, tasks_from: server_account.yml}
      vars: {host__engines: "{{ host_images | map(attribute='engine') | unique }}"}
    - ansible.builtin.include_role: {name: myaas.myaas.host, tasks_from: image.yml}
      loop: "{{ host_images }}"
      loop_control: {loop_var: host__image}
"""


def image_play(workdir, images, *args, env=None):
    playbook = os.path.join(workdir, "images.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(IMAGE_PLAY)
    return ansible_playbook(playbook, "-e", json.dumps({"host_images": images}), *args, env=env)


# What mmdebstrap does when the tarball cannot be written (docker import gave
# up): it says so, then sends SIGHUP to its whole process group.
FAILING_MMDEBSTRAP = """#!/usr/bin/perl
print STDERR "W: creating tarball failed: E: cannot copy to standard output: Broken pipe\\n";
$SIG{HUP} = 'IGNORE';
kill HUP => -getpgrp();
exit 1;
"""


def test_a_build_whose_import_breaks_fails_with_the_builders_words(rig, workdir):
    bin_dir = os.path.join(workdir, "bin")
    os.makedirs(bin_dir)
    with open(os.path.join(bin_dir, "mmdebstrap"), "w", encoding="utf-8") as handle:
        handle.write(FAILING_MMDEBSTRAP)
    os.chmod(os.path.join(bin_dir, "mmdebstrap"), 0o755)
    image = "myaas-it-broken/mariadb:10.11"
    run = image_play(workdir, [{"name": image, "engine": "mariadb", "source": "build"}],
                     env={"PATH": bin_dir + os.pathsep + ENV["PATH"]})
    assert run.returncode != 0
    # Not Ansible's worker killed by the builder's SIGHUP, but the task's failure with the builder's log.
    assert "A worker was found" not in run.stdout, run.stdout[-3000:]
    assert "cannot copy to standard output" in run.stdout, run.stdout[-3000:]
    assert sh("docker", "image", "inspect", image, check=False).returncode != 0


def test_an_image_whose_suite_lacks_the_tagged_version_is_refused(rig, workdir):
    image = "myaas-it-wrong/mariadb:11.8"
    run = image_play(workdir, [{"name": image, "engine": "mariadb", "source": "build", "suite": "bookworm"}])
    assert run.returncode != 0
    assert "built from Debian bookworm" in run.stdout and "not version 11.8" in run.stdout, run.stdout[-3000:]
    assert "Set suite: on its host_images entry" in run.stdout
    assert sh("docker", "image", "inspect", image, check=False).returncode != 0
    # Nor is the image left under the name it was built with.
    assert not sh("docker", "images", "--quiet", "--filter", "reference=myaas-build/*").stdout.strip()


def test_check_mode_reports_an_offline_build_and_builds_nothing(rig, workdir):
    image = "myaas-it-check/mysql:9.7"
    run = image_play(workdir, [{"name": image, "engine": "mysql", "source": "build"}], "--check")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Image %s would be built from Debian sid." % image in run.stdout
    assert recap(run.stdout)["changed"] == 1
    assert sh("docker", "image", "inspect", image, check=False).returncode != 0


def test_apt_sources_that_are_not_deb822_are_refused(rig, workdir):
    sources = os.path.join(workdir, "sources.list")
    with open(sources, "w", encoding="utf-8") as handle:
        handle.write("deb http://deb.debian.org/debian bookworm main\n")
    image = "myaas-it-list/postgresql:15"
    run = image_play(workdir, [{"name": image, "engine": "postgresql", "source": "build"}],
                     "-e", "host_image_apt_sources=" + sources)
    assert run.returncode != 0
    assert "has no \"Suites:\" line; offline builds need a deb822 .sources file" in run.stdout, run.stdout[-3000:]
    assert sh("docker", "image", "inspect", image, check=False).returncode != 0
