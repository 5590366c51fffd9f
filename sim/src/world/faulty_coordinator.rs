//! The faulty coordinator: authentic commands it must not send (ARCHITECTURE.md's adversary
//! model). Each fault step it may make one; the commands go out on its real links (delivered by
//! its retransmission, like every command), so each processor handles them in its one ordered
//! stream. Every processor must refuse them and change nothing; the safety invariants must
//! hold and, once an operator restored a coordinator that lost its links, liveness too.

use super::{lock, Shared};
use coordinator::{Coordinator, SessionStatus};
use processor_core::ids::{Attempt, BatchId, BlockHeight, BlockId, Participant, PeerKey, SessionId};
use processor_core::inspect::Inspector;
use processor_core::messages::{
    Burn, CoordinatorMessage, KeyGenCommand, PaymentsCommand, ScannerCommand, SignCommand, SignId, SignTarget,
};

/// Batch ids no honest acknowledgement reaches within a run (the honest ones count from 0).
const HOSTILE_BATCH_IDS: u32 = 3_000_000_000;
/// A session no key generation ever starts.
const UNKNOWN_SESSION: SessionId = SessionId(60_000);
/// Below this many handled commands at some processor, a loss of the links' state is not
/// started: the forgetful coordinator's ids must stay within what every processor handled, or
/// its commands would be taken as new ones (see `restore_if_due`).
const HANDLED_BEFORE_FORGETTING: u64 = 40;
/// The forgetful coordinator is restored before its ids come this close to what a processor
/// handled.
const FORGETTING_MARGIN: u64 = 24;

/// The active session and its participants, as the coordinator confirmed them.
fn active(coordinator: &Coordinator) -> Option<(SessionId, Vec<PeerKey>)> {
    let session = coordinator.sessions().rev().find_map(|(session, status)| match status {
        SessionStatus::Confirmed(_) => Some(session),
        _ => None,
    })?;
    Some((session, coordinator.participants(session)?.to_vec()))
}

/// The fewest commands a processor of the active session has handled.
fn fewest_handled(shared: &Shared, participants: &[PeerKey]) -> u64 {
    shared
        .identities
        .iter()
        .zip(&shared.dbs)
        .filter(|(identity, _)| participants.contains(&identity.peer_key()))
        .map(|(_, db)| Inspector::new(db).handled_through().map_or(0, |seq| seq.0))
        .min()
        .unwrap_or(0)
}

fn to_all(coordinator: &mut Coordinator, participants: &[PeerKey], message: CoordinatorMessage) {
    for peer in participants {
        // Delivered by the coordinator's retransmission.
        let _ = coordinator.send_command(*peer, message.clone());
    }
}

fn hostile_batch(shared: &Shared) -> BatchId {
    BatchId(HOSTILE_BATCH_IDS + shared.random_below(1_000_000_000) as u32)
}

fn random_block(shared: &Shared) -> BlockId {
    let mut id = [0u8; 32];
    for chunk in id.chunks_mut(8) {
        chunk.copy_from_slice(&shared.random_below(u64::MAX).to_le_bytes());
    }
    BlockId(id)
}

