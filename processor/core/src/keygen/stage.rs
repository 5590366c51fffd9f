//! Where each confirmed key stands in its lifecycle. Several keys can be live at once during a
//! rotation; at most one signs new Batches and plans (the active one).
//!
//! ```text
//!  Confirm (first keys) ──────────────────────────► Active
//!  Confirm (a later session) ──► Pending ──(block at activation acknowledged)──► Active
//!                                          the previous Active at that block ──► Retiring
//!  Retiring ──(holds nothing, nothing pending, the window passed)──► Retired (shares deleted)
//! ```
//!
//! Every transition happens at a command-stream point (a Confirm, an acknowledged block), so
//! every processor moves its keys at the same point and schedules alike. No clock is read.

use super::{Phase, ACTIVE_SESSION, KEYGEN_SESSIONS, KEY_SHARES};
use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, SessionId};
use crate::messages::{GroupKeys, OutputKind};
use bincode::{Decode, Encode};

tables! {
    /// The live keys (confirmed, not retired) and their stage. A retired key's row is deleted;
    /// its session's phase records the retirement.
    KEY_STAGES: Table<SessionId, KeyStage> = b"keygen/stage/";
    /// Retired keys still scanned, and up to which height. Outputs to a retired key are not
    /// credited, but whether a block's outputs include them must not depend on when each
    /// processor scanned the block relative to the retirement: so a retired key stays scanned
    /// until the activation height of the next key confirmed (a height no processor had
    /// scanned when it was confirmed), then no more.
    RETIRED_SCANS: Table<SessionId, RetiredScan> = b"keygen/retired_scan/";
}

/// How long a retired key stays scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RetiredScan {
    /// The first height scanned for it.
    pub activation: BlockHeight,
    /// The first height no longer scanned, once a later key is confirmed.
    pub until: Option<BlockHeight>,
}

/// Keys live at once at most: the active one and one pending or retiring. A confirmation that
/// would make a third is refused, so what is scanned, forwarded and signed stays bounded.
pub const MAX_LIVE_KEYS: usize = 2;

/// A live key's stage (see the module docs' diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum KeyStage {
    /// Confirmed; scanned from `activation`; signs nothing until the block at `activation` is
    /// acknowledged.
    Pending {
        /// The first height scanned for it, and the block whose acknowledgement hands over.
        activation: BlockHeight,
    },
    /// Signs new Batches and plans; receives deposits and change.
    Active {
        /// The first height scanned for it.
        activation: BlockHeight,
    },
    /// Replaced by a newer key at the acknowledged block `handed_over`: still scanned (deposits
    /// to it are credited), its outputs forwarded to the active key, no new payments.
    Retiring {
        /// The first height scanned for it.
        activation: BlockHeight,
        /// The acknowledged block that handed over to the next key.
        handed_over: BlockHeight,
    },
}

impl KeyStage {
    /// The first height scanned for the key.
    pub fn activation(&self) -> BlockHeight {
        match *self {
            KeyStage::Pending { activation }
            | KeyStage::Active { activation }
            | KeyStage::Retiring { activation, .. } => activation,
        }
    }
}

/// A live key: its session, stage and group keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveKey {
    /// The session that generated it.
    pub session: SessionId,
    /// Where it stands.
    pub stage: KeyStage,
    /// Its group keys, as confirmed.
    pub keys: GroupKeys,
}

/// Every live key, oldest session first.
pub fn live_keys(reader: &impl Read) -> Result<Vec<LiveKey>, DbError> {
    let mut live = Vec::new();
    for (session, stage) in KEY_STAGES.entries(reader)? {
        let keys = match KEYGEN_SESSIONS.get(reader, &session)?.map(|state| state.phase) {
            Some(Phase::Active { keys }) => keys,
            // Installed keys (a benchmark's dealer) have no session record: their shares do.
            _ => match super::generated_keys(reader, session)? {
                Some(pair) => pair.group_keys(),
                None => {
                    return Err(DbError::Corrupt { table: "keygen/stage", detail: format!("no keys for {session}") })
                }
            },
        };
        live.push(LiveKey { session, stage, keys });
    }
    Ok(live)
}

