//! The coordinator fuzzer: arbitrary *authentic* command sequences (random commands, replays,
//! ids far ahead, huge values, unknown sessions, between valid key-generation commands) never
//! panic the core, and a command it refuses changes nothing but the link's bookkeeping (the
//! handled id, the command's digest, the acknowledgement in the outbox).

use super::*;
use crate::db::{Db, MemDb};
use crate::ids::{Participant, SessionId};
use crate::messages::KeyGenCommand;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// What one step of a fuzzed sequence sends.
#[derive(Clone, Debug)]
enum Step {
    /// The next command in order.
    Next(CoordinatorMessage),
    /// A command under an already-used sequence id (a replay, or a coordinator that forgot).
    Reused { back: u64, message: CoordinatorMessage },
    /// A command far ahead of its turn.
    Ahead { by: u64, message: CoordinatorMessage },
    /// An acknowledgement of anything.
    Ack(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => any::<CoordinatorMessage>().prop_map(Step::Next),
        2 => (1u64..8, any::<CoordinatorMessage>()).prop_map(|(back, message)| Step::Reused { back, message }),
        1 => (2u64..5_000, any::<CoordinatorMessage>()).prop_map(|(by, message)| Step::Ahead { by, message }),
        1 => any::<u64>().prop_map(Step::Ack),
    ]
}

/// Everything but the link's bookkeeping.
fn state(db: &MemDb) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.scan_prefix(b"").unwrap().into_iter().filter(|(key, _)| !key.starts_with(b"link/")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_authentic_commands_never_panic_and_refusals_change_nothing(
        seed in any::<u64>(),
        chain in any::<ExternalChain>(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let coordinator = Identity::generate(&mut rng);
        let identity = Identity::generate(&mut rng);
        let me = identity.peer_key();
        let other = Identity::generate(&mut rng).peer_key();
        let db = MemDb::new();
        let config = Config { chain, coordinator: coordinator.peer_key(), confirmations: 3, proof_of_work: ProofOfWork::REGTEST, retirement_window: 6 };
        let mut processor = Processor::open(db.clone(), identity, config, ChaCha20Rng::seed_from_u64(seed ^ 1)).unwrap();
        let seal = |seq: u64, message: CoordinatorMessage| {
            Envelope::new(coordinator.peer_key(), me, Frame::Data { seq: SeqId(seq), message }).seal(&coordinator)
        };
        // A real session first, so key-generation commands meet real state.
        let start = KeyGenCommand::Start {
            session: SessionId(1),
            threshold: 2,
            my_index: Participant::new(1).unwrap(),
            participants: vec![me, other],
        };
        let _ = processor.handle(Event::Inbound(seal(1, CoordinatorMessage::KeyGen(start)))).unwrap();
        let mut next = 2u64;
        for step in steps {
            let before = state(&db);
            let refused_before = processor.counters().refused_commands;
            let blames_before = processor.counters().blames;
            let bytes = match step {
                Step::Next(message) => {
                    next += 1;
                    seal(next - 1, message)
                }
                Step::Reused { back, message } => seal(next.saturating_sub(back).max(1), message),
                Step::Ahead { by, message } => seal(next + by, message),
                Step::Ack(up_to) => {
                    let frame: Frame<CoordinatorMessage> = Frame::Ack { up_to: SeqId(up_to) };
                    Envelope::new(coordinator.peer_key(), me, frame).seal(&coordinator)
                }
            };
            // Never a panic, never a storage error.
            let outcome = processor.handle(Event::Inbound(bytes)).unwrap();
            prop_assert!(outcome.inbound.is_some());
            let refused = processor.counters().refused_commands > refused_before;
            let blamed = processor.counters().blames > blames_before;
            if refused && !blamed {
                prop_assert_eq!(state(&db), before, "a refused command changed the state");
            }
            // Ticks with the fuzzed state never panic either.
            let _ = processor.handle(Event::Tick { now: Millis(next * 1_000) }).unwrap();
        }
    }
}
