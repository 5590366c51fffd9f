//! A faulty coordinator: authentic commands that are inconsistent with the processor's state
//! are refused, change nothing and never panic (ARCHITECTURE.md, the adversary model). Each
//! test is named after the hole it closes.

mod common;

use common::*;
use coordinator::local::{Faults, LocalNetwork};
use coordinator::Observation;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::core::{Config, Event, InboundStatus, Processor, ProofOfWork};
use processor_core::crypto::Identity;
use processor_core::db::MemDb;
use processor_core::ids::{Amount, BatchId, BlockHeight, BlockId, ExternalChain, PeerKey, SeqId, SessionId};
use processor_core::inspect::Inspector;
use processor_core::messages::{Burn, CoordinatorMessage, Envelope, Frame, GroupKeys};
use processor_core::messages::{PaymentsCommand, ScannerCommand};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::cell::RefCell;
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;

/// Four processors, 3-of-4, with keys, one final block holding a deposit with an InInstruction
/// and one without, and that block's Batch signed and published.
fn network_with_a_batch(seed: u64) -> (LocalNetwork, Rc<RefCell<MockBitcoin>>, GroupKeys) {
    network_with_a_batch_held(seed, false)
}

/// The same; with `held`, the Batch is signed but not yet published (its block's outputs with
/// InInstructions wait for the publication).
fn network_with_a_batch_held(seed: u64, held: bool) -> (LocalNetwork, Rc<RefCell<MockBitcoin>>, GroupKeys) {
    let (chain, mut depositor) = mock_chains::bitcoin::funded_chain(seed, 5);
    let chain = Rc::new(RefCell::new(chain));
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        seed,
        Faults::none(),
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );
    network.coordinator_mut().hold_batch_publication(held);
    let deposits = [(400_000u64, Some(1u8)), (300_000, None)];
    deposit_until_first_batch(&mut network, &chain, &mut depositor, &keys, &deposits, CONFIRMATIONS);
    (network, chain, keys)
}

/// The height and block of the signed Batch's block, as processor 0 reported it.
fn batch_block(network: &LocalNetwork) -> (BlockHeight, BlockId) {
    let (batch, _) = network.coordinator().signed_batches().next().unwrap();
    let block = batch.block;
    let height = reports_by(network, 0).into_iter().find(|(_, id, _)| *id == block.0).unwrap().0;
    (BlockHeight(height), block)
}

/// Every processor's refused commands, Batches and funds.
fn snapshot(network: &LocalNetwork) -> Vec<(u64, usize, processor_core::scheduler::Scheduler)> {
    (0..network.len())
        .map(|index| {
            let inspector = Inspector::new(network.db(index));
            (
                network.processor(index).counters().refused_commands,
                inspector.batches().unwrap().len(),
                inspector.scheduler().unwrap(),
            )
        })
        .collect()
}

/// Sends `message` to every processor as an authentic command.
fn command_everyone(network: &mut LocalNetwork, message: CoordinatorMessage) {
    let peers = network.peer_keys();
    network.coordinator_acts(|coordinator| {
        peers.iter().flat_map(|peer| coordinator.send_command(*peer, message.clone())).collect()
    });
}

fn burn(id: u8, seed: u64, amount: u64) -> Burn {
    Burn { id: [id; 32], destination: Depositor::new(seed).script_pubkey().to_bytes(), amount: Amount(amount) }
}

#[test]
fn a_height_acknowledged_twice_is_refused() {
    // Before the Batch is published the block is still waiting here: the window a second
    // acknowledgement used to slip through.
    let (mut network, _chain, _keys) = network_with_a_batch_held(31, true);
    let (height, block) = batch_block(&network);
    let before = snapshot(&network);
    assert!(before.iter().all(|(_, batches, funds)| *batches == 1 && !funds.available().is_empty()));

    // The same block acknowledged again under a new Batch id: its outputs must not join the
    // funds twice, and no second Batch of its InInstructions may be signed.
    let again = ScannerCommand::AcknowledgeBlock { height, block, batch: Some(BatchId(99)) };
    command_everyone(&mut network, CoordinatorMessage::Scanner(again));
    run_for(&mut network, 10_000);

    let after = snapshot(&network);
    for (index, ((refused_before, batches_before, funds_before), (refused, batches, funds))) in
        before.iter().zip(&after).enumerate()
    {
        assert_eq!(batches, batches_before, "processor {index} built a second Batch for height {height}");
        assert_eq!(funds, funds_before, "processor {index}'s funds changed");
        assert_eq!(*refused, refused_before + 1, "processor {index} did not refuse the second acknowledgement");
    }
    assert_eq!(network.coordinator().signed_batches().count(), 1);
}

