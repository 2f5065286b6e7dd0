#!/usr/bin/env bash
# Entrypoint of the pgfleet e2e PostgreSQL image. It follows the contract of the official
# `postgres` image so the containers provider runs unchanged on either:
#   - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#     (default postgres), POSTGRES_DB (default: the user name), POSTGRES_INITDB_ARGS,
#     POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA;
#   - an empty PGDATA is initialised once (initdb, password, database, then the scripts in
#     /docker-entrypoint-initdb.d), a populated one is started as it is;
#   - arguments starting with '-' are settings for `postgres` (`-c wal_level=logical`), any
#     other command runs as given.
# Started as root, it fixes the ownership of PGDATA and re-executes itself as 'postgres'.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

# A file-based secret (`POSTGRES_PASSWORD_FILE=/run/secrets/x`) wins over the plain variable.
for var in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB POSTGRES_INITDB_ARGS; do
  file_var="${var}_FILE"
  if [ -n "${!file_var:-}" ]; then
    if [ -n "${!var:-}" ]; then
      echo "entrypoint: set $var or $file_var, not both" >&2
      exit 1
    fi
    export "$var"="$(<"${!file_var}")"
  fi
done

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA POSTGRES_USER POSTGRES_DB

if [ "$1" != 'postgres' ]; then exec "$@"; fi

if [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 00700 "$PGDATA"
  chmod 03775 /var/run/postgresql
  # Only a data directory we may initialise gets its ownership fixed; a populated one
  # mounted from elsewhere is left as it is.
  if [ ! -s "$PGDATA/PG_VERSION" ]; then chown -R postgres:postgres "$PGDATA"; fi
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

initialise() {
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
    cat >&2 <<'MSG'
entrypoint: the database is uninitialised and POSTGRES_PASSWORD is not set.
  Set POSTGRES_PASSWORD to a non-empty value for the superuser, or
  POSTGRES_HOST_AUTH_METHOD=trust to allow connections without a password (never in production).
MSG
    exit 1
  fi
  local pwfile
  pwfile="$(mktemp)"
  printf '%s' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments on purpose
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host="$POSTGRES_HOST_AUTH_METHOD" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  # Clients come from other containers and from the host through a published port.
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

  # A server reachable only through the Unix socket while the database and init scripts are
  # set up, so no client can connect to a half-initialised cluster.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start
  local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
  if [ "$POSTGRES_DB" != 'postgres' ]; then
    "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh) echo "entrypoint: running $f"; . "$f" ;;
      *.sql) echo "entrypoint: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) echo "entrypoint: running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
      *) echo "entrypoint: ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo 'entrypoint: PostgreSQL init process complete; ready for start up.'
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then initialise; fi
exec "$@"
