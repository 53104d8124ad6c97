#!/usr/bin/env bash
# The backup benchmark against restic: installs restic and zstd from
# Debian's packages when missing, then runs `cargo bench --bench backup`
# (a generated 1 GiB tree under target/; ACP_BENCH_TREE_MIB changes it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo bench --locked --bench backup