/// The keys to scan block `height` with: every live key activated at or below it, and every
/// retired key still scanned there (see [`RETIRED_SCANS`]), oldest session first.
pub fn scanned_at(reader: &impl Read, height: BlockHeight) -> Result<Vec<(SessionId, GroupKeys)>, DbError> {
    let mut keys: Vec<(SessionId, GroupKeys)> = live_keys(reader)?
        .into_iter()
        .filter(|live| live.stage.activation() <= height)
        .map(|live| (live.session, live.keys))
        .collect();
    for (session, scan) in RETIRED_SCANS.entries(reader)? {
        if scan.activation <= height && scan.until.is_none_or(|until| height < until) {
            if let Some(Phase::Retired { keys: group, .. }) = KEYGEN_SESSIONS.get(reader, &session)?.map(|s| s.phase) {
                keys.push((session, group));
            }
        }
    }
    keys.sort_by_key(|(session, _)| *session);
    Ok(keys)
}

/// The session whose batch key signs the Batch of the block at `height`: the newest live key
/// activated at or below it (a pending key whose activation the block reaches has taken over
/// by then: the acknowledgement hands over first). A function of the height, so a block
/// acknowledged out of order, below a handover already made, is still signed by the key the
/// coordinator expects.
pub fn batch_session_at(reader: &impl Read, height: BlockHeight) -> Result<Option<SessionId>, DbError> {
    Ok(KEY_STAGES
        .entries(reader)?
        .into_iter()
        .filter(|(_, stage)| !matches!(stage, KeyStage::Pending { .. }) && stage.activation() <= height)
        .map(|(session, _)| session)
        .next_back())
}

/// Forgets the retired keys no longer scanned at any height from `next` on.
pub fn forget_finished_scans<D: Db>(txn: &mut Txn<'_, D>, next: BlockHeight) -> Result<(), DbError> {
    for (session, scan) in RETIRED_SCANS.entries(txn)? {
        if scan.until.is_some_and(|until| until <= next) {
            RETIRED_SCANS.delete(txn, &session);
        }
    }
    Ok(())
}

/// The stage of `session`'s key, if it is live.
pub fn stage(reader: &impl Read, session: SessionId) -> Result<Option<KeyStage>, DbError> {
    KEY_STAGES.get(reader, &session)
}

/// Why a confirmation cannot take effect.
pub(super) fn check_confirmation(
    reader: &impl Read,
    activation: BlockHeight,
    next_to_scan: Option<BlockHeight>,
) -> Result<(), String> {
    let live = KEY_STAGES.entries(reader).map_err(|e| e.to_string())?;
    if live.is_empty() {
        return Ok(());
    }
    if live.len() >= MAX_LIVE_KEYS {
        return Err(format!(
            "a rotation is under way ({} keys live): a new key is confirmed only once the retiring one retired",
            live.len()
        ));
    }
    if let Some(next) = next_to_scan {
        if activation < next {
            return Err(format!(
                "activation height {activation} is below the next height to scan here ({next}): \
                 deposits to the new key there would be missed"
            ));
        }
    }
    Ok(())
}

/// Records a confirmed session's stage: the first keys are active at once, a later session's
/// are pending until the block at `activation` is acknowledged.
pub(super) fn confirmed<D: Db>(
    txn: &mut Txn<'_, D>,
    session: SessionId,
    activation: BlockHeight,
) -> Result<(), DbError> {
    for (retired, mut scan) in RETIRED_SCANS.entries(txn)? {
        if scan.until.is_none() {
            scan.until = Some(activation);
            RETIRED_SCANS.set(txn, &retired, &scan);
        }
    }
    if KEY_STAGES.entries(txn)?.is_empty() {
        KEY_STAGES.set(txn, &session, &KeyStage::Active { activation });
        ACTIVE_SESSION.set(txn, &(), &session);
    } else {
        KEY_STAGES.set(txn, &session, &KeyStage::Pending { activation });
    }
    Ok(())
}

