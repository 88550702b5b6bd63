#!/usr/bin/env bash
# `make docker-test`: the Docker path as a user takes it. Brings up compose.yaml as it is (with
# docker/compose.ci.yaml on top: published ports on 127.0.0.2) and runs the commands of the Docker
# section of docs/operations.md against it, checking their documented output. Installs the engine if missing,
# starts dockerd only if none runs, and builds stand-in base images with debootstrap when the
# official ones cannot be pulled. Cleans up what it started, even when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=${ALLIES_DOCKER_HOST:-127.0.0.2}
STANDIN_BASE=allies-standin/bookworm:py3-pg15-nginx
STANDIN_POSTGRES=allies-standin/postgres:15
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export COMPOSE_FILE=compose.yaml:docker/compose.ci.yaml COMPOSE_PROJECT_NAME=allies-docker-test
export ALLIES_DOCKER_HOST=$HOST

work=$(mktemp -d)
daemon_pid=""
say() { echo "docker-test: $*" >&2; }
elapsed() { echo "$((SECONDS - $1)) s"; }

cleanup() {
    set +e
    if docker info >/dev/null 2>&1; then
        COMPOSE_PROFILES=scale docker compose down --volumes --remove-orphans --rmi local >"$work/down.log" 2>&1 \
            || { say "compose down failed:"; cat "$work/down.log" >&2; }
    fi
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" && wait "$daemon_pid"
        say "stopped the dockerd it started"
    fi
    rm -rf "$work" .wheelhouse
}
trap cleanup EXIT

install_missing_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_daemon() {
    docker info >/dev/null 2>&1 && return
    say "starting dockerd"
    dockerd >"$work/dockerd.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.5
    done
    say "dockerd did not start:"; tail -20 "$work/dockerd.log" >&2
    exit 1
}

# `docker compose` (v2) when the machine has only compose v1: a CLI plugin that hands over to it.
provide_compose_command() {
    docker compose version >/dev/null 2>&1 && return
    mkdir -p "$work/docker-config/cli-plugins"
    cat >"$work/docker-config/cli-plugins/docker-compose" <<'SHIM'
#!/bin/sh
if [ "${1:-}" = docker-cli-plugin-metadata ]; then
    echo '{"SchemaVersion":"0.1.0","Vendor":"allies docker-test","Version":"v1","ShortDescription":"docker-compose v1"}'
    exit 0
fi
shift # called as: docker-compose compose ARGS...
exec docker-compose "$@"
SHIM
    chmod +x "$work/docker-config/cli-plugins/docker-compose"
    export DOCKER_CONFIG="$work/docker-config"
}

# Without a registry: a Debian base made by debootstrap (Python, PostgreSQL and nginx from Debian's
# packages; it stands in for the balancer's image too), the postgres stand-in on it, and the app's
# dependencies as wheels built here.
use_standin_images() {
    if ! docker image inspect "$STANDIN_BASE" >/dev/null 2>&1; then
        local start=$SECONDS rootfs="$work/rootfs"
        say "building $STANDIN_BASE with debootstrap from $DEBIAN_MIRROR"
        debootstrap --variant=minbase --include=python3,python3-venv,postgresql-15,nginx-light \
            bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
            || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . | docker import - "$STANDIN_BASE" >/dev/null
        rm -rf "$rootfs"
        say "$STANDIN_BASE built in $(elapsed "$start")"
    fi
    docker build --quiet --build-arg BASE_IMAGE="$STANDIN_BASE" -t "$STANDIN_POSTGRES" \
        docker/postgres-standin >/dev/null
    .venv/bin/pip wheel --quiet --wheel-dir .wheelhouse . 'setuptools>=77' >"$work/wheels.log" 2>&1 \
        || { cat "$work/wheels.log" >&2; exit 1; }
    export PYTHON_IMAGE=$STANDIN_BASE POSTGRES_IMAGE=$STANDIN_POSTGRES NGINX_IMAGE=$STANDIN_BASE
    export PIP_OPTIONS="--no-index --find-links=.wheelhouse"
}

start=$SECONDS
install_missing_tools
start_daemon
provide_compose_command
if docker pull -q python:3.12-slim >/dev/null 2>&1 && docker pull -q postgres:16 >/dev/null 2>&1 \
    && docker pull -q nginx:1.27 >/dev/null 2>&1; then
    say "using the official images"
else
    say "no image registry: using stand-in images"
    use_standin_images
fi
say "engine and images ready in $(elapsed $start)"
COMPOSE_PROFILES=scale docker compose down --volumes --remove-orphans >/dev/null 2>&1 # a previous run killed midway
.venv/bin/python tests/docrunner.py --run-by docker-test --host "$HOST" --timeout 900 docs/operations.md
say "docs/operations.md's Docker section passed in $(elapsed $start) in all"
