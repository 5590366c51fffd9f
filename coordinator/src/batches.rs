//! Block acknowledgement and threshold signing, as the coordinator drives them: a block is
//! acknowledged once `t` processors of the active session report it identically; its Batch
//! (if it has InInstructions) is signed by the first `t` processors to preprocess. A plan's
//! transaction is signed the same way from its first preprocess, until `t` processors report it
//! complete. An attempt that stalls is re-attempted with a new attempt
//! number (new nonces everywhere), excluding anyone blamed.

use crate::{Coordinator, Observation, Outbound};
use processor_core::batch::batch_message;
use processor_core::ids::{Attempt, BatchId, BlockHeight, BlockId, Millis, Participant, PeerKey, PlanId, SessionId};
use processor_core::messages::{
    Batch, CoordinatorMessage, Deposit, Opaque, ScannerCommand, ScannerEvent, SignCommand, SignEvent, SignId,
    SignTarget,
};
use std::collections::{BTreeMap, BTreeSet};

/// A signing attempt that has not completed in this long is re-attempted.
pub const SIGN_ATTEMPT_TIMEOUT_MS: u64 = 5_000;

/// How long attempt `attempt` may take before the next one: doubling from
/// [`SIGN_ATTEMPT_TIMEOUT_MS`] up to 16 times it. Under load (many Batches at once, slow links),
/// a fixed timeout re-attempted rounds faster than they could complete, each re-attempt adding
/// to the backlog that made them slow: a livelock the swarm found.
fn attempt_timeout(attempt: Attempt) -> u64 {
    SIGN_ATTEMPT_TIMEOUT_MS << attempt.0.min(4)
}

#[derive(Default)]
pub(crate) struct BatchState {
    /// Per height: each participant's report.
    reports: BTreeMap<BlockHeight, BTreeMap<Participant, (BlockId, Vec<Deposit>)>>,
    decided: BTreeSet<BlockHeight>,
    /// What was acknowledged at each decided height that had outputs to the group.
    acknowledged: BTreeMap<BlockHeight, (BlockId, Option<BatchId>)>,
    next_batch: u32,
    rounds: BTreeMap<SignTarget, SigningRound>,
    signed: BTreeMap<BatchId, (Batch, [u8; 64])>,
    /// Plans `t` processors reported complete, with the transaction's chain id.
    completed: BTreeMap<PlanId, Vec<u8>>,
    /// Who has claimed each plan complete so far (a claim alone is not trusted: a Byzantine
    /// processor could make one to stall a payment).
    claims: BTreeMap<PlanId, BTreeSet<Participant>>,
    /// Signers blamed for a bad share: left out of every later signing set.
    excluded: BTreeSet<Participant>,
}

struct SigningRound {
    id: SignId,
    started: Millis,
    /// In arrival order.
    preprocesses: Vec<(Participant, Opaque)>,
    set: Option<Vec<Participant>>,
    shares: BTreeMap<Participant, Opaque>,
    excluded: BTreeSet<Participant>,
}

impl Coordinator {
    /// Every plan reported complete so far, with its transaction's chain id.
    pub fn completed_plans(&self) -> &BTreeMap<PlanId, Vec<u8>> {
        &self.batches.completed
    }

    /// Starts signing a plan's transaction, unless it is being signed or done.
    fn plan_signing(&mut self, session: SessionId, plan: PlanId) {
        let target = SignTarget::Transaction(plan);
        if self.batches.completed.contains_key(&plan) || self.batches.rounds.contains_key(&target) {
            return;
        }
        let id = SignId { session, target, attempt: Attempt(0) };
        let round = self.new_round(id);
        self.batches.rounds.insert(target, round);
    }

    fn new_round(&self, id: SignId) -> SigningRound {
        SigningRound {
            id,
            started: self.now,
            preprocesses: vec![],
            set: None,
            shares: BTreeMap::new(),
            excluded: self.batches.excluded.clone(),
        }
    }

    /// Every Batch signed so far, by id.
    pub fn signed_batches(&self) -> impl Iterator<Item = (&Batch, &[u8; 64])> {
        self.batches.signed.values().map(|(batch, signature)| (batch, signature))
    }

