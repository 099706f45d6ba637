#!/usr/bin/python
# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: myaas_receive
short_description: Check a template generation that myaas_ship delivered, and make it current
version_added: 0.3.0
description:
  - Runs on the host that received a generation from M(myaas.myaas.myaas_ship) with
    O(myaas.myaas.myaas_ship#module:swap=false).
  - Checks that the generation carries the sender's UUID as its Received UUID, then starts a throw-away server of
    the template's image on a writable snapshot of it and counts the rows of every table. Only when each count
    equals the one the importer recorded in the template's metadata is C(template.json) replaced, in one atomic
    rename under the template's lock, as a local import does; generations the sender no longer keeps are pruned.
  - A branch (M(myaas.myaas.myaas_template) with O(myaas.myaas.myaas_template#module:from_instance)) has no
    recorded row counts. It passes when its server starts and answers, and the counts are recorded with it.
  - A generation that fails the check is removed and the module fails naming the tables that differ. The current
    generation keeps serving, and the next ship sends it again.
  - Nothing delivered is C(changed=false).
author: MyAAS team (@myaas)
extends_documentation_fragment:
  - myaas.myaas.pool
  - myaas.myaas.warm_clones
options:
  name:
    description: The template.
    type: str
    required: true
  lock_timeout:
    description: Seconds to wait for the template's lock (an import or a ship holding it).
    type: int
    default: 3600
  start_timeout:
    description: Seconds the throw-away server may take to answer.
    type: int
    default: 600
  warm:
    description:
      - How many warm clones of the template this server keeps, as M(myaas.myaas.myaas_template)'s
        O(myaas.myaas.myaas_template#module:warm) does on the server that imports (a server that only receives
        never runs that module). V(0) removes them; without this option, the number set before is kept.
      - A generation made current replaces them in the same run; a run that received nothing refills them.
    type: int
  wait_timeout:
    description: Seconds a warm clone's server may take to answer.
    type: int
    default: 60
attributes:
  check_mode:
    description: Reports whether a delivered generation waits, and the warm clones planned; checks nothing.
    support: full
"""

EXAMPLES = r"""
- name: Receive shop from the importer, without making it current yet
  myaas.myaas.myaas_ship:
    name: shop
    source_pool: /srv/myaas
    target_pool: /srv/myaas
    source_via: [ssh, -o, BatchMode=yes, "root@{{ hostvars['importer1'].ansible_host }}"]
    target_via: [ssh, -o, BatchMode=yes, "root@{{ ansible_host }}"]
    swap: false
  delegate_to: localhost

- name: Count its rows on this host, then make it current
  myaas.myaas.myaas_receive:
    name: shop
    pool: /srv/myaas

- name: The same, keeping two warm clones of the current generation on this server
  myaas.myaas.myaas_receive:
    name: shop
    pool: /srv/myaas
    warm: 2
"""

RETURN = r"""
generation:
  description: The generation made current; null when nothing was delivered.
  returned: success
  type: int
  sample: 7
row_counts:
  description: Every table's rows as recorded by the importer (C(before), null for a branch) and counted here (C(after)).
  returned: success
  type: dict
  sample: {shop.customers: {before: 6000, after: 6000}}
seconds:
  description: Seconds the check and the swap took.
  returned: when a generation was made current
  type: float
warm:
  description: The template's warm clones on this server after the run, as M(myaas.myaas.myaas_template) returns them.
  returned: when the template keeps warm clones here, or O(warm) was given
  type: dict
  sample: {count: 2, ready: 2, made: 2, removed: 2, bind_address: 127.0.0.1, port_range: 13306-13999}
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.instances import warm
from ansible_collections.myaas.myaas.plugins.module_utils.instances.ports import parse_range
from ansible_collections.myaas.myaas.plugins.module_utils.inventory import update_metrics
from ansible_collections.myaas.myaas.plugins.module_utils.host.runner import Runner
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import run_module
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_name
from ansible_collections.myaas.myaas.plugins.module_utils.templates.received import Receiver, receive_all


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pool=dict(type="path", default="/var/lib/myaas"),
            name=dict(type="str", required=True),
            lock_timeout=dict(type="int", default=3600),
            start_timeout=dict(type="int", default=600),
            warm=dict(type="int"),
            bind_address=dict(type="str", default="127.0.0.1"),
            port_range=dict(type="str", default="13306-13999", fallback=(env_fallback, ["MYAAS_PORT_RANGE"])),
            wait_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )

    def action():
        params = module.params
        check_name("template", params["name"])
        runner = Runner(module)
        runner.require("btrfs", "docker", "flock")
        pool, docker = Pool(params["pool"], runner), Docker(runner)
        pool.ensure_layout()
        parse_range(params["port_range"])
        receiver = Receiver(pool, docker, runner, params["name"], params["lock_timeout"], params["start_timeout"])
        try:
            result = receive_all(receiver, module.check_mode)
        except Exception:
            if not module.check_mode:
                update_metrics(pool, docker, import_of=params["name"], import_ok=False)
            raise
        clones = warm.WarmPool(pool, docker, get_engine, params["name"], params["lock_timeout"],
                               params["wait_timeout"])
        result = warm.reported(result, lambda: warm.apply(clones, params["warm"], params["bind_address"],
                                                          params["port_range"], module.check_mode))
        if not module.check_mode:
            # On a server, the template is as fresh as what it received.
            warning = update_metrics(pool, docker, import_of=params["name"], import_ok=True)
            result["warnings"] = result.get("warnings", []) + ([warning] if warning else [])
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
