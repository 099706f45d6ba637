#!/usr/bin/python
# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: myaas_info
short_description: List MyAAS templates, instances and orphans
version_added: 0.1.0
description:
  - Reads a MyAAS pool and the Docker engine and reports templates (with their kept generations and, for
    branches, their origin), instances (with their state, expiry, bookmarks and the bytes they hold on the
    pool beyond their template) and orphans - containers of the pool whose
    instance is gone, and instance folders without C(instance.json).
  - An instance whose container or data is missing is listed with status V(missing) or V(broken), not as an
    orphan; M(myaas.myaas.myaas_reap) repairs it.
  - Passwords are never listed; ask for one instance's with O(name) and O(show_password).
author: MyAAS team (@myaas)
extends_documentation_fragment:
  - myaas.myaas.pool
options:
  name:
    description: Report this instance only.
    type: str
  show_password:
    description: Include the password of the instance named by O(name).
    type: bool
    default: false
  sizes:
    description: Measure each instance's exclusive bytes on the pool (one C(btrfs filesystem du) each).
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything.
    support: full
"""

EXAMPLES = r"""
- name: What is there
  myaas.myaas.myaas_info:
  register: myaas

- name: Expired instances
  ansible.builtin.debug:
    msg: "{{ myaas.instances | selectattr('expired') | map(attribute='name') | list }}"

- name: The password of one instance
  myaas.myaas.myaas_info:
    name: shop-alice
    show_password: true
  no_log: true
  register: alice
"""

RETURN = r"""
templates:
  description: Templates on the pool.
  returned: always
  type: list
  elements: dict
  sample: [{name: shop, engine: mariadb, generation: 3, imported_at: "2026-11-24T02:00:12+00:00",
            source: {path: /var/lib/myaas/dumps/shop.sql.gz, bytes: 602701, sha256: 9f86d0...},
            origin: null, owner: null, bytes: 316571648, status: ready,
            generations: [{generation: 2, imported_at: "2026-11-23T02:00:09+00:00", path: /var/lib/myaas/templates/shop/gen-2,
                           source: {path: /var/lib/myaas/dumps/shop.sql.gz, bytes: 601822, sha256: 3c0b4e...},
                           origin: null},
                          {generation: 3, imported_at: "2026-11-24T02:00:12+00:00", path: /var/lib/myaas/templates/shop/gen-3,
                           source: {path: /var/lib/myaas/dumps/shop.sql.gz, bytes: 602701, sha256: 9f86d0...},
                           origin: null}]}]
  contains:
    generations:
      description: The generations kept on the pool, oldest first, with their import time and source.
      type: list
      elements: dict
    masking:
      description: How the current generation was masked (columns and transforms, truncated tables, kept columns
        with reasons, the rules' sha256); null when it is not masked. Each generation carries its own.
      type: dict
    row_counts:
      description: Exact row count of every table of the current generation.
      type: dict
    checks:
      description: The checks the current generation passed.
      type: list
      elements: dict
    personal_columns:
      description: Columns that look personal (by name or values), with why and a suggested transform.
      type: list
      elements: dict
    rehearsals:
      description:
        - Reports of upgrade rehearsals (M(myaas.myaas.myaas_instance) with
          O(myaas.myaas.myaas_instance#module:upgrade_to)) of the kept generations, newest first - the latest per
          generation and image. Each is the module's RV(myaas.myaas.myaas_instance#module:upgrade), with C(error) when
          the rehearsal could not finish.
      type: list
      elements: dict
      sample: [{generation: 3, image_from: "mariadb:10.11", image_to: "mariadb:11.8", ok: true, problems: [],
                version_from: "10.11.19", version_to: "11.8.9-MariaDB", seconds: 6.2,
                finished_at: "2026-11-24T02:05:40+00:00"}]
    origin:
      description: For a branch, the instance (and bookmark, template and generation) its current generation was
        made from; null for an imported template.
      type: dict
    warm:
      description:
        - The template's warm clones (M(myaas.myaas.myaas_template) O(myaas.myaas.myaas_template#module:warm)), null
          when it keeps none and none are left. C(count) is how many it keeps, C(ready) how many wait for a request
          now, C(generations) theirs, and C(error) why the last refill failed (C(at), C(error)), whoever ran it;
          null once a refill did all it had to.
      type: dict
      sample: {count: 2, ready: 1, generations: [3], error: null}
instances:
  description: Instances on the pool (one with O(name)).
  returned: always
  type: list
  elements: dict
  sample: [{name: shop-alice, template: shop, generation: 3, status: running, host: db1, port: 13306,
            owner: alice, created_at: "2026-11-24T08:00:00+00:00", expires_at: "2026-11-24T16:00:00+00:00",
            expired: false, protected: true, protected_until: "2026-12-01T08:00:00+00:00",
            exclusive_bytes: 12582912, max_bytes: 21474836480, used_bytes: 8388608, bookmark: null,
            bookmarks: {before-migration: {created_at: "2026-11-24T09:12:00+00:00", template: shop, generation: 3}}}]
orphans:
  description:
    - Containers of the pool whose instance is gone (V(container)), and instance folders without
      C(instance.json) (V(datadir)), left by a run that was killed or that is making the instance right now.
  returned: always
  type: list
  elements: dict
  sample: [{kind: container, name: old-one, container: myaas-3fa9c1e2-old-one}]
room:
  description:
    - What the server has left, for placing new instances on the server with most room. The memory the kernel
      can give (MemAvailable, bytes), the pool's free bytes, and how many instances the pool holds (all of them,
      also with O(name)).
  returned: always
  type: dict
  sample: {memory_available: 8589934592, pool_free: 107374182400, instances: 12}
password:
  description: The password of the instance named by O(name).
  returned: when O(show_password) is set and the instance exists
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.inventory import (
    find_orphans, instance_password, list_instances, list_templates)
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import run_module
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_name
from ansible_collections.myaas.myaas.plugins.module_utils.placement import room
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.host.runner import Runner
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pool=dict(type="path", default="/var/lib/myaas"),
            name=dict(type="str"),
            show_password=dict(type="bool", default=False, no_log=False),
            sizes=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )

    def action():
        params = module.params
        if params["name"] is not None:
            check_name("instance", params["name"])
        elif params["show_password"]:
            raise MyaasError("show_password needs name: passwords are given for one instance at a time.")
        runner = Runner(module)
        runner.require("btrfs", "docker")
        pool = Pool(params["pool"], runner)
        pool.ensure_layout()
        docker = Docker(runner)
        instances = list_instances(pool, docker, sizes=params["sizes"])
        result = {"changed": False, "templates": list_templates(pool),
                  "orphans": find_orphans(pool, docker, instances), "room": room(pool.path, len(instances))}
        if params["name"] is not None:
            instances = [instance for instance in instances if instance["name"] == params["name"]]
            if params["show_password"] and instances:
                result["password"] = instance_password(pool, params["name"])
        result["instances"] = instances
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
