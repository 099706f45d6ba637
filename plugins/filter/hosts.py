# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the playbooks use to spread MyAAS over several hosts (docs: place.yml, holders.yml, ssh_command.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils import placement


def _plain(seen):
    return dict((str(host), report) for host, report in (seen or {}).items())


def place(seen, name, template, generation=None, min_memory=placement.MIN_MEMORY, min_pool=placement.MIN_POOL):
    try:
        return placement.place(_plain(seen), name, template, generation, int(min_memory), int(min_pool))
    except MyaasError as error:
        raise AnsibleFilterError(str(error)) from error


def holders(seen, name):
    return placement.holders(_plain(seen), name)


def ssh_command(hostvars, become=True, host_key_checking=True):
    try:
        return placement.ssh_command(hostvars, bool(become), str(host_key_checking).lower() not in ("false", "no", "0"))
    except MyaasError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    def filters(self):
        return {"place": place, "holders": holders, "ssh_command": ssh_command}
