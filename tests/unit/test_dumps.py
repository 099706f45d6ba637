import bz2
import gzip
import lzma
import shutil
import subprocess

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils import dumps
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

SQL = b"-- dump\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n"
OWN = b"CREATE DATABASE IF NOT EXISTS a;\nUSE a;\nCREATE TABLE t (id int);\n"


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("compress,fmt", [
    (lambda d: d, "plain"), (gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz")])
def test_format_is_read_from_content_not_suffix(tmp_path, compress, fmt):
    path = write(tmp_path, "misleading.sql.zst", compress(SQL))
    assert dumps.inspect_dump(path) == (fmt, False)


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd is installed by the host role")
def test_zstd(tmp_path):
    path = write(tmp_path, "d.sql.zst", subprocess.run(["zstd", "-c"], input=SQL, stdout=subprocess.PIPE,
                                                       check=True).stdout)
    assert dumps.inspect_dump(path) == ("zstd", False)


def test_dump_that_names_its_schemas(tmp_path):
    assert dumps.inspect_dump(write(tmp_path, "d.sql.gz", gzip.compress(OWN))) == ("gzip", True)


@pytest.mark.parametrize("data,message", [
    (b"", "is empty"),
    (gzip.compress(b""), "holds no SQL"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not an SQL dump"),
    (b"hello, this is a letter\n", "is not an SQL dump"),
])
def test_what_is_not_a_dump_is_refused(tmp_path, data, message):
    with pytest.raises(MyaasError, match=message):
        dumps.inspect_dump(write(tmp_path, "x.sql", data))


def test_missing_dump(tmp_path):
    with pytest.raises(MyaasError, match="does not exist"):
        dumps.inspect_dump(str(tmp_path / "nope.sql"))


def test_stream_into_reports_a_truncated_archive(tmp_path):
    data = gzip.compress(SQL * 1000)
    path = write(tmp_path, "cut.sql.gz", data[: len(data) // 2])
    with pytest.raises(MyaasError, match="damaged"):
        dumps.stream_into(path, "gzip", ["cat"], timeout=30)


def test_stream_into_reports_the_clients_error(tmp_path):
    path = write(tmp_path, "d.sql.gz", gzip.compress(SQL))
    with pytest.raises(MyaasError, match="ERROR 1064 at line 2"):
        dumps.stream_into(path, "gzip", ["sh", "-c", "cat >/dev/null; echo 'ERROR 1064 at line 2' >&2; exit 1"],
                          timeout=30)


def test_stream_into_streams_everything(tmp_path):
    path = write(tmp_path, "d.sql.xz", lzma.compress(SQL * 100))
    out = tmp_path / "out"
    dumps.stream_into(path, "xz", ["sh", "-c", "cat > %s" % out], timeout=30)
    assert out.read_bytes() == SQL * 100


def test_stream_into_times_out(tmp_path):
    path = write(tmp_path, "d.sql", SQL)
    with pytest.raises(MyaasError, match="import_timeout"):
        dumps.stream_into(path, "plain", ["sleep", "30"], timeout=1)
