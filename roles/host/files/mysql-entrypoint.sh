#!/bin/sh
# Entrypoint of MyAAS's offline-built MySQL image, for `docker run` by hand
# (MyAAS overrides it and starts mysqld itself). Any arguments are passed to
# mysqld, so callers add settings.
set -eu
datadir=/var/lib/mysql

if [ ! -d "$datadir/mysql" ]; then
    # Local root logs in as the container's OS user root on the socket only
    # (auth_socket: `docker exec ... mysql -uroot` works); no account has an
    # empty password and no TCP login is created.
    mkdir -p "$datadir" && chown mysql:mysql "$datadir"
    echo "INSTALL PLUGIN auth_socket SONAME 'auth_socket.so';" \
        "ALTER USER 'root'@'localhost' IDENTIFIED WITH auth_socket AS 'root';" > /tmp/myaas-root.sql
    mysqld --no-defaults --user=mysql --datadir="$datadir" --initialize-insecure \
        --init-file=/tmp/myaas-root.sql
    rm -f /tmp/myaas-root.sql
fi
install -d -o mysql -g mysql /run/mysqld

# MyAAS drops an init file into the datadir to create per-instance accounts;
# it is read by the server at start, never passed on a command line.
set -- --user=mysql --datadir="$datadir" --skip-name-resolve --bind-address=0.0.0.0 "$@"
if [ -f "$datadir/myaas-init.sql" ]; then
    set -- "$@" --init-file="$datadir/myaas-init.sql"
fi
exec mysqld "$@"