/// One fault step of a faulty coordinator: maybe one hostile act.
pub(super) fn act(shared: &Shared) {
    if !shared.roll(shared.scenario.faulty_coordinator_per_mille) {
        return;
    }
    let attack = shared.random_below(9);
    let mut coordinator = lock(&shared.coordinator);
    let Some((session, participants)) = active(&coordinator) else { return };
    let chain = shared.chain_kind;
    let done = match attack {
        0 => {
            // Burns already sent, in a new command.
            let issued = lock(&shared.issued_burns);
            if issued.is_empty() {
                return;
            }
            let count = 1 + shared.random_below(4) as usize;
            let burns: Vec<Burn> =
                (0..count).map(|_| issued[shared.random_below(issued.len() as u64) as usize].0.clone()).collect();
            let fee_rate = shared.chain.as_ref().map_or(1, |c| lock(c).fee_rate());
            let message = CoordinatorMessage::Payments(PaymentsCommand::Burns { chain, burns, fee_rate });
            to_all(&mut coordinator, &participants, message);
            format!("re-sends {count} Burns")
        }
        1 => {
            // A height acknowledged before, again under a new Batch id.
            let recent: Vec<_> = coordinator.acknowledged_blocks().rev().take(4).collect();
            if recent.is_empty() {
                return;
            }
            let (height, block, earlier) = recent[shared.random_below(recent.len() as u64) as usize];
            let batch = Some(hostile_batch(shared));
            let message = CoordinatorMessage::Scanner(ScannerCommand::AcknowledgeBlock { height, block, batch });
            to_all(&mut coordinator, &participants, message);
            format!("acknowledges height {height} again under Batch {batch:?} (was {earlier:?})")
        }
        2 => {
            // A reported height acknowledged with a block that is not the processors'.
            let undecided = coordinator.undecided_reports();
            let Some(&(height, instructions)) = undecided.first() else { return };
            let block = random_block(shared);
            let batch = instructions.then(|| hostile_batch(shared));
            let message = CoordinatorMessage::Scanner(ScannerCommand::AcknowledgeBlock { height, block, batch });
            to_all(&mut coordinator, &participants, message);
            format!("acknowledges height {height} with another block, {block}")
        }
        3 => {
            // A height not final yet (held back until it is, then refused: not the block there).
            let Some(tip) = shared.chain.as_ref().map(|c| lock(c).tip()) else { return };
            let (height, block) = (BlockHeight(tip), random_block(shared));
            let message = CoordinatorMessage::Scanner(ScannerCommand::AcknowledgeBlock { height, block, batch: None });
            to_all(&mut coordinator, &participants, message);
            format!("acknowledges height {height}, not final, as {block}")
        }
        4 => {
            // Fee rates no node relays, or absurd ones, with Burns of their own and re-sent ones.
            let fee_rate = [0, 1_000_000_000_000_000, u64::MAX][shared.random_below(3) as usize];
            let mut burns: Vec<Burn> =
                lock(&shared.issued_burns).iter().rev().take(2).map(|(b, _)| b.clone()).collect();
            if let Some(chain) = &shared.chain {
                let chain = lock(chain);
                let mut id = [0xfe; 32];
                id[..8].copy_from_slice(&shared.random_below(u64::MAX).to_le_bytes());
                let destination = chain.burn_destination(shared.random_below(u64::MAX), true);
                let amount = processor_core::ids::Amount(chain.deposit_amount(shared.random_below(u64::MAX)) / 2);
                burns.push(Burn { id, destination, amount });
            }
            let message = CoordinatorMessage::Payments(PaymentsCommand::Burns { chain, burns, fee_rate });
            to_all(&mut coordinator, &participants, message);
            format!("sends Burns at fee rate {fee_rate}")
        }
        5 => {
            // Participant indexes past the session, in a live attempt or a made-up one.
            let n = participants.len();
            let past = Participant::from_position(n + shared.random_below(5) as usize);
            let id = coordinator.fixed_batch_rounds().first().map(|(id, _)| *id).unwrap_or(SignId {
                session,
                target: SignTarget::Batch(BatchId(0)),
                attempt: Attempt(0),
            });
            let mut preprocesses = coordinator.fixed_batch_rounds().first().map(|(_, p)| p.clone()).unwrap_or_default();
            preprocesses.push((past, vec![0; 32]));
            let message = CoordinatorMessage::Sign(SignCommand::Preprocesses { id, preprocesses });
            to_all(&mut coordinator, &participants, message);
            let message = CoordinatorMessage::Sign(SignCommand::Shares { id, shares: vec![(past, vec![1; 32])] });
            to_all(&mut coordinator, &participants, message);
            format!("sends participant {past} (of {n}) for {id:?}")
        }
        6 => {
            // Sessions that never started.
            let id = SignId { session: UNKNOWN_SESSION, target: SignTarget::Batch(BatchId(0)), attempt: Attempt(1) };
            to_all(&mut coordinator, &participants, CoordinatorMessage::Sign(SignCommand::Reattempt { id }));
            let commitments = vec![(Participant::from_position(0), vec![7; 64])];
            let message =
                CoordinatorMessage::KeyGen(KeyGenCommand::Commitments { session: UNKNOWN_SESSION, commitments });
            to_all(&mut coordinator, &participants, message);
            format!("sends commands for session {UNKNOWN_SESSION}, never started")
        }
        7 => {
            // A second signing set for an attempt whose set is fixed: one member's commitments
            // swapped for another Batch attempt's. Signing it too would reuse the nonces.
            let rounds = coordinator.fixed_batch_rounds();
            let Some((id, mut preprocesses)) = rounds.into_iter().next() else { return };
            let other = lock(&shared.preprocesses)
                .iter()
                .find(|(_, (_, other))| matches!(other.target, SignTarget::Batch(_)) && other.target != id.target)
                .map(|(bytes, _)| bytes.clone());
            let (Some(other), Some(last)) = (other, preprocesses.last_mut()) else { return };
            last.1 = other;
            let message = CoordinatorMessage::Sign(SignCommand::Preprocesses { id, preprocesses });
            to_all(&mut coordinator, &participants, message);
            format!("sends a second signing set for {id:?}")
        }
        _ => {
            if coordinator.links_forgotten().is_some()
                || fewest_handled(shared, &participants) < HANDLED_BEFORE_FORGETTING
            {
                return;
            }
            coordinator.forget_links();
            "loses its links' state: its sequence ids start again at 1".to_string()
        }
    };
    drop(coordinator);
    shared.record(format!("faulty coordinator: {done}"));
    lock(&shared.faults).coordinator_faults += 1;
}

/// An operator restores a coordinator that lost its links' state: after a while, before its
/// new ids reach what some processor handled, and always when faults stop (`now`).
pub(super) fn restore_if_due(shared: &Shared, now: bool) {
    let (sent, participants) = {
        let coordinator = lock(&shared.coordinator);
        let Some(sent) = coordinator.links_forgotten() else { return };
        (sent, active(&coordinator).map(|(_, participants)| participants).unwrap_or_default())
    };
    let due = now || sent + FORGETTING_MARGIN >= fewest_handled(shared, &participants) || shared.roll(100);
    if !due {
        return;
    }
    // Delivered by the coordinator's retransmission.
    let _ = lock(&shared.coordinator).restore_links();
    shared.record(format!("operator restores the coordinator's links ({sent} commands sent meanwhile are sent again)"));
}
