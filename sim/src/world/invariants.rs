//! The invariants every run is checked against ([`crate::Invariant`], citing `ARCHITECTURE.md`):
//! safety during the whole run, liveness once faults stop.

use super::{lock, Shared, CONFIRMATIONS};
use crate::Invariant;
use coordinator::SessionStatus;
use processor_core::chain::{self, ScanKey};
use processor_core::ids::{BatchId, SessionId};
use processor_core::inspect::Inspector;
use processor_core::keygen;
use processor_core::messages::{Batch, GroupKeys};
use std::collections::BTreeMap;

type Failure = (Invariant, String);

fn failure(invariant: Invariant, detail: String) -> Failure {
    (invariant, detail)
}

/// The Batch each final block with InInstructions must produce, scanning the best chain
/// directly: (height, Batch content without its id).
fn expected_batches(shared: &Shared, session: SessionId, keys: &GroupKeys, from: u64) -> Vec<(u64, Batch)> {
    let Some(chain) = &shared.chain else { return vec![] };
    let chain = lock(chain);
    let Some(last_final) = chain.tip().checked_sub(CONFIRMATIONS) else { return vec![] };
    let scan_key = [ScanKey { session, key: keys.chain }];
    let mut cache = lock(&shared.scan_cache);
    (from..=last_final)
        .filter_map(|height| {
            let id = chain.block_id(height)?;
            let batch = cache.entry((session, id)).or_insert_with(|| {
                let bytes = chain.block_bytes(height)?;
                let scanned = chain::scan_block(shared.chain_kind, &bytes, &scan_key).ok()?;
                // Deposits below the minimum are never credited, with or without an instruction.
                let minimum = processor_core::scanner::minimum_deposit(shared.chain_kind);
                let instructions: Vec<_> = scanned
                    .outputs
                    .into_iter()
                    .filter(|output| output.amount >= minimum)
                    .filter_map(|output| output.instruction.map(|instruction| (instruction, output.amount)))
                    .collect();
                (!instructions.is_empty()).then_some(Batch {
                    chain: shared.chain_kind,
                    id: BatchId(0),
                    block: scanned.id,
                    instructions,
                })
            });
            batch.clone().map(|batch| (height, batch))
        })
        .collect()
}

/// Processor `index`'s active keys, as `keygen::active_keys` reads them (parsed again only when
/// what is stored changes).
fn active_keys_at(
    shared: &Shared,
    index: usize,
) -> Result<Option<std::sync::Arc<keygen::ThresholdKeyPair>>, processor_core::db::DbError> {
    let mut memos = lock(&shared.active_keys);
    match memos.get_mut(index) {
        Some(memo) => memo.get(&shared.dbs[index]),
        None => keygen::active_keys(&shared.dbs[index]).map(|keys| keys.map(std::sync::Arc::new)),
    }
}

/// The active session's keys and activation height, as the coordinator confirmed them.
fn active(shared: &Shared) -> Option<(SessionId, GroupKeys, u64)> {
    let coordinator = lock(&shared.coordinator);
    let found = coordinator.sessions().rev().find_map(|(session, status)| match status {
        SessionStatus::Confirmed(keys) => Some((session, *keys, coordinator.activation(session)?.0)),
        _ => None,
    });
    found
}

