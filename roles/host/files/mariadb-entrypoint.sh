#!/bin/sh
# Entrypoint of MyAAS's offline-built MariaDB image. Any arguments are passed to
# mariadbd, so callers add settings (bulk load for imports, limits for clones).
set -eu
datadir=/var/lib/mysql

if [ ! -d "$datadir/mysql" ]; then
    # Local root keeps the default unix_socket login: `docker exec ... mariadb`
    # works without a password, and no password-less TCP root is created.
    chown mysql:mysql "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
        --skip-name-resolve >/dev/null
fi
install -d -o mysql -g mysql /run/mysqld

# MyAAS drops an init file into the datadir to create per-instance accounts;
# it is read by the server at start, never passed on a command line.
set -- --user=mysql --datadir="$datadir" --skip-name-resolve --bind-address=0.0.0.0 "$@"
if [ -f "$datadir/myaas-init.sql" ]; then
    set -- "$@" --init-file="$datadir/myaas-init.sql"
fi
exec mariadbd "$@"
