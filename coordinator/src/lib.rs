//! A reference coordinator and an in-process network to run it with processors.
//!
//! On Serai the coordinator is a separate service; here it is the model the processors are
//! tested against: it orders key generation, relays DKG messages between the processors,
//! confirms keys once every participant reports the same ones, and relays blame. Like the
//! processor core it does no IO: bytes in, bytes out.
//!
//! [`local::LocalNetwork`] wires one coordinator and several processor cores together in one
//! process, delivering every message with seeded delays, duplicates and drops, and can crash
//! and restart processors and make one of them Byzantine. Tests and the simulation build on it.
//! [`service::Service`] runs the same coordinator on a real link (in-process channels for the
//! devnet's daemons, NATS JetStream for the end-to-end tests).

mod batches;
pub mod byzantine;
mod link;
pub mod local;
pub mod service;

use link::Link;
use processor_core::crypto::Identity;
use processor_core::ids::{BatchId, BlockHeight, Millis, Participant, PeerKey, SessionId};
use processor_core::messages::{
    BlameReason, CoordinatorMessage, Envelope, Frame, GroupKeys, KeyGenCommand, KeyGenEvent, Opaque, ProcessorMessage,
};
use std::collections::BTreeMap;

/// Blocks past the tip a rotation's new keys are activated at, by default.
pub const DEFAULT_ACTIVATION_MARGIN: u64 = 6;

/// Bytes to deliver to one processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub to: PeerKey,
    pub bytes: Vec<u8>,
}

/// Something the coordinator saw, in the order it saw it; what tests and the devnet report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    KeysGenerated {
        session: SessionId,
        participant: Participant,
        keys: GroupKeys,
    },
    KeysConfirmed {
        session: SessionId,
        keys: GroupKeys,
    },
    KeysDisagree {
        session: SessionId,
    },
    Blamed {
        session: SessionId,
        by: Participant,
        accused: Participant,
        reason: BlameReason,
    },
    Activated {
        session: SessionId,
        participant: Participant,
        keys: GroupKeys,
    },
    RefusedFrame {
        error: String,
    },
    /// A processor reported a final block (only recorded with `record_reports`).
    BlockReported {
        by: Participant,
        height: BlockHeight,
        block: processor_core::ids::BlockId,
        deposits: Vec<processor_core::messages::Deposit>,
    },
    BlockAcknowledged {
        height: BlockHeight,
        batch: Option<BatchId>,
    },
    /// A processor reported a payments event (planned, rejected, forfeited).
    Payments {
        by: Participant,
        event: processor_core::messages::PaymentsEvent,
    },
    BatchSigned {
        batch: processor_core::messages::Batch,
        signature: [u8; 64],
    },
    /// A processor reported a plan's transaction complete (signed there, or seen final).
    TransactionCompleted {
        by: Participant,
        plan: processor_core::ids::PlanId,
        transaction: Vec<u8>,
    },
    SigningBlamed {
        id: processor_core::messages::SignId,
        by: Participant,
        accused: Participant,
    },
    Reattempted {
        id: processor_core::messages::SignId,
    },
    ChainHalted {
        by: Participant,
        height: BlockHeight,
    },
    /// A processor reported its keys handed over from `from` to `session` at `height`.
    HandedOver {
        session: SessionId,
        from: SessionId,
        participant: Participant,
        height: BlockHeight,
    },
    /// A processor reported `session`'s keys retired at `height`.
    Retired {
        session: SessionId,
        participant: Participant,
        height: BlockHeight,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    Running,
    Confirmed(GroupKeys),
    Failed { blamed: Participant },
}

/// The coordinator's view of one key-generation session.
struct KeyGenRound {
    /// Participants that reported the keys retired.
    retired_by: std::collections::BTreeSet<Participant>,
    threshold: u16,
    /// The first block scanned for the session's keys, once confirmed.
    activation: Option<BlockHeight>,
    participants: Vec<PeerKey>,
    commitments: BTreeMap<Participant, Opaque>,
    /// (from, to) -> share.
    shares: BTreeMap<(Participant, Participant), Opaque>,
    shares_from: BTreeMap<Participant, ()>,
    generated: BTreeMap<Participant, GroupKeys>,
    status: SessionStatus,
}

