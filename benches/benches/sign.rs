//! Threshold signing: the processor's whole round (every signer's preprocess, share and
//! aggregation, with messages encoded and decoded and state committed to an in-memory DB)
//! beside bare frost-core signing of the same message(s) with the same keys.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use processor_benches::signing::*;
use processor_core::batch::{batch_message, BatchSigner};
use processor_core::db::{Db, MemDb};
use processor_core::ids::{Attempt, Participant};
use processor_core::keygen::keys::Ed25519;
use processor_core::keygen::KeyShare;
use processor_core::messages::{
    decode, encode, CoordinatorMessage, ProcessorMessage, SignCommand, SignEvent, SignId, SignTarget,
};
use processor_core::transaction::TransactionSigner;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;

/// A message as the wire carries it: encoded, then decoded on the other side.
fn wire<T: bincode::Encode + bincode::Decode<()>>(message: T) -> T {
    decode(&encode(&message)).expect("round trip")
}

fn opaque(message: ProcessorMessage) -> Vec<u8> {
    match wire(message) {
        ProcessorMessage::Sign(SignEvent::Preprocess { preprocess, .. }) => preprocess,
        ProcessorMessage::Sign(SignEvent::Share { share, .. }) => share,
        other => panic!("unexpected {other:?}"),
    }
}

/// One signing step at every signer: `step` gets the signer's index and a transaction.
fn each<S>(
    dbs: &[MemDb],
    signers: &mut [S],
    mut step: impl FnMut(usize, &mut S, &mut processor_core::db::Txn<'_, MemDb>) -> Vec<ProcessorMessage>,
) -> Vec<(Participant, Vec<u8>)> {
    signers
        .iter_mut()
        .enumerate()
        .map(|(index, signer)| {
            let mut txn = dbs[index].txn();
            let messages = step(index, signer, &mut txn);
            txn.commit().expect("in-memory");
            let participant = Participant::from_position(index);
            (participant, messages.into_iter().next().map(opaque).unwrap_or_default())
        })
        .collect()
}

/// Every signer's round-1 nonces and commitments, by identifier.
#[allow(clippy::type_complexity)]
fn commit_all(
    keys: &[KeyShare<Ed25519>],
    rng: &mut ChaCha20Rng,
) -> (
    BTreeMap<frost_core::Identifier<Ed25519>, frost_core::round1::SigningNonces<Ed25519>>,
    BTreeMap<frost_core::Identifier<Ed25519>, frost_core::round1::SigningCommitments<Ed25519>>,
) {
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for key in keys {
        let (nonce, commitment) = frost_core::round1::commit(key.share.signing_share(), rng);
        nonces.insert(*key.share.identifier(), nonce);
        commitments.insert(*key.share.identifier(), commitment);
    }
    (nonces, commitments)
}

fn batch_signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_signing");
    group.sample_size(10);
    for (t, n) in [(3u16, 4u16), (11, 16), (67, 100)] {
        let dbs = bitcoin_signers(n, t, u64::from(n));
        let dbs = &dbs[..usize::from(t)];
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut signers: Vec<BatchSigner> = (0..t).map(|_| BatchSigner::default()).collect();
        let mut attempt = 0u32;
        group.bench_function(BenchmarkId::new("processor_round", format!("{t}-of-{n}")), |b| {
            b.iter(|| {
                attempt += 1;
                // Recorded at every signer (an iterator's `next_back` would record at the last only).
                let batches: Vec<_> = dbs.iter().map(|db| record_batch(db, 10, attempt - 1)).collect();
                let batch = batches[0];
                let id = SignId { session: SESSION, target: SignTarget::Batch(batch), attempt: Attempt(attempt) };
                let preprocesses = each(dbs, &mut signers, |_, signer, txn| {
                    let CoordinatorMessage::Sign(SignCommand::Reattempt { id }) =
                        wire(CoordinatorMessage::Sign(SignCommand::Reattempt { id }))
                    else {
                        unreachable!()
                    };
                    signer.reattempt(txn, &mut rng, id).expect("preprocess")
                });
                let shares = each(dbs, &mut signers, |_, signer, txn| {
                    let command = wire(CoordinatorMessage::Sign(SignCommand::Preprocesses {
                        id,
                        preprocesses: preprocesses.clone(),
                    }));
                    let CoordinatorMessage::Sign(SignCommand::Preprocesses { preprocesses, .. }) = command else {
                        unreachable!()
                    };
                    signer.preprocesses(txn, id, &preprocesses).expect("share")
                });
                for (index, signer) in signers.iter_mut().enumerate() {
                    let mut txn = dbs[index].txn();
                    let signed = signer.shares(&mut txn, id, &shares).expect("signature");
                    assert!(matches!(wire(signed.into_iter().next().expect("signed")), ProcessorMessage::Scanner(_)));
                    txn.commit().expect("in-memory");
                }
            })
        });
        let keys = batch_shares(dbs);
        let message = {
            let batch = record_batch(&dbs[0], 10, 0);
            batch_message(&processor_core::batch::batch(&dbs[0], batch).expect("in-memory").expect("recorded").batch)
        };
        group.bench_function(BenchmarkId::new("bare_frost", format!("{t}-of-{n}")), |b| {
            b.iter(|| {
                let (nonces, commitments) = commit_all(&keys, &mut rng);
                let package = frost_core::SigningPackage::new(commitments, &message);
                let shares: BTreeMap<_, _> = keys
                    .iter()
                    .map(|key| {
                        (
                            *key.share.identifier(),
                            frost_core::round2::sign(&package, &nonces[key.share.identifier()], &key.share)
                                .expect("share"),
                        )
                    })
                    .collect();
                frost_core::aggregate(&package, &shares, &keys[0].public).expect("signature")
            })
        });
        // The same, with what any signer on a network must do besides: each signer reads every
        // commitment from its bytes (frost-ed25519 checks each point has prime order, a scalar
        // multiplication per point), and the aggregator reads every share.
        group.bench_function(BenchmarkId::new("bare_frost_from_bytes", format!("{t}-of-{n}")), |b| {
            b.iter(|| {
                let (nonces, commitments) = commit_all(&keys, &mut rng);
                let commitments: BTreeMap<_, _> =
                    commitments.iter().map(|(id, c)| (*id, c.serialize().expect("serializes"))).collect();
                let shares: BTreeMap<_, _> = keys
                    .iter()
                    .map(|key| {
                        let parsed = commitments
                            .iter()
                            .map(|(id, bytes)| {
                                (*id, frost_core::round1::SigningCommitments::deserialize(bytes).expect("parses"))
                            })
                            .collect();
                        let package = frost_core::SigningPackage::new(parsed, &message);
                        let share = frost_core::round2::sign(&package, &nonces[key.share.identifier()], &key.share)
                            .expect("share");
                        (*key.share.identifier(), share.serialize())
                    })
                    .collect();
                let parsed = commitments
                    .iter()
                    .map(|(id, bytes)| {
                        (*id, frost_core::round1::SigningCommitments::deserialize(bytes).expect("parses"))
                    })
                    .collect();
                let package = frost_core::SigningPackage::new(parsed, &message);
                let shares = shares
                    .iter()
                    .map(|(id, bytes)| (*id, frost_core::round2::SignatureShare::deserialize(bytes).expect("parses")))
                    .collect();
                frost_core::aggregate(&package, &shares, &keys[0].public).expect("signature")
            })
        });
    }
    group.finish();
}