    /// Every acknowledged height with outputs to the group: its block and Batch id.
    pub fn acknowledged_blocks(&self) -> impl DoubleEndedIterator<Item = (BlockHeight, BlockId, Option<BatchId>)> + '_ {
        self.batches.acknowledged.iter().map(|(height, (block, batch))| (*height, *block, *batch))
    }

    /// Heights some processor reported and the validators have not decided yet, each with
    /// whether the first report carries InInstructions.
    pub fn undecided_reports(&self) -> Vec<(BlockHeight, bool)> {
        self.batches
            .reports
            .iter()
            .filter_map(|(height, reports)| {
                let (_, deposits) = reports.values().next()?;
                Some((*height, deposits.iter().any(|d| d.instruction.is_some())))
            })
            .collect()
    }

    /// Batch signing rounds whose signing set is fixed: the attempt and the preprocesses sent
    /// to its set.
    pub fn fixed_batch_rounds(&self) -> Vec<(SignId, Vec<(Participant, Opaque)>)> {
        self.batches
            .rounds
            .values()
            .filter(|round| matches!(round.id.target, SignTarget::Batch(_)) && round.set.is_some())
            .map(|round| (round.id, round.preprocesses.clone()))
            .collect()
    }

    fn participant(&self, participants: &[PeerKey], from: PeerKey) -> Option<Participant> {
        participants.iter().position(|p| *p == from).map(Participant::from_position)
    }

    pub(crate) fn scanner_event(&mut self, from: PeerKey, event: ScannerEvent) -> Vec<Outbound> {
        // A block is decided by the processors of the session that signs its Batch; a Batch's
        // signature is checked against the key of the session signing it.
        let session = match &event {
            ScannerEvent::BlockFinal { height, .. } | ScannerEvent::Halted { height, .. } => {
                self.signing_session_at(*height)
            }
            ScannerEvent::SignedBatch { batch, .. } => {
                self.batches.rounds.get(&SignTarget::Batch(batch.id)).map(|round| round.id.session)
            }
        };
        let Some(session) = session else { return vec![] };
        let Some((participants, threshold, keys)) = self.confirmed(session) else { return vec![] };
        let Some(sender) = self.participant(&participants, from) else { return vec![] };
        let recipients = self.live_processors();
        match event {
            ScannerEvent::BlockFinal { height, block, deposits } => {
                if self.record_reports {
                    let deposits = deposits.clone();
                    self.observations.push(Observation::BlockReported { by: sender, height, block, deposits });
                }
                if self.batches.decided.contains(&height) {
                    return vec![];
                }
                let reports = self.batches.reports.entry(height).or_default();
                reports.insert(sender, (block, deposits.clone()));
                let agreeing = reports.values().filter(|(b, d)| *b == block && *d == deposits).count();
                if agreeing < usize::from(threshold) {
                    return vec![];
                }
                self.batches.decided.insert(height);
                self.batches.reports.remove(&height);
                if deposits.is_empty() {
                    // While keys rotate, quiet blocks are acknowledged too: the retiring key's
                    // window and retirement advance with acknowledged heights.
                    if !self.rotating() {
                        return vec![];
                    }
                    let command = ScannerCommand::AcknowledgeHeight { height };
                    return recipients
                        .iter()
                        .flat_map(|p| self.send(*p, CoordinatorMessage::Scanner(command.clone())))
                        .collect();
                }
                if !deposits.iter().any(|d| d.instruction.is_some()) {
                    // Outputs with no InInstruction: acknowledged (they join the group's funds)
                    // without a Batch.
                    self.observations.push(Observation::BlockAcknowledged { height, batch: None });
                    self.batches.acknowledged.insert(height, (block, None));
                    let command = ScannerCommand::AcknowledgeBlock { height, block, batch: None };
                    return recipients
                        .iter()
                        .flat_map(|p| self.send(*p, CoordinatorMessage::Scanner(command.clone())))
                        .collect();
                }
                let batch = BatchId(self.batches.next_batch);
                self.batches.next_batch += 1;
                self.observations.push(Observation::BlockAcknowledged { height, batch: Some(batch) });
                self.batches.acknowledged.insert(height, (block, Some(batch)));
                let id = SignId { session, target: SignTarget::Batch(batch), attempt: Attempt(0) };
                let round = self.new_round(id);
                self.batches.rounds.insert(id.target, round);
                let command = ScannerCommand::AcknowledgeBlock { height, block, batch: Some(batch) };
                recipients.iter().flat_map(|p| self.send(*p, CoordinatorMessage::Scanner(command.clone()))).collect()
            }
            ScannerEvent::SignedBatch { batch, signature } => {
                if self.batches.signed.contains_key(&batch.id)
                    || !self.batches.rounds.contains_key(&SignTarget::Batch(batch.id))
                {
                    return vec![];
                }
                let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&keys.batch.0) else { return vec![] };
                let valid = key
                    .verify_strict(&batch_message(&batch), &ed25519_dalek::Signature::from_bytes(&signature))
                    .is_ok();
                if !valid {
                    return vec![];
                }
                self.batches.rounds.remove(&SignTarget::Batch(batch.id));
                self.batches.signed.insert(batch.id, (batch.clone(), signature));
                self.observations.push(Observation::BatchSigned { batch: batch.clone(), signature });
                if self.hold_publication {
                    return vec![];
                }
                let command = ScannerCommand::BatchPublished { batch: batch.id };
                recipients.iter().flat_map(|p| self.send(*p, CoordinatorMessage::Scanner(command.clone()))).collect()
            }
            ScannerEvent::Halted { height, .. } => {
                self.observations.push(Observation::ChainHalted { by: sender, height });
                vec![]
            }
        }
    }

    pub(crate) fn sign_event(&mut self, from: PeerKey, event: SignEvent) -> Vec<Outbound> {
        // Each round is run among the processors of the session that signs it.
        let session = match &event {
            SignEvent::Preprocess { id, .. } | SignEvent::Share { id, .. } | SignEvent::Blame { id, .. } => {
                Some(id.session)
            }
            SignEvent::Completed { plan, .. } => self
                .batches
                .rounds
                .get(&SignTarget::Transaction(*plan))
                .map(|round| round.id.session)
                .or_else(|| self.active().map(|(session, ..)| session)),
        };
        let Some(session) = session else { return vec![] };
        let Some((participants, threshold, _)) = self.confirmed(session) else { return vec![] };
        let Some(sender) = self.participant(&participants, from) else { return vec![] };
        let id = match &event {
            SignEvent::Preprocess { id, .. } | SignEvent::Share { id, .. } | SignEvent::Blame { id, .. } => *id,
            SignEvent::Completed { plan, transaction } => {
                self.observations.push(Observation::TransactionCompleted {
                    by: sender,
                    plan: *plan,
                    transaction: transaction.clone(),
                });
                // Done once t processors say so: at least one of them is honest. Until then the
                // round goes on (processors holding the signed transaction ignore re-attempts).
                let claims = self.batches.claims.entry(*plan).or_default();
                claims.insert(sender);
                if claims.len() >= usize::from(threshold) {
                    self.batches.claims.remove(plan);
                    self.batches.rounds.remove(&SignTarget::Transaction(*plan));
                    self.batches.completed.entry(*plan).or_insert_with(|| transaction.clone());
                }
                return vec![];
            }
        };
        let target = id.target;
        if let (SignTarget::Transaction(plan), SignEvent::Preprocess { .. }) = (target, &event) {
            // A plan's signing round begins with the first preprocess for it (processors
            // start signing a plan as they make it; a chain they cannot sign for yet starts
            // no round).
            if id.session == session && id.attempt == Attempt(0) {
                self.plan_signing(session, plan);
            }
        }
        let Some(round) = self.batches.rounds.get_mut(&target) else { return vec![] };
        if round.id != id {
            return vec![];
        }
        let mut to_send: Vec<(Participant, SignCommand)> = vec![];
        match event {
            SignEvent::Preprocess { preprocess, .. } => {
                if round.set.is_some()
                    || round.excluded.contains(&sender)
                    || round.preprocesses.iter().any(|(p, _)| *p == sender)
                {
                    return vec![];
                }
                round.preprocesses.push((sender, preprocess));
                if round.preprocesses.len() == usize::from(threshold) {
                    let set: Vec<Participant> = round.preprocesses.iter().map(|(p, _)| *p).collect();
                    let preprocesses = round.preprocesses.clone();
                    for member in &set {
                        to_send.push((*member, SignCommand::Preprocesses { id, preprocesses: preprocesses.clone() }));
                    }
                    round.set = Some(set);
                }
            }
            SignEvent::Share { share, .. } => {
                let Some(set) = &round.set else { return vec![] };
                if !set.contains(&sender) {
                    return vec![];
                }
                round.shares.insert(sender, share);
                if round.shares.len() == set.len() {
                    let shares: Vec<(Participant, Opaque)> =
                        round.shares.iter().map(|(p, s)| (*p, s.clone())).collect();
                    for member in set {
                        to_send.push((*member, SignCommand::Shares { id, shares: shares.clone() }));
                    }
                }
            }
            SignEvent::Blame { accused, .. } => {
                self.observations.push(Observation::SigningBlamed { id, by: sender, accused });
                round.excluded.insert(accused);
                self.batches.excluded.insert(accused);
                return self.reattempt(target, &participants);
            }
            SignEvent::Completed { .. } => return vec![],
        }
        to_send
            .into_iter()
            .flat_map(|(member, command)| self.send(participants[member.position()], CoordinatorMessage::Sign(command)))
            .collect()
    }

    fn reattempt(&mut self, target: SignTarget, participants: &[PeerKey]) -> Vec<Outbound> {
        let now = self.now;
        let Some(round) = self.batches.rounds.get_mut(&target) else { return vec![] };
        round.id.attempt = Attempt(round.id.attempt.0 + 1);
        round.started = now;
        round.preprocesses.clear();
        round.set = None;
        round.shares.clear();
        let id = round.id;
        let excluded = round.excluded.clone();
        self.observations.push(Observation::Reattempted { id });
        participants
            .iter()
            .enumerate()
            .filter(|(position, _)| !excluded.contains(&Participant::from_position(*position)))
            .flat_map(|(_, p)| self.send(*p, CoordinatorMessage::Sign(SignCommand::Reattempt { id })))
            .collect::<Vec<_>>()
    }

    pub(crate) fn reattempt_stalled(&mut self) -> Vec<Outbound> {
        let now = self.now;
        let stalled: Vec<(SignTarget, SessionId)> = self
            .batches
            .rounds
            .iter()
            .filter(|(_, round)| now.0.saturating_sub(round.started.0) >= attempt_timeout(round.id.attempt))
            .map(|(target, round)| (*target, round.id.session))
            .collect();
        let mut out = Vec::new();
        for (target, session) in stalled {
            let Some((participants, ..)) = self.confirmed(session) else { continue };
            out.extend(self.reattempt(target, &participants));
        }
        out
    }
}