impl KeyGenRound {
    /// One command to each participant, made for its index.
    fn to_each(&self, command: impl Fn(Participant) -> KeyGenCommand) -> Vec<(PeerKey, KeyGenCommand)> {
        let indexes = (0..self.participants.len()).map(Participant::from_position);
        self.participants.iter().copied().zip(indexes.map(command)).collect()
    }

    /// A participant's commitments; once all are in, each participant gets everyone else's.
    fn commitments_from(
        &mut self,
        session: SessionId,
        sender: Participant,
        commitments: Vec<u8>,
    ) -> Vec<(PeerKey, KeyGenCommand)> {
        self.commitments.insert(sender, commitments);
        if self.commitments.len() != self.participants.len() {
            return vec![];
        }
        self.to_each(|me| {
            let commitments =
                self.commitments.iter().filter(|(p, _)| **p != me).map(|(p, c)| (*p, c.clone())).collect();
            KeyGenCommand::Commitments { session, commitments }
        })
    }

    /// A participant's encrypted shares (kept from its first report only); once all are in,
    /// each participant gets the shares addressed to it.
    fn shares_from(
        &mut self,
        session: SessionId,
        sender: Participant,
        shares: Vec<(Participant, Vec<u8>)>,
    ) -> Vec<(PeerKey, KeyGenCommand)> {
        if self.shares_from.insert(sender, ()).is_none() {
            for (to, share) in shares {
                self.shares.insert((sender, to), share);
            }
        }
        if self.shares_from.len() != self.participants.len() {
            return vec![];
        }
        self.to_each(|me| {
            let shares = self
                .shares
                .iter()
                .filter(|((_, to), _)| *to == me)
                .map(|((from, _), share)| (*from, share.clone()))
                .collect();
            KeyGenCommand::Shares { session, shares }
        })
    }

    /// A participant generated `keys`; once all did and agree, the keys are confirmed with
    /// activation at `tip`. Returns the confirmations and what to observe.
    fn generated_by(
        &mut self,
        session: SessionId,
        sender: Participant,
        keys: GroupKeys,
        tip: BlockHeight,
    ) -> (Vec<(PeerKey, KeyGenCommand)>, Option<Observation>) {
        self.generated.insert(sender, keys);
        if self.generated.len() != self.participants.len() || self.status != SessionStatus::Running {
            return (vec![], None);
        }
        let mut all = self.generated.values();
        let first = *all.next().expect("at least two participants");
        if !all.all(|k| *k == first) {
            return (vec![], Some(Observation::KeysDisagree { session }));
        }
        self.status = SessionStatus::Confirmed(first);
        self.activation = Some(tip);
        let to_send = self
            .participants
            .iter()
            .map(|peer| (*peer, KeyGenCommand::Confirm { session, keys: first, activation: tip }))
            .collect();
        (to_send, Some(Observation::KeysConfirmed { session, keys: first }))
    }
}

pub struct Coordinator {
    identity: Identity,
    links: BTreeMap<PeerKey, Link>,
    sessions: BTreeMap<SessionId, KeyGenRound>,
    observations: Vec<Observation>,
    retry_without_blamed: bool,
    record_reports: bool,
    /// Signed Batches are not published to the processors (Serai is slow, or a test needs the
    /// time between a Batch's signature and its publication).
    hold_publication: bool,
    chain_tip: BlockHeight,
    /// Blocks past the tip a rotation's new keys are activated at (see
    /// [`Coordinator::set_activation_margin`]).
    activation_margin: u64,
    now: Millis,
    batches: batches::BatchState,
    /// While the coordinator has lost its links' state (a faulty coordinator): the links it had,
    /// and every message sent since, to re-send once they are restored.
    forgotten: Option<ForgottenLinks>,
}

