//! The hostile depositors' share of the workload, one block at a time: Monero's burning bug,
//! payments to the group's change address, blocks of thousands of deposits and malformed
//! instruction data (the dust flood is in [`super::workload`]). What each must and must not do to
//! the processors is in the checks (`invariants.rs`): none of these deposits is credited to
//! anyone but the first output of a repeated one-time key, and everything stays live.

use super::chain::{Malformed, SimChain};
use super::Shared;
use processor_core::messages::GroupKeys;

/// An account for a hostile deposit's InInstruction, or none.
fn account(shared: &Shared, tag: u8) -> Option<[u8; 32]> {
    shared.roll(500).then(|| {
        let mut account = [tag; 32];
        account[..8].copy_from_slice(&shared.random_below(u64::MAX).to_le_bytes());
        account
    })
}

fn described(account: Option<[u8; 32]>) -> &'static str {
    if account.is_some() {
        "with an instruction"
    } else {
        "without instruction"
    }
}

/// One block's hostile deposits, each drawn at its scenario rate.
pub(super) fn deposits(shared: &Shared, chain: &mut SimChain, keys: &GroupKeys) {
    let scenario = &shared.scenario;
    // A twin comes at once (the same block as its original) or in a later block at random.
    let twin_due = chain.twin_pending() && shared.roll(300);
    if twin_due || shared.roll(scenario.twin_deposit_per_mille) {
        key_reusing_deposit(shared, chain, keys);
        if chain.twin_pending() && shared.roll(300) {
            key_reusing_deposit(shared, chain, keys);
        }
    }
    if shared.roll(scenario.change_deposit_per_mille) {
        let draw = shared.random_below(u64::MAX);
        let amount = if shared.roll(300) { chain.dust_amount(draw) } else { chain.deposit_amount(draw) };
        let account = account(shared, 0xc4);
        if let Some(id) = chain.change_address_deposit(keys, amount, account) {
            shared.record(format!(
                "chain: hostile payment of {amount} to the group's change address ({}), {}",
                described(account),
                hex::encode(&id[..4])
            ));
        }
    }
    if shared.roll(scenario.malformed_instruction_per_mille) {
        let how = match shared.random_below(6) {
            0 => Malformed::Truncated,
            1 => Malformed::OtherVersion,
            2 => Malformed::TrailingBytes,
            3 => Malformed::RandomBytes,
            4 => Malformed::TwoPushes,
            _ => Malformed::Oversized,
        };
        let amount = chain.deposit_amount(shared.random_below(u64::MAX));
        if let Some(id) = chain.malformed_deposit(keys, amount, how, shared.random_below(u64::MAX)) {
            shared.record(format!(
                "chain: hostile deposit of {amount} with malformed instruction data ({how:?}), {}",
                hex::encode(&id[..4])
            ));
        }
    }
    if shared.roll(scenario.large_block_per_mille) {
        large_block(shared, chain, keys);
    }
}

/// A burning-bug deposit, or its twin if one is pending.
fn key_reusing_deposit(shared: &Shared, chain: &mut SimChain, keys: &GroupKeys) {
    let amounts =
        [chain.deposit_amount(shared.random_below(u64::MAX)), chain.deposit_amount(shared.random_below(u64::MAX))];
    // Twins mostly carry an instruction: crediting the repeated key shows in the Batch.
    let account = shared.roll(if chain.twin_pending() { 800 } else { 500 }).then_some([0x7e; 32]);
    let draw = shared.random_below(u64::MAX);
    if let Some((hash, twin)) = chain.key_reusing_deposit(keys, draw, amounts, account) {
        let what =
            if twin { "its twin, repeating the one-time key" } else { "a deposit under a chosen transaction key" };
        shared.record(format!(
            "chain: hostile burning-bug deposit: {what} ({}), {}",
            described(account),
            hex::encode(&hash[..4])
        ));
    }
}

/// A block of thousands of deposits (Bitcoin), or of many-output transactions at the chain's
/// output limit (Monero).
fn large_block(shared: &Shared, chain: &mut SimChain, keys: &GroupKeys) {
    let minimum = processor_core::scanner::minimum_deposit(shared.chain_kind).0;
    let (transactions, outputs_each) = match shared.chain_kind {
        processor_core::ids::ExternalChain::Bitcoin => {
            let outputs = 1_000 + shared.random_below(2_001);
            let transactions = outputs.div_ceil(1_200);
            (transactions, outputs / transactions)
        }
        processor_core::ids::ExternalChain::Monero => {
            (4 + shared.random_below(5), mock_chains::monero::MAX_PAYMENTS as u64)
        }
    };
    let mut deposited = 0;
    for _ in 0..transactions {
        let amounts: Vec<u64> =
            (0..outputs_each).map(|_| minimum + shared.random_below(minimum.saturating_mul(3))).collect();
        let account = account(shared, 0x1b);
        if chain.many_output_deposit(keys, &amounts, account).is_some() {
            deposited += amounts.len();
        }
    }
    chain.hostile.counts.large_blocks += u64::from(deposited > 0);
    shared.record(format!(
        "chain: hostile large block: {deposited} deposits in up to {transactions} transactions of {outputs_each} outputs"
    ));
}
