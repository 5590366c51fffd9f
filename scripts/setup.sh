#!/usr/bin/env bash
# Installs what building and testing the project needs on a fresh Debian machine.
# Idempotent: installs only what is missing.
set -euo pipefail

# libclang-dev: rocksdb's bindings are generated with bindgen at build time.
packages=(libclang-dev)
# With --nodes: the real nodes and broker the end-to-end tests run against.
if [ "${1:-}" = "--nodes" ]; then
  packages+=(litecoind monero nats-server)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
