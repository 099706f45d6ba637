#!/usr/bin/python
# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: myaas_reap
short_description: Remove expired and half-made MyAAS instances, repair the ones that must live on
version_added: 0.2.0
description:
  - Removes instances whose expiry has passed and that are not protected (or whose protection lease has ended,
    see O(myaas.myaas.myaas_instance#module:protected)), instance folders left half-made by
    a run that was killed (no C(instance.json) and no run holding their lock), and containers of the pool
    whose instance is gone.
  - Repairs, instead of removing, a protected or unexpired instance whose container or data is missing - the
    container is started again on the same port with the same password, lost data is cloned again from the
    template - as M(myaas.myaas.myaas_instance) with O(myaas.myaas.myaas_instance#module:state=present) would.
  - Never touches an instance whose lock another run holds (being created, reset or dropped), and changes
    nothing while the Docker engine does not answer.
  - In check mode, lists exactly what a run would remove and repair.
  - Every run (not in check mode) writes the pool's Prometheus metrics (see the host role's C(host_metrics_dir)).
author: MyAAS team (@myaas)
extends_documentation_fragment:
  - myaas.myaas.pool
options:
  wait_timeout:
    description: Seconds a repaired instance may take to accept a login.
    type: int
    default: 60
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything.
    support: full
  diff_mode:
    description: Nothing to show; the lists in the result say what changed.
    support: none
"""

EXAMPLES = r"""
- name: Reap the pool (from cron or an AWX schedule)
  myaas.myaas.myaas_reap:
  register: reaped

- name: Say what went
  ansible.builtin.debug:
    msg: "Removed {{ reaped.removed }}, repaired {{ reaped.repaired }}"
"""

RETURN = r"""
removed:
  description: Instances removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
  sample: [shop-alice]
repaired:
  description: Instances whose lost container or data was made again (in check mode, that would be).
  returned: always
  type: list
  elements: str
busy:
  description: Instances left alone because another run held their lock.
  returned: always
  type: list
  elements: str
reasons:
  description: Why each instance was removed, repaired or left alone.
  returned: always
  type: dict
  sample: {shop-alice: "expired at 2026-11-25T08:00:00+00:00"}
warm:
  description:
    - By template, what refilling its warm clones did - made, removed, ready; or C(error) when one could not be
      made (or another run held the template's warm lock). Not done in check mode.
  returned: always
  type: dict
  sample: {shop: {made: 1, removed: 1, ready: 2}}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import run_module
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.inventory import update_metrics
from ansible_collections.myaas.myaas.plugins.module_utils.instances.reaper import Reaper
from ansible_collections.myaas.myaas.plugins.module_utils.host.runner import Runner
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pool=dict(type="path", default="/var/lib/myaas"),
            wait_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )

    def action():
        runner = Runner(module)
        runner.require("btrfs", "docker")
        pool, docker = Pool(module.params["pool"], runner), Docker(runner)
        result = Reaper(pool, docker, get_engine, module.check_mode, time.time(), module.params["wait_timeout"]).run()
        if not module.check_mode:
            # Every reap refreshes the metrics, changed or not: ages and sizes move on by themselves.
            warning = update_metrics(pool, docker)
            result["warnings"] = [warning] if warning else []
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
