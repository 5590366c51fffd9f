//! The core's at-least-once link handling, driven directly: duplicates have no second effect,
//! early frames wait for their turn, the outbox is re-sent until acknowledged, and bytes that
//! are not an authentic coordinator frame change nothing.

mod common;

use common::bitcoin_regtest_config;
use processor_core::core::{Effect, Event, InboundStatus, Processor, IDLE_TICK_MS, RESEND_AFTER_MS, RESEND_WINDOW};
use processor_core::crypto::Identity;
use processor_core::db::MemDb;
use processor_core::ids::{Millis, Participant, PeerKey, SeqId, SessionId};
use processor_core::inspect::Inspector;
use processor_core::messages::{CoordinatorMessage, Envelope, Frame, KeyGenCommand, KeyGenEvent, ProcessorMessage};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

struct Fixture {
    coordinator: Identity,
    processor_key: PeerKey,
    others: Vec<PeerKey>,
    db: MemDb,
    processor: Processor<MemDb, ChaCha20Rng>,
    /// What became of the last frame delivered.
    last_status: Option<InboundStatus>,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let coordinator = Identity::generate(&mut rng);
    let identity = Identity::generate(&mut rng);
    let others = (0..2).map(|_| Identity::generate(&mut rng).peer_key()).collect();
    let db = MemDb::new();
    let config = bitcoin_regtest_config(coordinator.peer_key());
    let processor_key = identity.peer_key();
    let processor = Processor::open(db.clone(), identity, config, ChaCha20Rng::seed_from_u64(6)).unwrap();
    Fixture { coordinator, processor_key, others, db, processor, last_status: None }
}

impl Fixture {
    fn frame(&self, frame: Frame<CoordinatorMessage>) -> Vec<u8> {
        Envelope::new(self.coordinator.peer_key(), self.processor_key, frame).seal(&self.coordinator)
    }

    fn start(&self, seq: u64, session: u32) -> Vec<u8> {
        let mut participants = vec![self.processor_key];
        participants.extend(self.others.iter().copied());
        let command = KeyGenCommand::Start {
            session: SessionId(session),
            threshold: 2,
            my_index: Participant::new(1).unwrap(),
            participants,
        };
        self.frame(Frame::Data { seq: SeqId(seq), message: CoordinatorMessage::KeyGen(command) })
    }

    fn deliver(&mut self, bytes: Vec<u8>) -> Vec<Frame<ProcessorMessage>> {
        let outcome = self.processor.handle(Event::Inbound(bytes)).unwrap();
        self.last_status = outcome.inbound;
        self.open(outcome.effects)
    }

    fn open(&self, effects: Vec<Effect>) -> Vec<Frame<ProcessorMessage>> {
        let coordinator = self.coordinator.peer_key();
        effects
            .into_iter()
            .map(|effect| {
                let Effect::Send(bytes) = effect else { panic!("unexpected {effect:?}") };
                let key = self.processor_key;
                Envelope::<ProcessorMessage>::open(&bytes, &coordinator, |s| *s == key).unwrap().frame
            })
            .collect()
    }

    fn outbox_len(&self) -> usize {
        Inspector::new(&self.db).outbox_len().unwrap()
    }
}

fn is_commitments(frame: &Frame<ProcessorMessage>, session: u32) -> bool {
    matches!(frame, Frame::Data { message: ProcessorMessage::KeyGen(KeyGenEvent::Commitments { session: s, .. }), .. } if *s == SessionId(session))
}

#[test]
fn a_redelivered_frame_is_only_acknowledged_again() {
    let mut f = fixture();
    let start = f.start(1, 1);
    let first = f.deliver(start.clone());
    assert_eq!(first.len(), 2);
    assert!(is_commitments(&first[0], 1));
    assert_eq!(first[1], Frame::Ack { up_to: SeqId(1) });
    let state_after_first = f.db.scan_prefix_for_test();

    let second = f.deliver(start);
    assert_eq!(second, vec![Frame::Ack { up_to: SeqId(1) }]);
    assert_eq!(f.db.scan_prefix_for_test(), state_after_first, "a duplicate changed the DB");
    assert_eq!(f.processor.counters().duplicates, 1);
}

