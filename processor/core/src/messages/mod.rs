//! The wire protocol between a coordinator and its processors: every message in one place,
//! typed, versioned, bincode 2 encoded, signed by its sender.
//!
//! Delivery is at-least-once. A [`Frame::Data`] carries a sequence id per link direction; the
//! receiver handles ids in order, acknowledges them with [`Frame::Ack`], and recognises a
//! redelivered id as already handled. Decoding never panics: every failure is a [`WireError`].

mod codec;
mod envelope;

pub use codec::{decode, encode, WireError, MAX_MESSAGE_BYTES};
pub use envelope::{Envelope, Frame, SignedEnvelope, PROTOCOL_VERSION};

use crate::ids::{
    Amount, Attempt, BatchId, BatchPublicKey, BlockHeight, BlockId, ExternalChain, Participant, PeerKey, PlanId,
    SessionId,
};
use bincode::{Decode, Encode};

/// Bytes produced by a cryptographic library (a DKG package, a preprocess, a share) and carried
/// opaquely; the receiving protocol parses them and blames the sender if they are invalid.
pub type Opaque = Vec<u8>;

/// Messages from the coordinator to a processor.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum CoordinatorMessage {
    KeyGen(KeyGenCommand),
    Scanner(ScannerCommand),
    Sign(SignCommand),
    Payments(PaymentsCommand),
}

/// Messages from a processor to the coordinator.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ProcessorMessage {
    KeyGen(KeyGenEvent),
    Scanner(ScannerEvent),
    Sign(SignEvent),
    Payments(PaymentsEvent),
}

// ---------------------------------------------------------------------------------------------
// Key generation

/// The group keys one key-generation session produces.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct GroupKeys {
    /// Signs Batches for Serai (Ed25519).
    pub batch: BatchPublicKey,
    /// Holds the chain's funds.
    pub chain: ChainPublicKey,
}

/// The key that holds an external chain's funds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ChainPublicKey {
    /// The BIP340 x-only *internal* key (even Y); outputs pay to its BIP341 tweak with no
    /// script tree.
    Bitcoin { internal_key: [u8; 32] },
    /// The compressed Ed25519 spend key of the group's Monero wallet.
    Monero { spend_key: [u8; 32] },
}

