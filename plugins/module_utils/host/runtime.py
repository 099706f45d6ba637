# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container runtime: Docker, through its SDK.

Containers and volumes are made, inspected and removed with the Docker SDK's
low-level client: no CLI process per call, and typed errors that tell "no
such container" from "the engine does not answer". Only SQL streamed into a
server's client (imports, an instance's credentials) goes through `docker
exec` of the CLI, which pipes stdin best.

What is sent to the engine is built by pure functions (``create_args``), so
unit tests check it without an engine. Every container and volume MyAAS makes
carries labels (``org.myaas.*``) naming its pool: that is how leftovers of a
killed run are recognised, and how MyAAS knows what is its own to remove.
"""

from __future__ import annotations

import re
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

_SDK = {}

LABEL_PREFIX = "org.myaas."
# What the engine says when a published port is bound by someone else.
PORT_TAKEN = re.compile(r"port is already allocated|address already in use")


class PortTaken(MyaasError):
    """The engine could not publish a container's host port: something else holds it."""


def sdk():
    """The Docker SDK's parts MyAAS uses, imported on first use.

    Importing the SDK and its HTTP stack costs a module run about 0.08 s; a
    warm clone's hand-over needs no engine call through it. Raises MyaasError
    when the library is missing.
    """
    if not _SDK:
        # pylint: disable=import-outside-toplevel
        try:
            import docker
            from docker.errors import DockerException, NotFound
            from docker.types import Mount
            from requests.exceptions import RequestException
        except ImportError as exc:
            raise MyaasError("The Python library docker (the Docker SDK) is not installed for the interpreter that "
                             "runs MyAAS's modules; the role myaas.myaas.host installs it. (%s)" % exc)
        _SDK.update(client=docker.from_env, not_found=NotFound, engine_errors=(DockerException, RequestException),
                    docker_error=DockerException, mount=Mount)
    return _SDK


def labels(**values):
    return dict((LABEL_PREFIX + key, str(value)) for key, value in values.items())


def create_args(spec):
    """(create_container arguments, host config arguments) for a container spec (a plain dict).

    spec keys: name, image, labels, mounts (list of dicts: type, source,
    target, readonly), network, publish (list of (host_ip, host_port,
    container_port)), restart, memory, cpus, stop_signal, stop_timeout, user,
    entrypoint, env (never secrets: they would be visible in `docker
    inspect`), args.
    """
    host = {"mounts": [dict(type=mount["type"], source=mount["source"], target=mount["target"],
                            read_only=bool(mount.get("readonly"))) for mount in spec.get("mounts", [])]}
    if spec.get("network"):
        host["network_mode"] = spec["network"]
    if spec.get("publish"):
        host["port_bindings"] = dict((container_port, (host_ip, host_port))
                                     for host_ip, host_port, container_port in spec["publish"])
    if spec.get("restart"):
        host["restart_policy"] = {"Name": spec["restart"]}
    host.update(limit_args(spec.get("memory"), spec.get("cpus")))
    create = {
        "image": spec["image"],
        "name": spec["name"],
        "command": list(spec.get("args", [])),
        "labels": dict(spec.get("labels", {})),
        "ports": [container_port for _ip, _port, container_port in spec.get("publish", [])],
        "environment": dict(spec.get("env", {})),
    }
    for key in ("user", "entrypoint", "stop_signal", "stop_timeout"):
        if spec.get(key) is not None:
            create[key] = spec[key]
    return create, host


def limit_args(memory, cpus):
    """Memory and CPU limits as Docker's API takes them, at creation and in an update."""
    limits = {}
    if memory:
        # Swap unlimited, so that a lower memory limit is never refused for
        # being below an earlier swap limit.
        limits.update(mem_limit=memory, memswap_limit=-1)
    if cpus:
        try:
            limits.update(cpu_period=100000, cpu_quota=int(float(cpus) * 100000))
        except ValueError:
            raise MyaasError("cpus %r is not a number of CPUs (e.g. 1.5)." % (cpus,))
    return limits


