"""Several MyAAS hosts on this one machine, reached by Ansible over real SSH.

Each host is a network namespace with an address of its own (a veth pair to
this machine), its own Docker engine (its own data root, exec root and
socket), its own loop-file btrfs pool and an sshd that root logs in to with a
key of the rig's own. What differs from separate machines: they share the
kernel, the memory and the files outside their pools.

Only what the rig made is touched: its namespaces and veths, its engines and
sshds (signalled by pid), its pools. Everything goes with ``down()``.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from rig import descendants, sh


def _wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("%s did not happen within %d s" % (what, timeout))


class Host:
    """One host of the rig. ``address`` is where Ansible, ssh and clients reach it."""

    def __init__(self, base, name, index, tag):
        self.name = name
        self.base = os.path.join(base, name)
        self.netns = "myaas-it-%d-%s" % (tag, name)
        self.veth = "mi%d%d" % (tag % 100000, index)         # 15 characters at most
        subnet = "10.250.%d.%d" % (20 + tag % 200, 4 * index)
        self.gateway = subnet[:subnet.rfind(".") + 1] + str(4 * index + 1)
        self.address = subnet[:subnet.rfind(".") + 1] + str(4 * index + 2)
        self.pool = os.path.join(self.base, "pool")
        self.socket = os.path.join(self.base, "docker.sock")
        self.dockerd = None
        self.sshd = None
        self.made = []          # what was made, in order; down() undoes it backwards

    def docker(self, *argv, check=True):
        return sh("docker", "-H", "unix://" + self.socket, *argv, check=check)

    def in_netns(self, argv):
        # Only the network namespace: `ip netns exec` would also remount /sys, without the cgroups dockerd needs.
        return ["nsenter", "--net=/run/netns/" + self.netns] + list(argv)


class SeveralHosts:
    """``SeveralHosts(names, image)``: ``up()`` makes the hosts, ``down()`` removes them."""

    def __init__(self, names, images, pool_size="3G"):
        self.base = tempfile.mkdtemp(prefix="myaas-hosts-", dir="/tmp")
        tag = os.getpid()
        self.hosts = dict((name, Host(self.base, name, index, tag)) for index, name in enumerate(names))
        self.images = list(images)
        self.pool_size = pool_size
        self.key = os.path.join(self.base, "id_ed25519")

    def __getitem__(self, name):
        return self.hosts[name]

    def up(self):
        if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
            sh("apt-get", "install", "-y", "-q", "openssh-server")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
        shutil.copy(self.key + ".pub", os.path.join(self.base, "authorized_keys"))
        images = os.path.join(self.base, "images.tar")
        sh("docker", "save", "-o", images, *self.images)
        for host in self.hosts.values():
            os.makedirs(host.base)
            self._network(host)
            self._pool(host)
            self._dockerd(host)
        loads = [threading.Thread(target=host.docker, args=("load", "-q", "-i", images)) for host in self.hosts.values()]
        for load in loads:
            load.start()
        for load in loads:
            load.join()
        os.unlink(images)
        for host in self.hosts.values():
            missing = [image for image in self.images if host.docker("image", "inspect", image, check=False).returncode]
            assert not missing, "%s were not loaded into %s's engine" % (missing, host.name)
            self._sshd(host)
        return self

    def _network(self, host):
        sh("ip", "netns", "add", host.netns)
        host.made.append(("netns", host.netns))
        sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        sh("ip", "addr", "add", host.gateway + "/30", "dev", host.veth)
        sh("ip", "link", "set", host.veth, "up")
        sh("ip", "-n", host.netns, "addr", "add", host.address + "/30", "dev", "eth0")
        sh("ip", "-n", host.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", host.netns, "link", "set", "lo", "up")
        sh("ip", "-n", host.netns, "route", "add", "default", "via", host.gateway)

    def _pool(self, host):
        image = os.path.join(host.base, "pool.img")
        os.makedirs(host.pool)
        sh("truncate", "--size", self.pool_size, image)
        sh("mkfs.btrfs", "-q", image)
        sh("mount", "-o", "loop,noatime", image, host.pool)
        host.made.append(("mount", host.pool))
        # What the host role records: the image that serves each engine.
        with open(os.path.join(host.pool, "host.json"), "w", encoding="utf-8") as handle:
            json.dump({"images": {"mariadb": self.images[0]}}, handle)

    def _dockerd(self, host):
        log = open(os.path.join(host.base, "dockerd.log"), "w", encoding="utf-8")   # pylint: disable=consider-using-with
        host.dockerd = subprocess.Popen(host.in_netns([
            "dockerd", "--data-root", os.path.join(host.base, "docker"), "--exec-root", os.path.join(host.base, "x"),
            "-H", "unix://" + host.socket, "--pidfile", os.path.join(host.base, "dockerd.pid")]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        host.made.append(("dockerd", host.dockerd))

        def answers():
            assert host.dockerd.poll() is None, open(log.name, encoding="utf-8").read()[-3000:]
            return host.docker("version", check=False).returncode == 0
        _wait_until(answers, 60, "%s's dockerd answering" % host.name)

    def _sshd(self, host):
        ssh = os.path.join(host.base, "ssh")
        os.makedirs(ssh)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(ssh, "host_key"))
        config = os.path.join(ssh, "sshd_config")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("\n".join([
                "ListenAddress " + host.address, "Port 22", "HostKey " + os.path.join(ssh, "host_key"),
                "PidFile " + os.path.join(ssh, "sshd.pid"), "PermitRootLogin prohibit-password",
                "AuthorizedKeysFile " + os.path.join(self.base, "authorized_keys"), "StrictModes no",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                # What makes this host's engine the default one for the modules that run here.
                "SetEnv DOCKER_HOST=unix://" + host.socket, ""]))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = open(os.path.join(ssh, "sshd.log"), "w", encoding="utf-8")   # pylint: disable=consider-using-with
        host.sshd = subprocess.Popen(host.in_netns(["/usr/sbin/sshd", "-D", "-e", "-f", config]),
                                     stdout=subprocess.DEVNULL, stderr=log)
        host.made.append(("sshd", host.sshd))

        def listens():
            assert host.sshd.poll() is None, open(log.name, encoding="utf-8").read()
            with socket.socket() as probe:
                probe.settimeout(1)
                return probe.connect_ex((host.address, 22)) == 0
        _wait_until(listens, 20, "%s's sshd listening" % host.name)

    def ssh_args(self):
        return ["-i", self.key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def ssh(self, name, command, check=True):
        return sh("ssh", *self.ssh_args(), "root@" + self.hosts[name].address, command, check=check)

    def inventory(self, path, groups, extra=None):
        """Write an inventory: ``groups`` maps a group (child of myaas) to host names; every host is in myaas."""
        common = {
            "ansible_user": "root", "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": sys.executable, "ansible_become": False,
        }
        hosts = dict((host.name, dict(common, ansible_host=host.address, myaas_pool=host.pool,
                                      myaas_bind_address=host.address, myaas_public_host=host.address,
                                      **((extra or {}).get(host.name, {}))))
                     for host in self.hosts.values())
        children = dict((group, {"hosts": dict((name, {}) for name in names)}) for group, names in groups.items())
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"myaas": {"hosts": hosts, "children": children}}, handle)
        return path

    @contextlib.contextmanager
    def slow_link(self, name, rate="4mbit"):
        """Traffic towards host ``name`` limited to ``rate`` (tc's units) while inside."""
        veth = self.hosts[name].veth
        sh("tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")
        try:
            yield
        finally:
            sh("tc", "qdisc", "del", "dev", veth, "root", check=False)

    def down(self):
        errors = []
        for host in self.hosts.values():
            if host.dockerd is not None and host.dockerd.poll() is None:
                for container in host.docker("ps", "-aq", check=False).stdout.split():
                    host.docker("rm", "--force", "--volumes", container, check=False)
            for kind, what in reversed(host.made):
                try:
                    self._undo(kind, what)
                except Exception as error:      # pylint: disable=broad-except
                    errors.append("%s %s: %s" % (kind, what, error))
        shutil.rmtree(self.base, ignore_errors=True)
        assert not errors, "the rig of several hosts was not removed cleanly: %s" % errors

    @staticmethod
    def _undo(kind, what):
        if kind in ("sshd", "dockerd"):
            if what.poll() is None:
                # sshd's sessions (Ansible keeps some open), dockerd's containerd and shims.
                below = descendants(what.pid)
                what.terminate()
                what.wait(timeout=60)
                for pid in below:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
        elif kind == "mount":
            _wait_until(lambda: sh("umount", what, check=False).returncode == 0, 30, "umount " + what)
        elif kind == "netns":
            sh("ip", "netns", "delete", what)