impl ChainPublicKey {
    pub fn chain(&self) -> ExternalChain {
        match self {
            ChainPublicKey::Bitcoin { .. } => ExternalChain::Bitcoin,
            ChainPublicKey::Monero { .. } => ExternalChain::Monero,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum KeyGenCommand {
    /// Begin a DKG. `participants` lists every processor's network key in index order, so
    /// `n = participants.len()` and `participants[my_index - 1]` is the recipient.
    Start { session: SessionId, threshold: u16, my_index: Participant, participants: Vec<PeerKey> },
    /// Every other participant's round-1 commitments.
    Commitments { session: SessionId, commitments: Vec<(Participant, Opaque)> },
    /// Every other participant's round-2 share addressed to this processor.
    Shares { session: SessionId, shares: Vec<(Participant, Opaque)> },
    /// The session failed: a participant was blamed. No key from it may ever be used.
    Failed { session: SessionId, blamed: Participant },
    /// The validator set voted these keys in: they become active, and blocks from `activation`
    /// on are scanned for outputs to them.
    Confirm { session: SessionId, keys: GroupKeys, activation: BlockHeight },
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum KeyGenEvent {
    /// This processor's round-1 commitments, for every other participant.
    Commitments { session: SessionId, commitments: Opaque },
    /// This processor's round-2 shares, one per other participant.
    Shares { session: SessionId, shares: Vec<(Participant, Opaque)> },
    /// The DKG finished here with these group keys; they are not usable until confirmed.
    Generated { session: SessionId, keys: GroupKeys },
    /// A participant sent something invalid; the session must not produce a key.
    Blame { session: SessionId, accused: Participant, reason: BlameReason },
    /// The coordinator's confirmation was accepted; the keys are now in use.
    Activated { session: SessionId, keys: GroupKeys },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum BlameReason {
    /// The bytes did not parse as the expected package.
    Malformed,
    /// The round-1 proof of knowledge did not verify.
    InvalidProofOfKnowledge,
    /// The round-2 secret share did not match the sender's commitments.
    InvalidShare,
    /// A signature share did not verify.
    InvalidSignatureShare,
}

// ---------------------------------------------------------------------------------------------
// Scanning and Batches

/// Where on Serai a deposit goes, as decoded from the deposit transaction.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InInstruction {
    /// The Serai account credited.
    pub account: [u8; 32],
}

/// Where an output to the group was paid: the address deposits go to, or the group's change
/// address, which only the group's own transactions pay (change and branch outputs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum OutputKind {
    External,
    Change,
}

/// An output to the group seen in a final block: a deposit, or change of the group's own
/// transaction.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Deposit {
    /// Chain-specific output id (txid and index for Bitcoin, the output key for Monero).
    pub output_id: crate::ids::OutputId,
    pub amount: Amount,
    /// `None` if the transaction carried no valid InInstruction (always for change).
    pub instruction: Option<InInstruction>,
    pub kind: OutputKind,
}

/// The Batch the group signs for one final block.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Batch {
    pub chain: ExternalChain,
    pub id: BatchId,
    pub block: BlockId,
    /// The block's InInstructions in canonical order.
    pub instructions: Vec<(InInstruction, Amount)>,
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ScannerCommand {
    /// The validator group agreed on a reported final block with outputs to the group: its
    /// outputs join the group's funds (those with InInstructions once `batch`, which names the
    /// block's Batch if it has any, is published), and the Batch is signed. Commands are acted
    /// on in order, so a processor that has not scanned the block yet waits for it.
    AcknowledgeBlock { height: BlockHeight, block: BlockId, batch: Option<BatchId> },
    /// Serai acknowledged a signed Batch; its outputs may be spent.
    BatchPublished { batch: BatchId },
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ScannerEvent {
    /// A block became final; these are the deposits to the group found in it.
    BlockFinal { height: BlockHeight, block: BlockId, deposits: Vec<Deposit> },
    /// A block already reported final changed: the chain is halted here.
    Halted { height: BlockHeight, reported: BlockId, found: BlockId },
    /// A Batch with its Ed25519 signature by the batch key.
    SignedBatch { batch: Batch, signature: [u8; 64] },
}

// ---------------------------------------------------------------------------------------------
// Threshold signing (Batches and transactions share one protocol shape)

/// What a signing protocol is signing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SignTarget {
    Batch(BatchId),
    Transaction(PlanId),
}

/// One attempt at one signing protocol. Nonces are bound to exactly one `SignId`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignId {
    pub session: SessionId,
    pub target: SignTarget,
    pub attempt: Attempt,
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SignCommand {
    /// The preprocesses of the attempt's signing set (including this processor's own).
    Preprocesses { id: SignId, preprocesses: Vec<(Participant, Opaque)> },
    /// The signature shares of the attempt's signing set (including this processor's own).
    Shares { id: SignId, shares: Vec<(Participant, Opaque)> },
    /// Begin a new attempt; earlier attempts' nonces are discarded.
    Reattempt { id: SignId },
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SignEvent {
    Preprocess {
        id: SignId,
        preprocess: Opaque,
    },
    Share {
        id: SignId,
        share: Opaque,
    },
    /// A participant's preprocess or share was invalid.
    Blame {
        id: SignId,
        accused: Participant,
        reason: BlameReason,
    },
    /// A plan's transaction is complete: signed here (and published), or seen in a final
    /// block (whoever published it). `transaction` is its chain id (the txid for Bitcoin).
    Completed {
        plan: PlanId,
        transaction: Opaque,
    },
}

// ---------------------------------------------------------------------------------------------
// Burns and payments

/// A Burn on Serai: pay `amount` to `destination` on the processor's chain.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Burn {
    /// Unique per Burn on Serai; a Burn is paid at most once per id.
    pub id: [u8; 32],
    /// Chain-encoded address (a script for Bitcoin, an address string for Monero).
    pub destination: Opaque,
    pub amount: Amount,
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PaymentsCommand {
    /// Burns to pay, with the fee rate (in the chain's smallest unit per vbyte or per byte) the
    /// validator set agreed from its chain sources, so every processor plans alike.
    Burns { chain: ExternalChain, burns: Vec<Burn>, fee_rate: u64 },
}

#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PaymentsEvent {
    /// A Burn could not become a payment; nothing else changed.
    BurnRejected { id: [u8; 32], reason: String },
    /// A Burn too small to pay its share of the fee: not paid; its amount stays with the group.
    BurnForfeited { id: [u8; 32], amount: Amount },
    /// Burns were planned into a transaction the group will sign.
    Planned { plan: PlanId, burns: Vec<[u8; 32]> },
    /// A plan's transaction cannot be built here (the chain's transaction builder refused it):
    /// it is not signed, and its inputs stay out of the group's spendable funds until an
    /// operator acts.
    PlanFailed { plan: PlanId, reason: String },
}

#[cfg(test)]
mod tests;
