#!/usr/bin/python
# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: myaas_ship
short_description: Ship a template's current generation to another pool with btrfs send and receive
version_added: 0.3.0
description:
  - Sends the current generation of a template from the pool where it was imported to another pool, on this host
    or on another one, with C(btrfs send) and C(btrfs receive). The stream is compressed with zstd and is never
    staged whole on disk.
  - Runs where both pools can be reached, usually the Ansible controller (C(delegate_to)). A pool on another host
    is reached through an ssh command line (O(source_via), O(target_via)), normally the SSH that Ansible itself
    uses for that host.
  - The generation arrives read-only. Before it is renamed into place its Received UUID must equal the sender's
    UUID. Then C(template.json) is replaced in one atomic rename, as a local import does, so instances made after
    it clone the new generation.
  - A generation that is a snapshot of one the receiver already received (an incremental refresh) is sent with
    that one as the parent (C(btrfs send -p)); only what changed crosses. So is a branch, against the generation
    of another template its instance was cloned from, when the receiver holds it. Otherwise the whole generation
    is sent.
  - A generation the source itself received (a server passing a template on) is checked by the UUID it came with.
  - A transfer that fails or is killed leaves the receiver's current generation serving. The next run removes
    what it left and ships again. When the receiver already has the current generation, nothing is sent and the
    result is C(changed=false).
  - Generations that the sender no longer keeps are removed from the receiver. Instances already cloned from them
    keep their data.
author: MyAAS team (@myaas)
options:
  name:
    description: The template.
    type: str
    required: true
  source_pool:
    description: The pool the template was imported on.
    type: path
    required: true
  target_pool:
    description: The pool that receives it. It must be a btrfs pool provisioned by the host role.
    type: path
    required: true
  source_via:
    description:
      - The command line that runs a command on the source pool's host, for example
        C([ssh, -o, BatchMode=yes, root@importer1]). The command is appended as one string, as ssh expects.
      - Empty runs the command on the host where the module runs.
    type: list
    elements: str
    default: []
  target_via:
    description: The same as O(source_via), for the receiving pool's host.
    type: list
    elements: str
    default: []
  swap:
    description:
      - Make the received generation current on the receiver. With V(false) it is left there, read-only and
        unused, with what the swap needs beside it, for M(myaas.myaas.myaas_receive) to check on a throw-away
        server of the receiving host (its row counts against the template's metadata) and swap in.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for the receiver's lock on the template (an import or another ship holding it).
    type: int
    default: 3600
  transfer_timeout:
    description: Seconds the transfer may take before it is stopped.
    type: int
    default: 21600
requirements:
  - btrfs-progs, zstd, bash and util-linux's flock on both hosts (the host role installs them)
attributes:
  check_mode:
    description: Reports whether a transfer would happen, full or incremental, and sends nothing.
    support: full
  diff_mode:
    description: Shows the receiver's generation before and after.
    support: full
"""

EXAMPLES = r"""
- name: Ship last night's shop template from the importer to this server
  myaas.myaas.myaas_ship:
    name: shop
    source_pool: /srv/myaas
    target_pool: /srv/myaas
    source_via: [ssh, -o, BatchMode=yes, "root@{{ hostvars['importer1'].ansible_host }}"]
    target_via: [ssh, -o, BatchMode=yes, "root@{{ ansible_host }}"]
  delegate_to: localhost

- name: Between two pools of one host
  myaas.myaas.myaas_ship:
    name: shop
    source_pool: /srv/myaas-import
    target_pool: /srv/myaas
"""

RETURN = r"""
generation:
  description: The generation the receiver serves now.
  returned: success
  type: int
  sample: 7
mode:
  description: V(none) when the receiver already had it, V(full), or V(incremental) (sent with a parent).
  returned: success
  type: str
  sample: incremental
parent:
  description: The generation the stream was sent against, for V(incremental).
  returned: success
  type: int
parent_template:
  description:
    - The template of RV(parent). Another template's for a branch, sent against the generation its instance was
      cloned from when the receiver holds that generation too.
  returned: success
  type: str
bytes_sent:
  description: Bytes of the compressed stream that crossed (0 when nothing was sent).
  returned: success
  type: int
seconds:
  description: Seconds the transfer took.
  returned: success
  type: float
rate:
  description: Bytes of the stream per second.
  returned: success
  type: int
staged:
  description: The generation was received but left for M(myaas.myaas.myaas_receive) to swap in (O(swap=false)).
  returned: success
  type: bool
pruned:
  description: Generations removed from the receiver because the sender no longer keeps them.
  returned: success
  type: list
  elements: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.runner import Runner
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import run_module
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_name
from ansible_collections.myaas.myaas.plugins.module_utils.templates.shipping import Shipper, Side


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            source_pool=dict(type="path", required=True),
            target_pool=dict(type="path", required=True),
            source_via=dict(type="list", elements="str", default=[]),
            target_via=dict(type="list", elements="str", default=[]),
            swap=dict(type="bool", default=True),
            lock_timeout=dict(type="int", default=3600),
            transfer_timeout=dict(type="int", default=21600),
        ),
        supports_check_mode=True,
    )

    def action():
        params = module.params
        check_name("template", params["name"])
        runner = Runner(module)
        source = Side(params["source_pool"], params["source_via"], runner)
        target = Side(params["target_pool"], params["target_via"], runner)
        if source.pool == target.pool and source.via == target.via:
            raise MyaasError("source_pool and target_pool are the same pool; give the pool that receives it.")
        shipper = Shipper(params["name"], source, target, runner, params["lock_timeout"], params["transfer_timeout"])
        template, current, steps, target_subs = shipper.plan()
        before = (current or {}).get("generation")
        result = {"changed": steps is not None, "generation": template["generation"], "bytes_sent": 0,
                  "seconds": 0.0, "rate": 0, "pruned": [],
                  "mode": "none" if steps is None else ("incremental" if steps["parent"] is not None else "full"),
                  "parent": (steps or {}).get("parent"),
                  "parent_template": (steps or {}).get("parent_template") or (
                      params["name"] if (steps or {}).get("parent") is not None else None),
                  "diff": {"before": {"generation": before}, "after": {"generation": template["generation"]}}}
        if steps is None or module.check_mode:
            return result
        sent, seconds = shipper.ship(template, steps, target_subs, swap=params["swap"])
        result.update(staged=not params["swap"], bytes_sent=sent, seconds=round(seconds, 3), rate=int(sent / seconds) if seconds else 0,
                      pruned=steps["prune"] if params["swap"] else [])
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
