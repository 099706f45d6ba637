#!/usr/bin/env bash
# Stops a dockerd that the host role started as a daemon (hosts without an init
# system), and waits until it is gone so that the next start finds no stale pid.
set -euo pipefail
pidfile=${1:-/run/myaas-dockerd.pid}
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
fi
rm -f "$pidfile"