#[test]
fn a_halted_chain_signs_and_plans_nothing() {
    let (mut network, chain, _keys) = network_with_a_batch(32);
    // A reorganisation deeper than the confirmations: every processor halts.
    chain.borrow_mut().reorg(usize::try_from(CONFIRMATIONS + 3).unwrap()).unwrap();
    chain.borrow_mut().mine();
    run_for(&mut network, 20_000);
    let halts = network.coordinator().observations().iter().filter(|o| matches!(o, Observation::ChainHalted { .. }));
    assert_eq!(halts.count(), 4, "every processor halts");
    let before = snapshot(&network);

    // Burns the funds could pay, and a re-acknowledgement: nothing may be signed or planned.
    network.burn(ExternalChain::Bitcoin, vec![burn(1, 101, 100_000)], 5);
    let (height, block) = batch_block(&network);
    let ack = ScannerCommand::AcknowledgeBlock { height, block, batch: Some(BatchId(7)) };
    command_everyone(&mut network, CoordinatorMessage::Scanner(ack));
    run_for(&mut network, 20_000);

    for (index, (refused_before, batches_before, _)) in before.iter().enumerate() {
        let inspector = Inspector::new(network.db(index));
        assert!(inspector.plans().unwrap().is_empty(), "processor {index} planned on a halted chain");
        assert_eq!(inspector.burn(&[1; 32]).unwrap(), None, "processor {index} took a Burn on a halted chain");
        assert_eq!(inspector.batches().unwrap().len(), *batches_before, "processor {index} built a Batch");
        assert!(network.processor(index).counters().refused_commands >= refused_before + 2);
    }
}

#[test]
fn fee_rates_out_of_bounds_are_refused() {
    let (mut network, _chain, _keys) = network_with_a_batch(33);
    let before = snapshot(&network);
    // 0 makes a transaction no node relays; 10^15 would forfeit every Burn to the fee.
    network.burn(ExternalChain::Bitcoin, vec![burn(1, 101, 100_000)], 0);
    network.burn(ExternalChain::Bitcoin, vec![burn(2, 102, 100_000)], 1_000_000_000_000_000);
    run_for(&mut network, 10_000);
    for (index, (refused_before, _, _)) in before.iter().enumerate() {
        let inspector = Inspector::new(network.db(index));
        assert_eq!(inspector.burn(&[1; 32]).unwrap(), None, "processor {index} took a Burn at fee rate 0");
        assert_eq!(inspector.burn(&[2; 32]).unwrap(), None, "processor {index} took a Burn at an absurd fee rate");
        assert!(inspector.plans().unwrap().is_empty());
        assert_eq!(network.processor(index).counters().refused_commands, refused_before + 2);
    }
    // The same Burns at a sane rate are then paid (nothing of the refused commands stuck).
    network.burn(ExternalChain::Bitcoin, vec![burn(1, 101, 100_000), burn(2, 102, 100_000)], 5);
    run_for(&mut network, 10_000);
    for index in 0..network.len() {
        let plans = Inspector::new(network.db(index)).plans().unwrap();
        assert_eq!(plans.len(), 1, "processor {index}");
        assert_eq!(plans[0].1.plan.payments.len(), 2);
    }
}

/// The wire layout of `CoordinatorMessage::KeyGen(KeyGenCommand::Start { .. })` with the index
/// as a bare number, so a test can send index 0, which `Participant` cannot hold.
#[derive(bincode::Encode)]
enum RawCoordinatorMessage {
    KeyGen(RawKeyGenCommand),
}

#[derive(bincode::Encode)]
enum RawKeyGenCommand {
    Start { session: SessionId, threshold: u16, my_index: u16, participants: Vec<PeerKey> },
}