/// One whole transaction signing round at every signer: preprocess, share, signed transaction.
fn transaction_round(dbs: &[MemDb], signers: &mut [TransactionSigner], rng: &mut ChaCha20Rng, id: SignId) {
    let preprocesses = each(dbs, signers, |_, signer, txn| signer.reattempt(txn, rng, id).expect("preprocess"));
    let shares = each(dbs, signers, |_, signer, txn| {
        let command =
            wire(CoordinatorMessage::Sign(SignCommand::Preprocesses { id, preprocesses: preprocesses.clone() }));
        let CoordinatorMessage::Sign(SignCommand::Preprocesses { preprocesses, .. }) = command else { unreachable!() };
        signer.preprocesses(txn, id, &preprocesses).expect("share")
    });
    for (index, signer) in signers.iter_mut().enumerate() {
        let mut txn = dbs[index].txn();
        let completed = signer.shares(&mut txn, id, &shares).expect("signed transaction");
        assert_eq!(completed.len(), 1);
        txn.commit().expect("in-memory");
    }
}

fn bitcoin_transaction_signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("bitcoin_transaction_signing");
    group.sample_size(10);
    let all = bitcoin_signers(4, 3, 44);
    let dbs = &all[..3];
    let keys = chain_shares(dbs);
    for inputs in [1usize, 10, 100] {
        let plan = bitcoin_plan(inputs);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut signers: Vec<TransactionSigner> = (0..3).map(|_| TransactionSigner::default()).collect();
        let mut attempt = 0u32;
        group.bench_function(BenchmarkId::new("processor_round_3_of_4", inputs), |b| {
            b.iter(|| {
                attempt += 1;
                let plan_ids: Vec<_> = dbs.iter().map(|db| record_plan(db, &plan, attempt - 1)).collect();
                let plan_id = plan_ids[0];
                let id =
                    SignId { session: SESSION, target: SignTarget::Transaction(plan_id), attempt: Attempt(attempt) };
                transaction_round(dbs, &mut signers, &mut rng, id);
            })
        });
        // The floor: frost-secp256k1-tr signing each input's sighash with its taproot tweak.
        let internal_key = match processor_core::keygen::active_keys(&dbs[0])
            .expect("in-memory")
            .expect("installed")
            .group_keys()
            .chain
        {
            processor_core::messages::ChainPublicKey::Bitcoin { internal_key } => internal_key,
            processor_core::messages::ChainPublicKey::Monero { .. } => unreachable!(),
        };
        let signable = processor_core::transaction::bitcoin::build(&plan, &internal_key).expect("buildable");
        let sighashes = signable.sighashes().expect("sighashes");
        group.bench_function(BenchmarkId::new("bare_frost_3_of_4", inputs), |b| {
            b.iter(|| {
                for (sighash, root) in sighashes.iter().zip(&signable.roots) {
                    let root = root.as_ref().map(|r| r.as_slice());
                    let mut nonces = BTreeMap::new();
                    let mut commitments = BTreeMap::new();
                    for key in &keys {
                        let (nonce, commitment) =
                            frost_secp256k1_tr::round1::commit(key.share.signing_share(), &mut rng);
                        nonces.insert(*key.share.identifier(), nonce);
                        commitments.insert(*key.share.identifier(), commitment);
                    }
                    let package = frost_secp256k1_tr::SigningPackage::new(commitments, sighash);
                    let shares: BTreeMap<_, _> = keys
                        .iter()
                        .map(|key| {
                            let share = frost_secp256k1_tr::round2::sign_with_tweak(
                                &package,
                                &nonces[key.share.identifier()],
                                &key.share,
                                root,
                            );
                            (*key.share.identifier(), share.expect("share"))
                        })
                        .collect();
                    frost_secp256k1_tr::aggregate_with_tweak(&package, &shares, &keys[0].public, root)
                        .expect("signature");
                }
            })
        });
    }
    group.finish();
}

