//! `processor inspect`: a read-only view of a data directory, while the daemon runs or not.
//!
//! RocksDB's read-only mode takes no lock, so the daemon keeps writing; the view is the state
//! as of the moment it was opened. Nothing here can write: the store is opened read-only and
//! read only through the core's `Inspector`.

use crate::db::RocksDb;
use processor_core::db::{DbError, Read};
use processor_core::inspect::Inspector;
use processor_core::keygen::{KeyStage, Phase};
use processor_core::payments::{BurnStatus, PlanState};
use serde::Serialize;
use std::path::Path;

/// Plans and Batches listed one by one, newest first; beyond this only their counts.
const LISTED: usize = 50;

/// What a data directory holds, as `processor inspect` prints it.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Report {
    /// The stored schema version (`None`: never opened by a processor).
    pub schema_version: Option<u32>,
    pub sessions: Vec<SessionReport>,
    pub active_session: Option<u32>,
    /// The next height to scan, once keys are active.
    pub next_to_scan: Option<u64>,
    pub last_scanned: Option<ScannedReport>,
    /// Why scanning stopped for good, if it did.
    pub halted: Option<HaltReport>,
    /// Coordinator frames handled, by sequence id.
    pub handled_through: u64,
    /// Messages to the coordinator not yet acknowledged.
    pub outbox: usize,
    pub batches: BatchesReport,
    pub plans: PlansReport,
    pub burns: BurnsReport,
    pub funds: FundsReport,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct SessionReport {
    pub session: u32,
    pub chain: String,
    pub threshold: u16,
    pub participants: usize,
    pub my_index: u16,
    /// How far key generation got and, once confirmed, the key's lifecycle stage: committed,
    /// shares sent, generated, failed; then pending, active, retiring, retired.
    pub stage: String,
    /// Outputs the key holds, and their sum (the chain's smallest unit).
    pub outputs: u64,
    pub holdings: String,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct ScannedReport {
    pub height: u64,
    pub block: String,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct HaltReport {
    pub height: u64,
    /// The block reported at that height.
    pub reported: String,
    /// The block the node served there since.
    pub found: String,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct BatchesReport {
    pub pending: usize,
    pub signed: usize,
    pub published: usize,
    /// The newest ones (at most 50).
    pub newest: Vec<BatchReport>,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct BatchReport {
    pub id: u32,
    pub height: u64,
    pub instructions: usize,
    pub attempt: u32,
    pub signed: bool,
    pub published: bool,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct PlansReport {
    pub planned: usize,
    pub signed: usize,
    pub completed: usize,
    pub failed: usize,
    /// Every unfinished plan, then the newest finished ones (at most 50 in all).
    pub listed: Vec<PlanReport>,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct PlanReport {
    pub id: String,
    pub kind: String,
    pub state: String,
    /// The failure's reason, or the transaction's id once signed.
    pub detail: Option<String>,
    pub inputs: usize,
    /// The Burns it pays, by id.
    pub burns: Vec<String>,
    pub fee: u64,
    pub attempt: u32,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct BurnsReport {
    pub queued: usize,
    pub planned: usize,
    pub rejected: usize,
    pub forfeited: usize,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct FundsReport {
    pub outputs: u64,
    /// In the chain's smallest unit (a string: it may exceed what JSON numbers carry exactly).
    pub holdings: String,
    pub queued_payments: u64,
}

/// Opens `data_dir` read-only and reads the report.
pub fn inspect(data_dir: &Path) -> Result<Report, String> {
    if !data_dir.join("CURRENT").is_file() {
        return Err(format!("{} is not a processor's data directory (no RocksDB there)", data_dir.display()));
    }
    let db = RocksDb::open_read_only(data_dir).map_err(|e| e.to_string())?;
    report(&db).map_err(|e| format!("reading {}: {e}", data_dir.display()))
}

/// The report of any store (the daemon's, or an in-memory one in tests).
pub fn report(db: &impl Read) -> Result<Report, DbError> {
    let inspector = Inspector::new(db);
    let mut sessions = Vec::new();
    for (id, state) in inspector.sessions()? {
        let held = inspector.holdings(id)?;
        sessions.push(SessionReport {
            session: id.0,
            chain: state.chain.to_string(),
            threshold: state.threshold,
            participants: state.participants.len(),
            my_index: state.my_index.get(),
            stage: stage(&state.phase, inspector.key_stage(id)?),
            outputs: held.outputs,
            holdings: held.holdings.to_string(),
        });
    }

    let mut batches = inspector.batches()?;
    batches.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    let batches = BatchesReport {
        pending: batches.iter().filter(|(_, b)| b.signature.is_none()).count(),
        signed: batches.iter().filter(|(_, b)| b.signature.is_some()).count(),
        published: batches.iter().filter(|(_, b)| b.published).count(),
        newest: batches
            .iter()
            .take(LISTED)
            .map(|(id, b)| BatchReport {
                id: id.0,
                height: b.height.0,
                instructions: b.batch.instructions.len(),
                attempt: b.attempt.0,
                signed: b.signature.is_some(),
                published: b.published,
            })
            .collect(),
    };

    let plans = inspector.plans()?;
    let count = |matches: fn(&PlanState) -> bool| plans.iter().filter(|(_, r)| matches(&r.state)).count();
    let unfinished = |state: &PlanState| matches!(state, PlanState::Planned | PlanState::Signed { .. });
    let mut listed: Vec<_> = plans.iter().filter(|(_, r)| unfinished(&r.state)).collect();
    listed.extend(plans.iter().rev().filter(|(_, r)| !unfinished(&r.state)));
    let plans_report = PlansReport {
        planned: count(|s| matches!(s, PlanState::Planned)),
        signed: count(|s| matches!(s, PlanState::Signed { .. })),
        completed: count(|s| matches!(s, PlanState::Completed { .. })),
        failed: count(|s| matches!(s, PlanState::Failed { .. })),
        listed: listed
            .into_iter()
            .take(LISTED)
            .map(|(id, record)| {
                let (state, detail) = match &record.state {
                    PlanState::Planned => ("planned", None),
                    PlanState::Signed { transaction } => ("signed", Some(hex::encode(transaction))),
                    PlanState::Completed { transaction } => ("completed", Some(hex::encode(transaction))),
                    PlanState::Failed { reason } => ("failed", Some(reason.clone())),
                };
                PlanReport {
                    id: id.to_string(),
                    kind: format!("{:?}", record.plan.kind).to_lowercase(),
                    state: state.into(),
                    detail,
                    inputs: record.plan.inputs.len(),
                    burns: record.plan.payments.iter().map(|p| hex::encode(p.payment.id)).collect(),
                    fee: record.plan.fee.0,
                    attempt: record.attempt.0,
                }
            })
            .collect(),
    };

    let mut burns = BurnsReport { queued: 0, planned: 0, rejected: 0, forfeited: 0 };
    for (_, status) in inspector.burns()? {
        match status {
            BurnStatus::Queued => burns.queued += 1,
            BurnStatus::Planned(_) => burns.planned += 1,
            BurnStatus::Rejected => burns.rejected += 1,
            BurnStatus::Forfeited => burns.forfeited += 1,
        }
    }
    let totals = inspector.funds_totals()?;

    Ok(Report {
        schema_version: inspector.schema_version()?.map(|v| v.0),
        sessions,
        active_session: inspector.active_session()?.map(|s| s.0),
        next_to_scan: inspector.next_height()?.map(|h| h.0),
        last_scanned: inspector
            .last_scanned()?
            .map(|tip| ScannedReport { height: tip.height.0, block: tip.id.to_string() }),
        halted: inspector.halted()?.map(|halt| HaltReport {
            height: halt.height.0,
            reported: halt.reported.to_string(),
            found: halt.found.to_string(),
        }),
        handled_through: inspector.handled_through()?.0,
        outbox: inspector.outbox_len()?,
        batches,
        plans: plans_report,
        burns,
        funds: FundsReport {
            outputs: totals.outputs,
            holdings: totals.holdings.to_string(),
            queued_payments: totals.queued,
        },
    })
}

fn stage(phase: &Phase, key: Option<KeyStage>) -> String {
    match (phase, key) {
        (Phase::Committed, _) => "committed".into(),
        (Phase::SharesSent { .. }, _) => "shares sent".into(),
        (Phase::Generated { .. }, _) => "generated".into(),
        (Phase::Active { .. }, Some(KeyStage::Pending { activation })) => {
            format!("pending (takes over at height {activation})")
        }
        (Phase::Active { .. }, Some(KeyStage::Retiring { handed_over, .. })) => {
            format!("retiring (handed over at height {handed_over}; forwarding)")
        }
        (Phase::Active { .. }, _) => "active".into(),
        (Phase::Failed { .. }, _) => "failed (a participant was blamed)".into(),
        (Phase::Retired { handed_over, retired, .. }, _) => {
            format!("retired at height {retired} (handed over at {handed_over}; shares deleted)")
        }
    }
}

impl Report {
    /// The report for a person: one fact per line.
    pub fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let or_none = |value: Option<String>| value.unwrap_or_else(|| "none".into());
        let _ = writeln!(out, "schema version    {}", or_none(self.schema_version.map(|v| v.to_string())));
        let _ = writeln!(out, "active session    {}", or_none(self.active_session.map(|s| s.to_string())));
        for s in &self.sessions {
            let _ = writeln!(
                out,
                "session {}         {}, {}-of-{}, we are {}, {}, holds {} outputs ({})",
                s.session, s.chain, s.threshold, s.participants, s.my_index, s.stage, s.outputs, s.holdings
            );
        }
        let _ = writeln!(out, "next to scan      {}", or_none(self.next_to_scan.map(|h| h.to_string())));
        let scanned = self.last_scanned.as_ref().map(|t| format!("{} ({})", t.height, t.block));
        let _ = writeln!(out, "last scanned      {}", or_none(scanned));
        match &self.halted {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "HALTED            at {}: reported {}, the node now serves {}",
                    h.height, h.reported, h.found
                );
            }
            None => {
                let _ = writeln!(out, "halted            no");
            }
        }
        let _ = writeln!(out, "frames handled    {}", self.handled_through);
        let _ = writeln!(out, "outbox            {} unacknowledged", self.outbox);
        let b = &self.batches;
        let _ =
            writeln!(out, "batches           {} pending, {} signed, {} published", b.pending, b.signed, b.published);
        let p = &self.plans;
        let _ = writeln!(
            out,
            "plans             {} planned, {} signed, {} completed, {} failed",
            p.planned, p.signed, p.completed, p.failed
        );
        for plan in &p.listed {
            let detail = plan.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  plan {} {} {}{}: {} inputs, {} Burns, fee {}, attempt {}",
                plan.id,
                plan.kind,
                plan.state,
                detail,
                plan.inputs,
                plan.burns.len(),
                plan.fee,
                plan.attempt
            );
        }
        let u = &self.burns;
        let _ = writeln!(
            out,
            "burns             {} queued, {} planned, {} rejected, {} forfeited",
            u.queued, u.planned, u.rejected, u.forfeited
        );
        let f = &self.funds;
        let _ = writeln!(
            out,
            "funds             {} outputs holding {}, {} payments queued",
            f.outputs, f.holdings, f.queued_payments
        );
        out
    }
}

#[cfg(test)]
mod tests;
