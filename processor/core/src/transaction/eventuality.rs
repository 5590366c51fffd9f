//! Eventualities: recognising a plan's completion on chain, whoever published its transaction.
//!
//! Bitcoin: when a plan is made, its first input is watched with the txid that must spend it
//! (known before signing). Scanning a final block that spends the input by that txid completes
//! the plan; a spend by any other transaction is an alarm, logged as an error. Every final
//! output to the group is watched, and spends no plan here awaits yet are kept: a processor
//! may scan past a plan's transaction before it handles the command that makes the plan.
//!
//! Monero: the Eventuality is monero-wallet's (the transaction's extra, outputs and inputs' key
//! images), formed once the plan's rings are known; scanning checks every transaction of a
//! final block against the pending ones, and keeps the group's own transactions (those paying
//! its change address) so a plan made late still completes.

use super::monero::{self, MoneroOutput};
use crate::chain::{MoneroEventuality, ScannedBlock, Watched};
use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, ExternalChain, OutputId, PlanId};
use crate::messages::{ProcessorMessage, SignEvent};
use crate::plan::{self, PlanRecord};
use crate::sign::SignError;
use bincode::{Decode, Encode};

tables! {
    /// Watched outputs: a plan's first input and the transaction that must spend it.
    EVENTUALITIES: Table<OutputId, Eventuality> = b"pay/eventuality/";
    /// Outputs to the group seen final and not yet seen spent (their spends are looked for).
    GROUP_OUTPUTS: Table<OutputId, ()> = b"pay/output/";
    /// Group outputs seen spent before any plan here awaited the spend, with the spender's id.
    SPENT: Table<OutputId, Vec<u8>> = b"pay/spent/";
    /// The height of the final block each `SPENT` spend is in.
    SPENT_AT: Table<OutputId, BlockHeight> = b"pay/spent_at/";
    /// Monero plans' Eventualities until resolved.
    MONERO_EVENTUALITIES: Table<PlanId, MoneroEventuality> = b"pay/monero_eventuality/";
    /// The group's own Monero transactions seen final that no pending plan matched yet, by hash.
    OWN_TRANSACTIONS: Table<[u8; 32], Vec<u8>> = b"pay/own_transaction/";
    /// The height of the final block each of `OWN_TRANSACTIONS` is in.
    OWN_TRANSACTION_AT: Table<[u8; 32], BlockHeight> = b"pay/own_transaction_at/";
}

/// What watching a Bitcoin plan's first input expects.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Eventuality {
    /// The plan.
    pub plan: PlanId,
    /// The chain id of the plan's transaction.
    pub transaction: Vec<u8>,
}

/// Records a new plan's eventuality. Bitcoin: if scanning already saw its first input spent,
/// the plan is complete at once: returns the completing transaction's id and its block's
/// height. Monero: the plan waits for its rings first (see [`monero::decoys_arrived`]).
pub fn watch<D: Db>(txn: &mut Txn<'_, D>, record: &PlanRecord) -> Result<Option<(Vec<u8>, BlockHeight)>, SignError> {
    if record.chain == ExternalChain::Monero {
        monero::await_decoys(txn, record.id);
        return Ok(None);
    }
    let keys = crate::keygen::generated_keys(txn, record.session)?
        .ok_or_else(|| SignError::Refused(format!("no keys for session {}", record.session)))?;
    let txid = super::bitcoin::plan_txid(record, &keys)?;
    let first = record.plan.inputs.first().ok_or_else(|| SignError::refused("a plan without inputs"))?;
    let eventuality = Eventuality { plan: record.id, transaction: txid.to_vec() };
    if let Some(spender) = SPENT.take(txn, &first.id)? {
        // A spend recorded before heights were kept counts as long settled.
        let at = SPENT_AT.take(txn, &first.id)?.unwrap_or_default();
        if spender == eventuality.transaction {
            tracing::info!(plan = %record.id, "plan already completed on chain when it was made here");
            return Ok(Some((spender, at)));
        }
        tracing::error!(plan = %record.id, found = %hex::encode(&spender), "a plan's input was already spent by another transaction");
        return Ok(None);
    }
    EVENTUALITIES.set(txn, &first.id, &eventuality);
    Ok(None)
}

