# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host ports for instances.

Allocation happens under a pool-wide lock that the caller holds until the
container has bound the port, so two runs never pick the same one.
"""

from __future__ import annotations

import socket

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError


def parse_range(text):
    """'13306-13999' -> (13306, 13999), validated."""
    try:
        low, high = (int(part) for part in str(text).split("-", 1))
    except ValueError:
        raise MyaasError("port_range %r is not of the form LOW-HIGH, e.g. 13306-13999." % (text,))
    if not 1024 <= low <= high <= 65535:
        raise MyaasError("port_range %r must lie within 1024-65535, low end first." % (text,))
    return low, high


def is_free(address, port):
    """True if nothing listens on (address, port) now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def pick_port(port_range, taken, address, free=is_free):
    """The lowest port of the range that no instance holds and nothing listens on."""
    low, high = port_range
    for port in range(low, high + 1):
        if port not in taken and free(address, port):
            return port
    raise MyaasError("No free port left in port_range %d-%d: drop unused instances or widen the range."
                     % (low, high))