/// The links a coordinator lost, kept for the operator's restore.
struct ForgottenLinks {
    links: BTreeMap<PeerKey, Link>,
    sent_since: Vec<(PeerKey, CoordinatorMessage)>,
}

impl Coordinator {
    pub fn new(identity: Identity, processors: &[PeerKey]) -> Coordinator {
        let links = processors.iter().map(|p| (*p, Link::default())).collect();
        Coordinator {
            identity,
            links,
            sessions: BTreeMap::new(),
            observations: Vec::new(),
            retry_without_blamed: false,
            record_reports: false,
            hold_publication: false,
            chain_tip: BlockHeight(0),
            activation_margin: DEFAULT_ACTIVATION_MARGIN,
            now: Millis(0),
            batches: batches::BatchState::default(),
            forgotten: None,
        }
    }

    /// After a blamed session, start a new one without the blamed participant (while enough
    /// participants remain), as the validator set would by removing a misbehaving validator.
    pub fn retry_without_blamed(&mut self, enabled: bool) {
        self.retry_without_blamed = enabled;
    }

    /// Every session and its status, in id order.
    pub fn sessions(&self) -> impl DoubleEndedIterator<Item = (SessionId, &SessionStatus)> {
        self.sessions.iter().map(|(id, round)| (*id, &round.status))
    }

    /// Record every block report as an [`Observation::BlockReported`] (for tests).
    /// Holds back `BatchPublished` for Batches signed from now on (while `held`).
    pub fn hold_batch_publication(&mut self, held: bool) {
        self.hold_publication = held;
    }

    pub fn record_reports(&mut self, enabled: bool) {
        self.record_reports = enabled;
    }

    /// The session most recently started.
    pub fn latest_session(&self) -> Option<SessionId> {
        self.sessions.keys().next_back().copied()
    }

    pub fn peer_key(&self) -> PeerKey {
        self.identity.peer_key()
    }

    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// A session's participants in index order.
    pub fn participants(&self, session: SessionId) -> Option<&[PeerKey]> {
        self.sessions.get(&session).map(|round| round.participants.as_slice())
    }

    /// The height a confirmed session's keys are scanned from.
    pub fn activation(&self, session: SessionId) -> Option<BlockHeight> {
        self.sessions.get(&session).and_then(|round| round.activation)
    }

    pub fn status(&self, session: SessionId) -> Option<&SessionStatus> {
        self.sessions.get(&session).map(|round| &round.status)
    }

    /// Orders a key generation among `participants` (in index order).
    pub fn start_keygen(&mut self, session: SessionId, threshold: u16, participants: Vec<PeerKey>) -> Vec<Outbound> {
        assert!(!self.sessions.contains_key(&session), "session {session} started twice");
        let mut out = Vec::new();
        for (position, peer) in participants.iter().enumerate() {
            let command = KeyGenCommand::Start {
                session,
                threshold,
                my_index: Participant::from_position(position),
                participants: participants.clone(),
            };
            out.extend(self.send(*peer, CoordinatorMessage::KeyGen(command)));
        }
        self.sessions.insert(
            session,
            KeyGenRound {
                retired_by: Default::default(),
                threshold,
                activation: None,
                participants,
                commitments: BTreeMap::new(),
                shares: BTreeMap::new(),
                shares_from: BTreeMap::new(),
                generated: BTreeMap::new(),
                status: SessionStatus::Running,
            },
        );
        out
    }