fn monero_transaction_signing(c: &mut Criterion) {
    use modular_frost::sign::{PreprocessMachine, SignMachine, SignatureMachine};
    let mut group = c.benchmark_group("monero_transaction_signing");
    group.sample_size(10);
    for inputs in [1usize, 4] {
        let fixture = monero_signing(inputs, 50 + inputs as u64);
        let dbs = &fixture.dbs;
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut signers: Vec<TransactionSigner> = (0..3).map(|_| TransactionSigner::default()).collect();
        let mut attempt = 0u32;
        group.bench_function(BenchmarkId::new("processor_round_3_of_4", inputs), |b| {
            b.iter(|| {
                attempt += 1;
                for db in dbs {
                    reset_plan(db, &fixture.record, attempt - 1);
                }
                let id = SignId {
                    session: SESSION,
                    target: SignTarget::Transaction(fixture.record.id),
                    attempt: Attempt(attempt),
                };
                transaction_round(dbs, &mut signers, &mut rng, id);
            })
        });
        // The floor: monero-wallet's own multisig machines on the same transaction, no wire, no
        // DB, one completion.
        let parsed: Vec<monero_wallet::OutputWithDecoys> = fixture
            .inputs
            .iter()
            .map(|bytes| monero_wallet::OutputWithDecoys::read(&mut bytes.as_slice()).expect("parses"))
            .collect();
        let signable = processor_core::transaction::monero::signable(&fixture.record, &fixture.spend_key, parsed)
            .expect("buildable");
        group.bench_function(BenchmarkId::new("bare_monero_wallet_3_of_4", inputs), |b| {
            b.iter(|| {
                let mut machines = Vec::new();
                let mut preprocesses = Vec::new();
                for keys in &fixture.threshold_keys {
                    let machine = signable.clone().multisig(keys.clone()).expect("machine");
                    let (machine, preprocess) = machine.preprocess(&mut rng);
                    machines.push((keys.params().i(), machine));
                    preprocesses.push((keys.params().i(), preprocess));
                }
                let mut signature_machines = Vec::new();
                let mut shares = Vec::new();
                for (me, machine) in machines {
                    let others = preprocesses.iter().filter(|(p, _)| *p != me).cloned().collect();
                    let (machine, share) = machine.sign(others, &[]).expect("share");
                    signature_machines.push((me, machine));
                    shares.push((me, share));
                }
                let (me, machine) = signature_machines.into_iter().next().expect("signers");
                let others = shares.into_iter().filter(|(p, _)| *p != me).collect();
                machine.complete(others).expect("signed")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batch_signing, bitcoin_transaction_signing, monero_transaction_signing);
criterion_main!(benches);
