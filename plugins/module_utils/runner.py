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

    def run(self, argv, check=True, data=None):
        # The C locale makes tool output parse the same on every host.
        rc, out, err = self._module.run_command(
            argv, data=data, binary_data=data is not None,
            environ_update={"LC_ALL": "C", "LANG": "C"})
        if check and rc != 0:
            raise MyaasError("Command '%s' failed with exit code %d: %s"
                             % (" ".join(argv[:4]), rc, (err or out).strip()[-2000:]))
        return rc, out, err
