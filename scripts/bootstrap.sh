#!/usr/bin/env bash
# Sourced by scripts/demo and scripts/test: makes sure the system packages and
# the project's virtualenv (.venv) are there, installing what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! command -v apt-get >/dev/null; then
        echo "error: need system packages ($*) but apt-get is not available; install them with your package manager" >&2
        exit 1
    fi
    say "installing system packages: $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

# ensure_command COMMAND DEBIAN_PACKAGE
ensure_command() {
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "error: Python >= 3.11 is required ($PYTHON is too old)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
    say "creating the virtualenv .venv"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi

# Reinstall only when pyproject.toml changed since the last install.
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    say "installing the project and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# ensure_postgres: the PostgreSQL server the cloud's tests run against (tests/cloud/conftest.py):
# listening on 127.0.0.1:5432, with a role and a database both named sitecontroller_test (the
# password is the name too: a throwaway test database, never a production one). Installs the
# server with apt when missing, creates and starts a cluster when none answers, and creates the
# role and the database when absent; every test makes its own schema in it and drops it after.
# With CLOUD_TEST_POSTGRES_URL set the tests use that server instead, and this does nothing.
PG_TEST_NAME=sitecontroller_test
ensure_postgres() {
    [ -z "${CLOUD_TEST_POSTGRES_URL:-}" ] || return 0
    local sudo="" as_postgres version
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_isready >/dev/null; then
        apt_install postgresql
    fi
    if [ -z "$sudo" ]; then as_postgres="runuser -u postgres --"; else as_postgres="sudo -u postgres"; fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
        if ! pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}' | grep -qx "$version/main"; then
            say "creating the PostgreSQL cluster $version/main"
            $sudo pg_createcluster "$version" main >/dev/null
        fi
        say "starting PostgreSQL $version/main"
        $sudo pg_ctlcluster "$version" main start || true    # "already running" on another port is fine below
        for _ in $(seq 100); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 0.1
        done
        if ! pg_isready -q -h 127.0.0.1 -p 5432; then
            echo "error: PostgreSQL does not answer on 127.0.0.1:5432 (see pg_lsclusters and its log)" >&2
            exit 1
        fi
    fi
    if [ "$($as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_TEST_NAME'")" != 1 ]; then
        say "creating the PostgreSQL role and database $PG_TEST_NAME (for the tests)"
        $as_postgres psql -qc "CREATE ROLE $PG_TEST_NAME LOGIN PASSWORD '$PG_TEST_NAME'" >/dev/null
    fi
    if [ "$($as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname = '$PG_TEST_NAME'")" != 1 ]; then
        $as_postgres createdb -O "$PG_TEST_NAME" "$PG_TEST_NAME"
    fi
}
