# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where MyAAS modules turn results and errors into JSON."""

from __future__ import annotations

import os
import traceback

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError


def process_seconds():
    """Seconds since this process started: the interpreter's start and every import.

    Read from Linux's /proc (clock ticks, usually 10 ms); None where there is none.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            # Field 22, counted after the command name (which may hold spaces).
            started = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(max(0.0, uptime - started / os.sysconf("SC_CLK_TCK")), 3)


def detach(work):
    """Run ``work()`` in a process of its own that outlives the module run.

    Ansible waits for the module's output to close, so the process leaves the
    session and holds no descriptor of it. Everything ``work`` needs of the
    collection must already be imported: Ansible removes the module's files
    once it returned. Its errors are the caller's to record.
    """
    if os.fork():
        os.wait()
        return
    try:
        os.setsid()
        if os.fork():
            return
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for descriptor in (0, 1, 2):
            os.dup2(null, descriptor)
        work()
    finally:
        os._exit(0)  # pylint: disable=protected-access


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
