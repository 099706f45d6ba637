# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The pool option every MyAAS module takes (and that the action group's
    # module_defaults sets for all of them at once).
    DOCUMENTATION = r"""
options:
  pool:
    description:
      - Mount point of the MyAAS pool.
      - Set it for every MyAAS module at once with C(module_defaults) on C(group/myaas.myaas.myaas).
    type: path
    default: /var/lib/myaas
"""
