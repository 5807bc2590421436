#!/usr/bin/env bash
# Makes a PostgreSQL server with the pgvector extension available for tests and
# writes its connection URL to .deps/test-database-url.
#
# Order of preference:
#   1. TEST_DATABASE_URL, when set (used as is; must already have pgvector available);
#   2. the local server on 127.0.0.1:5432 (started with pg_ctlcluster if it is down);
#   3. a private cluster in .deps/pgdata on a free port, after installing Debian's
#      PostgreSQL when no server is installed (TANDEM_PG_PRIVATE=1 forces this).
# When `CREATE EXTENSION vector` fails, pgvector is built from Debian's source
# package (trixie deb-src, through a private apt sources list; the system's
# sources are not touched) against postgresql-server-dev-<major>.
# Idempotent: when the server answers and the extension is available it only
# rewrites the URL file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps"
urlfile="$deps/test-database-url"
export PGCONNECT_TIMEOUT=5

sudo_apt() { DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then sudo_apt update -qq >/dev/null; apt_updated=1; fi
  sudo_apt install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

can_connect() { psql "$1" -XtAc 'select 1' >/dev/null 2>&1; }

url="${TEST_DATABASE_URL:-}"
if [[ -z "$url" ]]; then
  local_url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  if ! command -v psql >/dev/null; then apt_install postgresql-client; fi
  if [[ "${TANDEM_PG_PRIVATE:-0}" == 1 ]]; then
    : # forced private cluster (used to exercise the fresh-machine path)
  elif can_connect "$local_url"; then
    url="$local_url"
  elif [[ "${TANDEM_PG_PRIVATE:-0}" != 1 ]] && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    ver="$(ls /etc/postgresql | sort -V | tail -n1)"
    echo "deps: starting local PostgreSQL $ver cluster"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 30); do can_connect "$local_url" && break; sleep 1; done
    can_connect "$local_url" && url="$local_url"
  fi
  if [[ -z "$url" ]]; then
    # Private cluster in a git-ignored folder on a free port.
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      echo "deps: installing Debian's PostgreSQL"
      apt_install postgresql
    fi
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    pgdata="$deps/pgdata"
    portfile="$deps/pgport"
    if [[ ! -f "$pgdata/PG_VERSION" ]]; then
      rm -rf "$pgdata"; mkdir -p "$pgdata"
      chown -R postgres "$deps/pgdata" 2>/dev/null || true
      runas=(); [[ $(id -u) == 0 ]] && runas=(runuser -u postgres --)
      "${runas[@]}" "$bindir/initdb" -D "$pgdata" -U postgres -A trust >/dev/null
      python3 - > "$portfile" <<'PY'
import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])
PY
    fi
    port="$(cat "$portfile")"
    url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    if ! can_connect "$url"; then
      runas=(); [[ $(id -u) == 0 ]] && runas=(runuser -u postgres --)
      "${runas[@]}" "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" -w start >/dev/null
    fi
  fi
fi
# Shown without its password (a TEST_DATABASE_URL may carry one).
shown_url=$(printf '%s' "$url" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#')
can_connect "$url" || { echo "deps-postgres: cannot connect to $shown_url" >&2; exit 1; }

# pgvector: try the extension in a scratch database.
has_vector() {
  psql "$url" -XtAc "select 1 from pg_available_extensions where name='vector'" 2>/dev/null | grep -q 1
}
if ! has_vector; then
  major="$(psql "$url" -XtAc 'show server_version_num' | cut -c1-2)"
  echo "deps: building pgvector for PostgreSQL $major from Debian's source package"
  apt_install "postgresql-server-dev-$major" build-essential dpkg-dev
  work="$deps/pgvector-src"
  rm -rf "$work"; mkdir -p "$work/lists/partial"
  cat > "$work/sources.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  aptopts=(-o "Dir::Etc::sourcelist=$work/sources.sources" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists")
  apt-get "${aptopts[@]}" update -qq >/dev/null
  (cd "$work" && apt-get "${aptopts[@]}" source --download-only pgvector >/dev/null 2>&1 && dpkg-source -x --no-check pgvector_*.dsc src >/dev/null)
  pgconfig="/usr/lib/postgresql/$major/bin/pg_config"
  make -s -C "$work/src" PG_CONFIG="$pgconfig" >/dev/null
  make -s -C "$work/src" PG_CONFIG="$pgconfig" install >/dev/null
  has_vector || { echo "deps-postgres: pgvector built but not available to the server at $shown_url" >&2; exit 1; }
  echo "deps: pgvector installed"
fi
printf '%s\n' "$url" > "$urlfile"
