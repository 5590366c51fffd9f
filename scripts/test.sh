#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs prerequisites, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --nodes

echo "== formatting"
cargo fmt --all --check
echo "== clippy (normal build)"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== clippy (simulation build: the crates the madsim build compiles)"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
  cargo clippy --locked --release -p processor-core -p coordinator -p mock-chains -p sim --all-targets -- -D warnings

echo "== workspace tests (end-to-end ones against litecoind, monerod and nats-server included)"
REQUIRE_NODES=1 cargo test --locked --workspace

# The simulation: a madsim build (its own target dir), seeds with every fault on.
echo "== simulation: 200 seeds, 3-of-4, all faults"
scripts/sim.sh --seed 0 --seeds 200
echo "== simulation: 25 seeds with a validator sending bad key-generation shares"
scripts/sim.sh --seed 10000 --seeds 25 --byzantine keygen
echo "== simulation: 25 seeds with a validator sending bad signature shares"
scripts/sim.sh --seed 11000 --seeds 25 --byzantine signing
echo "== simulation: 20 seeds with a reorganisation deeper than the confirmations (clean halt)"
scripts/sim.sh --seed 12000 --seeds 20 --deep-reorg
echo "== simulation: determinism (each seed twice, whole-trace hashes compared)"
scripts/sim.sh --seed 20000 --seeds 10 --check-determinism
echo "== simulation: deliberate bugs are caught"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test --release --locked -p sim
