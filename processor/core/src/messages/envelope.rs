//! The signed envelope around every message: version, sender, recipient, sequence id.

use super::codec::{decode_canonical, encode, WireError};
use crate::crypto::Identity;
use crate::ids::{PeerKey, SeqId};
use bincode::{Decode, Encode};
use ed25519_dalek::{Signature, VerifyingKey};

/// Bumped on any incompatible change of a message definition.
pub const PROTOCOL_VERSION: u16 = 1;

/// What travels in one direction of a link.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Frame<M> {
    /// A message, handled exactly once by its sequence id.
    Data {
        /// The message's position in this direction of the link, from 1 with no gaps.
        seq: SeqId,
        /// The message itself.
        message: M,
    },
    /// Every `Data` frame up to and including `up_to` was handled and may be forgotten.
    Ack {
        /// The highest sequence id whose effects the sender of the `Ack` has committed.
        up_to: SeqId,
    },
}

/// A frame with its protocol version and both ends' network keys: what the sender signs.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Envelope<M> {
    /// The sender's [`PROTOCOL_VERSION`]; any other version is refused when opened.
    pub version: u16,
    /// The network key of the peer that signs the envelope.
    pub sender: PeerKey,
    /// Bound into the signature so a message cannot be replayed to another peer.
    pub recipient: PeerKey,
    /// What the envelope carries: a message or an acknowledgement.
    pub frame: Frame<M>,
}

/// An encoded [`Envelope`] with the sender's Ed25519 signature over exactly those bytes.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignedEnvelope {
    /// The encoded [`Envelope`], exactly the bytes signed.
    pub envelope: Vec<u8>,
    /// The sender's Ed25519 signature over `envelope`.
    pub signature: [u8; 64],
}

impl<M: Encode> Envelope<M> {
    /// An envelope of the current [`PROTOCOL_VERSION`] from `sender` to `recipient`.
    pub fn new(sender: PeerKey, recipient: PeerKey, frame: Frame<M>) -> Self {
        Envelope { version: PROTOCOL_VERSION, sender, recipient, frame }
    }

    /// Encodes and signs; the result is what goes on the wire.
    pub fn seal(&self, identity: &Identity) -> Vec<u8> {
        debug_assert_eq!(self.sender, identity.peer_key(), "sealing another peer's envelope");
        let envelope = encode(self);
        let signature = identity.sign(&envelope);
        encode(&SignedEnvelope { envelope, signature })
    }
}

impl<M: Decode<()> + Encode> Envelope<M> {
    /// Decodes wire bytes addressed to `me`, checking the version, that `accept_sender` accepts
    /// the sender, and the sender's signature. Never panics on any input.
    pub fn open(bytes: &[u8], me: &PeerKey, accept_sender: impl Fn(&PeerKey) -> bool) -> Result<Self, WireError> {
        let signed: SignedEnvelope = decode_canonical(bytes)?;
        let envelope: Envelope<M> = decode_canonical(&signed.envelope)?;
        if envelope.version != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion(envelope.version));
        }
        if &envelope.recipient != me {
            return Err(WireError::WrongRecipient);
        }
        if !accept_sender(&envelope.sender) {
            return Err(WireError::UnexpectedSender);
        }
        let key = VerifyingKey::from_bytes(&envelope.sender.0).map_err(|_| WireError::BadSignature)?;
        key.verify_strict(&signed.envelope, &Signature::from_bytes(&signed.signature))
            .map_err(|_| WireError::BadSignature)?;
        Ok(envelope)
    }
}
