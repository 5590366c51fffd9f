//! Encoding properties: every message round-trips, and no byte string makes decoding panic.

use super::*;
use crate::crypto::Identity;
use crate::ids::SeqId;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;

fn identity(seed: u8) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::from_seed([seed; 32]))
}

/// Applies one of several mutations to a valid encoding.
fn mutate(mut bytes: Vec<u8>, choice: u8, position: usize, value: u8) -> Vec<u8> {
    let at = if bytes.is_empty() { 0 } else { position % bytes.len() };
    match choice % 4 {
        0 if !bytes.is_empty() => bytes[at] ^= value.max(1),
        1 => bytes.truncate(at),
        2 => bytes.insert(at, value),
        _ if !bytes.is_empty() => {
            bytes.remove(at);
        }
        _ => bytes.push(value),
    }
    bytes
}

proptest! {
    #[test]
    fn coordinator_messages_round_trip(message: CoordinatorMessage) {
        let bytes = encode(&message);
        prop_assert_eq!(decode::<CoordinatorMessage>(&bytes), Ok(message));
    }

    #[test]
    fn processor_messages_round_trip(message: ProcessorMessage) {
        let bytes = encode(&message);
        prop_assert_eq!(decode::<ProcessorMessage>(&bytes), Ok(message));
    }

    #[test]
    fn envelopes_round_trip_and_open(frame: Frame<CoordinatorMessage>) {
        let coordinator = identity(1);
        let processor = identity(2);
        let envelope = Envelope::new(coordinator.peer_key(), processor.peer_key(), frame);
        let sealed = envelope.seal(&coordinator);
        let opened = Envelope::<CoordinatorMessage>::open(&sealed, &processor.peer_key(), |s| *s == coordinator.peer_key());
        prop_assert_eq!(opened, Ok(envelope));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<CoordinatorMessage>(&bytes);
        let _ = decode::<ProcessorMessage>(&bytes);
        let _ = decode::<SignedEnvelope>(&bytes);
        let me = identity(2).peer_key();
        prop_assert!(Envelope::<CoordinatorMessage>::open(&bytes, &me, |_| true).is_err());
    }

    #[test]
    fn mutated_messages_never_panic(message: CoordinatorMessage, choice: u8, position: usize, value: u8) {
        let bytes = mutate(encode(&message), choice, position, value);
        // bincode alone accepts some non-canonical forms; the wire's decoding refuses exactly those.
        match (decode::<CoordinatorMessage>(&bytes), decode_canonical::<CoordinatorMessage>(&bytes)) {
            (Ok(decoded), Ok(canonical)) => {
                prop_assert_eq!(encode(&decoded), bytes);
                prop_assert_eq!(canonical, decoded);
            }
            (Ok(decoded), Err(WireError::NonCanonical)) => prop_assert_ne!(encode(&decoded), bytes),
            (Err(_), Err(_)) => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn mutated_envelopes_are_refused(message: ProcessorMessage, choice: u8, position: usize, value: u8) {
        let processor = identity(3);
        let coordinator = identity(4);
        let sealed = Envelope::new(processor.peer_key(), coordinator.peer_key(), Frame::Data { seq: SeqId(7), message })
            .seal(&processor);
        let mutated = mutate(sealed.clone(), choice, position, value);
        prop_assume!(mutated != sealed);
        let opened = Envelope::<ProcessorMessage>::open(&mutated, &coordinator.peer_key(), |s| *s == processor.peer_key());
        prop_assert!(opened.is_err(), "a mutated envelope was accepted");
    }
}

/// The sender signs whatever bytes it sends: an envelope re-encoded with an integer in a longer
/// form than needed (bincode decodes `251, 7, 0` as 7) is another byte string, with its own
/// signature and hash, for one message. The wire refuses it.
#[test]
fn a_signed_non_canonical_envelope_is_refused() {
    let coordinator = identity(1);
    let processor = identity(2);
    let envelope = Envelope::new(
        coordinator.peer_key(),
        processor.peer_key(),
        Frame::Data {
            seq: SeqId(7),
            message: CoordinatorMessage::Scanner(ScannerCommand::AcknowledgeBlock {
                height: crate::ids::BlockHeight(9),
                block: crate::ids::BlockId([3; 32]),
                batch: Some(crate::ids::BatchId(4)),
            }),
        },
    );
    let canonical = encode(&envelope);
    // The first byte that, written as a two-byte integer, still decodes to the same envelope.
    let longer = (0..canonical.len())
        .filter(|at| canonical[*at] < 251)
        .map(|at| [&canonical[..at], &[251, canonical[at], 0], &canonical[at + 1..]].concat())
        .find(|bytes| decode::<Envelope<CoordinatorMessage>>(bytes).as_ref() == Ok(&envelope))
        .expect("bincode decodes some integer in its longer form");
    let signature = coordinator.sign(&longer);
    let sealed = encode(&SignedEnvelope { envelope: longer, signature });
    let opened = Envelope::<CoordinatorMessage>::open(&sealed, &processor.peer_key(), |_| true);
    assert_eq!(opened, Err(WireError::NonCanonical));
    // The canonical form of the same envelope opens.
    let sealed = envelope.seal(&coordinator);
    assert_eq!(Envelope::<CoordinatorMessage>::open(&sealed, &processor.peer_key(), |_| true), Ok(envelope));
}

#[test]
fn a_huge_claimed_length_is_an_error_not_an_allocation() {
    // Variant 0 (KeyGen), variant 1 (Commitments), session 1, then a Vec claiming 2^60 entries.
    let mut bytes = vec![0u8, 1, 1, 0xff];
    bytes.extend(((1u64 << 60).to_le_bytes()).iter());
    assert!(matches!(decode::<CoordinatorMessage>(&bytes), Err(WireError::Malformed(_))));
}

#[test]
fn an_oversized_frame_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert_eq!(decode::<SignedEnvelope>(&bytes), Err(WireError::TooLarge { len: MAX_MESSAGE_BYTES + 1 }));
}

#[test]
fn envelopes_from_others_or_to_others_are_refused() {
    let coordinator = identity(1);
    let processor = identity(2);
    let impostor = identity(3);
    let frame: Frame<CoordinatorMessage> = Frame::Ack { up_to: SeqId(1) };
    let me = processor.peer_key();

    let forged = Envelope::new(impostor.peer_key(), me, frame.clone()).seal(&impostor);
    assert_eq!(
        Envelope::<CoordinatorMessage>::open(&forged, &me, |s| *s == coordinator.peer_key()),
        Err(WireError::UnexpectedSender)
    );

    let misaddressed = Envelope::new(coordinator.peer_key(), impostor.peer_key(), frame.clone()).seal(&coordinator);
    assert_eq!(Envelope::<CoordinatorMessage>::open(&misaddressed, &me, |_| true), Err(WireError::WrongRecipient));

    // Claiming the coordinator's key without its secret: the signature check catches it.
    let mut envelope = Envelope::new(impostor.peer_key(), me, frame);
    envelope.sender = coordinator.peer_key();
    let signed = SignedEnvelope { envelope: encode(&envelope), signature: impostor.sign(&encode(&envelope)) };
    assert_eq!(
        Envelope::<CoordinatorMessage>::open(&encode(&signed), &me, |s| *s == coordinator.peer_key()),
        Err(WireError::BadSignature)
    );
}
