#!/usr/bin/env bash
# Creates a demo root (./demo, or $ACP_ROOT) if there is none, and runs the
# service on it until Ctrl-C. `make run` runs this. The acp it runs:
# $ACP_BIN, else an acp on PATH (`make install`), else one built here.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${ACP_BIN:-}" ]; then
    acp=$ACP_BIN
elif command -v acp >/dev/null 2>&1; then
    acp=$(command -v acp)
else
    if ! command -v cargo >/dev/null 2>&1; then
        echo "no acp on PATH and no cargo to build one: install Rust from https://rustup.rs (or your distribution), or set ACP_BIN to an acp binary" >&2
        exit 1
    fi
    if ! command -v cc >/dev/null 2>&1; then
        echo "installing gcc (SQLite is built from source)"
        if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gcc >/dev/null
    fi
    cargo build --release --locked
    acp=target/release/acp
fi
echo "using $acp ($("$acp" --version); set ACP_BIN to run another)"
root=${ACP_ROOT:-demo}

if [ ! -f "$root/config/acp.toml" ]; then
    "$acp" --root "$root" init --agents 4
    # Something to see at once: a welcome in every agent's inbox.
    "$acp" --root "$root" broadcast --from acp --kind system \
        "acp is running. Reply with: acp send --to Agent-1 \"your message\"" >/dev/null
    echo
    echo "welcome message delivered: ls $root/agent_workspaces/*/inbox/"
fi

bind=$(sed -n 's/^bind = "\(.*\)"/\1/p' "$root/config/acp.toml" | head -1)
echo "acp run on $root (Ctrl-C stops it). Status page: http://${bind:-127.0.0.1:7420}/"
echo "In another terminal, try:"
echo "  $acp --root $root send --to Agent-2 --wait \"hello\""
echo "  $acp --root $root status"
exec "$acp" --root "$root" run