/// The acknowledged block at `height`: a pending key whose activation height it reaches
/// becomes the active key, and the active key starts retiring. Returns (new, old) when it did.
pub fn hand_over<D: Db>(txn: &mut Txn<'_, D>, height: BlockHeight) -> Result<Option<(SessionId, SessionId)>, DbError> {
    let live = KEY_STAGES.entries(txn)?;
    let Some((new, activation)) = live.iter().find_map(|(session, stage)| match stage {
        KeyStage::Pending { activation } if *activation <= height => Some((*session, *activation)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let Some((old, old_activation)) = live.iter().find_map(|(session, stage)| match stage {
        KeyStage::Active { activation } => Some((*session, *activation)),
        _ => None,
    }) else {
        return Err(DbError::Corrupt { table: "keygen/stage", detail: "a pending key without an active one".into() });
    };
    KEY_STAGES.set(txn, &new, &KeyStage::Active { activation });
    KEY_STAGES.set(txn, &old, &KeyStage::Retiring { activation: old_activation, handed_over: height });
    ACTIVE_SESSION.set(txn, &(), &new);
    tracing::info!(%new, %old, %height, "keys handed over: the new key signs, the old one retires");
    Ok(Some((new, old)))
}

/// Retires `session`'s key at the acknowledged block `height`: no longer live, its shares
/// deleted (the stored bytes are overwritten by the store's deletion; every copy parsed from
/// them is zeroized when dropped), its session's phase records when.
pub fn retire<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, height: BlockHeight) -> Result<(), DbError> {
    let Some(KeyStage::Retiring { activation, handed_over }) = KEY_STAGES.take(txn, &session)? else {
        return Err(DbError::Corrupt { table: "keygen/stage", detail: format!("{session} is not retiring") });
    };
    KEY_SHARES.delete(txn, &session);
    RETIRED_SCANS.set(txn, &session, &RetiredScan { activation, until: None });
    if let Some(mut state) = KEYGEN_SESSIONS.get(txn, &session)? {
        if let Phase::Active { keys } = state.phase {
            state.phase = Phase::Retired { keys, handed_over, retired: height };
            KEYGEN_SESSIONS.set(txn, &session, &state);
        }
    }
    tracing::info!(%session, %height, "key retired: its shares are deleted");
    Ok(())
}

/// Schema 2 to 3: the one active key of schema 2 gets its stage.
pub fn migrate_from_schema_2<D: Db>(txn: &mut Txn<'_, D>) -> Result<(), DbError> {
    if let Some(session) = ACTIVE_SESSION.get(txn, &())? {
        if KEY_STAGES.get(txn, &session)?.is_none() {
            KEY_STAGES.set(txn, &session, &KeyStage::Active { activation: BlockHeight(0) });
        }
    }
    Ok(())
}

/// Installed keys (see [`super::install_keys`]) are active from the start.
pub(super) fn installed<D: Db>(txn: &mut Txn<'_, D>, session: SessionId) {
    KEY_STAGES.set(txn, &session, &KeyStage::Active { activation: BlockHeight(0) });
}

/// Whether an output to `session`'s key in the block at `height` is credited: always for the
/// active or pending key; for a retiring or retired one, the group's own change while the key
/// is live (its plans all complete before it retires), and deposits in blocks less than
/// `window` blocks past the handover. Deposits are judged by the block and the handover
/// alone, so every processor credits the same ones whenever it acknowledges the block.
pub fn credited(
    reader: &impl Read,
    session: SessionId,
    kind: OutputKind,
    height: BlockHeight,
    window: u64,
) -> Result<bool, DbError> {
    let handed_over = match KEY_STAGES.get(reader, &session)? {
        Some(KeyStage::Pending { .. } | KeyStage::Active { .. }) => return Ok(true),
        Some(KeyStage::Retiring { handed_over, .. }) => {
            if kind == OutputKind::Change {
                return Ok(true);
            }
            if crate::mutation::active(crate::mutation::Mutation::NoLateCredit) {
                return Ok(false);
            }
            handed_over
        }
        None => match KEYGEN_SESSIONS.get(reader, &session)?.map(|state| state.phase) {
            Some(Phase::Retired { handed_over, .. }) if kind == OutputKind::External => handed_over,
            _ => return Ok(false),
        },
    };
    Ok(height.0 < handed_over.0.saturating_add(window))
}
