#!/bin/sh
# Entry point of the rookery-postgres image: PostgreSQL for the cluster's actor state.
# On first start (an empty $PGDATA) it creates the cluster with a password-protected role
# and database; then it runs the server in the foreground (PID 1 is the engine's init).
#
#   POSTGRES_USER (rookery), POSTGRES_PASSWORD (rookery), POSTGRES_DB (rookery),
#   PGDATA (/data/pgdata)
set -eu
PGDATA="${PGDATA:-/data/pgdata}"
user="${POSTGRES_USER:-rookery}"
password="${POSTGRES_PASSWORD:-rookery}"
database="${POSTGRES_DB:-rookery}"
bin=/usr/lib/postgresql/15/bin

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=/tmp/postgres-password
    printf '%s\n' "$password" >"$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256
    : >"$pwfile"  # no rm in the image: emptied instead
    # Every address of the compose network, with a password.
    printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' \
        >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        echo "CREATE DATABASE \"$database\" OWNER \"$user\";" |
            "$bin/postgres" --single -D "$PGDATA" -j postgres >/dev/null
    fi
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
    -c jit=off
