# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs commands for the pool and container adapters.

Both adapters take a Runner rather than an AnsibleModule, so unit tests can
hand them a fake that records argv. No caller ever puts a secret in argv.
"""

from __future__ import annotations

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError


class Runner:
    def __init__(self, module):
        self._module = module

    def require(self, *tools):
        """Fail with a clear message, before anything is touched, if a command is missing.

        Otherwise run_command would fail the module itself half-way, and the
        cleanup after it would print a second result.
        """
        missing = [tool for tool in tools if not self._module.get_bin_path(tool)]
        if missing:
            raise MyaasError("%s: command not found on this host. Provision it with the role myaas.myaas.host "
                             "(it installs btrfs-progs and the Docker engine), or put the command in the PATH."
                             % ", ".join(missing))

    def run(self, argv, check=True, data=None):
        # The C locale makes tool output parse the same on every host.
        rc, out, err = self._module.run_command(
            argv, data=data, binary_data=data is not None,
            environ_update={"LC_ALL": "C", "LANG": "C"})
        if check and rc != 0:
            raise MyaasError("Command '%s' failed with exit code %d: %s"
                             % (" ".join(argv[:4]), rc, (err or out).strip()[-2000:]))
        return rc, out, err
