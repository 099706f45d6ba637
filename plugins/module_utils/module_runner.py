# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where MyAAS modules turn results and errors into JSON."""

from __future__ import annotations

import traceback

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError


def run_module(module, action):
    """Call ``action()`` and exit with its result dict, or fail with a traceback."""
    try:
        result = action()
    except MyaasError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.details)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_json(msg="Unexpected error: %s" % exc, exception=traceback.format_exc())
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff", None)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
