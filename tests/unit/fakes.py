"""Fakes for unit tests: a Runner that records argv, and the Docker SDK's low-level client."""

from docker.errors import NotFound

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError


class FakeRunner:
    """Records argv and answers from a script of (prefix, result) pairs.

    A result may be a callable of argv (to change the file system as the
    real command would). Like the real Runner, a failing command raises
    unless the caller passed check=False.
    """

    def __init__(self, answers=None):
        self.calls = []
        self.answers = list(answers or [])

    def run(self, argv, check=True, data=None):
        self.calls.append(list(argv))
        result = (0, "", "")
        for prefix, answer in self.answers:
            if argv[:len(prefix)] == list(prefix):
                result = answer(argv) if callable(answer) else answer
                break
        if check and result[0] != 0:
            raise MyaasError("Command '%s' failed with exit code %d: %s" % (" ".join(argv[:4]), result[0], result[2]))
        return result

    def ran(self, *prefix):
        """The calls that start with ``prefix``."""
        return [call for call in self.calls if call[:len(prefix)] == list(prefix)]


class FakeApi:
    """The SDK's APIClient as far as MyAAS uses it: containers and volumes live in dicts.

    Every call is recorded as (method, args, kwargs); ``answers`` gives the
    return value of other methods by name.
    """

    def __init__(self, containers=None, volumes=None, answers=None):
        self.calls = []
        self.containers_ = dict(containers or {})
        self.volumes_ = dict(volumes or {})
        self.answers = dict(answers or {})

    def _record(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))

    def inspect_container(self, name):
        self._record("inspect_container", name)
        if name not in self.containers_:
            raise NotFound("No such container: %s" % name)
        return self.containers_[name]

    def remove_container(self, name, **kwargs):
        self._record("remove_container", name, **kwargs)
        self.containers_.pop(name, None)

    def inspect_volume(self, name):
        self._record("inspect_volume", name)
        if name not in self.volumes_:
            raise NotFound("no such volume")
        return self.volumes_[name]

    def remove_volume(self, name, **kwargs):
        self._record("remove_volume", name, **kwargs)
        self.volumes_.pop(name, None)

    def create_host_config(self, **kwargs):
        return dict(kwargs)

    def __getattr__(self, method):
        def call(*args, **kwargs):
            self._record(method, *args, **kwargs)
            answer = self.answers.get(method)
            return answer(*args, **kwargs) if callable(answer) else answer
        return call

    def names_called(self):
        return [method for method, _args, _kwargs in self.calls]
