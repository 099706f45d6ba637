# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engines MyAAS knows, by name."""

from __future__ import annotations

from ansible_collections.myaas.myaas.plugins.module_utils.engines.mariadb import MariaDB
from ansible_collections.myaas.myaas.plugins.module_utils.engines.mysql import MySQL
from ansible_collections.myaas.myaas.plugins.module_utils.engines.postgresql import PostgreSQL
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

ENGINES = dict((cls.name, cls) for cls in (MariaDB, MySQL, PostgreSQL))


def get_engine(name):
    try:
        return ENGINES[name]()
    except KeyError:
        raise MyaasError("Unknown engine %r; MyAAS knows %s." % (name, ", ".join(sorted(ENGINES))))