/// A Monero plan's Eventuality is known (its rings arrived): watched from now on, unless one
/// of the group's transactions scanned already meets it (returns its hash).
pub fn watch_monero<D: Db>(
    txn: &mut Txn<'_, D>,
    plan: PlanId,
    extra: Vec<u8>,
    eventuality: &monero_wallet::send::Eventuality,
) -> Result<Option<(Vec<u8>, BlockHeight)>, DbError> {
    for (hash, transaction) in OWN_TRANSACTIONS.entries(txn)? {
        if monero::completes(eventuality, &transaction) {
            OWN_TRANSACTIONS.delete(txn, &hash);
            let at = OWN_TRANSACTION_AT.take(txn, &hash)?.unwrap_or_default();
            return Ok(Some((hash.to_vec(), at)));
        }
    }
    MONERO_EVENTUALITIES.set(txn, &plan, &MoneroEventuality { extra, eventuality: eventuality.serialize() });
    Ok(None)
}

/// What scanning must look for: (Bitcoin) every output to the group seen final and not yet
/// seen spent; (Monero) the pending plans' Eventualities.
pub fn watched(reader: &impl Read, chain: ExternalChain) -> Result<Watched, DbError> {
    Ok(match chain {
        ExternalChain::Bitcoin => Watched {
            outputs: GROUP_OUTPUTS.entries(reader)?.into_iter().map(|(output, ())| output).collect(),
            eventualities: vec![],
        },
        ExternalChain::Monero => {
            Watched { outputs: Default::default(), eventualities: MONERO_EVENTUALITIES.entries(reader)? }
        }
    })
}

/// A final block's outputs to the group and spends of them: completes the plans they resolve
/// and remembers spends no plan here awaits yet.
pub fn resolve<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    height: BlockHeight,
    scanned: &ScannedBlock,
) -> Result<Vec<ProcessorMessage>, DbError> {
    match chain {
        ExternalChain::Bitcoin => resolve_bitcoin(txn, height, scanned),
        ExternalChain::Monero => resolve_monero(txn, height, scanned),
    }
}

fn resolve_bitcoin<D: Db>(
    txn: &mut Txn<'_, D>,
    height: BlockHeight,
    scanned: &ScannedBlock,
) -> Result<Vec<ProcessorMessage>, DbError> {
    for output in &scanned.outputs {
        GROUP_OUTPUTS.set(txn, &output.id, &());
    }
    let mut messages = Vec::new();
    for spend in &scanned.spends {
        GROUP_OUTPUTS.delete(txn, &spend.output);
        let Some(eventuality) = EVENTUALITIES.take(txn, &spend.output)? else {
            SPENT.set(txn, &spend.output, &spend.transaction);
            SPENT_AT.set(txn, &spend.output, &height);
            continue;
        };
        if eventuality.transaction != spend.transaction {
            tracing::error!(
                plan = %eventuality.plan,
                expected = %hex::encode(&eventuality.transaction),
                found = %hex::encode(&spend.transaction),
                "a group output was spent by a transaction that is not its plan's: the plan cannot complete"
            );
            continue;
        }
        let Some(mut record) = plan::plan(txn, eventuality.plan)? else { continue };
        super::complete(txn, &mut record, spend.transaction.clone(), height);
        messages.push(ProcessorMessage::Sign(SignEvent::Completed {
            plan: record.id,
            transaction: spend.transaction.clone(),
        }));
    }
    Ok(messages)
}

fn resolve_monero<D: Db>(
    txn: &mut Txn<'_, D>,
    height: BlockHeight,
    scanned: &ScannedBlock,
) -> Result<Vec<ProcessorMessage>, DbError> {
    for output in &scanned.outputs {
        monero::store_output(
            txn,
            &output.id,
            &MoneroOutput { final_at: height, wallet_output: output.spend_data.clone() },
        );
    }
    let mut messages = Vec::new();
    let mut resolved = Vec::new();
    for completion in &scanned.completions {
        if MONERO_EVENTUALITIES.take(txn, &completion.plan)?.is_none() {
            continue;
        }
        resolved.push(completion.transaction.clone());
        let Some(mut record) = plan::plan(txn, completion.plan)? else { continue };
        super::complete(txn, &mut record, completion.transaction.clone(), height);
        messages.push(ProcessorMessage::Sign(SignEvent::Completed {
            plan: record.id,
            transaction: completion.transaction.clone(),
        }));
    }
    for (hash, transaction) in &scanned.own_transactions {
        if !resolved.iter().any(|resolved| resolved.as_slice() == hash.as_slice()) {
            OWN_TRANSACTIONS.set(txn, hash, transaction);
            OWN_TRANSACTION_AT.set(txn, hash, &height);
        }
    }
    Ok(messages)
}
