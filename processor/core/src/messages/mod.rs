//! The wire protocol between a coordinator and its processors: every message in one place,
//! typed, versioned, bincode 2 encoded, signed by its sender.
//!
//! Delivery is at-least-once. A [`Frame::Data`] carries a sequence id per link direction; the
//! receiver handles ids in order, acknowledges them with [`Frame::Ack`], and recognises a
//! redelivered id as already handled. Decoding never panics: every failure is a [`WireError`].

mod codec;
mod envelope;

pub use codec::{decode, decode_canonical, encode, WireError, MAX_MESSAGE_BYTES};
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
    /// Key generation: start a session, relay the other participants' packages, fail or confirm it.
    KeyGen(KeyGenCommand),
    /// The validators' agreement on reported final blocks, and Batches published on Serai.
    Scanner(ScannerCommand),
    /// A threshold-signing round of a Batch or a plan's transaction: relayed packages, re-attempts.
    Sign(SignCommand),
    /// Burns to pay out on the processor's chain.
    Payments(PaymentsCommand),
}

/// Messages from a processor to the coordinator.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ProcessorMessage {
    /// Key-generation progress: this processor's packages, its generated or activated keys, blame.
    KeyGen(KeyGenEvent),
    /// Final blocks and their deposits, a halt on a changed final block, signed Batches.
    Scanner(ScannerEvent),
    /// This processor's preprocesses and signature shares, blame of a signer, completed plans.
    Sign(SignEvent),
    /// What became of Burns (rejected, forfeited, planned) and of plans that cannot be built.
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
    Bitcoin {
        /// The key's x coordinate, big-endian (BIP340's x-only encoding), before any tweak.
        internal_key: [u8; 32],
    },
    /// The compressed Ed25519 spend key of the group's Monero wallet.
    Monero {
        /// The compressed Edwards point; the wallet's view key is derived from it
        /// ([`crate::chain::monero::view_key`]).
        spend_key: [u8; 32],
    },
}

impl ChainPublicKey {
    /// The external chain whose funds this key holds.
    pub fn chain(&self) -> ExternalChain {
        match self {
            ChainPublicKey::Bitcoin { .. } => ExternalChain::Bitcoin,
            ChainPublicKey::Monero { .. } => ExternalChain::Monero,
        }
    }
}

/// The coordinator's key-generation commands, each about one session.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum KeyGenCommand {
    /// Begin a DKG. `participants` lists every processor's network key in index order, so
    /// `n = participants.len()` and `participants[my_index - 1]` is the recipient.
    Start {
        /// The new session; each session id is started at most once.
        session: SessionId,
        /// t: how many participants it takes to sign with the keys (2..=n).
        threshold: u16,
        /// The recipient's 1-based index in `participants`.
        my_index: Participant,
        /// Every participant's network key, in index order (at most
        /// [`crate::keygen::MAX_PARTICIPANTS`]).
        participants: Vec<PeerKey>,
    },
    /// Every other participant's round-1 commitments.
    Commitments {
        /// The session, which must be awaiting commitments.
        session: SessionId,
        /// Each other participant's encoded round-1 packages (batch and chain DKG), one per
        /// sender.
        commitments: Vec<(Participant, Opaque)>,
    },
    /// Every other participant's round-2 share addressed to this processor.
    Shares {
        /// The session, which must have sent its own shares.
        session: SessionId,
        /// Each sender's round-2 shares for the recipient, encrypted to its identity
        /// ([`crate::crypto::pairwise`]), one per other participant.
        shares: Vec<(Participant, Opaque)>,
    },
    /// The session failed: a participant was blamed. No key from it may ever be used.
    Failed {
        /// The session that failed.
        session: SessionId,
        /// The participant the coordinator holds responsible.
        blamed: Participant,
    },
    /// The validator set voted these keys in: they become active, and blocks from `activation`
    /// on are scanned for outputs to them.
    Confirm {
        /// The session whose generated keys were voted in.
        session: SessionId,
        /// The keys voted in; refused unless they equal the keys generated here.
        keys: GroupKeys,
        /// The first height of the external chain scanned for outputs to the keys. For the
        /// first keys, scanning begins there. For a later session (a rotation), it must not
        /// be below the next height to scan here; the acknowledgement of the block at
        /// `activation` hands the chain over to the new keys.
        activation: BlockHeight,
    },
}