    /// Handles bytes from any processor.
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<Outbound> {
        let me = self.peer_key();
        let links = &self.links;
        let envelope = match Envelope::<ProcessorMessage>::open(bytes, &me, |s| links.contains_key(s)) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.observations.push(Observation::RefusedFrame { error: error.to_string() });
                return vec![];
            }
        };
        let from = envelope.sender;
        let link = self.links.get_mut(&from).expect("sender was checked against the links");
        match envelope.frame {
            Frame::Ack { up_to } => {
                link.acknowledged(up_to);
                vec![]
            }
            Frame::Data { seq, message } => {
                let (ready, ack) = link.receive(seq, message);
                let mut out = Vec::new();
                for message in ready {
                    out.extend(self.apply(from, message));
                }
                if let Some(up_to) = ack {
                    out.push(self.seal(from, Frame::Ack { up_to }));
                }
                out
            }
        }
    }

    /// A rotation's new keys are activated `blocks` past the tip the coordinator knows: a
    /// processor refuses a confirmation whose activation height it already scanned past (it
    /// could not find the new keys' outputs below), and the confirmation may reach a processor
    /// that was down or cut off some blocks later.
    pub fn set_activation_margin(&mut self, blocks: u64) {
        self.activation_margin = blocks;
    }

    /// The chain height the coordinator knows of; keys confirmed from now on are scanned from it.
    pub fn observe_chain_tip(&mut self, height: BlockHeight) {
        self.chain_tip = self.chain_tip.max(height);
    }

    /// Time passes: re-sends everything not yet acknowledged, re-attempts stalled signing.
    pub fn tick(&mut self, now: Millis) -> Vec<Outbound> {
        self.now = self.now.max(now);
        let now = self.now.0;
        let mut out: Vec<Outbound> = self
            .links
            .iter_mut()
            .flat_map(|(to, link)| link.due(now).into_iter().map(|bytes| Outbound { to: *to, bytes }))
            .collect();
        out.extend(self.reattempt_stalled());
        out
    }

    /// Sends Burns from Serai to every processor of the live keys, with the fee rate the
    /// validator set agreed.
    pub fn burn(
        &mut self,
        chain: processor_core::ids::ExternalChain,
        burns: Vec<processor_core::messages::Burn>,
        fee_rate: u64,
    ) -> Vec<Outbound> {
        let command = processor_core::messages::PaymentsCommand::Burns { chain, burns, fee_rate };
        self.live_processors()
            .into_iter()
            .flat_map(|p| self.send(p, CoordinatorMessage::Payments(command.clone())))
            .collect()
    }

    /// The latest confirmed session: its participants, threshold and keys.
    fn active(&self) -> Option<(SessionId, Vec<PeerKey>, u16, GroupKeys)> {
        self.sessions.iter().rev().find_map(|(id, round)| match round.status {
            SessionStatus::Confirmed(keys) => Some((*id, round.participants.clone(), round.threshold, keys)),
            _ => None,
        })
    }

    /// A confirmed session's participants, threshold and keys.
    fn confirmed(&self, session: SessionId) -> Option<(Vec<PeerKey>, u16, GroupKeys)> {
        let round = self.sessions.get(&session)?;
        match round.status {
            SessionStatus::Confirmed(keys) => Some((round.participants.clone(), round.threshold, keys)),
            _ => None,
        }
    }

    /// The session whose keys sign the Batch of the block at `height` (and whose processors'
    /// reports decide it): the newest confirmed session activated at or below it, as the
    /// processors hand over at the first acknowledged block at or above a new key's
    /// activation; the first confirmed session below every activation.
    pub fn signing_session_at(&self, height: BlockHeight) -> Option<SessionId> {
        let confirmed =
            || self.sessions.iter().filter(|(_, round)| matches!(round.status, SessionStatus::Confirmed(_)));
        confirmed()
            .filter(|(_, round)| round.activation.is_some_and(|activation| activation <= height))
            .map(|(id, _)| *id)
            .next_back()
            .or_else(|| confirmed().map(|(id, _)| *id).next())
    }

    /// Whether a confirmed session's keys were reported retired by `t` of its processors.
    pub fn retired(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|round| round.retired_by.len() >= usize::from(round.threshold))
    }

    /// Whether more than one confirmed session is not yet retired (keys are rotating).
    pub fn rotating(&self) -> bool {
        let live = self
            .sessions
            .iter()
            .filter(|(id, round)| matches!(round.status, SessionStatus::Confirmed(_)) && !self.retired(**id))
            .count();
        live > 1
    }

    /// Every processor of a confirmed session not yet retired, each once, in session order.
    fn live_processors(&self) -> Vec<PeerKey> {
        let mut processors = Vec::new();
        for (id, round) in &self.sessions {
            if matches!(round.status, SessionStatus::Confirmed(_)) && !self.retired(*id) {
                for peer in &round.participants {
                    if !processors.contains(peer) {
                        processors.push(*peer);
                    }
                }
            }
        }
        processors
    }

    /// Sends `message` to `to` as an authentic command, whatever it says: how tests and the
    /// simulation play a faulty coordinator (the processor must refuse what is inconsistent).
    pub fn send_command(&mut self, to: PeerKey, message: CoordinatorMessage) -> Vec<Outbound> {
        self.send(to, message)
    }

    fn seal(&self, to: PeerKey, frame: Frame<CoordinatorMessage>) -> Outbound {
        Outbound { to, bytes: Envelope::new(self.peer_key(), to, frame).seal(&self.identity) }
    }

    fn send(&mut self, to: PeerKey, message: CoordinatorMessage) -> Vec<Outbound> {
        let Some(link) = self.links.get_mut(&to) else {
            return vec![];
        };
        if let Some(forgotten) = &mut self.forgotten {
            forgotten.sent_since.push((to, message.clone()));
        }
        let seq = link.next_seq();
        let outbound = Outbound {
            to,
            bytes: Envelope::new(self.identity.peer_key(), to, Frame::Data { seq, message }).seal(&self.identity),
        };
        let now = self.now.0;
        self.links.get_mut(&to).expect("link exists").record_sent(seq, outbound.bytes.clone(), now);
        vec![outbound]
    }

    fn apply(&mut self, from: PeerKey, message: ProcessorMessage) -> Vec<Outbound> {
        match message {
            ProcessorMessage::KeyGen(event) => self.keygen(from, event),
            ProcessorMessage::Scanner(event) => self.scanner_event(from, event),
            ProcessorMessage::Sign(event) => self.sign_event(from, event),
            ProcessorMessage::Payments(event) => {
                // Reported by the processor's index in the latest session it belongs to.
                let position = self.sessions.values().rev().find_map(|round| {
                    matches!(round.status, SessionStatus::Confirmed(_))
                        .then(|| round.participants.iter().position(|p| *p == from))
                        .flatten()
                });
                if let Some(position) = position {
                    let by = Participant::from_position(position);
                    self.observations.push(Observation::Payments { by, event });
                }
                vec![]
            }
        }
    }

    fn keygen(&mut self, from: PeerKey, event: KeyGenEvent) -> Vec<Outbound> {
        let session = match &event {
            KeyGenEvent::Commitments { session, .. }
            | KeyGenEvent::Shares { session, .. }
            | KeyGenEvent::Generated { session, .. }
            | KeyGenEvent::Blame { session, .. }
            | KeyGenEvent::Activated { session, .. }
            | KeyGenEvent::HandedOver { session, .. }
            | KeyGenEvent::Retired { session, .. } => *session,
        };
        let another_confirmed = self
            .sessions
            .iter()
            .any(|(id, round)| *id != session && matches!(round.status, SessionStatus::Confirmed(_)));
        let Some(round) = self.sessions.get_mut(&session) else {
            return vec![];
        };
        let Some(position) = round.participants.iter().position(|p| *p == from) else {
            return vec![];
        };
        let sender = Participant::from_position(position);
        let to_send = match event {
            KeyGenEvent::Commitments { commitments, .. } => round.commitments_from(session, sender, commitments),
            KeyGenEvent::Shares { shares, .. } => round.shares_from(session, sender, shares),
            KeyGenEvent::Generated { keys, .. } => {
                self.observations.push(Observation::KeysGenerated { session, participant: sender, keys });
                // The first keys are scanned from the tip; a rotation's from some blocks later.
                let rotation = another_confirmed;
                let tip =
                    if rotation { BlockHeight(self.chain_tip.0 + self.activation_margin) } else { self.chain_tip };
                let (to_send, observation) = round.generated_by(session, sender, keys, tip);
                self.observations.extend(observation);
                to_send
            }
            KeyGenEvent::Blame { accused, reason, .. } => {
                self.observations.push(Observation::Blamed { session, by: sender, accused, reason });
                return self.blamed(session, accused);
            }
            KeyGenEvent::Activated { keys, .. } => {
                self.observations.push(Observation::Activated { session, participant: sender, keys });
                vec![]
            }
            KeyGenEvent::HandedOver { from, height, .. } => {
                self.observations.push(Observation::HandedOver { session, from, participant: sender, height });
                vec![]
            }
            KeyGenEvent::Retired { height, .. } => {
                round.retired_by.insert(sender);
                self.observations.push(Observation::Retired { session, participant: sender, height });
                vec![]
            }
        };
        self.send_keygen(to_send)
    }

    fn send_keygen(&mut self, to_send: Vec<(PeerKey, KeyGenCommand)>) -> Vec<Outbound> {
        to_send.into_iter().flat_map(|(to, command)| self.send(to, CoordinatorMessage::KeyGen(command))).collect()
    }

    /// A participant blamed `accused`: the session fails (once), and with
    /// `retry_without_blamed` a new session starts without the accused.
    fn blamed(&mut self, session: SessionId, accused: Participant) -> Vec<Outbound> {
        let Some(round) = self.sessions.get_mut(&session) else { return vec![] };
        if round.status != SessionStatus::Running {
            return vec![];
        }
        round.status = SessionStatus::Failed { blamed: accused };
        let to_send: Vec<_> =
            round.participants.iter().map(|peer| (*peer, KeyGenCommand::Failed { session, blamed: accused })).collect();
        let threshold = round.threshold;
        let remaining: Vec<PeerKey> = round
            .participants
            .iter()
            .enumerate()
            .filter(|(position, _)| Participant::from_position(*position) != accused)
            .map(|(_, peer)| *peer)
            .collect();
        let mut out = self.send_keygen(to_send);
        if self.retry_without_blamed && remaining.len() >= usize::from(threshold.max(2)) {
            let next = SessionId(self.latest_session().map_or(1, |s| s.0 + 1));
            out.extend(self.start_keygen(next, threshold, remaining));
        }
        out
    }
}