#[test]
fn frames_ahead_of_their_turn_wait_for_it() {
    let mut f = fixture();
    let second = f.start(2, 2);
    assert!(f.deliver(second).is_empty(), "an early frame was handled or acknowledged");
    let replies = f.deliver(f.start(1, 1));
    let handled: Vec<bool> = vec![is_commitments(&replies[0], 1), is_commitments(&replies[1], 2)];
    assert_eq!(handled, vec![true, true], "{replies:?}");
    assert_eq!(replies.last(), Some(&Frame::Ack { up_to: SeqId(2) }));
}

#[test]
fn the_outbox_is_resent_until_acknowledged() {
    let mut f = fixture();
    let replies = f.deliver(f.start(1, 1));
    let Frame::Data { seq, .. } = &replies[0] else { panic!("expected the commitments") };
    assert_eq!(f.outbox_len(), 1);

    // Not before the re-send interval, then once per interval.
    assert!(f
        .processor
        .handle(Event::Tick { now: Millis(processor_core::core::RESEND_AFTER_MS - 100) })
        .unwrap()
        .effects
        .is_empty());
    for now in [processor_core::core::RESEND_AFTER_MS, 2 * processor_core::core::RESEND_AFTER_MS] {
        let resent = f.processor.handle(Event::Tick { now: Millis(now) }).unwrap().effects;
        assert_eq!(f.open(resent), vec![replies[0].clone()]);
        assert!(f.processor.handle(Event::Tick { now: Millis(now + 100) }).unwrap().effects.is_empty());
    }
    assert!(f.deliver(f.frame(Frame::Ack { up_to: *seq })).is_empty());
    assert_eq!(f.outbox_len(), 0);
    assert!(f.processor.handle(Event::Tick { now: Millis(5_000) }).unwrap().effects.is_empty());
}

#[test]
fn only_the_oldest_unacknowledged_messages_are_resent() {
    let mut f = fixture();
    let mut sent = Vec::new();
    for session in 1..=40 {
        sent.extend(f.deliver(f.start(u64::from(session), session)).into_iter().filter(|m| is_commitments(m, session)));
    }
    assert_eq!(f.outbox_len(), 40);
    let tick = |f: &mut Fixture, now: u64| {
        let effects = f.processor.handle(Event::Tick { now: Millis(now) }).unwrap().effects;
        f.open(effects)
    };
    // The oldest window only (the coordinator holds what came after), once per interval.
    assert_eq!(tick(&mut f, RESEND_AFTER_MS), sent[..RESEND_WINDOW].to_vec());
    assert!(tick(&mut f, RESEND_AFTER_MS + 1).is_empty());
    // An acknowledgement slides the window over messages long unacknowledged: they go out.
    let Frame::Data { seq, .. } = &sent[4] else { panic!("expected a data frame") };
    assert!(f.deliver(f.frame(Frame::Ack { up_to: *seq })).is_empty());
    assert_eq!(tick(&mut f, RESEND_AFTER_MS + 2), sent[RESEND_WINDOW..RESEND_WINDOW + 5].to_vec());
}

#[test]
fn the_outbox_and_progress_survive_a_restart() {
    let mut f = fixture();
    let replies = f.deliver(f.start(1, 1));
    // Crash: a new core on the same DB, with different randomness.
    let config = bitcoin_regtest_config(f.coordinator.peer_key());
    let identity_key = f.processor_key;
    let rebuilt_identity = {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let _ = Identity::generate(&mut rng);
        Identity::generate(&mut rng)
    };
    assert_eq!(rebuilt_identity.peer_key(), identity_key);
    f.processor = Processor::open(f.db.clone(), rebuilt_identity, config, ChaCha20Rng::seed_from_u64(99)).unwrap();

    let resent = f.processor.handle(Event::Tick { now: Millis(100) }).unwrap().effects;
    assert_eq!(f.open(resent), vec![replies[0].clone()], "the unacknowledged commitments were lost");
    assert_eq!(f.deliver(f.start(1, 1)), vec![Frame::Ack { up_to: SeqId(1) }], "handled twice after restart");
}

