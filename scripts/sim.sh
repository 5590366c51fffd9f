#!/usr/bin/env bash
# Runs the deterministic simulation (a madsim build in its own target dir). Arguments go to
# `sim` (try --help): e.g. scripts/sim.sh --seeds 200, or --seed 17 to replay one seed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export RUSTFLAGS="--cfg madsim"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_MADSIM:-target/madsim}"
exec cargo run --release --locked -q -p sim -- "$@"
