//! What a Byzantine processor sends, for tests and the simulation to inject.

use crate::Coordinator;
use processor_core::crypto::{pairwise, Identity};
use processor_core::ids::Participant;
use processor_core::keygen::share_context;
use processor_core::messages::{Envelope, Frame, KeyGenEvent, ProcessorMessage};

/// Rewrites a processor's outgoing key-generation shares message so its first two recipients
/// get each other's share, properly encrypted and signed by the sender: detectable only by
/// checking each share against the sender's commitments. Other bytes pass unchanged.
pub fn corrupt_keygen_shares(identity: &Identity, coordinator: &Coordinator, bytes: Vec<u8>) -> Vec<u8> {
    let Ok(mut envelope) = Envelope::<ProcessorMessage>::open(&bytes, &coordinator.peer_key(), |_| true) else {
        return bytes;
    };
    let Frame::Data { message: ProcessorMessage::KeyGen(KeyGenEvent::Shares { session, shares }), .. } =
        &mut envelope.frame
    else {
        return bytes;
    };
    let Some(participants) = coordinator.participants(*session) else {
        return bytes;
    };
    let Some(position) = participants.iter().position(|p| *p == identity.peer_key()) else {
        return bytes;
    };
    let from = Participant::from_position(position);
    if shares.len() < 2 {
        return bytes;
    }
    let open = |(to, ciphertext): &(Participant, Vec<u8>)| {
        pairwise::open(identity, participants.get(to.position())?, &share_context(*session, from, *to), ciphertext)
    };
    let (Some(first), Some(second)) = (open(&shares[0]), open(&shares[1])) else {
        return bytes;
    };
    let (to_first, to_second) = (shares[0].0, shares[1].0);
    let seal = |to: Participant, plaintext: &[u8]| {
        pairwise::seal(identity, &participants[to.position()], &share_context(*session, from, to), plaintext)
    };
    let (Some(for_first), Some(for_second)) = (seal(to_first, &second), seal(to_second, &first)) else {
        return bytes;
    };
    shares[0].1 = for_first;
    shares[1].1 = for_second;
    envelope.seal(identity)
}

/// Rewrites a processor's outgoing signature share into a well-formed but wrong one (the
/// scalar 1; for a transaction, every input's share), signed by the sender: aggregation fails
/// and identifies the sender. Other bytes pass unchanged.
pub fn corrupt_signature_shares(identity: &Identity, coordinator: &Coordinator, bytes: Vec<u8>) -> Vec<u8> {
    use processor_core::messages::{decode, encode, SignEvent, SignTarget};
    let Ok(mut envelope) = Envelope::<ProcessorMessage>::open(&bytes, &coordinator.peer_key(), |_| true) else {
        return bytes;
    };
    let Frame::Data { message: ProcessorMessage::Sign(SignEvent::Share { id, share }), .. } = &mut envelope.frame
    else {
        return bytes;
    };
    // A scalar 1 in the encoding of its curve: Ed25519 little endian, secp256k1 big endian.
    let one = |len: usize, big_endian: bool| {
        let mut wrong = vec![0u8; len];
        let at = if big_endian { len.saturating_sub(1) } else { 0 };
        if let Some(byte) = wrong.get_mut(at) {
            *byte = 1;
        }
        wrong
    };
    match id.target {
        SignTarget::Batch(_) => *share = one(share.len(), false),
        SignTarget::Transaction(_) => match decode::<Vec<Vec<u8>>>(share) {
            // Bitcoin: a list of per-input secp256k1 shares.
            Ok(inputs) if encode(&inputs) == *share => {
                *share = encode(&inputs.iter().map(|input| one(input.len(), true)).collect::<Vec<_>>());
            }
            // Monero: monero-wallet's concatenated per-input Ed25519 shares.
            _ if share.len() % 32 == 0 => *share = share.chunks(32).flat_map(|_| one(32, false)).collect(),
            _ => return bytes,
        },
    }
    envelope.seal(identity)
}
