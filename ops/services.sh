#!/usr/bin/env bash
# Makes sure the services Quire's tests talk to are running on this machine: PostgreSQL on
# 127.0.0.1:5432, NATS with JetStream on 127.0.0.1:4222, and an S3-compatible server (moto) on
# 127.0.0.1:9090 for the object-storage tests. Starts whichever is down (Debian packages, as on the
# dev and CI machines; moto from PyPI in a venv under the user's cache) and installs it first if it
# is missing; also installs Chromium for the browser test of /docs.
set -euo pipefail

log() { echo "services: $*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to install $*"; return 1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # NAME COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 0.5
  done
  log "$name did not come up"; return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL
if ! command -v pg_isready >/dev/null 2>&1; then
  apt_install postgresql postgresql-client
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi

# NATS with JetStream (the NATS command bus arrives with its own issue; its tests need it)
if ! command -v nats-server >/dev/null 2>&1; then
  apt_install nats-server
fi
if ! port_open 4222; then
  store_dir=${NATS_STORE_DIR:-/var/lib/nats-server}
  mkdir -p "$store_dir"
  log "starting nats-server with JetStream in $store_dir"
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd "$store_dir" -l /tmp/nats-server.log
  wait_for NATS port_open 4222
fi

# S3-compatible object storage for the object-storage tests: moto's server (in-memory, nothing
# kept across restarts, no bucket made; the tests create theirs). With QUIRE_TEST_S3_URL set the
# tests use that server instead and nothing is done here.
if [ -z "${QUIRE_TEST_S3_URL:-}" ] && ! port_open 9090; then
  moto_version=5.2.6
  moto_venv=${XDG_CACHE_HOME:-$HOME/.cache}/quire/moto-venv
  if ! "$moto_venv/bin/python" -c "import sys, importlib.metadata as m, flask
sys.exit(m.version('moto') != '$moto_version')" >/dev/null 2>&1 \
    || [ ! -x "$moto_venv/bin/moto_server" ]; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      apt_install python3 python3-venv
    fi
    log "installing moto $moto_version into $moto_venv"
    mkdir -p "$(dirname "$moto_venv")"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$moto_version"
  fi
  log "starting moto_server (S3) on 127.0.0.1:9090"
  start-stop-daemon --start --oknodo --background --name moto_server \
    --make-pidfile --pidfile /tmp/moto-server.pid --output /tmp/moto-server.log \
    --startas "$moto_venv/bin/moto_server" -- -H 127.0.0.1 -p 9090
  wait_for "S3 (moto)" port_open 9090
fi

# Chromium, for the test that renders /docs in a real browser (tests/docs_browser.rs).
if [ -z "${QUIRE_TEST_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi
