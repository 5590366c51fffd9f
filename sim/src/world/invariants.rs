//! The invariants every run is checked against ([`crate::Invariant`], citing `ARCHITECTURE.md`):
//! safety during the whole run, liveness once faults stop.

use super::{lock, Shared};
use crate::Invariant;
use coordinator::SessionStatus;
use processor_core::chain::{self, ScanKey};
use processor_core::ids::{BatchId, BlockId, ExternalChain, SessionId};
use processor_core::inspect::Inspector;
use processor_core::keygen;
use processor_core::messages::{Batch, GroupKeys, OutputKind};
use std::collections::{BTreeMap, BTreeSet};

type Failure = (Invariant, String);

fn failure(invariant: Invariant, detail: String) -> Failure {
    (invariant, detail)
}

/// What scanning one block for a session's keys found: its outputs to the group, in block
/// order, each with its Monero one-time key (what the burning bug reuses) and whether a hostile
/// depositor sent it uncredited.
pub(super) struct ScannedOutputs {
    id: BlockId,
    outputs: Vec<ScannedOutput>,
}

/// One output to the group, as the checks see it.
struct ScannedOutput {
    output: chain::ReceivedOutput,
    /// Monero: its one-time key (`None` if unreadable: then it is credited to no one); Bitcoin:
    /// `None` (an output is named by its outpoint alone).
    one_time_key: Option<[u8; 32]>,
    /// Sent by a hostile depositor with malformed instruction data, or to the group's change
    /// address: credited to no one, whatever the processor decodes.
    uncredited: bool,
}

/// The best chain's block at `height` scanned for `keys` (every key live there, in session
/// order, as the processors scan it), cached by block id (a block id never changes content).
fn scanned(
    shared: &Shared,
    chain: &super::chain::SimChain,
    keys: &[(SessionId, GroupKeys)],
    height: u64,
) -> Option<std::sync::Arc<ScannedOutputs>> {
    let id = chain.block_id(height)?;
    let monero = shared.chain_kind == ExternalChain::Monero;
    let sessions: Vec<SessionId> = keys.iter().map(|(session, _)| *session).collect();
    let mut cache = lock(&shared.scan_cache);
    cache
        .entry((sessions, id))
        .or_insert_with(|| {
            let bytes = chain.block_bytes(height)?;
            let scan_keys: Vec<ScanKey> =
                keys.iter().map(|(session, keys)| ScanKey { session: *session, key: keys.chain }).collect();
            let scanned = chain::scan_block(shared.chain_kind, &bytes, &scan_keys).ok()?;
            let outputs = scanned
                .outputs
                .into_iter()
                .map(|output| {
                    let transaction = output.id.0.get(..32).and_then(|id| <[u8; 32]>::try_from(id).ok());
                    let uncredited = transaction.is_some_and(|id| chain.hostile.uncredited.contains(&id));
                    let one_time_key = if monero { chain::monero::output_key(&output.spend_data) } else { None };
                    ScannedOutput { output, one_time_key, uncredited }
                })
                .collect();
            Some(std::sync::Arc::new(ScannedOutputs { id: scanned.id, outputs }))
        })
        .clone()
}

/// One confirmed session's keys in the rotation history, as the coordinator confirmed them
/// and the processors handed over.
#[derive(Clone, Debug)]
struct Epoch {
    session: SessionId,
    keys: GroupKeys,
    activation: u64,
    /// The acknowledged height at which the next session took over from this one, as a
    /// processor recorded it.
    handed_over: Option<u64>,
    /// The acknowledged height at which it retired, as a processor recorded it.
    retired: Option<u64>,
}

/// Every confirmed session, oldest first.
fn epochs(shared: &Shared) -> Vec<Epoch> {
    let confirmed: Vec<(SessionId, GroupKeys, u64)> = {
        let coordinator = lock(&shared.coordinator);
        coordinator
            .sessions()
            .filter_map(|(session, status)| match status {
                SessionStatus::Confirmed(keys) => Some((session, *keys, coordinator.activation(session)?.0)),
                _ => None,
            })
            .collect()
    };
    confirmed
        .into_iter()
        .map(|(session, keys, activation)| {
            let retired_phase = |db| {
                Inspector::new(db).sessions().ok()?.into_iter().find_map(|(s, state)| match state.phase {
                    keygen::Phase::Retired { handed_over, retired, .. } if s == session => {
                        Some((handed_over.0, retired.0))
                    }
                    _ => None,
                })
            };
            let retired = shared.dbs.iter().find_map(retired_phase);
            let handed_over = retired.map(|(handed_over, _)| handed_over).or_else(|| {
                shared.dbs.iter().find_map(|db| match Inspector::new(db).key_stage(session).ok().flatten() {
                    Some(keygen::KeyStage::Retiring { handed_over, .. }) => Some(handed_over.0),
                    _ => None,
                })
            });
            Epoch { session, keys, activation, handed_over, retired: retired.map(|(_, retired)| retired) }
        })
        .collect()
}