/// A processor's key-generation reports to the coordinator, each about one session.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum KeyGenEvent {
    /// This processor's round-1 commitments, for every other participant.
    Commitments {
        /// The session just started here.
        session: SessionId,
        /// The encoded round-1 packages of both DKGs (batch and chain key), the same bytes for
        /// every recipient.
        commitments: Opaque,
    },
    /// This processor's round-2 shares, one per other participant.
    Shares {
        /// The session whose commitments all arrived.
        session: SessionId,
        /// Each recipient's round-2 shares of both DKGs, encrypted to its identity so the
        /// coordinator relaying them cannot read them.
        shares: Vec<(Participant, Opaque)>,
    },
    /// The DKG finished here with these group keys; they are not usable until confirmed.
    Generated {
        /// The session that finished.
        session: SessionId,
        /// The group's public batch and chain keys as computed here.
        keys: GroupKeys,
    },
    /// A participant sent something invalid; the session must not produce a key.
    Blame {
        /// The session that fails with this blame.
        session: SessionId,
        /// The participant whose package was invalid.
        accused: Participant,
        /// What was wrong with the package.
        reason: BlameReason,
    },
    /// The coordinator's confirmation was accepted; the keys are now in use.
    Activated {
        /// The session whose keys are now the active ones.
        session: SessionId,
        /// The keys now in use for scanning, Batches and plans.
        keys: GroupKeys,
    },
    /// The acknowledged block at `height` handed the chain over from `from`'s keys to
    /// `session`'s: Batches of this block on are signed with `session`'s batch key, new plans
    /// with its chain key, and `from`'s outputs are being forwarded to it.
    HandedOver {
        /// The session whose keys now sign.
        session: SessionId,
        /// The session whose keys are retiring.
        from: SessionId,
        /// The acknowledged block that handed over.
        height: BlockHeight,
    },
    /// The session's keys hold nothing and have nothing pending: no longer scanned, their
    /// shares deleted here. Anything paid to them from now on is not seen.
    Retired {
        /// The retired session.
        session: SessionId,
        /// The acknowledged block at which it retired.
        height: BlockHeight,
    },
}

/// Why a participant is blamed, in key generation or in a signing attempt.
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
    /// Paid to the address deposits go to (Bitcoin: the key path of the group key with no
    /// script tree; Monero: the group's standard address).
    External,
    /// Paid to the group's change address (Bitcoin: the key committed to
    /// [`crate::chain::bitcoin::CHANGE_ROOT`]; Monero: its change subaddress).
    Change,
}

/// An output to the group seen in a final block: a deposit, or change of the group's own
/// transaction.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Deposit {
    /// Chain-specific output id: txid and output index for Bitcoin; transaction hash and index
    /// in the transaction (little endian) for Monero.
    pub output_id: crate::ids::OutputId,
    /// The output's value, in the chain's smallest unit (satoshi, piconero).
    pub amount: Amount,
    /// `None` if the transaction carried no valid InInstruction (always for change).
    pub instruction: Option<InInstruction>,
    /// Which of the group's addresses it was paid to: a deposit, or the group's own change.
    pub kind: OutputKind,
}

/// The Batch the group signs for one final block.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Batch {
    /// The external chain the deposits were made on.
    pub chain: ExternalChain,
    /// The Batch's sequential id on that chain, as the coordinator named it when acknowledging
    /// the block.
    pub id: BatchId,
    /// The final block whose deposits it reports.
    pub block: BlockId,
    /// The block's InInstructions in canonical order.
    pub instructions: Vec<(InInstruction, Amount)>,
}

/// The coordinator's commands about scanned blocks and their Batches.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ScannerCommand {
    /// The validator group agreed on a reported final block with outputs to the group: its
    /// outputs join the group's funds (those with InInstructions once `batch`, which names the
    /// block's Batch if it has any, is published), and the Batch is signed. Commands are acted
    /// on in order, so a processor that has not scanned the block yet waits for it.
    AcknowledgeBlock {
        /// The block's height on the external chain.
        height: BlockHeight,
        /// The block's id, which must be the final block scanned here at `height`.
        block: BlockId,
        /// The id the block's Batch gets, `None` exactly when it has no InInstructions.
        batch: Option<BatchId>,
    },
    /// Serai acknowledged a signed Batch; its outputs may be spent.
    BatchPublished {
        /// The Batch Serai acknowledged.
        batch: BatchId,
    },
    /// The validator group agreed on the reports of every block through `height`, the last of
    /// which had no outputs to the group (so no [`ScannerCommand::AcknowledgeBlock`]). Sent
    /// while keys rotate: a retiring key's window and retirement advance with acknowledged
    /// heights, and a quiet chain would otherwise hold them. Acted on once scanned here, like
    /// an acknowledgement.
    AcknowledgeHeight {
        /// The height agreed through.
        height: BlockHeight,
    },
}

/// A processor's reports about the blocks it scanned and the Batches it signed.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ScannerEvent {
    /// A block became final; these are the deposits to the group found in it.
    BlockFinal {
        /// The block's height on the external chain.
        height: BlockHeight,
        /// The block's id (Bitcoin's block hash, Monero's block hash).
        block: BlockId,
        /// The outputs to the group in the block, in block order.
        deposits: Vec<Deposit>,
    },
    /// A block already reported final changed: the chain is halted here.
    Halted {
        /// The height whose final block changed.
        height: BlockHeight,
        /// The block reported final at that height.
        reported: BlockId,
        /// The block the chain source now has there.
        found: BlockId,
    },
    /// A Batch with its Ed25519 signature by the batch key.
    SignedBatch {
        /// The Batch signed.
        batch: Batch,
        /// The aggregate Ed25519 signature over [`crate::batch::batch_message`] of the Batch.
        signature: [u8; 64],
    },
}

