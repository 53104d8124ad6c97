#!/usr/bin/env bash
# The whole test suite, from a bare machine: installs what the tests need
# when it is missing, then checks formatting, lints and runs every test.
# `make test` and CI (.ci/run) both run this.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use, installed with apt-get when missing:
# Xvfb (a virtual X server) and Tk for the keyboard-and-mouse tests' windows,
# Chromium, w3m, Prometheus's Python client and promtool for the HTTP tests.
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
updated=""
need() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -e "$cmd" ]; then
        echo "installing $pkg (for $cmd)"
        if [ -z "$updated" ]; then
            $sudo apt-get update -qq
            updated=1
        fi
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
    fi
}
need kill procps
need cc gcc   # rusqlite builds SQLite from source (bundled)
need Xvfb xvfb
need /usr/bin/python3 python3
if ! /usr/bin/python3 -c 'import tkinter' >/dev/null 2>&1; then
    need /nonexistent-tk python3-tk
fi
# Headless Chromium renders the status page; Prometheus's own Python
# client parses /metrics.
need chromium chromium
need w3m w3m   # a browser that runs no JavaScript
need tmux tmux # terminal agents' panes
need /usr/sbin/nats-server nats-server # several machines: NATS with JetStream
if ! /usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    need /nonexistent-prometheus-client python3-prometheus-client
fi
# promtool checks /metrics in the Prometheus text format. Debian ships it
# in the prometheus package, which also starts a Prometheus server where
# systemd runs: the tests want only promtool, so that server is stopped.
if ! command -v promtool >/dev/null 2>&1; then
    need promtool prometheus
    if [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi

# Python's MCP SDK (the official client, from PyPI) for the MCP tests, in
# a virtual environment of the build's own.
if ! target/mcp-venv/bin/python -c 'import mcp' >/dev/null 2>&1; then
    if ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
        need /nonexistent-venv python3-venv
    fi
    echo "installing Python's mcp SDK into target/mcp-venv"
    rm -rf target/mcp-venv
    mkdir -p target
    /usr/bin/python3 -m venv target/mcp-venv
    target/mcp-venv/bin/pip install -q 'mcp==2.3.0'
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust from https://rustup.rs (or your distribution), then run this again" >&2
    exit 1
fi

# Each step says how long it took (bash's SECONDS), so a slow run shows
# where its time went.
step() {
    local name=$1
    shift
    echo "== $name"
    local started=$SECONDS
    "$@"
    echo "== $name: $((SECONDS - started)) s"
}
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
step "cargo test (build)" cargo test --locked --no-run
step "cargo test" cargo test --locked
