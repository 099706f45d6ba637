"""A dump of a whole MySQL or MariaDB server (--all-databases) carries the `mysql` schema:
production's accounts and their passwords. None of them may open a developer's clone.
"""

import pytest

from mysql_source import SourceServer
from rig import login_refused

# (engine, production's image, the template's image: None is the rig's offline MariaDB)
SERVERS = [("mysql", "mysql:9.7", "mysql:9.7"), ("mariadb", "mariadb:10.11", None)]
PRODUCTION = {"app": "Prod-Only-9f3b", "root": "Prod-Root-77e1", "report": ""}


@pytest.mark.parametrize("engine,source_image,image", SERVERS, ids=[engine for engine, _i, _t in SERVERS])
def test_production_accounts_of_an_all_databases_dump_open_no_clone(rig, workdir, engine, source_image, image):
    path = workdir + "/all-databases.sql"
    with SourceServer(source_image, engine) as source:
        source.query("CREATE USER 'app'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO 'app'@'%%'; "
                     "CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY '%s'; "
                     "CREATE USER 'report'@'%%'; GRANT SELECT ON crm.* TO 'report'@'%%'; "
                     "CREATE DATABASE crm; CREATE TABLE crm.lead (id INT PRIMARY KEY); "
                     "INSERT INTO crm.lead VALUES (1), (2), (3);" % (PRODUCTION["app"], PRODUCTION["root"]))
        source.dump(path)
    name = "alldb-" + engine
    try:
        result = rig.template(name, path, engine=engine, image=image or rig.image)
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        assert {"app@%", "root@%", "report@%"} <= set(result["template"]["passwords_removed"]), result["template"]
        instance = rig.instance(name + "-1", template=name)
        assert not instance.get("failed"), instance.get("msg")
        db = instance["instance"]
        # Production's data is there, for the instance's own account...
        assert rig.query(db, "SELECT COUNT(*) FROM crm.lead")[0][0] == 3
        # ...and no production account logs in, with its password or with none.
        for user, password in PRODUCTION.items():
            for attempt in sorted({password, ""}):
                assert login_refused(db["port"], user, attempt), (user, attempt)
        assert not login_refused(db["port"], db["user"], db["password"])
        # The instance's user may read the grant tables: production's password hashes are gone from them.
        hashes = rig.query(db, "SELECT authentication_string FROM mysql.user WHERE host = '%%' AND user IN (%s)"
                           % ", ".join("'%s'" % user for user in PRODUCTION))
        assert len(hashes) == len(PRODUCTION) and {row[0] for row in hashes} <= {"", "invalid"}, hashes
    finally:
        rig.instance(name + "-1", state="absent")
        rig.template(name, None, state="absent")
