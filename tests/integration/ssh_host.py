"""This machine as a MyAAS host reached over real SSH, the way AWX reaches one.

An sshd of the test's own (its own config, host key and port on 127.0.0.1),
a non-root user that may sudo, and a client key. Everything is removed again:
the sshd is stopped by its pid, the user and its sudoers file are deleted.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

import yaml

from rig import descendants

USER = "myaas-runner"
SUDOERS = "/etc/sudoers.d/myaas-it-runner"


def run(*argv):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SshHost:
    def __init__(self, base):
        self.base = os.path.join(base, "ssh")
        self.port = free_port()
        self.key = os.path.join(self.base, "id_ed25519")
        self.proc = None
        self.made_user = False

    def start(self):
        if not (os.path.exists("/usr/sbin/sshd") and shutil.which("sudo")):
            run("apt-get", "install", "-y", "-q", "openssh-server", "sudo")
        os.makedirs(self.base)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(self.base, "host_key"))
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
        try:
            pwd.getpwnam(USER)
            raise AssertionError("A user %s exists already on this host; the test makes (and removes) its own and "
                                 "leaves that one alone." % USER)
        except KeyError:
            pass
        # "*": no password to log in with, and not locked (sshd without PAM refuses locked accounts).
        run("useradd", "--create-home", "--shell", "/bin/bash", "--password", "*", USER)
        self.made_user = True
        home = pwd.getpwnam(USER).pw_dir
        os.makedirs(os.path.join(home, ".ssh"), mode=0o700, exist_ok=True)
        shutil.copy(self.key + ".pub", os.path.join(home, ".ssh", "authorized_keys"))
        run("chown", "-R", "%s:%s" % (USER, USER), os.path.join(home, ".ssh"))
        with open(SUDOERS, "w", encoding="utf-8") as handle:
            handle.write("%s ALL=(ALL) NOPASSWD: ALL\n" % USER)
        os.chmod(SUDOERS, 0o440)
        config = os.path.join(self.base, "sshd_config")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("\n".join([
                "Port %d" % self.port, "ListenAddress 127.0.0.1",
                "HostKey " + os.path.join(self.base, "host_key"),
                "PidFile " + os.path.join(self.base, "sshd.pid"),
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
                "UsePAM no", "AllowUsers " + USER, ""]))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)     # sshd's privilege separation folder
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.base, "sshd.log"), "w",
                                                                            encoding="utf-8"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            assert self.proc.poll() is None, open(os.path.join(self.base, "sshd.log"), encoding="utf-8").read()
            time.sleep(0.1)
        raise AssertionError("sshd did not listen on port %d" % self.port)

    def stop(self):
        try:
            if self.proc and self.proc.poll() is None:
                # The sessions that Ansible keeps open (ControlPersist) are our sshd's children.
                sessions = descendants(self.proc.pid)
                self.proc.terminate()
                self.proc.wait(timeout=20)
                for pid in sessions:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        finally:
            if self.made_user:
                if os.path.exists(SUDOERS):
                    os.unlink(SUDOERS)
                subprocess.run(["userdel", "--force", "--remove", USER], check=False, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def inventory(self, python, folder, extra_vars=None):
        """An inventory file whose group myaas is this machine, over SSH as the sudo user."""
        host = {
            "ansible_host": "127.0.0.1", "ansible_port": self.port, "ansible_user": USER,
            "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": python,
        }
        host.update(extra_vars or {})
        path = os.path.join(folder, "hosts.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"myaas": {"hosts": {"myaas-ssh": host}}}, handle)
        return path
