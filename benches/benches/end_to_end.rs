//! End to end, in process: from a final block's bytes to its signed Batch at 4 processors
//! (3-of-4) and a coordinator, over a prompt in-process network. Key generation is set-up and
//! not timed.

use coordinator::local::{Faults, LocalNetwork};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use processor_benches::end_to_end::{chain_with_deposits, SyntheticBitcoin};
use processor_core::ids::{ExternalChain, Millis, SessionId};
use processor_core::messages::ChainPublicKey;
use std::time::{Duration, Instant};

const CONFIRMATIONS: u64 = 3;

fn network_with_keys(seed: u64, chain: &SyntheticBitcoin) -> (LocalNetwork, [u8; 32]) {
    let mut network = LocalNetwork::new(4, ExternalChain::Bitcoin, seed, Faults::none());
    network.attach_chain(Box::new(chain.clone()), CONFIRMATIONS);
    network.start_keygen(SessionId(1), 3, None);
    let active =
        |net: &LocalNetwork| (0..4).all(|i| processor_core::keygen::active_keys(net.db(i)).ok().flatten().is_some());
    assert!(network.run_until(Millis(60_000), active), "key generation did not finish");
    let keys = processor_core::keygen::active_keys(network.db(0)).expect("in-memory").expect("active").group_keys();
    let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { unreachable!("a Bitcoin session") };
    (network, internal_key)
}

fn block_to_signed_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("block_to_signed_batch");
    group.sample_size(10);
    for outputs in [100usize, 1_000] {
        group.throughput(Throughput::Elements(outputs as u64));
        group.bench_function(BenchmarkId::new("4_processors_3_of_4", outputs), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for iteration in 0..iterations {
                    let chain = SyntheticBitcoin::default();
                    let (mut network, internal_key) = network_with_keys(iteration, &chain);
                    *chain.blocks.borrow_mut() = chain_with_deposits(&internal_key, outputs, CONFIRMATIONS);
                    let started = Instant::now();
                    let signed = network.run_until(Millis(network.now().0 + 600_000), |net| {
                        net.coordinator().signed_batches().count() == 1
                    });
                    total += started.elapsed();
                    assert!(signed, "the Batch was not signed");
                    let (batch, _) = network.coordinator().signed_batches().next().expect("signed");
                    assert_eq!(batch.instructions.len(), outputs);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, block_to_signed_batch);
criterion_main!(benches);
