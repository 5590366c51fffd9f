//! A faulty coordinator: authentic commands that are inconsistent with the processor's state
//! are refused, change nothing and never panic (ARCHITECTURE.md, the adversary model). Each
//! test is named after the hole it closes.

mod common;

use common::*;
use coordinator::local::{Faults, LocalNetwork};
use coordinator::Observation;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::core::{Event, InboundStatus, Processor};
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
    let (network, chain, keys, _) = network_with_a_batch_held(seed, false);
    (network, chain, keys)
}

/// The same; with `held`, the Batch is signed but not yet published (its block's outputs with
/// InInstructions wait for the publication).
fn network_with_a_batch_held(seed: u64, held: bool) -> (LocalNetwork, Rc<RefCell<MockBitcoin>>, GroupKeys, Depositor) {
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
    (network, chain, keys, depositor)
}

/// The height and block of the signed Batch's block, as processor 0 reported it.
fn batch_block(network: &LocalNetwork) -> (BlockHeight, BlockId) {
    let (batch, _) = network.coordinator().signed_batches().next().unwrap();
    let block = batch.block;
    let height = reports_by(network, 0).into_iter().find(|(_, id, _)| *id == block.0).unwrap().0;
    (BlockHeight(height), block)
}

/// Every processor's refused commands, Batches and funds.
fn snapshot(network: &LocalNetwork) -> Vec<(u64, usize, processor_core::scheduler::MemFunds)> {
    (0..network.len())
        .map(|index| {
            let inspector = Inspector::new(network.db(index));
            (
                network.processor(index).counters().refused_commands,
                inspector.batches().unwrap().len(),
                inspector.funds().unwrap(),
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
    let (mut network, _chain, _keys, _) = network_with_a_batch_held(31, true);
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
    let config = bitcoin_regtest_config(coordinator.peer_key());
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
    let config = bitcoin_regtest_config(coordinator.peer_key());
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

/// Hole 8: the funds were one DB value decoded under the 4 MiB message limit, so around 75,000
/// outputs every command failed to load them. Now a row per output: a hundred thousand dust
/// outputs are held, counted and planned from, a page at a time.
#[test]
fn a_hundred_thousand_outputs_are_held_and_planned_from() {
    use processor_core::db::Db;
    use processor_core::ids::OutputId;
    use processor_core::messages::OutputKind;
    use processor_core::scheduler::{self, FeeModel, Payment, Utxo};
    let db = MemDb::new();
    let mut txn = db.txn();
    scheduler::set_fee_rate(&mut txn, 2).unwrap();
    for index in 0..100_000u64 {
        let utxo =
            Utxo { id: OutputId(index.to_be_bytes().to_vec()), amount: Amount(5_000), kind: OutputKind::External };
        scheduler::add_output(&mut txn, SessionId(1), utxo).unwrap();
    }
    txn.commit().unwrap();
    let totals = Inspector::new(&db).funds_totals().unwrap();
    assert_eq!((totals.outputs, totals.holdings), (100_000, 500_000_000));

    // A payment needing 600 of them: one consolidation of the 400 inputs a transaction may
    // spend (its inputs are gone from the funds), then the payment waits for the merged output.
    let destination = Depositor::new(1).script_pubkey().to_bytes();
    let mut txn = db.txn();
    scheduler::queue_payment(&mut txn, Payment { id: [1; 32], destination, amount: Amount(3_000_000) }).unwrap();
    let scheduled = scheduler::schedule_stored(&mut txn, SessionId(1), &FeeModel::BITCOIN).unwrap();
    txn.commit().unwrap();
    assert_eq!(scheduled.plans.len(), 1, "{scheduled:?}");
    assert_eq!(scheduled.plans[0].inputs.len(), FeeModel::BITCOIN.max_inputs);
    let totals = Inspector::new(&db).funds_totals().unwrap();
    assert_eq!((totals.outputs, totals.queued), (100_000 - 400, 1));
    assert_eq!(totals.holdings, 500_000_000 - 400 * 5_000);
}

/// Hole 8's second half: there was no minimum deposit, so anyone could make the group hold
/// outputs worth less than spending them costs. A deposit below the chain's minimum is not
/// reported, not credited and never spent; one at the minimum is.
#[test]
fn a_deposit_below_the_minimum_is_neither_credited_nor_spent() {
    let minimum = processor_core::scanner::minimum_deposit(ExternalChain::Bitcoin).0;
    let (chain, mut depositor) = mock_chains::bitcoin::funded_chain(41, 5);
    let chain = Rc::new(RefCell::new(chain));
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        41,
        Faults::none(),
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );
    let deposits = [(minimum - 1, None), (minimum - 1, Some(2u8)), (minimum, None), (400_000, Some(1u8))];
    deposit_until_first_batch(&mut network, &chain, &mut depositor, &keys, &deposits, CONFIRMATIONS);
    for index in 0..network.len() {
        let reported: Vec<u64> =
            reports_by(&network, index).into_iter().flat_map(|(_, _, deposits)| deposits).map(|d| d.amount.0).collect();
        assert!(reported.iter().all(|amount| *amount >= minimum), "{reported:?}");
        assert_eq!(reported.len(), 2, "{reported:?}");
        assert_eq!(network.processor(index).counters().deposits_below_minimum, 2);
        let funds = Inspector::new(network.db(index)).funds().unwrap();
        assert!(funds.available().iter().all(|utxo| utxo.amount.0 >= minimum));
    }
    let (batch, _) = network.coordinator().signed_batches().next().unwrap();
    assert_eq!(batch.instructions.len(), 1, "{batch:?}");
}

/// One command of the funded fuzzer: authentic, aimed at the state a funded group has.
#[derive(Clone, Debug)]
enum FundedStep {
    /// The Batch's height, or one near it, with the real block or another, under any Batch id.
    Acknowledge { height_offset: i8, real_block: bool, batch: Option<u32> },
    /// Any Batch id said published.
    Published(u32),
    /// Burns from a small pool of ids (so some repeat), sane or not, at any fee rate.
    Burns { chain_is_monero: bool, burns: Vec<(u8, u64, bool)>, fee_rate: u64 },
    /// A signing command for a real plan or Batch attempt or a made-up one, with garbage.
    Sign { real_target: bool, attempt: u32, participant: u16, garbage: Vec<u8>, kind: u8 },
    /// The chain moves on: a block, maybe a deposit in it.
    Mine { deposit: Option<u64> },
    /// Time passes.
    Run,
}

fn funded_step() -> impl proptest::strategy::Strategy<Value = FundedStep> {
    use proptest::prelude::*;
    let fee_rate = prop_oneof![Just(0u64), Just(1), 2u64..50, Just(1_000_000), Just(u64::MAX)];
    let burn = (0u8..6, prop_oneof![0u64..2_000, 2_000u64..2_000_000, Just(u64::MAX)], any::<bool>());
    prop_oneof![
        3 => (-2i8..=2, any::<bool>(), proptest::option::of(0u32..8))
            .prop_map(|(height_offset, real_block, batch)| FundedStep::Acknowledge { height_offset, real_block, batch }),
        1 => (0u32..8).prop_map(FundedStep::Published),
        4 => (any::<bool>(), proptest::collection::vec(burn, 0..5), fee_rate)
            .prop_map(|(chain_is_monero, burns, fee_rate)| FundedStep::Burns { chain_is_monero, burns, fee_rate }),
        3 => (any::<bool>(), 0u32..4, 0u16..6, proptest::collection::vec(any::<u8>(), 0..80), 0u8..3)
            .prop_map(|(real_target, attempt, participant, garbage, kind)| FundedStep::Sign { real_target, attempt, participant, garbage, kind }),
        2 => proptest::option::of(1_000u64..500_000).prop_map(|deposit| FundedStep::Mine { deposit }),
        2 => Just(FundedStep::Run),
    ]
}

/// The safety invariants of one processor's state: no output in two plans or both in a plan and
/// the funds, every plan conserves value, no Burn in two plans, one Batch per height, the funds'
/// totals match their rows.
fn check_safety(network: &LocalNetwork, index: usize) -> Result<(), String> {
    use std::collections::BTreeMap;
    let inspector = Inspector::new(network.db(index));
    let plans = inspector.plans().map_err(|e| e.to_string())?;
    let mut spent = BTreeMap::new();
    let mut burns = BTreeMap::new();
    for (id, record) in &plans {
        if !record.plan.conserves_value() {
            return Err(format!("processor {index}: plan {id} does not conserve value"));
        }
        for input in &record.plan.inputs {
            if let Some(other) = spent.insert(input.id.clone(), *id) {
                return Err(format!("processor {index}: an output is spent by plans {other} and {id}"));
            }
        }
        for payment in &record.plan.payments {
            if let Some(other) = burns.insert(payment.payment.id, *id) {
                return Err(format!("processor {index}: a Burn is paid by plans {other} and {id}"));
            }
        }
    }
    let funds = inspector.funds().map_err(|e| e.to_string())?;
    if let Some(utxo) = funds.available().iter().find(|utxo| spent.contains_key(&utxo.id)) {
        return Err(format!("processor {index}: output {:?} is both available and spent by a plan", utxo.id));
    }
    let totals = inspector.funds_totals().map_err(|e| e.to_string())?;
    let holdings: u128 = funds.available().iter().map(|utxo| utxo.amount.0 as u128).sum();
    if (totals.outputs, totals.holdings, totals.queued)
        != (funds.available().len() as u64, holdings, funds.queued().count() as u64)
    {
        return Err(format!("processor {index}: the funds' totals {totals:?} do not match their rows"));
    }
    let mut heights = BTreeMap::new();
    for (id, record) in inspector.batches().map_err(|e| e.to_string())? {
        if let Some(other) = heights.insert(record.height, id) {
            return Err(format!("processor {index}: Batches {other} and {id} both report height {}", record.height));
        }
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]

    /// The coordinator fuzzer on a funded group: after keys, a deposit and a signed Batch
    /// (published or not yet),
    /// arbitrary authentic commands aimed at that state (acknowledgements of real and near
    /// heights under any Batch id, Burns repeated, absurd or at absurd fee rates, signing
    /// commands for real and made-up attempts with garbage) between blocks and deposits: no
    /// panic, and every processor's state keeps the safety invariants.
    #[test]
    fn authentic_commands_on_a_funded_group_keep_the_funds_safe(
        seed in 0u64..1_000,
        held in proptest::prelude::any::<bool>(),
        steps in proptest::collection::vec(funded_step(), 1..14),
    ) {
        use processor_core::messages::SignCommand;
        use processor_core::ids::{Attempt, Participant};
        use processor_core::messages::{SignId, SignTarget};
        // Held: the Batch is signed, not yet published (its block still waits for its outputs).
        let (mut network, chain, keys, mut depositor) = network_with_a_batch_held(seed, held);
        let (height, block) = batch_block(&network);
        let session = Inspector::new(network.db(0)).batches().unwrap()[0].1.session;
        for step in steps {
            let message = match step {
                FundedStep::Acknowledge { height_offset, real_block, batch } => {
                    let height = BlockHeight(height.0.saturating_add_signed(i64::from(height_offset)));
                    let block = if real_block { block } else { BlockId([height_offset as u8; 32]) };
                    Some(CoordinatorMessage::Scanner(ScannerCommand::AcknowledgeBlock { height, block, batch: batch.map(BatchId) }))
                }
                FundedStep::Published(batch) => Some(CoordinatorMessage::Scanner(ScannerCommand::BatchPublished { batch: BatchId(batch) })),
                FundedStep::Burns { chain_is_monero, burns, fee_rate } => {
                    let chain = if chain_is_monero { ExternalChain::Monero } else { ExternalChain::Bitcoin };
                    let burns = burns.into_iter().map(|(id, amount, valid)| {
                        let mut burn = burn(id, seed, amount);
                        if !valid { burn.destination = vec![id; usize::from(id) * 7]; }
                        burn
                    }).collect();
                    Some(CoordinatorMessage::Payments(PaymentsCommand::Burns { chain, burns, fee_rate }))
                }
                FundedStep::Sign { real_target, attempt, participant, garbage, kind } => {
                    let plans = Inspector::new(network.db(0)).plans().unwrap();
                    let target = match plans.first() {
                        Some((plan, _)) if real_target => SignTarget::Transaction(*plan),
                        _ if real_target => SignTarget::Batch(BatchId(0)),
                        _ => SignTarget::Batch(BatchId(attempt + 7)),
                    };
                    let id = SignId { session, target, attempt: Attempt(attempt) };
                    let parts = (0..participant).map(|p| (Participant::from_position(usize::from(p)), garbage.clone())).collect();
                    Some(CoordinatorMessage::Sign(match kind {
                        0 => SignCommand::Preprocesses { id, preprocesses: parts },
                        1 => SignCommand::Shares { id, shares: parts },
                        _ => SignCommand::Reattempt { id },
                    }))
                }
                FundedStep::Mine { deposit } => {
                    if let Some(sats) = deposit {
                        let amount = bitcoin::Amount::from_sat(sats);
                        let deposit = depositor.deposit(&chain.borrow(), &bitcoin_group_script(&keys), amount, None);
                        if let Ok(tx) = deposit {
                            let _ = chain.borrow_mut().submit(tx);
                        }
                    }
                    chain.borrow_mut().mine();
                    None
                }
                FundedStep::Run => {
                    run_for(&mut network, 3_000);
                    None
                }
            };
            if let Some(message) = message {
                command_everyone(&mut network, message);
                run_for(&mut network, 500);
            }
        }
        run_for(&mut network, 10_000);
        for index in 0..network.len() {
            if let Err(violation) = check_safety(&network, index) {
                return Err(proptest::test_runner::TestCaseError::fail(violation));
            }
        }
    }
}