/// The keys scanned at `height`: each key from its activation until the activation of the key
/// after its successor (a retired key stays scanned until the next key confirmed after its
/// retirement, and a key is confirmed only once the one before retired).
fn keys_at(epochs: &[Epoch], height: u64) -> Vec<(SessionId, GroupKeys)> {
    epochs
        .iter()
        .enumerate()
        .filter(|(i, epoch)| {
            epoch.activation <= height && epochs.get(i + 2).is_none_or(|later| height < later.activation)
        })
        .map(|(_, epoch)| (epoch.session, epoch.keys))
        .collect()
}

/// Whether an output to `session`'s key in the block at `height` is credited: a deposit unless
/// a later key took over and the block is `retirement_window` blocks or more past that
/// handover; a payment to its change address unless the key retired below the block (blocks
/// are acknowledged in order, so those above the retirement come after it).
fn in_window(epochs: &[Epoch], session: SessionId, kind: OutputKind, height: u64) -> bool {
    let Some(epoch) = epochs.iter().find(|epoch| epoch.session == session) else { return false };
    match kind {
        OutputKind::Change => epoch.retired.is_none_or(|retired| height <= retired),
        OutputKind::External => epoch
            .handed_over
            .is_none_or(|handed_over| height < handed_over + coordinator::local::DEFAULT_RETIREMENT_WINDOW),
    }
}

/// Whether an output joins the funds at all: not a deposit below the minimum (the group's own
/// change and branch outputs always do), and for Monero the first output under its one-time
/// key (`credited_keys` remembers them, in chain order).
fn creditable(shared: &Shared, scanned: &ScannedOutput, credited_keys: &mut BTreeSet<[u8; 32]>) -> bool {
    let output = &scanned.output;
    if output.kind == OutputKind::External
        && output.amount < processor_core::scanner::minimum_deposit(shared.chain_kind)
    {
        return false;
    }
    match scanned.one_time_key {
        Some(key) => credited_keys.insert(key),
        None => shared.chain_kind != ExternalChain::Monero,
    }
}

/// The Batch each final block with InInstructions must produce, scanning the best chain
/// directly: (height, Batch content without its id). Deposits below the minimum are never
/// credited; the hostile depositors' malformed instruction data and payments to the change
/// address are credited to no one, whatever the processor's decoding says; a Monero one-time
/// key is credited only to its first output on the chain (the burning bug).
fn expected_batches(shared: &Shared, epochs: &[Epoch]) -> Vec<(u64, Batch)> {
    let Some(chain) = &shared.chain else { return vec![] };
    let Some(from) = epochs.first().map(|epoch| epoch.activation) else { return vec![] };
    let chain = lock(chain);
    let Some(last_final) = chain.tip().checked_sub(shared.scenario.confirmations) else { return vec![] };
    let mut credited_keys = BTreeSet::new();
    let mut batches = Vec::new();
    for height in from..=last_final {
        let Some(scanned) = scanned(shared, &chain, &keys_at(epochs, height), height) else { continue };
        let reported: Vec<_> = scanned
            .outputs
            .iter()
            .filter(|output| creditable(shared, output, &mut credited_keys) && !output.uncredited)
            .filter(|output| output.output.instruction.is_some())
            .collect();
        // A block whose instructions all went to a key past its window still has its Batch
        // (the reports carried them), credited with none.
        let instructions: Vec<_> = reported
            .iter()
            .filter(|output| in_window(epochs, output.output.session, output.output.kind, height))
            .filter_map(|output| {
                output.output.instruction.clone().map(|instruction| (instruction, output.output.amount))
            })
            .collect();
        if !reported.is_empty() {
            batches.push((height, Batch { chain: shared.chain_kind, id: BatchId(0), block: scanned.id, instructions }));
        }
    }
    batches
}

