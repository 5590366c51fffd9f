#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs prerequisites, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== workspace tests"
cargo test --locked --workspace
