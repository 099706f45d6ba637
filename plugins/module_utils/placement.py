# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which server an instance lives on, when there are several.

Works on what ``myaas_info`` reported from each server: ``{host: result}``,
where a result has ``instances`` (those named in the request), ``templates``
and ``room``. Pure functions: the playbooks call them through the
collection's filters; nothing here connects anywhere.
"""

from __future__ import annotations

import getpass
import os
import shlex

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

# Below these a server is full, whatever else it has (bytes).
MIN_MEMORY = 512 * 1024 * 1024
MIN_POOL = 1024 * 1024 * 1024


def room(pool_path, instances, meminfo="/proc/meminfo"):
    """What a server has left: memory the kernel can give (MemAvailable, bytes), the pool's free bytes, instances."""
    available = 0
    with open(meminfo, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    stats = os.statvfs(pool_path)
    return {"memory_available": available, "pool_free": stats.f_bavail * stats.f_frsize, "instances": instances}


def holders(seen, name):
    """The hosts whose report lists instance ``name``."""
    return sorted(host for host, report in seen.items()
                  if any(instance.get("name") == name for instance in (report or {}).get("instances") or []))


def place(seen, name, template, generation=None, min_memory=MIN_MEMORY, min_pool=MIN_POOL):
    """The host for instance ``name`` of ``template``: where it is already, else the server with most room.

    Only servers holding the template's newest generation among them (or
    ``generation``, when asked for) are candidates. Of those with at least
    ``min_memory`` and ``min_pool`` bytes free, the one with fewest instances
    wins, then most free memory, then most free pool space. Raises MyaasError
    saying what is missing: the name on two hosts, no server with the
    template, or no room.
    """
    found = holders(seen, name)
    if len(found) > 1:
        raise MyaasError("Instance %s exists on %s: names must be unique across hosts. Drop it on all but one "
                         "(drop_db.yml -e myaas_hosts=HOST)." % (name, " and ".join(found)))
    if found:
        return found[0]
    held = {}
    for host, report in seen.items():
        for record in (report or {}).get("templates") or []:
            if record.get("name") == template and record.get("status", "ready") == "ready":
                held[host] = [kept["generation"] for kept in record.get("generations") or [record]]
    if not held:
        raise MyaasError("No server holds template %s. Import it (import_templates.yml) on an importer, which ships "
                         "it to the servers; list what they hold with list_dbs.yml." % template)
    wanted = int(generation) if generation else max(max(numbers) for numbers in held.values())
    candidates = sorted(host for host, numbers in held.items() if wanted in numbers)
    if not candidates:
        raise MyaasError("No server holds generation %d of template %s." % (wanted, template))
    roomy = [host for host in candidates
             if seen[host]["room"]["memory_available"] >= min_memory and seen[host]["room"]["pool_free"] >= min_pool]
    if not roomy:
        raise MyaasError("Every server holding template %s is full (less than %d MiB of memory or %d MiB of pool "
                         "free): %s. Drop or reap instances, or add a server." % (
                             template, min_memory // 2 ** 20, min_pool // 2 ** 20,
                             ", ".join("%s: %d MiB memory, %d MiB pool" % (
                                 host, seen[host]["room"]["memory_available"] // 2 ** 20,
                                 seen[host]["room"]["pool_free"] // 2 ** 20) for host in candidates)))
    return min(roomy, key=lambda host: (seen[host]["room"]["instances"], -seen[host]["room"]["memory_available"],
                                        -seen[host]["room"]["pool_free"], host))


def ssh_command(hostvars, become=True, host_key_checking=True):
    """The argv prefix that runs a command on a host as Ansible reaches it ([] for a local connection).

    From the host's connection variables (address, port, user, key, extra
    ssh arguments). A user other than root (the controller's own when
    ``ansible_user`` is unset, as for ssh) runs commands under ``sudo -n``
    unless ``become`` or the host's ``ansible_become`` is false. With
    ``host_key_checking`` false (Ansible's HOST_KEY_CHECKING), unknown host
    keys are accepted, as Ansible then does. Raises MyaasError for a host
    that needs a become password: commands are piped, sudo cannot ask.
    """
    if hostvars.get("ansible_connection") == "local":
        return []
    argv = ["ssh", "-o", "BatchMode=yes"]
    if not host_key_checking:
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    port = hostvars.get("ansible_port") or hostvars.get("ansible_ssh_port")
    if port:
        argv += ["-p", str(port)]
    key = hostvars.get("ansible_ssh_private_key_file") or hostvars.get("ansible_private_key_file")
    if key:
        argv += ["-i", str(key)]
    for extra in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        argv += shlex.split(str(hostvars.get(extra) or ""))
    user = hostvars.get("ansible_user") or hostvars.get("ansible_ssh_user")
    address = hostvars.get("ansible_host") or hostvars.get("inventory_hostname")
    if not address:
        raise MyaasError("A host has neither ansible_host nor inventory_hostname: cannot reach it with ssh.")
    argv.append("%s@%s" % (user, address) if user else str(address))
    sudo = become and str(hostvars.get("ansible_become", True)).lower() not in ("false", "no", "0") and \
        (user or getpass.getuser()) != "root"
    if sudo and (hostvars.get("ansible_become_password") or hostvars.get("ansible_become_pass")):
        raise MyaasError("Host %s needs a become password, but shipping pipes btrfs streams through sudo -n, which "
                         "cannot ask for one: allow %s passwordless sudo for btrfs, zstd, bash and flock, or "
                         "connect as root." % (hostvars.get("inventory_hostname") or address, user))
    if sudo:
        argv += ["sudo", "-n"]
    return argv
