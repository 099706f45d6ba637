"""Physical backups without a server: what is recognised as which backup, fingerprints, checkpoints.

Restoring them runs on the real rig (tests/integration/test_physical.py, test_incremental.py).
"""

import gzip
import io
import os
import tarfile

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.mariadb import MariaDB
from ansible_collections.myaas.myaas.plugins.module_utils.engines.mysql import MySQL
from ansible_collections.myaas.myaas.plugins.module_utils.engines.postgresql import PostgreSQL
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates import physical


def folder(tmp_path, *names):
    path = tmp_path / "backup"
    path.mkdir()
    for name in names:
        (path / name).write_text("x")
    return str(path)


@pytest.mark.parametrize("names, engine, kind, layout", [
    (["xtrabackup_checkpoints", "ibdata1"], MariaDB(), "mariadb-backup", "folder"),
    (["mariadb_backup_checkpoints"], MariaDB(), "mariadb-backup", "folder"),
    (["base.tar.gz", "pg_wal.tar.gz", "backup_manifest"], PostgreSQL(), "pg_basebackup", "tar"),
    (["PG_VERSION", "backup_label", "postgresql.conf"], PostgreSQL(), "pg_basebackup", "folder"),
    (["mysql.ibd", "undo_001"], MySQL(), "mysql-clone", "folder"),
])
def test_backup_folders_are_known_by_what_their_tools_write(tmp_path, names, engine, kind, layout):
    backup = physical.detect(folder(tmp_path, *names), engine)
    assert (backup.kind, backup.layout, backup.engine) == (kind, layout, engine.name)


def test_a_backup_of_another_engine_names_the_engine_to_use(tmp_path):
    with pytest.raises(MyaasError, match="is a mariadb backup .*import it with engine: mariadb"):
        physical.detect(folder(tmp_path, "xtrabackup_checkpoints"), PostgreSQL())


def test_another_folder_is_refused_with_what_would_do(tmp_path):
    with pytest.raises(MyaasError, match="no backup MyAAS knows"):
        physical.detect(folder(tmp_path, "notes.txt"), MariaDB())


def test_an_xbstream_is_known_compressed_or_not(tmp_path):
    plain = tmp_path / "shop.xbstream"
    plain.write_bytes(physical.XBSTREAM_MAGIC + b"\0" * 100)
    packed = tmp_path / "shop.xbstream.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert physical.detect(str(plain), MariaDB()).layout == "xbstream"
    backup = physical.detect(str(packed), MariaDB())
    assert (backup.layout, backup.fmt) == ("xbstream", "gzip")


def test_a_tar_is_a_clone_for_mysql_a_base_backup_for_postgresql_and_a_dump_is_no_backup(tmp_path):
    archive = tmp_path / "clone.tar"
    with tarfile.open(str(archive), "w") as tar:
        info = tarfile.TarInfo("mysql.ibd")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert physical.detect(str(archive), MySQL()).kind == "mysql-clone"
    assert physical.detect(str(archive), PostgreSQL()).kind == "pg_basebackup"
    assert physical.detect(str(archive), MariaDB()) is None
    dump = tmp_path / "shop.sql"
    dump.write_text("CREATE TABLE t (a INT);\n")
    assert physical.detect(str(dump), MariaDB()) is None


def test_a_folders_fingerprint_moves_with_its_files(tmp_path):
    path = folder(tmp_path, "a", "b")
    size, _mtime, digest = physical.fingerprint(path)
    first = digest()
    assert size == 2 and physical.fingerprint(path)[2]() == first
    with open(os.path.join(path, "b"), "w", encoding="utf-8") as handle:
        handle.write("longer")
    assert physical.fingerprint(path)[2]() != first


def test_checkpoints_are_read_as_mariadb_backup_writes_them(tmp_path):
    path = tmp_path / "inc"
    path.mkdir()
    (path / "xtrabackup_checkpoints").write_text("backup_type = incremental\nfrom_lsn = 2797500\nto_lsn = 4158254\n")
    expected = {"backup_type": "incremental", "from_lsn": "2797500", "to_lsn": "4158254"}
    assert physical.checkpoints(str(path)) == expected
    assert physical.checkpoints(str(tmp_path)) == {}


class NoDocker:
    """A Docker that must not be called: the check fails before any container."""

    def __getattr__(self, name):
        raise AssertionError("docker.%s called" % name)


def test_an_incremental_that_does_not_start_where_the_base_ends_is_refused(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "xtrabackup_info").write_text("server_version = 10.11.19-MariaDB-log\n")
    (staging / "xtrabackup_checkpoints").write_text("backup_type = incremental\nfrom_lsn = 500\nto_lsn = 900\n")
    base = tmp_path / "base-3"
    base.mkdir()
    backup = physical.Backup(str(tmp_path / "night.xbstream"), "mariadb-backup", "xbstream")
    restorer = physical.Restorer(None, NoDocker(), MariaDB(), backup, str(staging), "mariadb:10.11", (999, 999), 60,
                                 "c", {}, bases=(str(base), "400", None))
    with pytest.raises(MyaasError, match="starts at LSN 500, and the template's last backup ends at LSN 400"):
        restorer._prepare_mariadb_backup("10.11.19")  # pylint: disable=protected-access
    restorer = physical.Restorer(None, NoDocker(), MariaDB(), backup, str(staging), "mariadb:10.11", (999, 999), 60,
                                 "c", {}, bases=(None, None, None))
    with pytest.raises(MyaasError, match="Import the full backup first"):
        restorer._prepare_mariadb_backup("10.11.19")  # pylint: disable=protected-access
    restorer = physical.Restorer(None, NoDocker(), MariaDB(), backup, str(staging), "mariadb:11.8", (999, 999), 60,
                                 "c", {}, bases=(str(base), "500", None))
    with pytest.raises(MyaasError, match="taken from mariadb 10.11.19-MariaDB-log, and image mariadb:11.8 runs 11.8.9"):
        restorer._prepare_mariadb_backup("11.8.9")  # pylint: disable=protected-access
