# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small pieces the instance manager builds its results and its cleanups from."""

from __future__ import annotations

import os


def status_diff(result, state, after):
    """A start or stop changes the server's status only: that is all its diff shows."""
    result["diff"] = {"before": {"status": state.get("Status", "missing")}, "after": {"status": after}}
    return result


def remove_file(path):
    if os.path.lexists(path):
        os.unlink(path)


def run_every(steps):
    """Run every cleanup step even when one fails (dockerd down, say), then raise the first error."""
    first = None
    for step in steps:
        try:
            step()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            first = first or exc
    if first is not None:
        raise first
