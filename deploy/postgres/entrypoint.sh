#!/bin/bash
# Starts PostgreSQL for the API's jobs. On an empty data folder (a new volume): a cluster, the role
# `admissions` and its database `admissions` (owned by it). At every start: that role's password is set
# from the secret file, so the secret is the one source of truth (change it, restart, nothing by hand).
# Only `admissions` may log in over the network (scram-sha-256); inside the container the OS user
# `postgres` is the superuser through the socket (peer): `docker compose exec postgres psql -d admissions`.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
ROLE=admissions
DATABASE=admissions
PASSWORD_FILE=${POSTGRES_PASSWORD_FILE:-/run/secrets/postgres_password}

fail() { echo "postgres entrypoint: $*" >&2; exit 1; }

[ -r "$PASSWORD_FILE" ] || fail "no password file $PASSWORD_FILE (make run-docker POSTGRES=1 provides it)."
password=$(<"$PASSWORD_FILE")
# The charset of secrets.token_urlsafe: safe in a SQL literal and in a URL without quoting.
[[ $password =~ ^[A-Za-z0-9_-]{24,}$ ]] ||
    fail "the password in $PASSWORD_FILE must be 24+ characters of A-Z a-z 0-9 _ - (as secrets.token_urlsafe makes)."

# A statement in single-user mode (no server, no network yet); any error stops it, without echoing
# the statement (it may hold the password).
single() {
    postgres --single -D "$PGDATA" -c exit_on_error=on -c log_min_error_statement=panic postgres <<<"$1" >/dev/null ||
        fail "could not run: ${2:-$1}"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "postgres entrypoint: new data folder: creating the cluster, role $ROLE and database $DATABASE"
    initdb -D "$PGDATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 \
        --locale=C.UTF-8 >/dev/null
    echo "host $DATABASE $ROLE all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    single "CREATE ROLE $ROLE LOGIN"
    single "CREATE DATABASE $DATABASE OWNER $ROLE"
fi
single "ALTER ROLE $ROLE WITH LOGIN PASSWORD '$password'" "ALTER ROLE $ROLE PASSWORD ..."
unset password
echo "postgres entrypoint: the password of role $ROLE set from $PASSWORD_FILE; starting the server"
exec postgres -D "$PGDATA" -c listen_addresses='*' -c jit=off "$@"
