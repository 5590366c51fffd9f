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

# The simulation: a madsim build (its own target dir), 540 seeds in all. The swarm first: every
# seed draws its own shape and adversaries (a failing seed prints `scripts/sim.sh --swarm --seed S`).
# Every seed run here passes on this code.
echo "== simulation: 260 swarm seeds (shapes, fault rates and adversaries drawn per seed)"
scripts/sim.sh --swarm --seed 0 --seeds 260
echo "== simulation: 180 seeds, 3-of-4, every fault and hostile depositor on, nodes behind and lying"
scripts/sim.sh --seed 0 --seeds 180
echo "== simulation: 40 seeds with a faulty coordinator"
scripts/sim.sh --seed 13000 --seeds 40 --byzantine coordinator
echo "== simulation: 40 seeds of the standard scenario with up to two key rotations each"
scripts/sim.sh --seed 14000 --seeds 40 --rotations 2
echo "== simulation: 18 seeds with a reorganisation deeper than the confirmations (clean halt)"
scripts/sim.sh --seed 12000 --seeds 18 --deep-reorg
echo "== simulation: determinism (2 swarm seeds, each run twice, whole-trace hashes compared)"
scripts/sim.sh --swarm --seed 1 --seeds 2 --check-determinism
echo "== simulation: deliberate bugs are caught, each by its invariant"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test --release --locked -p sim
