//! Scanning throughput, each beside its floor:
//! - Bitcoin: the real mainnet block against bare consensus decoding of the same bytes; and
//!   synthetic blocks of 1,000 and 5,000 Taproot outputs.
//! - Monero: blocks of real RingCT transactions against one variable-base scalar
//!   multiplication per transaction (the floor of view-key scanning) and against
//!   monero-wallet's own scanner on the same block.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use processor_benches::{mainnet_block, monero_block, synthetic_bitcoin_block};
use processor_core::chain;
use processor_core::ids::ExternalChain;
use processor_core::messages::ChainPublicKey;
use std::hint::black_box;

fn bitcoin(c: &mut Criterion) {
    let mut group = c.benchmark_group("bitcoin_scan");
    if let Some(bytes) = mainnet_block() {
        let (_, key) = synthetic_bitcoin_block(10, 5, 1);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("mainnet_413567/floor_consensus_decode", |b| {
            b.iter(|| bitcoin::consensus::deserialize::<bitcoin::Block>(black_box(&bytes)).unwrap())
        });
        // The file's transactions do not hash to its header's merkle root, so the full
        // `scan_block` (which checks it) refuses it: decode and scan, without the check.
        group.bench_function("mainnet_413567/decode_and_scan", |b| {
            b.iter(|| {
                let block: bitcoin::Block = bitcoin::consensus::deserialize(black_box(&bytes)).unwrap();
                chain::bitcoin::scan_parsed_block(&block, &[key]).unwrap()
            })
        });
    } else {
        eprintln!("shared/data/block413567.raw is absent: skipping the mainnet block");
    }
    for outputs in [1_000usize, 5_000] {
        let (bytes, key) = synthetic_bitcoin_block(outputs, 10, outputs as u64);
        group.throughput(Throughput::Elements(outputs as u64));
        group.bench_with_input(
            BenchmarkId::new("synthetic_outputs/floor_consensus_decode", outputs),
            &bytes,
            |b, bytes| b.iter(|| bitcoin::consensus::deserialize::<bitcoin::Block>(black_box(bytes)).unwrap()),
        );
        group.bench_with_input(BenchmarkId::new("synthetic_outputs/scan_block", outputs), &bytes, |b, bytes| {
            b.iter(|| chain::scan_block(ExternalChain::Bitcoin, black_box(bytes), &[key]).unwrap())
        });
    }
    group.finish();
}

fn monero(c: &mut Criterion) {
    use curve25519_dalek::{constants::ED25519_BASEPOINT_POINT, Scalar};
    let mut group = c.benchmark_group("monero_scan");
    group.sample_size(20);
    for transactions in [100usize, 1_000] {
        let (bytes, scannable, key) = monero_block(transactions, 10, 7);
        group.throughput(Throughput::Elements(transactions as u64));
        group.bench_function(BenchmarkId::new("floor_one_scalar_mult_per_tx", transactions), |b| {
            let point = ED25519_BASEPOINT_POINT * Scalar::from(12345u64);
            let scalar = Scalar::from(987654321u64);
            b.iter(|| (0..transactions).map(|_| black_box(scalar) * black_box(point)).fold(point, |a, p| a + p))
        });
        group.bench_function(BenchmarkId::new("monero_wallet_scanner", transactions), |b| {
            let ChainPublicKey::Monero { spend_key } = key.key else { unreachable!() };
            let pair = chain::monero::view_pair(&spend_key).unwrap();
            b.iter(|| monero_wallet::Scanner::new(pair.clone()).scan(black_box(scannable.clone())).unwrap())
        });
        group.bench_function(BenchmarkId::new("scan_block", transactions), |b| {
            b.iter(|| chain::scan_block(ExternalChain::Monero, black_box(&bytes), &[key]).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bitcoin, monero);
criterion_main!(benches);
