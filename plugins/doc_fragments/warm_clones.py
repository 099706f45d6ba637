# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Where warm clones listen, for the modules that keep them (myaas_template
    # on the server that imports, myaas_receive on one that receives).
    DOCUMENTATION = r"""
options:
  bind_address:
    description: The host address the warm clones publish their port on; a request for another one is cloned
      afresh.
    type: str
    default: 127.0.0.1
  port_range:
    description: The host ports warm clones take theirs from, as C(LOW-HIGH); the instances' range.
    type: str
    default: 13306-13999
"""