def exec_argv(name, argv, interactive=False, user=None):
    """argv of `docker exec`; ``interactive`` keeps stdin open for SQL fed to a client."""
    return (["docker", "exec"] + (["--interactive"] if interactive else []) + (["--user", user] if user else [])
            + [name] + list(argv))


class Docker:
    def __init__(self, runner, client=None):
        self._run = runner.run
        self._client = client

    @property
    def api(self):
        """The SDK's low-level client, made on first use (one connection per module run)."""
        if self._client is None:
            connect = sdk()["client"]
            self._client = self._call("connect", lambda: connect(version="auto").api)
        return self._client

    @staticmethod
    def _call(what, action):
        """Run an SDK call; the engine not answering becomes a clear MyaasError, NotFound passes."""
        parts = sdk()
        try:
            return action()
        except parts["not_found"]:
            raise
        except parts["engine_errors"] as exc:
            raise MyaasError("The Docker engine does not answer (%s: %s); nothing more was done. Start it (the "
                             "role myaas.myaas.host starts it) and run again." % (what, exc))

    def _maybe(self, what, action):
        """An SDK call whose "no such object" answer is None."""
        try:
            return self._call(what, action)
        except sdk()["not_found"]:
            return None

    def ping(self):
        self._call("ping", self.api.ping)

    def image_id(self, image):
        found = self._maybe("image inspect", lambda: self.api.inspect_image(image))
        return found["Id"] if found else None

    def run_once(self, spec, timeout):
        """(exit code, output) of a throw-away container, removed afterwards."""
        container = self._create(spec)
        try:
            self._call("start", lambda: self.api.start(container))
            code = self._call("wait", lambda: self.api.wait(container, timeout=timeout))["StatusCode"]
            return code, self._call("logs", lambda: self.api.logs(container)).decode("utf-8", "replace")
        finally:
            # v: with its anonymous volumes (official images declare VOLUME for the datadir).
            self._maybe("remove", lambda: self.api.remove_container(container, force=True, v=True))

    def account_ids(self, image, account):
        """(uid, gid) of an OS account in an image, asked of a throw-away container."""
        code, out = self.run_once({"name": None, "image": image, "entrypoint": "id", "user": "0",
                                   "network": "none", "args": [account], "mounts": []}, 60)
        found = re.search(r"uid=(\d+)\S* gid=(\d+)", out)
        if code != 0 or not found:
            raise MyaasError("Image %s has no OS account %r to run the server as (id said: %s). Use an image that "
                             "ships the server with its usual account." % (image, account, out.strip()))
        return int(found.group(1)), int(found.group(2))

    def inspect(self, name):
        """The container's inspect document; None only when there is no such container."""
        return self._maybe("inspect", lambda: self.api.inspect_container(name))

    def state(self, name):
        """The container's State; {} when there is no such container."""
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

    def _create(self, spec):
        create, host = create_args(spec)
        host["mounts"] = [sdk()["mount"](**mount) for mount in host["mounts"]]
        return self._call("create", lambda: self.api.create_container(
            host_config=self.api.create_host_config(**host), **create))["Id"]

    def create(self, spec):
        """Create a container and leave it stopped."""
        return self._create(spec)

    def run(self, spec):
        """Create and start a container; PortTaken if its published port is held by something else."""
        container = self._create(spec)
        self._call("start", lambda: self._start_publishing(container, spec.get("publish")))
        return container

    def _start_publishing(self, container, publish):
        try:
            self.api.start(container)
        except sdk()["docker_error"] as exc:
            if PORT_TAKEN.search(str(exc)):
                raise PortTaken("The engine could not publish %s: %s" % (publish, exc))
            raise

    def start(self, name):
        """Start an existing container; PortTaken if its published port is held by something else."""
        self._call("start", lambda: self._start_publishing(name, "its published port"))

    def update(self, name, memory=None, cpus=None):
        self._call("update", lambda: self.api.update_container(name, **limit_args(memory, cpus)))

    def exec(self, name, argv, check=True, data=None, user=None):
        """(rc, stdout, stderr) of ``argv`` run in the container; SQL in ``data`` goes to its stdin."""
        if data is not None:
            return self._run(exec_argv(name, argv, interactive=True, user=user), check=check, data=data)
        exec_id = self._call("exec", lambda: self.api.exec_create(name, list(argv), user=user or ""))["Id"]
        out, err = self._call("exec", lambda: self.api.exec_start(exec_id, demux=True))
        rc = self._call("exec", lambda: self.api.exec_inspect(exec_id))["ExitCode"]
        out, err = (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")
        if check and rc != 0:
            raise MyaasError("Command '%s' in container %s failed with exit code %s: %s"
                             % (" ".join(argv[:3]), name, rc, (err or out).strip()[-2000:]))
        return rc, out, err

    def stop(self, name, timeout):
        self._call("stop", lambda: self.api.stop(name, timeout=timeout))

    def remove(self, name, pool):
        """Force-remove a container of ``pool``; a missing one is not an error.

        A container of that name that is not labelled as the pool's is left
        alone: a test pool must never remove production's containers.
        """
        found = self.inspect(name)
        if found is None:
            return
        owner = (found.get("Config", {}).get("Labels") or {}).get(LABEL_PREFIX + "pool")
        if owner != pool:
            raise MyaasError("Container %s exists but does not belong to pool %s (its label says %s); MyAAS "
                             "leaves it alone. Remove or rename it yourself if it is really yours."
                             % (name, pool, owner or "no MyAAS pool"))
        self._maybe("remove", lambda: self.api.remove_container(name, force=True, v=True))

    def logs(self, name, tail=40):
        out = self._maybe("logs", lambda: self.api.logs(name, tail=tail))
        return (out or b"").decode("utf-8", "replace")

    def names(self, **label_filter):
        return [name for name, _instance in self.containers(**label_filter)]

    def containers(self, **label_filter):
        """(name, its org.myaas.instance label) of the containers whose labels match ``label_filter``."""
        wanted = ["%s=%s" % item for item in sorted(labels(**label_filter).items())]
        found = self._call("list", lambda: self.api.containers(all=True, filters={"label": wanted}))
        return [(entry["Names"][0].lstrip("/"), (entry.get("Labels") or {}).get(LABEL_PREFIX + "instance", ""))
                for entry in found]

    def held_ports(self):
        """{host port: container name} of every MyAAS container on this engine, whatever its pool or state.

        A stopped or killed instance holds its port (it takes it back when it
        starts), and another pool on the same host picks from the same range.
        """
        found = self._call("list", lambda: self.api.containers(all=True, filters={"label": [LABEL_PREFIX + "port"]}))
        held = {}
        for entry in found:
            port = (entry.get("Labels") or {}).get(LABEL_PREFIX + "port", "")
            if port.isdigit():
                held[int(port)] = entry["Names"][0].lstrip("/")
        return held

    def create_volume(self, name, device, volume_labels):
        """A local volume bound to a host folder."""
        self._call("volume create", lambda: self.api.create_volume(
            name=name, driver="local", driver_opts={"type": "none", "o": "bind", "device": device},
            labels=volume_labels))

    def remove_volume(self, name, pool):
        """Remove a volume of ``pool``; a missing one is not an error, another pool's is left alone."""
        found = self._maybe("volume inspect", lambda: self.api.inspect_volume(name))
        if found is None:
            return
        if (found.get("Labels") or {}).get(LABEL_PREFIX + "pool") != pool:
            raise MyaasError("Volume %s exists but does not belong to pool %s; MyAAS leaves it alone." % (name, pool))
        self._maybe("volume remove", lambda: self.api.remove_volume(name, force=True))