#[test]
fn bytes_that_are_not_an_authentic_frame_change_nothing() {
    let mut f = fixture();
    let before = f.db.scan_prefix_for_test();

    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let impostor = Identity::generate(&mut rng);
    let mut participants = vec![f.processor_key];
    participants.extend(f.others.iter().copied());
    let command = CoordinatorMessage::KeyGen(KeyGenCommand::Start {
        session: SessionId(1),
        threshold: 2,
        my_index: Participant::new(1).unwrap(),
        participants,
    });
    let forged = Envelope::new(impostor.peer_key(), f.processor_key, Frame::Data { seq: SeqId(1), message: command })
        .seal(&impostor);

    let mut truncated = f.start(1, 1);
    truncated.truncate(truncated.len() / 2);
    for bytes in [vec![], vec![0xff; 100], truncated, forged] {
        assert!(f.deliver(bytes).is_empty());
    }
    assert_eq!(f.processor.counters().refused_frames, 4);
    assert_eq!(f.db.scan_prefix_for_test(), before);
}

#[test]
fn an_inconsistent_command_is_refused_without_changing_state() {
    let mut f = fixture();
    // Threshold above n: acknowledged (the link moves on) but nothing else happens.
    let participants = vec![f.processor_key, f.others[0]];
    let command = CoordinatorMessage::KeyGen(KeyGenCommand::Start {
        session: SessionId(1),
        threshold: 3,
        my_index: Participant::new(1).unwrap(),
        participants,
    });
    let replies = f.deliver(f.frame(Frame::Data { seq: SeqId(1), message: command }));
    assert_eq!(replies, vec![Frame::Ack { up_to: SeqId(1) }]);
    assert_eq!(f.processor.counters().refused_commands, 1);
    assert!(Inspector::new(&f.db).sessions().unwrap().is_empty());
    assert_eq!(f.outbox_len(), 0);
}

trait Snapshot {
    fn scan_prefix_for_test(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
}
impl Snapshot for MemDb {
    fn scan_prefix_for_test(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        use processor_core::db::Db;
        self.scan_prefix(b"").unwrap()
    }
}

#[test]
fn a_frame_held_in_memory_is_pending_until_committed() {
    let mut f = fixture();
    // Ahead of order: held in memory, not committed.
    f.deliver(f.start(2, 2));
    assert_eq!(f.last_status, Some(InboundStatus::Held), "an early frame is only in memory");
    // In order: committed, and the early one with it.
    f.deliver(f.start(1, 1));
    assert_eq!(f.last_status, Some(InboundStatus::Committed));
    assert_eq!(Inspector::new(&f.db).handled_through().unwrap(), SeqId(2));
    // The early frame delivered again (a broker's redelivery): a duplicate, settled.
    f.deliver(f.start(2, 2));
    assert_eq!(f.last_status, Some(InboundStatus::Committed));
    // Bytes that are not a frame are settled too (refused, nothing to wait for).
    f.deliver(b"garbage".to_vec());
    assert_eq!(f.last_status, Some(InboundStatus::Refused));
}

#[test]
fn the_outcome_says_when_the_next_tick_is_due() {
    let mut f = fixture();
    // Just opened: a tick is due at once (the outbox may hold what a crash left unsent).
    let outcome = f.processor.handle(Event::Inbound(f.start(1, 1))).unwrap();
    assert_eq!(outcome.next_tick, Millis(0));
    let Frame::Data { seq, .. } = f.open(outcome.effects)[0].clone() else { panic!("expected the commitments") };
    // After a tick at 1000 ms the unacknowledged message is due again one resend interval later.
    let outcome = f.processor.handle(Event::Tick { now: Millis(1_000) }).unwrap();
    assert_eq!(outcome.next_tick, Millis(1_000 + RESEND_AFTER_MS));
    // Acknowledged: nothing is due but the idle tick.
    let outcome = f.processor.handle(Event::Inbound(f.frame(Frame::Ack { up_to: seq }))).unwrap();
    assert_eq!(outcome.next_tick, Millis(1_000 + IDLE_TICK_MS));
}