/// Conservation against the chain, at every processor holding `session`'s keys: each
/// acknowledged block is the best chain's final block there, and the funds it holds plus its
/// plans' inputs are exactly the group's credited outputs in those blocks (outputs with an
/// InInstruction once their Batch is published; a Monero one-time key once). With every plan
/// conserving value, credited deposits then equal payments, fees and funds held.
fn funds_match_chain(shared: &Shared, epochs: &[Epoch]) -> Result<(), Failure> {
    use processor_core::scheduler::Funds;
    let storage = |e: processor_core::db::DbError| failure(Invariant::Storage, e.to_string());
    let Some(chain) = &shared.chain else { return Ok(()) };
    let chain = lock(chain);
    for (index, db) in shared.dbs.iter().enumerate() {
        let inspector = Inspector::new(db);
        let Some(active) = inspector.active_session().map_err(storage)? else { continue };
        if !epochs.iter().any(|epoch| epoch.session == active) {
            continue;
        }
        let mut expected = BTreeMap::new();
        let mut whence = BTreeMap::new();
        let mut credited_keys = BTreeSet::new();
        for (height, acknowledged) in inspector.acknowledgements().map_err(storage)? {
            if chain.block_id(height.0) != Some(acknowledged.block.0) {
                return Err(failure(
                    Invariant::AcknowledgedBlockIsFinal,
                    format!(
                        "processor {index} acknowledged block {} at height {height}, the final block there is {:?}",
                        acknowledged.block,
                        chain.block_id(height.0).map(hex::encode)
                    ),
                ));
            }
            let Some(scanned) = scanned(shared, &chain, &keys_at(epochs, height.0), height.0) else { continue };
            let published = match acknowledged.batch {
                None => true,
                Some(batch) => inspector.batch(batch).map_err(storage)?.is_some_and(|record| record.published),
            };
            for scanned in &scanned.outputs {
                // When an output joins follows what the processor decoded (the Batch checks hold
                // it to the depositor's intent).
                let output = &scanned.output;
                if creditable(shared, scanned, &mut credited_keys)
                    && in_window(epochs, output.session, output.kind, height.0)
                    && (output.instruction.is_none() || published)
                {
                    expected.insert(output.id.clone(), output.amount);
                    whence.insert(output.id.clone(), (output.session, output.kind, height.0));
                }
            }
        }
        let mut held = BTreeMap::new();
        let mut funds = inspector.funds().map_err(storage)?;
        let outputs = (0..funds.output_count() as usize).filter_map(|i| funds.output(i).ok().flatten());
        let planned: Vec<_> = inspector
            .plans()
            .map_err(storage)?
            .into_iter()
            .flat_map(|(_, record)| record.plan.inputs.into_iter())
            .collect();
        // Outputs a retiring key left behind (worth less than forwarding them) are written off:
        // still accounted for, never spent.
        let abandoned: Vec<_> = inspector
            .abandoned()
            .map_err(storage)?
            .into_iter()
            .map(|(id, (_, amount))| processor_core::scheduler::Utxo { id, amount, kind: OutputKind::Change })
            .collect();
        for utxo in outputs.collect::<Vec<_>>().into_iter().chain(planned).chain(abandoned) {
            if held.insert(utxo.id.clone(), utxo.amount).is_some() {
                return Err(failure(
                    Invariant::FundsMatchChain,
                    format!("processor {index} holds or plans output {} twice", utxo.id),
                ));
            }
        }
        if held != expected {
            let extra: Vec<String> = held
                .iter()
                .filter(|(id, a)| expected.get(*id) != Some(a))
                .map(|(id, a)| format!("{id}: {a}"))
                .collect();
            let missing: Vec<String> = expected
                .iter()
                .filter(|(id, a)| held.get(*id) != Some(a))
                .map(|(id, a)| match whence.get(id) {
                    Some((session, kind, height)) => format!("{id}: {a} ({kind:?} to session {session} at {height})"),
                    None => format!("{id}: {a}"),
                })
                .collect();
            return Err(failure(
                Invariant::FundsMatchChain,
                format!(
                    "processor {index}: held or planned but not credited on chain {extra:?}; credited on chain but \
                     neither held nor planned {missing:?}"
                ),
            ));
        }
    }
    Ok(())
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
        if let Some(halt) = Inspector::new(db).halted().map_err(storage)? {
            let replaced = lock(&shared.deep_reorged)
                .as_ref()
                .is_some_and(|reorg| reorg.replaced.get(&halt.height.0) == Some(&halt.reported.0));
            if !replaced {
                return Err(failure(
                    Invariant::HaltOnlyOnReplacedFinalBlock,
                    format!("processor {index} halted on {halt:?}, not a block the deep reorganisation replaced"),
                ));
            }
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
    retired_keys_hold_nothing(shared)?;
    let epochs = epochs(shared);
    if !epochs.is_empty() {
        funds_match_chain(shared, &epochs)?;
        let expected = expected_batches(shared, &epochs);
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
pub(super) fn live(shared: &Shared) -> Result<(), (Invariant, String)> {
    live_batches_and_plans(shared).map_err(|waiting| (Invariant::Liveness, waiting))?;
    if shared.scenario.deep_reorg {
        // A halted chain refuses Burns: they wait for the operator.
        return Ok(());
    }
    burns_settled(shared).map_err(|waiting| (Invariant::BurnsSettled, waiting))
}

/// Keys, Batches and plans: `Err` says what is still awaited.
fn live_batches_and_plans(shared: &Shared) -> Result<(), String> {
    {
        let coordinator = lock(&shared.coordinator);
        let Some(session) = coordinator.latest_session() else { return Err("no session".into()) };
        if !matches!(coordinator.status(session), Some(SessionStatus::Confirmed(_))) {
            return Err(format!("session {session} is {:?}", coordinator.status(session)));
        }
        let participants = coordinator.participants(session).unwrap_or_default();
        for (index, identity) in shared.identities.iter().enumerate() {
            let active = active_keys_at(shared, index).ok().flatten().is_some_and(|keys| keys.session == session);
            // A halted chain takes no acknowledgement, so a rotation confirmed after its halt
            // never hands over there: rightly, nothing is signed on it.
            let halted = Inspector::new(&shared.dbs[index]).halted().ok().flatten().is_some();
            if participants.contains(&identity.peer_key()) && !active && !halted {
                let stage = Inspector::new(&shared.dbs[index]).key_stage(session).ok().flatten();
                let next = Inspector::new(&shared.dbs[index]).next_height().ok().flatten();
                return Err(format!(
                    "processor {index} has not activated session {session} (its stage {stage:?}, next height to scan \
                     {next:?}; the coordinator activated it at {:?})",
                    coordinator.activation(session)
                ));
            }
        }
    }
    let epochs = epochs(shared);
    if epochs.is_empty() {
        return Err("no confirmed keys".into());
    }
    if shared.chain.is_none() {
        return Ok(());
    }
    if shared.scenario.deep_reorg {
        // Liveness here is a clean halt everywhere, reported to the coordinator.
        let Some(reorg) = lock(&shared.deep_reorged).clone() else {
            return Err("the deep reorganisation has not happened".into());
        };
        let mut expected = 0;
        for (index, db) in shared.dbs.iter().enumerate() {
            let halted = Inspector::new(db).halted().ok().flatten().is_some();
            if reorg.must_halt[index] && !halted {
                return Err(format!("processor {index} reported a replaced final block but has not halted"));
            }
            expected += usize::from(halted);
        }
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
    // Every rotation finishes: each key but the latest retired at every processor of the
    // latest keys.
    {
        let coordinator = lock(&shared.coordinator);
        let latest = epochs.last().map(|epoch| epoch.session);
        let participants = latest.and_then(|s| coordinator.participants(s)).unwrap_or_default().to_vec();
        for epoch in &epochs[..epochs.len() - 1] {
            for (index, identity) in shared.identities.iter().enumerate() {
                if !participants.contains(&identity.peer_key()) {
                    continue;
                }
                let inspector = Inspector::new(&shared.dbs[index]);
                if let Ok(Some(stage)) = inspector.key_stage(epoch.session) {
                    let held = inspector.holdings(epoch.session).map_err(|e| e.to_string())?;
                    let open: Vec<String> = inspector
                        .plans()
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .filter(|(_, r)| r.session == epoch.session)
                        .filter(|(_, r)| !matches!(r.state, processor_core::payments::PlanState::Completed { .. }))
                        .map(|(id, r)| format!("{id} {:?} {:?}", r.plan.kind, r.state).chars().take(120).collect())
                        .collect();
                    return Err(format!(
                        "processor {index}: session {} is still {stage:?}, holding {} outputs, plans not complete: {open:?}",
                        epoch.session, held.outputs
                    ));
                }
            }
        }
    }
    let signed: Vec<_> = lock(&shared.coordinator).signed_batches().map(|(b, _)| b.block).collect();
    for (height, batch) in expected_batches(shared, &epochs) {
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

/// Every Burn Serai issued, at every processor of the latest keys: a valid one paid by a plan
/// (complete, as `plans_agree` requires) or forfeited for its fee, never left queued while the
/// funds would pay it; an invalid one rejected. `Err` says what is still awaited.
fn burns_settled(shared: &Shared) -> Result<(), String> {
    use processor_core::payments::BurnStatus;
    use processor_core::scheduler::Funds;
    let Some(session) = lock(&shared.coordinator).latest_session() else { return Err("no session".into()) };
    let issued = lock(&shared.issued_burns).clone();
    for (index, db) in shared.dbs.iter().enumerate() {
        let inspector = Inspector::new(db);
        if inspector.active_session().map_err(|e| e.to_string())? != Some(session) {
            continue;
        }
        let mut funds = inspector.funds().map_err(|e| e.to_string())?;
        // Only the active key pays Burns (a retiring key's funds are being forwarded to it).
        let holdings = inspector.holdings(session).map_err(|e| e.to_string())?.holdings;
        // The queue is paid in order: only its front can be waiting on nothing but itself.
        if let Ok(Some(front)) = funds.payment(0) {
            let margin = u128::from(shared.chain.as_ref().map_or(0, |c| lock(c).deposit_amount(0)));
            if holdings > 2 * u128::from(front.amount.0) + margin {
                return Err(format!(
                    "processor {index} holds {holdings} yet Burn {} of {} is still queued",
                    hex::encode(front.id),
                    front.amount
                ));
            }
        }
        for (burn, valid) in &issued {
            let status = inspector.burn(&burn.id).map_err(|e| e.to_string())?;
            let settled = match status {
                None => false,
                Some(BurnStatus::Rejected) => *valid != Some(true),
                Some(BurnStatus::Queued | BurnStatus::Planned(_) | BurnStatus::Forfeited) => *valid != Some(false),
            };
            if !settled {
                let validity = match valid {
                    Some(true) => "valid",
                    Some(false) => "invalid",
                    None => "near its dust limit",
                };
                return Err(format!("processor {index}: Burn {} ({validity}) is {status:?}", hex::encode(burn.id)));
            }
        }
    }
    Ok(())
}

/// A retired key holds nothing at any processor: no output in its funds, no plan of it still
/// open, and its shares are gone.
fn retired_keys_hold_nothing(shared: &Shared) -> Result<(), Failure> {
    let storage = |e: processor_core::db::DbError| failure(Invariant::Storage, e.to_string());
    for (index, db) in shared.dbs.iter().enumerate() {
        let inspector = Inspector::new(db);
        for (session, state) in inspector.sessions().map_err(storage)? {
            if !matches!(state.phase, keygen::Phase::Retired { .. }) {
                continue;
            }
            let held = inspector.holdings(session).map_err(storage)?;
            if held.outputs > 0 {
                return Err(failure(
                    Invariant::RetiredKeyEmpty,
                    format!("processor {index} retired session {session} holding {} outputs", held.outputs),
                ));
            }
            for (_, record) in inspector.plans().map_err(storage)? {
                if record.session == session
                    && matches!(
                        record.state,
                        processor_core::payments::PlanState::Planned
                            | processor_core::payments::PlanState::Signed { .. }
                    )
                {
                    return Err(failure(
                        Invariant::RetiredKeyEmpty,
                        format!("processor {index} retired session {session} with plan {} open", record.id),
                    ));
                }
            }
            if keygen::generated_keys(db, session).map_err(storage)?.is_some() {
                return Err(failure(
                    Invariant::RetiredKeyEmpty,
                    format!("processor {index} retired session {session} but kept its shares"),
                ));
            }
        }
    }
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
