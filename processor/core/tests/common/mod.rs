//! Shared by the integration tests: networks with generated keys, and chain sources.
#![allow(dead_code)]

use coordinator::local::{ChainSource, Faults, LocalNetwork};
use coordinator::Observation;
use processor_core::batch::batch_message;
use processor_core::ids::{ExternalChain, Millis, SessionId};
use processor_core::keygen;
use processor_core::messages::{Batch, GroupKeys};

pub const SESSION: SessionId = SessionId(1);

#[allow(unused_imports)]
pub use coordinator::local::{monero_block_data, SharedBitcoin, SharedMonero};

pub fn all_active(network: &LocalNetwork, members: &[usize]) -> bool {
    members.iter().all(|i| keygen::active_keys(network.db(*i)).unwrap().is_some())
}

/// A network of `n` processors following `source`, with `t`-of-`n` keys generated and active.
pub fn network_with_keys(
    n: usize,
    t: u16,
    chain: ExternalChain,
    seed: u64,
    faults: Faults,
    source: Box<dyn ChainSource>,
    confirmations: u64,
) -> (LocalNetwork, GroupKeys) {
    let mut network = LocalNetwork::new(n, chain, seed, faults);
    network.attach_chain(source, confirmations);
    network.coordinator_mut().record_reports(true);
    network.start_keygen(SESSION, t, None);
    let members: Vec<usize> = (0..n).collect();
    assert!(network.run_until(Millis(600_000), |net| all_active(net, &members)), "key generation did not finish");
    let keys = keygen::active_keys(network.db(0)).unwrap().unwrap().group_keys();
    (network, keys)
}

/// Runs a while longer.
pub fn run_for(network: &mut LocalNetwork, ms: u64) {
    let until = Millis(network.now().0 + ms);
    network.run_until(until, |_| false);
}

pub fn signed_batches(network: &LocalNetwork) -> Vec<(Batch, [u8; 64])> {
    network.coordinator().signed_batches().map(|(b, s)| (b.clone(), *s)).collect()
}

/// Verifies a Batch signature with ed25519-dalek, not the signer's implementation.
pub fn assert_batch_signature(keys: &GroupKeys, batch: &Batch, signature: &[u8; 64]) {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&keys.batch.0).unwrap();
    key.verify_strict(&batch_message(batch), &ed25519_dalek::Signature::from_bytes(signature))
        .expect("ed25519-dalek rejects the Batch signature");
}

/// Every block report the coordinator saw from one processor, in order.
pub fn reports_by(
    network: &LocalNetwork,
    index: usize,
) -> Vec<(u64, [u8; 32], Vec<processor_core::messages::Deposit>)> {
    let participant = processor_core::ids::Participant::from_position(index);
    let mut reports: Vec<_> = network
        .coordinator()
        .observations()
        .iter()
        .filter_map(|o| match o {
            Observation::BlockReported { by, height, block, deposits } if *by == participant => {
                Some((height.0, block.0, deposits.clone()))
            }
            _ => None,
        })
        .collect();
    // Redelivered reports are the same report; keep each height once.
    reports.dedup_by_key(|(height, _, _)| *height);
    reports
}

/// Whether every processor in `live` has plans and all of them are complete on chain.
pub fn plans_completed(network: &LocalNetwork, live: &[usize]) -> bool {
    live.iter().all(|index| {
        let plans = processor_core::inspect::Inspector::new(network.db(*index)).plans().unwrap();
        !plans.is_empty()
            && plans
                .iter()
                .all(|(_, record)| matches!(record.state, processor_core::payments::PlanState::Completed { .. }))
    })
}

/// Runs the network, mining a block every 2 s, until every processor in `live` completed its
/// plans (panics after `within_ms`), then a little longer so the change's block is
/// acknowledged too.
pub fn mine_until_paid(network: &mut LocalNetwork, live: &[usize], within_ms: u64, mut mine: impl FnMut()) {
    let deadline = network.now().0 + within_ms;
    while !plans_completed(network, live) {
        assert!(network.now().0 < deadline, "payments did not complete");
        run_for(network, 2_000);
        mine();
    }
    run_for(network, 10_000);
}

/// Processor `index`'s plan paying `burn`, and what it pays.
pub fn plan_paying(
    network: &LocalNetwork,
    index: usize,
    burn: &processor_core::messages::Burn,
) -> (processor_core::payments::PlanRecord, u64) {
    let Some(processor_core::payments::BurnStatus::Planned(plan)) =
        processor_core::inspect::Inspector::new(network.db(index)).burn(&burn.id).unwrap()
    else {
        panic!("Burn {} was not planned", burn.id[0]);
    };
    let record = processor_core::inspect::Inspector::new(network.db(index)).plan(plan).unwrap().unwrap();
    let paid = record.plan.payments.iter().find(|p| p.payment.id == burn.id).unwrap().paid.0;
    (record, paid)
}

/// The group's Bitcoin Taproot output script.
pub fn bitcoin_group_script(keys: &GroupKeys) -> bitcoin::ScriptBuf {
    let processor_core::messages::ChainPublicKey::Bitcoin { internal_key } = keys.chain else {
        panic!("not a Bitcoin key")
    };
    mock_chains::bitcoin::p2tr_script(bitcoin::key::XOnlyPublicKey::from_slice(&internal_key).unwrap())
}

/// Deposits `(satoshi, InInstruction account byte)` each to the group on `chain`, mines them
/// final (`confirmations`), and runs `network` until the first Batch is signed and a while after.
pub fn deposit_until_first_batch(
    network: &mut LocalNetwork,
    chain: &std::rc::Rc<std::cell::RefCell<mock_chains::bitcoin::MockBitcoin>>,
    depositor: &mut mock_chains::bitcoin::Depositor,
    keys: &GroupKeys,
    deposits: &[(u64, Option<u8>)],
    confirmations: u64,
) {
    use processor_core::chain::instruction::encode_instruction;
    use processor_core::messages::InInstruction;
    for (sats, account) in deposits {
        let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
        let amount = bitcoin::Amount::from_sat(*sats);
        let tx =
            depositor.deposit(&chain.borrow(), &bitcoin_group_script(keys), amount, instruction.as_deref()).unwrap();
        chain.borrow_mut().submit(tx).unwrap();
    }
    for _ in 0..=confirmations {
        chain.borrow_mut().mine();
    }
    assert!(network.run_until(Millis(network.now().0 + 120_000), |net| net.coordinator().signed_batches().count() == 1));
    run_for(network, 10_000);
}

/// A Bitcoin processor's configuration on regtest, 3 confirmations, commands from `coordinator`.
pub fn bitcoin_regtest_config(coordinator: processor_core::ids::PeerKey) -> processor_core::core::Config {
    processor_core::core::Config {
        chain: processor_core::ids::ExternalChain::Bitcoin,
        coordinator,
        confirmations: 3,
        proof_of_work: processor_core::chain::bitcoin::ProofOfWork::REGTEST,
        retirement_window: 6,
    }
}
