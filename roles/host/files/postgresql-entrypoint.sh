#!/bin/sh
# Entrypoint of MyAAS's offline-built PostgreSQL image. Any arguments are passed
# to postgres, so callers add settings (bulk load for imports, limits for clones).
set -eu
PGDATA=/var/lib/postgresql/data
export PGDATA
# The image holds one server version; its folder names the version.
for bin in /usr/lib/postgresql/*/bin; do :; done

# PostgreSQL refuses a datadir that others can read; a new subvolume is 0755.
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # Local logins by the postgres OS user (docker exec --user postgres) need
    # no password; every TCP login needs one (scram-sha-256).
    setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" --pgdata="$PGDATA" \
        --username=postgres --encoding=UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
install -d -o postgres -g postgres /run/postgresql
# setpriv execs (no su in between), so postgres is PID 1 and gets docker's
# stop signal itself.
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$PGDATA" "$@"
