# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an engine is: everything that differs between database servers.

An engine adapter states a few properties and builds argv lists and SQL; it
runs nothing itself. The template importer and the instance manager ask it
how to start, probe, feed and stop a server, so a new engine is one new file
plus one line in ``engines/registry.py``.

MyAAS starts every server itself, with the image's entrypoint overridden by
``/bin/sh -c LAUNCHER``: the launcher initialises an empty datadir with the
server's own tool and then execs the server binary with MyAAS's arguments. So
nothing depends on what an image's entrypoint does with environment
variables (official images give local root a random password, or a known
superuser password over TCP), and the same path serves the official images,
MyAAS's offline images and any image that ships the server binaries.
"""

from __future__ import annotations

import re
import shlex
from urllib.parse import quote

# The container's name for the launcher script ($0 in `sh -c`).
LAUNCHER_NAME = "myaas-server"


class Engine:
    name = ""
    default_image = ""
    datadir = ""            # inside the container
    port = 0                # inside the container
    dsn_scheme = ""
    # The image's OS account the server runs as (its uid is read from the image).
    account = ""
    # The database a client lands in when the template names none.
    default_database = None
    # Settings used by both import servers and clones (e.g. a redo log size
    # kept equal, so a clone never rewrites its log when it starts).
    common_args = ()
    # The OS user `docker exec` runs local clients as (None: the server's account).
    exec_user = None
    # The signal that makes the server shut down cleanly and completely.
    stop_signal = None
    # How an instance's account is made: "init_file" (a file in the datadir
    # that the launcher hands to the server at start) or "local_client" (SQL
    # on the local client's stdin once the server answers).
    credentials_via = "init_file"
    # Whether a clone's local client logs in as the server's superuser (over
    # its socket), so that an account can be made once the server runs.
    local_superuser_in_clones = True
    # Why a disk quota (max_bytes) is refused on this engine's instances, or
    # None: what its server does when a write meets a quota group's limit.
    disk_quota_refused = None
    init_file = "myaas-init.sql"
    # How a datadir moves to a newer major version: "server" (the new server
    # on the old datadir, then ``upgrade_commands``) or "pg_upgrade" (a new
    # datadir made from the old one while both are stopped).
    upgrade_method = "server"
    # A dump that matches this (in its first bytes) selects its own schemas and
    # loads as it is; any other is loaded into the template's database.
    own_schema_re = re.compile(rb"^\s*(CREATE\s+DATABASE|USE\s)", re.IGNORECASE | re.MULTILINE)
    # Names of the schemas a dump switches to, in its first bytes (group 1).
    schema_switch_re = re.compile(rb"^\s*USE\s+`?([^`;\s]+)`?\s*;", re.IGNORECASE | re.MULTILINE)
    # Archive formats the engine restores itself: magic bytes -> format name.
    archive_magic = {}
    # Whether a plain dump's rows may be loaded on several connections at once.
    deals_rows = False
    # Lines of client output that carry the error (they name the dump's line).
    error_re = re.compile(r"^ERROR")
    # The shell script run as the container's command: "$1" is the datadir,
    # the rest are the server's arguments.
    launcher = ""

    # -- starting the server ------------------------------------------------
    def server_args(self):
        """Arguments every server MyAAS starts gets, before bulk-load or clone settings."""
        return list(self.common_args)

    def command(self, extra_args):
        """(entrypoint, args) of a container that runs this engine's server with ``extra_args``."""
        return "/bin/sh", ["-c", self.launcher, LAUNCHER_NAME, self.datadir] + self.server_args() + list(extra_args)

    def bulk_load_args(self, tuning, memory_bytes):
        """Server arguments for an import: fast and unsafe, never used by clones.

        ``memory_bytes`` is the host's memory; buffers are sized from it unless
        ``tuning`` says otherwise.
        """
        raise NotImplementedError

    def clone_args(self):
        """Server arguments for an instance."""
        return []

    # -- disk quotas ----------------------------------------------------------
    def quota_refusal(self, datadir):
        """Why instances of ``datadir`` (a generation's or an instance's) can have no max_bytes; None if they can."""
        return self.disk_quota_refused or "%s has no way to cap what its server writes" % self.name

    def capped_layout_args(self):
        """Server arguments that keep new tables where a quota can cap them, for instances with no quota yet."""
        return []

    def quota_base(self, datadir):
        """Bytes, at clone time, of what the server caps in ``datadir``; max_bytes counts from there. None: nothing."""
        return None

    def quota_args(self, max_bytes, base_bytes):
        """Server arguments with which the server itself refuses to grow ``base_bytes`` by more than ``max_bytes``."""
        raise NotImplementedError

    def quota_used(self, datadir, base_bytes):
        """Bytes ``datadir`` grew by since the clone, as its server counts them against max_bytes (None: unknown)."""
        return None

    # -- talking to it --------------------------------------------------------
    def local_client(self, database=None):
        """argv, run in the container, of a client logged in as the local superuser."""
        raise NotImplementedError

    def query_argv(self, sql, database=None):
        """argv, run in the container, that prints the rows of ``sql``, one a line, fields tab-separated."""
        raise NotImplementedError

    def ready_probe(self):
        """argv, run in the container, that prints 1 once the server takes queries."""
        return self.query_argv("SELECT 1")

    def wait_then(self, argv, seconds, interval=0.02):
        """argv, run in the container, that runs ``argv`` once ``ready_probe`` prints 1.

        One exec instead of a probe per engine call: the wait happens inside
        the container. Exits 75 when the server did not answer within
        ``seconds``.
        """
        # A deadline, not a count of tries: each probe costs a client's start too.
        script = ('end=$(($(date +%%s) + $1)); shift; until [ "$(%s 2>/dev/null)" = 1 ]; do '
                  '[ "$(date +%%s)" -lt "$end" ] || { echo "the server did not answer" >&2; exit 75; }; '
                  'sleep %s; done; exec "$@"' % (shell_join(self.ready_probe()), interval))
        return ["sh", "-c", script, "myaas-wait", str(int(seconds))] + list(argv)

    def restore_argv(self, fmt, database, path, jobs):
        """argv, run in the container, that restores an archive at ``path``."""
        raise NotImplementedError

    def create_database_sql(self, database):
        raise NotImplementedError

    def list_databases_sql(self):
        """A query listing the databases (schemas) a dump made, system ones left out."""
        raise NotImplementedError

    def missing_definers_sql(self):
        """A query listing user@host definers that objects name but the server lacks (None: no such thing)."""
        return None

    def create_definers_sql(self, definers, databases, password):
        """SQL that makes each definer an account that cannot log in, with privileges on ``databases``."""
        raise NotImplementedError

    def before_shutdown_sql(self):
        """SQL run before stopping an import server, to make its shutdown complete."""
        return ""

    def after_import_script(self):
        """A shell script run on the stopped datadir ("$1") after every import, in the image (None: none)."""
        return None

    def clean_shutdown(self, log_text):
        """True if the server log shows a complete, clean shutdown."""
        raise NotImplementedError

    def crash_recovery(self, log_text):
        """True if the server log shows it recovered from an unclean stop."""
        raise NotImplementedError

    def load_error_advice(self, message):
        """What to do about a failed load's error ``message``, as a sentence to append ("" when nothing known)."""
        del message
        return ""

    def init_sql(self, user, password, database):
        """SQL that creates (or re-keys) an instance's account at server start."""
        raise NotImplementedError

    def connect(self, host, port, user, password, database, timeout):
        """A DB-API connection over TCP as the instance's user (the driver is imported here)."""
        raise NotImplementedError

    def probe_login(self, host, port, user, password, database, timeout):
        """Log in over TCP as the instance's user and run SELECT 1. Raises on failure."""
        connection = self.connect(host, port, user, password, database, timeout)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0] == 1
        finally:
            connection.close()

    def physical_login_sql(self):
        """SQL for an init file that gives the import server's local client its login on a datadir restored
        from a production backup ("" when the engine needs none)."""
        return ""

    # -- upgrade rehearsal (upgrades/) ---------------------------------------------
    def version_argv(self):
        """argv, run in a throw-away container of an image, that prints its server's version."""
        raise NotImplementedError

    def version_sql(self):
        """A query giving the running server's version."""
        return "SELECT VERSION()"

    def upgrade_init_sql(self):
        """SQL the upgrade's server runs at start, so that its local client can log in ("" when it can)."""
        return ""

    def upgrade_commands(self):
        """[(step, argv)] run in the new server's container once it answers, as production's upgrade runs them."""
        return []

    def startup_findings(self, log_text):
        """(warnings, errors): lines of a server's start-up log that an upgrade report shows."""
        raise NotImplementedError

    def upgrade_log(self, log_text):
        """The lines in which a server that upgrades itself at start reports that upgrade ([]: none)."""
        del log_text
        return []

    # -- what users get back ----------------------------------------------------
    def dsn(self, user, password, host, port, database):
        """A URL that works as it is: user, password and database percent-encoded."""
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        url = "%s://%s:%s@%s:%d" % (self.dsn_scheme, quote(user, safe=""), quote(password, safe=""), host, port)
        return url + ("/" + quote(database, safe="") if database else "")

    def client_command(self, user, password, host, port, database):
        """A command line a developer pastes into a shell to get a prompt."""
        raise NotImplementedError


def quote_sql_string(value):
    """A SQL string literal; backslashes and quotes escaped (MySQL dialect)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(value):
    return "`" + value.replace("`", "``") + "`"


def share_of(memory_bytes, fraction, low, high):
    """A fraction of the host's memory, in whole MiB, kept within [low, high] MiB: '1024M'."""
    mib = int(memory_bytes * fraction) // 2 ** 20
    return "%dM" % max(low, min(high, mib))


def shell_join(argv):
    return " ".join(shlex.quote(str(arg)) for arg in argv)
