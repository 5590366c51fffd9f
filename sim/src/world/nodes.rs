//! The IO edges of the simulated nodes: the processor's and the coordinator's event loops over
//! madsim's network, clock and the simulated chain. The cores they drive are the production ones.

use super::link::{SimCoordinatorLink, SimProcessorLink};
use super::storage::{self, FaultyDb};
use super::{coordinator_addr, describe, lock, node_view, processor_addr, Shared, TICK};
use crate::scenario::Byzantine;
use crate::Invariant;
use coordinator::{byzantine, Outbound};
use madsim::net::Endpoint;
use madsim::time::{timeout, Instant};
use processor_core::core::{Config, CoreError, Effect, Event, Processor, ProofOfWork};
use processor_core::crypto::Identity;
use processor_core::ids::{BlockHeight, Millis};
use processor_core::inspect::Inspector;
use processor_core::link::{CoordinatorLink, ProcessorLink};
use processor_core::messages::{
    decode, CoordinatorMessage, Envelope, Frame, ProcessorMessage, SignEvent, SignedEnvelope,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::VecDeque;
use std::sync::Arc;

pub(super) async fn processor_node(shared: Arc<Shared>, index: usize) {
    let endpoint = match Endpoint::bind(processor_addr(index)).await {
        Ok(endpoint) => endpoint,
        Err(error) => panic!("processor {index} cannot bind: {error}"),
    };
    let mut link = SimProcessorLink { endpoint };
    let config = Config {
        chain: shared.chain_kind,
        coordinator: lock(&shared.coordinator).peer_key(),
        confirmations: shared.scenario.confirmations,
        // The mock chain mines at regtest difficulty.
        proof_of_work: ProofOfWork::REGTEST,
        retirement_window: coordinator::local::DEFAULT_RETIREMENT_WINDOW,
    };
    let mut core = open_core(&shared, index, config.clone());
    let mut next_tick = Instant::now() + TICK;
    loop {
        let mut events = VecDeque::new();
        // A tick that is due fires before any more traffic is read: a steady inflow must not
        // starve retransmission and chain polling.
        let now = Instant::now();
        let received =
            if now >= next_tick { Err(()) } else { timeout(next_tick - now, link.recv()).await.map_err(|_| ()) };
        match received {
            Ok(Ok(bytes)) => {
                shared.record(format!("processor {index} <- {}", describe(&bytes, true)));
                events.push_back(Event::Inbound(bytes));
            }
            Ok(Err(_)) => continue,
            Err(()) => {
                next_tick = Instant::now() + TICK;
                events.push_back(Event::Tick { now: Millis(shared.elapsed_ms()) });
                if let Some(tip) = node_view::tip(&shared, index) {
                    events.push_back(Event::ChainTip { height: BlockHeight(tip) });
                }
            }
        }
        while let Some(event) = events.pop_front() {
            let redelivery = matches!(&event, Event::Inbound(bytes) if redelivered(&shared, index, bytes));
            if redelivery {
                shared.dbs[index].watch_changes();
            }
            // A command handled on a halted chain must sign nothing (resends on ticks are of
            // messages made before the halt).
            let halted = matches!(event, Event::Inbound(_))
                && Inspector::new(&shared.dbs[index]).halted().ok().flatten().is_some();
            let served = node_view::served(&shared, index, &event);
            let outcome = match core.handle(event) {
                Ok(outcome) => outcome,
                // The daemon exits on a failed commit and is restarted on what the disk holds:
                // whatever was queued is gone with the process.
                Err(CoreError::Db(error)) if storage::injected(&error) => {
                    restarts_after(&shared, index, &error);
                    // A redelivery being watched ends with the process.
                    shared.dbs[index].changed_since_watch();
                    events.clear();
                    core = open_core(&shared, index, config.clone());
                    continue;
                }
                Err(error) => panic!("processor {index} storage failed: {error}"),
            };
            if let Some(served) = served {
                node_view::handled(&shared, index, served, &outcome, core.counters());
            }
            let effects = outcome.effects;
            if redelivery {
                check_no_second_effect(&shared, index, &effects);
            }
            for effect in effects {
                perform(&shared, index, &mut link, effect, &mut events, halted).await;
            }
        }
    }
}

/// A processor process starting on its store (a restart is a new process: new randomness, drawn
/// from the simulation's seeded RNG).
/// Opening may commit too (a first schema stamp): a failed commit there restarts it the same way.
fn open_core(shared: &Arc<Shared>, index: usize, config: Config) -> Processor<FaultyDb, ChaCha20Rng> {
    loop {
        let rng = ChaCha20Rng::seed_from_u64(madsim::rand::random());
        let db = FaultyDb::new(shared.dbs[index].clone(), shared.storage_faults[index].clone());
        match Processor::open(db, shared.identities[index].clone(), config.clone(), rng) {
            Ok(core) => {
                shared.record(format!("processor {index} starts"));
                node_view::processor_started(shared, index);
                return core;
            }
            Err(CoreError::Db(error)) if storage::injected(&error) => restarts_after(shared, index, &error),
            Err(error) => panic!("processor {index} cannot open its store: {error}"),
        }
    }
}

/// Records and counts a failed commit of processor `index`, after which it restarts.
fn restarts_after(shared: &Shared, index: usize, error: &processor_core::db::DbError) {
    shared.record(format!("fault: processor {index}: {error}; it restarts"));
    lock(&shared.faults).storage_faults += 1;
}

/// Performs one of processor `index`'s effects: sends (corrupted first if this validator is
/// the Byzantine one), answers from the chain (queued in `events`), publishes.
async fn perform(
    shared: &Shared,
    index: usize,
    link: &mut SimProcessorLink,
    effect: Effect,
    events: &mut VecDeque<Event>,
    halted: bool,
) {
    match effect {
        Effect::Send(bytes) => {
            let identity = &shared.identities[index];
            let bytes = match shared.byzantine() {
                Some((byzantine, Byzantine::KeyGen)) if byzantine == index => {
                    byzantine::corrupt_keygen_shares(identity, &lock(&shared.coordinator), bytes)
                }
                Some((byzantine, Byzantine::Signing)) if byzantine == index => {
                    byzantine::corrupt_signature_shares(identity, &lock(&shared.coordinator), bytes)
                }
                _ => bytes,
            };
            observe_outbound(shared, index, &bytes, halted);
            node_view::observe_report(shared, index, &bytes);
            shared.record(format!("processor {index} -> {}", describe(&bytes, false)));
            let _ = link.send(bytes).await;
        }
        Effect::FetchBlock { height } => {
            if let Some(bytes) = node_view::fetch_block(shared, index, height.0) {
                events.push_back(Event::Block { height, bytes });
            }
        }
        Effect::SelectDecoys(request) => {
            let inputs = node_view::select_decoys(shared, index, &request);
            match inputs {
                Some(Ok(inputs)) => events.push_back(Event::Decoys { plan: request.plan, inputs }),
                other => shared.record(format!("processor {index}: ring selection failed: {other:?}")),
            }
        }
        Effect::Publish { transaction } => {
            observe_publication(shared, index, &transaction);
            match node_view::publish(shared, index, &transaction) {
                Some(result) => {
                    shared.record(format!(
                        "processor {index} publishes a transaction: {:?}",
                        result.as_ref().map_err(super::chain::Refusal::reason)
                    ));
                    if let Err(super::chain::Refusal::Policy(reason)) = result {
                        shared.violate(
                            Invariant::SignedTransactionRelays,
                            format!("processor {index} published a transaction no node relays: {reason}"),
                        );
                    }
                }
                None => shared.record(format!("processor {index} publishes a transaction: its node does not answer")),
            }
        }
    }
}

/// The envelope in wire bytes, decoded without checking its signature: a cheap first look, so
/// the checks below verify a signature (`Envelope::open`) only where the content matters.
fn peek_inbound(bytes: &[u8]) -> Option<Envelope<CoordinatorMessage>> {
    let signed: SignedEnvelope = decode(bytes).ok()?;
    decode(&signed.envelope).ok()
}

/// [`peek_inbound`] for what a processor sends.
fn peek_outbound(bytes: &[u8]) -> Option<Envelope<ProcessorMessage>> {
    let signed: SignedEnvelope = decode(bytes).ok()?;
    decode(&signed.envelope).ok()
}

/// Whether inbound bytes are a data frame this processor already handled.
fn redelivered(shared: &Shared, index: usize, bytes: &[u8]) -> bool {
    let Some(Envelope { frame: Frame::Data { seq, .. }, .. }) = peek_inbound(bytes) else { return false };
    if !Inspector::new(&shared.dbs[index]).handled_through().is_ok_and(|handled| seq <= handled) {
        return false;
    }
    let coordinator = lock(&shared.coordinator).peer_key();
    let me = shared.identities[index].peer_key();
    Envelope::<CoordinatorMessage>::open(bytes, &me, |s| *s == coordinator).is_ok()
}

/// A redelivered frame may only be acknowledged again: no state change (the DB was watched
/// while it was handled), no new message.
fn check_no_second_effect(shared: &Shared, index: usize, effects: &[Effect]) {
    if shared.dbs[index].changed_since_watch() {
        shared.violate(
            Invariant::RedeliveryChangesNothing,
            format!("processor {index} changed its state handling a redelivered frame"),
        );
    }
    let coordinator = lock(&shared.coordinator).peer_key();
    for effect in effects {
        let Effect::Send(bytes) = effect else { continue };
        if !matches!(peek_outbound(bytes), Some(Envelope { frame: Frame::Data { .. }, .. })) {
            continue;
        }
        if let Ok(envelope) = Envelope::<ProcessorMessage>::open(bytes, &coordinator, |_| true) {
            if let Frame::Data { message, .. } = envelope.frame {
                shared.violate(
                    Invariant::RedeliverySendsNothing,
                    format!("processor {index} sent {message:?} for a redelivered frame"),
                );
            }
        }
    }
}

/// Watches every signed transaction a processor publishes: the group must never sign two
/// different transactions spending the same output (two versions of a plan, or two plans).
/// For Monero "different" means different inputs, outputs, amounts or fee: two signing attempts
/// of one plan differ only in their signatures and proofs.
fn observe_publication(shared: &Shared, index: usize, bytes: &[u8]) {
    use bitcoin::hashes::Hash;
    use sha2::Digest;
    // What each transaction spends: Bitcoin outpoints; Monero key images.
    let (txid, spent): (Vec<u8>, Vec<Vec<u8>>) = match shared.chain_kind {
        processor_core::ids::ExternalChain::Bitcoin => {
            let Ok(transaction) = bitcoin::consensus::deserialize::<bitcoin::Transaction>(bytes) else {
                shared.violate(
                    Invariant::PublishedTransactionDecodes,
                    format!("processor {index} published undecodable bytes"),
                );
                return;
            };
            let spent = transaction
                .input
                .iter()
                .map(|input| processor_core::chain::bitcoin::output_id(&input.previous_output).0)
                .collect();
            (transaction.compute_txid().to_byte_array().to_vec(), spent)
        }
        processor_core::ids::ExternalChain::Monero => {
            let Ok(transaction) =
                monero_wallet::transaction::Transaction::<monero_wallet::transaction::NotPruned>::read(&mut &*bytes)
            else {
                shared.violate(
                    Invariant::PublishedTransactionDecodes,
                    format!("processor {index} published undecodable bytes"),
                );
                return;
            };
            let spent = transaction
                .prefix()
                .inputs
                .iter()
                .filter_map(|input| match input {
                    monero_wallet::transaction::Input::ToKey { key_image, .. } => Some(key_image.to_bytes().to_vec()),
                    monero_wallet::transaction::Input::Gen(_) => None,
                })
                .collect();
            // Signatures and proofs differ between two signing attempts of the same plan (Monero's
            // hash covers them); what must never differ is everything else: inputs, outputs,
            // amounts, fee.
            let mut version = Vec::new();
            for input in &transaction.prefix().inputs {
                version.extend(input.serialize());
            }
            for output in &transaction.prefix().outputs {
                version.extend(output.serialize());
            }
            version.extend(&transaction.prefix().extra);
            if let monero_wallet::transaction::Transaction::V2 { proofs: Some(proofs), .. } = &transaction {
                let _ = proofs.base.write(&mut version, proofs.rct_type());
            }
            (sha2::Sha256::digest(&version).to_vec(), spent)
        }
    };
    let mut spent_by = lock(&shared.spent_by);
    let mut new = false;
    for output in spent {
        match spent_by.get(&output) {
            Some((other, publisher)) if *other != txid => shared.violate(
                Invariant::OutputInOneSignedTransaction,
                format!(
                    "output {} spent by {} (processor {publisher}) and {} (processor {index})",
                    hex::encode(&output),
                    hex::encode(other),
                    hex::encode(&txid)
                ),
            ),
            Some(_) => {}
            None => {
                new = true;
                spent_by.insert(output, (txid.clone(), index));
            }
        }
    }
    if new {
        *lock(&shared.published) += 1;
    }
}

/// Watches what a processor sends for nonce reuse: one preprocess (a commitment to nonces) must
/// never serve two signing attempts, and an attempt must never get two preprocesses.
fn observe_outbound(shared: &Shared, index: usize, bytes: &[u8], halted: bool) {
    // This processor's own bytes: what it sent is the point, not the signature over it.
    match peek_outbound(bytes) {
        Some(Envelope {
            frame: Frame::Data { message: ProcessorMessage::Sign(SignEvent::Share { id, share }), .. },
            ..
        }) => {
            if halted {
                shared.violate(
                    Invariant::NothingSignedWhileHalted,
                    format!("processor {index} sent a signature share for {id:?} on a halted chain"),
                );
            }
            let mut shares = lock(&shared.shares);
            match shares.get(&(index, id)) {
                Some(earlier) if *earlier != share => shared.violate(
                    Invariant::OneSharePerAttempt,
                    format!("processor {index} sent two different signature shares for {id:?}"),
                ),
                Some(_) => {}
                None => {
                    shares.insert((index, id), share);
                }
            }
            return;
        }
        Some(Envelope {
            frame: Frame::Data { message: ProcessorMessage::Sign(SignEvent::Preprocess { .. }), .. },
            ..
        }) => {}
        _ => return,
    }
    let coordinator = lock(&shared.coordinator).peer_key();
    let Ok(envelope) = Envelope::<ProcessorMessage>::open(bytes, &coordinator, |_| true) else { return };
    let Frame::Data { message: ProcessorMessage::Sign(SignEvent::Preprocess { id, preprocess }), .. } = envelope.frame
    else {
        return;
    };
    if halted {
        shared.violate(
            Invariant::NothingSignedWhileHalted,
            format!("processor {index} preprocessed {id:?} on a halted chain"),
        );
    }
    let mut seen = lock(&shared.preprocesses);
    if let Some((other_index, other_id)) = seen.get(&preprocess) {
        if (*other_index, *other_id) != (index, id) {
            shared.violate(
                Invariant::PreprocessUnique,
                format!(
                    "processor {index} sent for {id:?} the preprocess processor {other_index} sent for {other_id:?}"
                ),
            );
        }
        return;
    }
    if seen.values().any(|(other_index, other_id)| *other_index == index && *other_id == id) {
        shared.violate(Invariant::AttemptPreprocessedOnce, format!("processor {index} preprocessed {id:?} twice"));
    }
    seen.insert(preprocess, (index, id));
}

pub(super) async fn coordinator_node(shared: Arc<Shared>) {
    let endpoint = match Endpoint::bind(coordinator_addr()).await {
        Ok(endpoint) => endpoint,
        Err(error) => panic!("coordinator cannot bind: {error}"),
    };
    shared.record("coordinator starts".into());
    let keys: Vec<_> = shared.identities.iter().map(Identity::peer_key).collect();
    let mut link = SimCoordinatorLink { endpoint, processors: keys.clone() };
    let mut next_tick = Instant::now() + TICK;
    loop {
        let now = Instant::now();
        let received =
            if now >= next_tick { Err(()) } else { timeout(next_tick - now, link.recv()).await.map_err(|_| ()) };
        let out: Vec<Outbound> = match received {
            Ok(Ok(bytes)) => {
                shared.record(format!("coordinator <- {}", describe(&bytes, false)));
                lock(&shared.coordinator).handle(&bytes)
            }
            Ok(Err(_)) => continue,
            Err(()) => {
                next_tick = Instant::now() + TICK;
                let tip = shared.chain.as_ref().map(|chain| lock(chain).tip());
                let mut coordinator = lock(&shared.coordinator);
                if let Some(tip) = tip {
                    coordinator.observe_chain_tip(BlockHeight(tip));
                }
                coordinator.tick(Millis(shared.elapsed_ms()))
            }
        };
        for Outbound { to, bytes } in out {
            let Some(index) = keys.iter().position(|k| *k == to) else { continue };
            let copies = if shared.roll(shared.scenario.duplicate_per_mille) {
                lock(&shared.faults).duplicates += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                shared.record(format!("coordinator -> processor {index} {}", describe(&bytes, true)));
                let _ = link.send_to(to, bytes.clone()).await;
            }
        }
    }
}