#[test]
fn a_participant_index_of_zero_is_refused_before_any_effect() {
    let mut rng = ChaCha20Rng::seed_from_u64(34);
    let coordinator = Identity::generate(&mut rng);
    let identity = Identity::generate(&mut rng);
    let me = identity.peer_key();
    let other = Identity::generate(&mut rng).peer_key();
    let db = MemDb::new();
    let config = Config {
        chain: ExternalChain::Bitcoin,
        coordinator: coordinator.peer_key(),
        confirmations: 3,
        proof_of_work: ProofOfWork::REGTEST,
    };
    let mut processor = Processor::open(db.clone(), identity, config, ChaCha20Rng::seed_from_u64(35)).unwrap();

    let seal = |my_index: u16| {
        let start =
            RawKeyGenCommand::Start { session: SessionId(1), threshold: 2, my_index, participants: vec![me, other] };
        let frame = Frame::Data { seq: SeqId(1), message: RawCoordinatorMessage::KeyGen(start) };
        Envelope::new(coordinator.peer_key(), me, frame).seal(&coordinator)
    };
    let outcome = processor.handle(Event::Inbound(seal(0))).unwrap();
    assert_eq!(outcome.inbound, Some(InboundStatus::Refused));
    assert!(outcome.effects.is_empty());
    assert!(Inspector::new(&db).sessions().unwrap().is_empty());
    assert_eq!(Inspector::new(&db).handled_through().unwrap(), SeqId(0));

    // The same layout with index 1 is a valid command: the mirror encodes as the real one does.
    let outcome = processor.handle(Event::Inbound(seal(1))).unwrap();
    assert_eq!(outcome.inbound, Some(InboundStatus::Committed));
    assert_eq!(Inspector::new(&db).sessions().unwrap().len(), 1);
}

#[test]
fn a_burns_command_for_another_chain_or_too_many_burns_is_refused_whole() {
    let (mut network, _chain, _keys) = network_with_a_batch(36);
    let before = snapshot(&network);
    let too_many: Vec<Burn> = (0..=processor_core::payments::MAX_BURNS_PER_COMMAND)
        .map(|i| Burn { id: [(i % 251) as u8; 32], destination: vec![0x51], amount: Amount(1) })
        .collect();
    command_everyone(
        &mut network,
        CoordinatorMessage::Payments(PaymentsCommand::Burns {
            chain: ExternalChain::Monero,
            burns: vec![burn(1, 101, 100_000)],
            fee_rate: 5,
        }),
    );
    command_everyone(
        &mut network,
        CoordinatorMessage::Payments(PaymentsCommand::Burns {
            chain: ExternalChain::Bitcoin,
            burns: too_many,
            fee_rate: 5,
        }),
    );
    run_for(&mut network, 10_000);
    for (index, (refused_before, _, _)) in before.iter().enumerate() {
        assert_eq!(Inspector::new(network.db(index)).burns().unwrap(), vec![], "processor {index}");
        assert_eq!(network.processor(index).counters().refused_commands, refused_before + 2);
    }
}

#[test]
fn a_coordinator_that_lost_its_state_is_noticed() {
    let mut rng = ChaCha20Rng::seed_from_u64(37);
    let coordinator = Identity::generate(&mut rng);
    let identity = Identity::generate(&mut rng);
    let me = identity.peer_key();
    let others: Vec<PeerKey> = (0..2).map(|_| Identity::generate(&mut rng).peer_key()).collect();
    let db = MemDb::new();
    let config = Config {
        chain: ExternalChain::Bitcoin,
        coordinator: coordinator.peer_key(),
        confirmations: 3,
        proof_of_work: ProofOfWork::REGTEST,
    };
    let mut processor = Processor::open(db.clone(), identity, config, ChaCha20Rng::seed_from_u64(38)).unwrap();
    let start = |session: u32| {
        let mut participants = vec![me];
        participants.extend(others.iter().copied());
        let command = processor_core::messages::KeyGenCommand::Start {
            session: SessionId(session),
            threshold: 2,
            my_index: processor_core::ids::Participant::new(1).unwrap(),
            participants,
        };
        let frame = Frame::Data { seq: SeqId(1), message: CoordinatorMessage::KeyGen(command) };
        Envelope::new(coordinator.peer_key(), me, frame).seal(&coordinator)
    };
    assert_eq!(processor.handle(Event::Inbound(start(1))).unwrap().inbound, Some(InboundStatus::Committed));
    // The same command again is a redelivery: acknowledged.
    let again = processor.handle(Event::Inbound(start(1))).unwrap();
    assert_eq!(again.inbound, Some(InboundStatus::Committed));
    assert_eq!(again.effects.len(), 1, "the redelivery is acknowledged");

    // A restarted coordinator that forgot everything starts again at sequence id 1 with another
    // command: not taken as handled (no acknowledgement), counted, and nothing changes.
    let before = Inspector::new(&db).sessions().unwrap().len();
    let conflicting = processor.handle(Event::Inbound(start(2))).unwrap();
    assert_eq!(conflicting.inbound, Some(InboundStatus::Refused));
    assert!(conflicting.effects.is_empty(), "the conflicting frame was acknowledged: {:?}", conflicting.effects);
    assert_eq!(processor.counters().sequence_conflicts, 1);
    assert_eq!(Inspector::new(&db).sessions().unwrap().len(), before);
    assert_eq!(Inspector::new(&db).handled_through().unwrap(), SeqId(1));
}
