//! Scanning throughput, each beside its floor:
//! - Bitcoin: real mainnet blocks (413567, pre-SegWit; 866342, mostly SegWit) against bare
//!   consensus decoding of the same bytes and against SHA-256d of exactly the bytes their txids
//!   and wtxids cover; and synthetic blocks of 1,000 and 5,000 Taproot outputs.
//! - Monero: blocks of real RingCT transactions against one variable-base scalar
//!   multiplication per transaction (the floor of view-key scanning) and against
//!   monero-wallet's own scanner on the same block.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use processor_benches::{mainnet_block, monero_block, synthetic_bitcoin_block};
use processor_core::chain;
use processor_core::ids::ExternalChain;
use processor_core::messages::ChainPublicKey;
use std::hint::black_box;
use std::ops::Range;

fn bitcoin(c: &mut Criterion) {
    let mut group = c.benchmark_group("bitcoin_scan");
    let (_, key) = synthetic_bitcoin_block(10, 5, 1);
    let blocks = [
        ("mainnet_413567", mainnet_block()),
        (
            "mainnet_866342",
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/block866342.raw")).ok(),
        ),
    ];
    for (name, bytes) in blocks {
        let Some(bytes) = bytes else {
            eprintln!("shared/data/{}.raw is absent: skipping it", name.replace("mainnet_", "block"));
            continue;
        };
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("{name}/floor_consensus_decode"), |b| {
            b.iter(|| bitcoin::consensus::deserialize::<bitcoin::Block>(black_box(&bytes)).unwrap())
        });
        let covered = covered_ranges(&bytes);
        group.bench_function(format!("{name}/floor_sha256_covered_bytes"), |b| {
            b.iter(|| {
                let bytes = black_box(&bytes[..]);
                covered.iter().fold(0u8, |acc, (txid, whole)| {
                    let txid = sha256d(txid.iter().map(|range| &bytes[range.clone()]));
                    let wtxid = sha256d(std::iter::once(&bytes[whole.clone()]));
                    acc ^ txid[0] ^ wtxid[0]
                })
            })
        });
        // The processor's path: decode, check the merkle root and the witness commitment, scan.
        group.bench_function(format!("{name}/decode_and_scan"), |b| {
            b.iter(|| chain::scan_block(ExternalChain::Bitcoin, black_box(&bytes), &[key]).unwrap())
        });
        // The same without the commitment checks: decode, then scan the parsed block.
        group.bench_function(format!("{name}/decode_and_scan_unchecked"), |b| {
            b.iter(|| {
                let block: bitcoin::Block = bitcoin::consensus::deserialize(black_box(&bytes)).unwrap();
                chain::bitcoin::scan_parsed_block(&block, &[key]).unwrap()
            })
        });
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

/// Per transaction of the block `bytes`, the byte ranges its txid hashes (version, inputs to
/// outputs, lock time: the serialisation without marker, flag and witnesses) and its whole
/// range (what its wtxid hashes), found from the bitcoin crate's sizes.
fn covered_ranges(bytes: &[u8]) -> Vec<(Vec<Range<usize>>, Range<usize>)> {
    let block: bitcoin::Block = bitcoin::consensus::deserialize(bytes).unwrap();
    let mut start = 80 + bitcoin::VarInt::from(block.txdata.len()).size();
    let mut covered = Vec::with_capacity(block.txdata.len());
    for transaction in &block.txdata {
        let (base, end) = (transaction.base_size(), start + transaction.total_size());
        let txid = if end - start == base {
            std::iter::once(start..end).collect()
        } else {
            // Version, then (past marker and flag) inputs and outputs, then the lock time.
            vec![start..start + 4, start + 6..start + 6 + base - 8, end - 4..end]
        };
        covered.push((txid, start..end));
        start = end;
    }
    assert_eq!(start, bytes.len());
    covered
}

/// SHA-256 of SHA-256 of the concatenated `parts`.
fn sha256d<'a>(parts: impl Iterator<Item = &'a [u8]>) -> [u8; 32] {
    use sha2::Digest;
    let first = parts.fold(sha2::Sha256::new(), |hasher, part| hasher.chain_update(part)).finalize();
    sha2::Sha256::digest(first).into()
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
