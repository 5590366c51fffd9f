#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs prerequisites, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== workspace tests"
cargo test --locked --workspace

# The simulation: a madsim build (its own target dir), seeds with every fault on.
echo "== simulation: 200 seeds, 3-of-4, all faults"
scripts/sim.sh --seed 0 --seeds 200
echo "== simulation: 50 seeds with a Byzantine validator"
scripts/sim.sh --seed 10000 --seeds 50 --byzantine
echo "== simulation: determinism (each seed twice, whole-trace hashes compared)"
scripts/sim.sh --seed 20000 --seeds 10 --check-determinism
echo "== simulation: deliberate bugs are caught"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test --release --locked -p sim
