# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception MyAAS code raises for problems a user can act on."""

from __future__ import annotations


class MyaasError(Exception):
    """A failure with a message that says what went wrong and what to do.

    ``details`` carries extra result keys (e.g. the server log's last lines);
    modules turn the exception into ``fail_json`` at their top level only.
    """

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details