// ---------------------------------------------------------------------------------------------
// Threshold signing (Batches and transactions share one protocol shape)

/// What a signing protocol is signing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SignTarget {
    /// The Batch with this id, signed with the batch key.
    Batch(BatchId),
    /// The transaction of the plan with this id, signed with the chain key.
    Transaction(PlanId),
}

/// One attempt at one signing protocol. Nonces are bound to exactly one `SignId`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignId {
    /// The key-generation session whose keys sign.
    pub session: SessionId,
    /// What is being signed.
    pub target: SignTarget,
    /// Which attempt at signing the target this is (0 first).
    pub attempt: Attempt,
}

/// The coordinator's commands in a signing round, relayed from the attempt's signing set.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SignCommand {
    /// The preprocesses of the attempt's signing set (including this processor's own).
    Preprocesses {
        /// The attempt they belong to.
        id: SignId,
        /// Each signer's preprocess (nonce commitments), exactly the signing set, by participant.
        preprocesses: Vec<(Participant, Opaque)>,
    },
    /// The signature shares of the attempt's signing set (including this processor's own).
    Shares {
        /// The attempt they belong to.
        id: SignId,
        /// Each signer's signature share, exactly the signing set, by participant.
        shares: Vec<(Participant, Opaque)>,
    },
    /// Begin a new attempt; earlier attempts' nonces are discarded.
    Reattempt {
        /// The new attempt; ignored unless later than the latest attempt taken part in here.
        id: SignId,
    },
}

/// A processor's messages in a signing round, and the completion of plans.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SignEvent {
    /// This processor's preprocess for an attempt: its commitments to fresh nonces.
    Preprocess {
        /// The attempt the nonces are bound to.
        id: SignId,
        /// The encoded commitments (for a Bitcoin transaction one per input; for Monero with the
        /// hash of the transaction signed).
        preprocess: Opaque,
    },
    /// This processor's signature share for an attempt, made once the preprocesses arrived.
    Share {
        /// The attempt the share belongs to.
        id: SignId,
        /// The encoded signature share (for a Bitcoin transaction one per input).
        share: Opaque,
    },
    /// A participant's preprocess or share was invalid.
    Blame {
        /// The attempt in which it was sent.
        id: SignId,
        /// The participant who sent it.
        accused: Participant,
        /// What was wrong with it.
        reason: BlameReason,
    },
    /// A plan's transaction is complete: signed here (and published), or seen in a final
    /// block (whoever published it). `transaction` is its chain id (the txid for Bitcoin).
    Completed {
        /// The plan completed.
        plan: PlanId,
        /// The transaction's id on its chain (Bitcoin's txid, Monero's transaction hash).
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
    /// What the Burn pays, in the chain's smallest unit (satoshi, piconero), before the
    /// recipient's share of the fee is deducted.
    pub amount: Amount,
}

/// The coordinator's payment commands.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PaymentsCommand {
    /// Burns to pay, with the fee rate (satoshi per vbyte; piconero per weight unit) the
    /// validator set agreed from its chain sources, so every processor plans alike.
    Burns {
        /// The chain the Burns pay out on; refused unless it is the processor's chain.
        chain: ExternalChain,
        /// The Burns, at most [`crate::payments::MAX_BURNS_PER_COMMAND`]; ids seen before are
        /// skipped.
        burns: Vec<Burn>,
        /// The fee rate for plans from now on: satoshi per virtual byte (Bitcoin), piconero per
        /// unit of fee weight (Monero).
        fee_rate: u64,
    },
}

/// A processor's reports on what became of Burns and plans.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PaymentsEvent {
    /// A Burn could not become a payment; nothing else changed.
    BurnRejected {
        /// The rejected Burn's id on Serai.
        id: [u8; 32],
        /// Why it cannot be paid (an unpayable destination, a zero or impossible amount).
        reason: String,
    },
    /// A Burn too small to pay its share of the fee: not paid; its amount stays with the group.
    BurnForfeited {
        /// The forfeited Burn's id on Serai.
        id: [u8; 32],
        /// The Burn's whole amount, kept by the group (satoshi, piconero).
        amount: Amount,
    },
    /// Burns were planned into a transaction the group will sign.
    Planned {
        /// The new plan, whose signing starts now.
        plan: PlanId,
        /// The ids of the Burns it pays, in the plan's payment order.
        burns: Vec<[u8; 32]>,
    },
    /// A plan's transaction cannot be built here (the chain's transaction builder refused it):
    /// it is not signed, and its inputs stay out of the group's spendable funds until an
    /// operator acts.
    PlanFailed {
        /// The plan that failed.
        plan: PlanId,
        /// The transaction builder's refusal.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