impl Coordinator {
    /// A faulty coordinator's act: it loses its links' state and starts again at sequence id 1
    /// towards every processor (a coordinator restored without its link database). Processors
    /// must refuse every command re-using an id they handled for another command. The lost
    /// links are kept for [`Coordinator::restore_links`]; does nothing if already lost.
    pub fn forget_links(&mut self) {
        if self.forgotten.is_some() {
            return;
        }
        let fresh = self.links.keys().map(|peer| (*peer, Link::default())).collect();
        let links = std::mem::replace(&mut self.links, fresh);
        self.forgotten = Some(ForgottenLinks { links, sent_since: Vec::new() });
    }

    /// Whether the links' state is lost, and the highest sequence id sent since.
    pub fn links_forgotten(&self) -> Option<u64> {
        self.forgotten.as_ref().map(|_| self.links.values().map(Link::last_sent).max().unwrap_or(0))
    }

    /// The operator restores the lost links: every message sent meanwhile is sent again on
    /// them, under their next sequence ids.
    pub fn restore_links(&mut self) -> Vec<Outbound> {
        let Some(forgotten) = self.forgotten.take() else { return vec![] };
        self.links = forgotten.links;
        forgotten.sent_since.into_iter().flat_map(|(to, message)| self.send(to, message)).collect()
    }

    /// A faulty coordinator's act: tells every participant of `session` to activate `keys`,
    /// whatever happened in the session. Honest processors must refuse unless the keys are the
    /// ones they generated in a session that did not fail.
    pub fn confirm_regardless(&mut self, session: SessionId, keys: GroupKeys) -> Vec<Outbound> {
        let participants = self.sessions.get(&session).map(|r| r.participants.clone()).unwrap_or_default();
        participants
            .into_iter()
            .flat_map(|to| {
                let activation = self.chain_tip;
                self.send(to, CoordinatorMessage::KeyGen(KeyGenCommand::Confirm { session, keys, activation }))
            })
            .collect()
    }
}