pub(super) fn check_safety(shared: &Shared) -> Result<(), Failure> {
    if let Some(violation) = lock(&shared.violation).clone() {
        return Err(violation);
    }
    let storage = |e: processor_core::db::DbError| failure(Invariant::Storage, e.to_string());

    // Keys: whatever a processor activated is what the coordinator confirmed for that session.
    {
        let coordinator = lock(&shared.coordinator);
        for index in 0..shared.dbs.len() {
            let Some(active) = active_keys_at(shared, index).map_err(storage)? else { continue };
            match coordinator.status(active.session) {
                Some(SessionStatus::Confirmed(keys)) if *keys == active.group_keys() => {}
                status => {
                    return Err(failure(
                        Invariant::ActiveKeysConfirmed,
                        format!(
                            "processor {index} activated session {} with {:?}; coordinator: {status:?}",
                            active.session,
                            active.group_keys()
                        ),
                    ))
                }
            }
        }
    }

    // Batches: every processor built the same content for each Batch id, matching what the
    // group signed; each signed Batch is exactly the InInstructions of its final block; no
    // block is batched twice; nothing halts without a deep reorganisation.
    let deep_reorged = shared.deep_reorg_done();
    let mut contents: BTreeMap<BatchId, (usize, Batch)> = BTreeMap::new();
    for (index, db) in shared.dbs.iter().enumerate() {
        let may_halt = lock(&shared.deep_reorged).as_ref().is_some_and(|must_halt| must_halt[index]);
        if !may_halt && Inspector::new(db).halted().map_err(storage)?.is_some() {
            return Err(failure(Invariant::HaltOnlyOnReplacedFinalBlock, format!("processor {index} halted")));
        }
        let mut heights = BTreeMap::new();
        for (id, record) in Inspector::new(db).batches().map_err(storage)? {
            if let Some(other) = heights.insert(record.height, id) {
                return Err(failure(
                    Invariant::OneBatchPerHeight,
                    format!("processor {index} built Batches {other} and {id} for height {}", record.height),
                ));
            }
            match contents.get(&id) {
                Some((other, batch)) if *batch != record.batch => {
                    return Err(failure(
                        Invariant::BatchesAgree,
                        format!(
                            "Batch {id}: processor {index} built {:?}, processor {other} built {batch:?}",
                            record.batch
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    contents.insert(id, (index, record.batch));
                }
            }
        }
    }
    let signed: Vec<Batch> = lock(&shared.coordinator).signed_batches().map(|(b, _)| b.clone()).collect();
    let mut blocks = BTreeMap::new();
    for batch in &signed {
        if let Some((_, built)) = contents.get(&batch.id) {
            if built != batch {
                return Err(failure(Invariant::SignedBatchIsBuilt, format!("Batch {}", batch.id)));
            }
        }
        if let Some(other) = blocks.insert(batch.block, batch.id) {
            return Err(failure(
                Invariant::OneBatchPerBlock,
                format!("block {} is in Batches {other} and {}", batch.block, batch.id),
            ));
        }
    }
    check_plans(shared)?;

    // After a deep reorganisation the best chain no longer holds the blocks Batches were signed
    // for; the per-processor checks above still apply.
    if deep_reorged {
        return Ok(());
    }
    if let Some((session, keys, activation)) = active(shared) {
        let expected = expected_batches(shared, session, &keys, activation);
        for batch in &signed {
            match expected.iter().find(|(_, e)| e.block == batch.block) {
                Some((_, e)) if e.instructions == batch.instructions => {}
                found => {
                    return Err(failure(
                        Invariant::BatchIsItsFinalBlock,
                        format!(
                            "Batch {} for block {}: expected {found:?}, signed {:?}",
                            batch.id, batch.block, batch.instructions
                        ),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Liveness: the latest session's keys are active at all its participants, and every final
/// block with InInstructions is in a signed Batch. `Err` says what is still awaited.
pub(super) fn live(shared: &Shared) -> Result<(), String> {
    {
        let coordinator = lock(&shared.coordinator);
        let Some(session) = coordinator.latest_session() else { return Err("no session".into()) };
        if !matches!(coordinator.status(session), Some(SessionStatus::Confirmed(_))) {
            return Err(format!("session {session} is {:?}", coordinator.status(session)));
        }
        let participants = coordinator.participants(session).unwrap_or_default();
        for (index, identity) in shared.identities.iter().enumerate() {
            let active = active_keys_at(shared, index).ok().flatten().is_some_and(|keys| keys.session == session);
            if participants.contains(&identity.peer_key()) && !active {
                return Err(format!("processor {index} has not activated session {session}"));
            }
        }
    }
    let Some((session, keys, activation)) = active(shared) else { return Err("no confirmed keys".into()) };
    if shared.chain.is_none() {
        return Ok(());
    }
    if shared.scenario.deep_reorg {
        // Liveness here is a clean halt everywhere, reported to the coordinator.
        let Some(must_halt) = lock(&shared.deep_reorged).clone() else {
            return Err("the deep reorganisation has not happened".into());
        };
        for (index, db) in shared.dbs.iter().enumerate() {
            if must_halt[index] && Inspector::new(db).halted().ok().flatten().is_none() {
                return Err(format!("processor {index} reported a replaced final block but has not halted"));
            }
        }
        let expected = must_halt.iter().filter(|m| **m).count();
        let reported = lock(&shared.coordinator)
            .observations()
            .iter()
            .filter(|o| matches!(o, coordinator::Observation::ChainHalted { .. }))
            .count();
        if reported < expected {
            return Err(format!("{reported} of {expected} halts reported to the coordinator"));
        }
        return Ok(());
    }
    let signed: Vec<_> = lock(&shared.coordinator).signed_batches().map(|(b, _)| b.block).collect();
    for (height, batch) in expected_batches(shared, session, &keys, activation) {
        if !signed.contains(&batch.block) {
            let states: Vec<String> = shared
                .dbs
                .iter()
                .enumerate()
                .map(|(index, db)| {
                    let next = Inspector::new(db).next_height().ok().flatten();
                    let handled = Inspector::new(db).handled_through().ok();
                    format!("processor {index}: next scan {next:?}, handled {handled:?}")
                })
                .collect();
            return Err(format!("the final block {height} has no signed Batch yet ({})", states.join("; ")));
        }
    }
    plans_agree(shared)?;
    Ok(())
}

/// Plans a processor has made.
pub(super) fn plans_at(shared: &Shared, index: usize) -> u64 {
    Inspector::new(&shared.dbs[index]).plans().map_or(0, |plans| plans.len() as u64)
}

/// Plans whose transaction a processor saw final.
pub(super) fn plans_completed_at(shared: &Shared, index: usize) -> u64 {
    Inspector::new(&shared.dbs[index]).plans().map_or(0, |plans| {
        plans.iter().filter(|(_, r)| matches!(r.state, processor_core::payments::PlanState::Completed { .. })).count()
            as u64
    })
}

/// Payments safety: every plan conserves value; at each processor no output is spent by two
/// plans and no Burn is in two plans; a plan id means the same transaction everywhere.
fn check_plans(shared: &Shared) -> Result<(), Failure> {
    let storage = |e: processor_core::db::DbError| failure(Invariant::Storage, e.to_string());
    let mut everywhere: BTreeMap<processor_core::ids::PlanId, (usize, processor_core::scheduler::Plan)> =
        BTreeMap::new();
    for (index, db) in shared.dbs.iter().enumerate() {
        let mut inputs = std::collections::BTreeSet::new();
        let mut burns = std::collections::BTreeSet::new();
        for (id, record) in Inspector::new(db).plans().map_err(storage)? {
            if !record.plan.conserves_value() {
                return Err(failure(
                    Invariant::PlanConservesValue,
                    format!("processor {index}'s plan {} does not conserve value", record.id),
                ));
            }
            for input in &record.plan.inputs {
                if !inputs.insert(input.id.clone()) {
                    return Err(failure(
                        Invariant::OutputInOnePlan,
                        format!("processor {index} planned output {} twice", input.id),
                    ));
                }
            }
            for payment in &record.plan.payments {
                if !burns.insert(payment.payment.id) {
                    return Err(failure(
                        Invariant::BurnInOnePlan,
                        format!("processor {index} planned Burn {} twice", hex::encode(payment.payment.id)),
                    ));
                }
            }
            match everywhere.get(&id) {
                Some((other, theirs)) if *theirs != record.plan => {
                    return Err(failure(
                        Invariant::PlanIdsAgree,
                        format!("plan {} differs between processors {other} and {index}", record.id),
                    ))
                }
                Some(_) => {}
                None => {
                    everywhere.insert(id, (index, record.plan));
                }
            }
        }
    }
    Ok(())
}

/// What a processor planned: ids and plans (signing progress differs between processors).
fn plan_contents(
    db: &processor_core::db::MemDb,
) -> Result<Vec<(processor_core::ids::PlanId, processor_core::scheduler::Plan)>, String> {
    Ok(Inspector::new(db)
        .plans()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(id, record)| (id, record.plan))
        .collect())
}

/// Payments liveness: every processor of the active session reached the same plans and the
/// same scheduler state, and every plan's transaction is final and recognised as complete by
/// every processor.
pub(super) fn plans_agree(shared: &Shared) -> Result<(), String> {
    // The processors holding the latest session's keys (a validator a failed key generation
    // excluded holds no plans).
    let Some(session) = lock(&shared.coordinator).latest_session() else { return Err("no session".into()) };
    let members: Vec<usize> = (0..shared.dbs.len())
        .filter(|index| active_keys_at(shared, *index).ok().flatten().is_some_and(|keys| keys.session == session))
        .collect();
    let Some(&first) = members.first() else { return Err("no processor holds the latest keys".into()) };
    let reference = plan_contents(&shared.dbs[first])?;
    let scheduler = Inspector::new(&shared.dbs[first]).funds().map_err(|e| e.to_string())?;
    for &index in &members {
        let db = &shared.dbs[index];
        for (_, record) in Inspector::new(db).plans().map_err(|e| e.to_string())? {
            if !matches!(record.state, processor_core::payments::PlanState::Completed { .. }) {
                return Err(format!("processor {index}'s plan {} is not complete ({:?})", record.id, record.attempt));
            }
        }
        if plan_contents(db)? != reference {
            return Err(format!("processor {index}'s plans differ from processor {first}'s"));
        }
        if Inspector::new(db).funds().map_err(|e| e.to_string())? != scheduler {
            return Err(format!("processor {index}'s scheduler differs from processor {first}'s"));
        }
    }
    Ok(())
}
