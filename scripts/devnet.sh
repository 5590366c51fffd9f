#!/usr/bin/env bash
# The main job on its embedded defaults: a local devnet of a coordinator and several
# processors in one process. Extra arguments go to the devnet (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked -p devnet -- "$@"
