# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container runtime: Docker, through its CLI.

Command lines are built by pure functions (``run_argv``), so unit tests check
them without an engine. Every container and volume MyAAS makes carries labels
(``org.myaas.*``): that is how leftovers of a killed run are recognised.
"""

from __future__ import annotations

import json
import re
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

LABEL_PREFIX = "org.myaas."


def labels(**values):
    return dict((LABEL_PREFIX + key, str(value)) for key, value in values.items())


def run_argv(spec):
    """argv of `docker run` for a container spec (a plain dict).

    spec keys: name, image, labels, mounts (list of dicts: type, source,
    target, readonly), network, publish (list of (host_ip, host_port,
    container_port)), restart, memory, cpus, stop_signal, stop_timeout, user,
    entrypoint, env (never secrets: they would be visible in `docker
    inspect`), args.
    """
    argv = ["docker", "run", "--detach", "--name", spec["name"]]
    if spec.get("user"):
        argv += ["--user", spec["user"]]
    if spec.get("entrypoint"):
        argv += ["--entrypoint", spec["entrypoint"]]
    for key, value in sorted(spec.get("labels", {}).items()):
        argv += ["--label", "%s=%s" % (key, value)]
    for mount in spec.get("mounts", []):
        fields = ["type=%s" % mount["type"], "source=%s" % mount["source"], "target=%s" % mount["target"]]
        if mount.get("readonly"):
            fields.append("readonly")
        argv += ["--mount", ",".join(fields)]
    if spec.get("network"):
        argv += ["--network", spec["network"]]
    for host_ip, host_port, container_port in spec.get("publish", []):
        argv += ["--publish", "%s:%d:%d" % (host_ip, host_port, container_port)]
    if spec.get("restart"):
        argv += ["--restart", spec["restart"]]
    if spec.get("memory"):
        argv += ["--memory", str(spec["memory"])]
    if spec.get("cpus"):
        argv += ["--cpus", str(spec["cpus"])]
    if spec.get("stop_signal"):
        argv += ["--stop-signal", spec["stop_signal"]]
    if spec.get("stop_timeout") is not None:
        argv += ["--stop-timeout", str(spec["stop_timeout"])]
    for key, value in sorted(spec.get("env", {}).items()):
        argv += ["--env", "%s=%s" % (key, value)]
    argv.append(spec["image"])
    argv += list(spec.get("args", []))
    return argv


def exec_argv(name, argv, interactive=False, user=None):
    """argv of `docker exec`; ``interactive`` keeps stdin open for SQL fed to a client."""
    return (["docker", "exec"] + (["--interactive"] if interactive else []) + (["--user", user] if user else [])
            + [name] + list(argv))


def bind_volume_argv(name, device, volume_labels):
    """argv of `docker volume create` for a local volume bound to a host folder."""
    argv = ["docker", "volume", "create", "--driver", "local",
            "--opt", "type=none", "--opt", "o=bind", "--opt", "device=%s" % device]
    for key, value in sorted(volume_labels.items()):
        argv += ["--label", "%s=%s" % (key, value)]
    return argv + [name]


class Docker:
    def __init__(self, runner):
        self._run = runner.run

    def image_id(self, image):
        rc, out, _err = self._run(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=False)
        return out.strip() if rc == 0 else None

    def account_ids(self, image, account):
        """(uid, gid) of an OS account in an image, asked of a throw-away container."""
        rc, out, err = self._run(["docker", "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "id",
                                  image, account], check=False)
        found = re.search(r"uid=(\d+)\S* gid=(\d+)", out)
        if rc != 0 or not found:
            raise MyaasError("Image %s has no OS account %r to run the server as (id said: %s). Use an image that "
                             "ships the server with its usual account." % (image, account, (err or out).strip()))
        return int(found.group(1)), int(found.group(2))

    def inspect(self, name):
        rc, out, _err = self._run(["docker", "container", "inspect", name], check=False)
        if rc != 0:
            return None
        return json.loads(out)[0]

    def state(self, name):
        """The container's State from `docker inspect`; {} when there is no such container."""
        return (self.inspect(name) or {}).get("State", {})

    def wait_until_answers(self, name, probe, user, timeout, what, interval):
        """Run ``probe`` in the container until it prints 1.

        Raises, with the server log's last lines, when the container stops or
        ``timeout`` (a (option name, seconds) pair) runs out first.
        """
        option, seconds = timeout
        deadline = time.monotonic() + seconds
        while True:
            rc, out, _err = self.exec(name, probe, check=False, user=user)
            if rc == 0 and out.strip() == "1":
                return
            state = self.state(name)
            if not state.get("Running"):
                problem = "exited during start-up (exit code %s)" % state.get("ExitCode")
            elif time.monotonic() > deadline:
                problem = "did not answer within %s (%d s)" % (option, seconds)
            else:
                time.sleep(interval)
                continue
            raise MyaasError("%s %s." % (what, problem), server_log=self.logs(name, tail=30).splitlines())

    def run(self, spec):
        return self._run(run_argv(spec))[1].strip()

    def start(self, name):
        self._run(["docker", "start", name])

    def exec(self, name, argv, check=True, data=None, user=None):
        return self._run(exec_argv(name, argv, interactive=data is not None, user=user), check=check, data=data)

    def stop(self, name, timeout):
        self._run(["docker", "stop", "--time", str(timeout), name])

    def remove(self, name):
        """Force-remove a container; a missing one is not an error."""
        rc, _out, err = self._run(["docker", "rm", "--force", "--volumes", name], check=False)
        if rc != 0 and "No such container" not in err:
            raise MyaasError("Could not remove container %s: %s" % (name, err.strip()))

    def logs(self, name, tail=40):
        rc, out, err = self._run(["docker", "logs", "--tail", str(tail), name], check=False)
        return (out + err) if rc == 0 else ""

    def wait(self, name):
        return int(self._run(["docker", "wait", name])[1].strip() or "-1")

    def names(self, **label_filter):
        argv = ["docker", "ps", "--all", "--format", "{{.Names}}"]
        for key, value in sorted(labels(**label_filter).items()):
            argv += ["--filter", "label=%s=%s" % (key, value)]
        return [line for line in self._run(argv)[1].splitlines() if line]

    def create_volume(self, name, device, volume_labels):
        self._run(bind_volume_argv(name, device, volume_labels))

    def remove_volume(self, name):
        rc, _out, err = self._run(["docker", "volume", "rm", "--force", name], check=False)
        if rc != 0 and "no such volume" not in err.lower():
            raise MyaasError("Could not remove volume %s: %s" % (name, err.strip()))
