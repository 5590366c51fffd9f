//! Plans become threshold-signed transactions, and their completion is recognised on chain.
//!
//! Signing starts when a plan is made (attempt 0) and follows the shape of every signing
//! attempt ([`crate::sign`]): a preprocess per attempt, the signing set's preprocesses from the
//! coordinator, a share, the set's shares. A plan's transaction is built deterministically
//! from the plan, so whatever the attempt, the group only ever signs one version of it: no two
//! transactions spending the same inputs to different outputs. Each chain's signing is one
//! [`ChainSigner`] ([`bitcoin::BitcoinSigner`], [`monero::MoneroSigner`]); this module runs
//! the attempts for both and keeps signed transactions until they are final.
//!
//! Monero differs in one more way: a plan's inputs need rings from the chain, which the core
//! asks the driver for ([`crate::core::Effect::SelectDecoys`]) before signing can begin
//! ([`monero::decoys_arrived`]). Completion on chain is [`eventuality`]'s business.

pub mod bitcoin;
pub mod eventuality;
pub mod monero;

use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, ExternalChain, Participant, PlanId};
use crate::keygen::{KeyCache, ThresholdKeyPair};
use crate::messages::{ProcessorMessage, SignEvent, SignId, SignTarget};
use crate::plan::{self, PlanRecord, PlanState};
use crate::sign::{self, Attempts, SignError, SigningSet};
use rand_core::{CryptoRng, RngCore};

/// Transaction signing attempts held in memory at once, per chain.
pub const MAX_LIVE_ATTEMPTS: usize = 64;
/// Inputs one plan may have (bounds a preprocess's size and the signing work per command).
pub const MAX_INPUTS: usize = 1_000;

/// Room kept in a message for everything but the per-input parts of preprocesses or shares
/// (the envelope, its signature, ids, per-signer framing at the largest set).
const FRAMING_BYTES: usize = 64 * 1024;

/// The most bytes one signer's preprocess or share takes per input of a plan, at most
/// (`benches/tests/message_sizes.rs` measures the real ones against these):
/// - Bitcoin: a FROST commitment pair per input (two compressed points and frost's header):
///   measured 72 bytes a preprocess, 33 a share.
/// - Monero: modular-frost's CLSAG preprocess per input (nonce commitments over two
///   generators, and the key image share): measured 160 bytes a preprocess, 32 a share.
pub const fn signing_bytes_per_input(chain: ExternalChain) -> usize {
    match chain {
        ExternalChain::Bitcoin => 80,
        ExternalChain::Monero => 200,
    }
}

/// The most inputs a plan signed by `signers` may spend so that the coordinator's
/// Preprocesses (and Shares) command, carrying every signer's, fits one message
/// ([`crate::messages::MAX_MESSAGE_BYTES`]): planning respects it, so no plan is made that
/// could never be signed.
pub const fn max_signable_inputs(chain: ExternalChain, signers: usize) -> usize {
    let signers = if signers == 0 { 1 } else { signers };
    (crate::messages::MAX_MESSAGE_BYTES - FRAMING_BYTES) / (signers * signing_bytes_per_input(chain))
}

tables! {
    /// Signed transactions not yet seen final, by plan: published until they are.
    UNCONFIRMED: Table<PlanId, Vec<u8>> = b"pay/unconfirmed/";
}

/// A signed transaction.
pub struct SignedTransaction {
    /// Its chain id (Bitcoin's txid, Monero's hash).
    pub id: Vec<u8>,
    /// Its chain encoding, as published.
    pub bytes: Vec<u8>,
}

/// One chain's threshold signing of a plan's transaction, in the three steps of an attempt.
/// Every call is given the plan and the group's keys; the signing set has been checked
/// ([`SigningSet::check`]) before a step that uses nonces is called.
pub trait ChainSigner {
    /// What an attempt holds between its preprocess and its share (nonces, a machine).
    type Preprocessed;
    /// What an attempt holds between its share and the aggregation.
    type Shared;

    /// The signing set's shape for this chain's key share.
    fn signing_set(keys: &ThresholdKeyPair) -> Result<SigningSet, SignError>;

    /// Commits to fresh nonces for the plan's transaction: the attempt's state and the
    /// preprocess to send, or `None` if the plan cannot be signed yet (Monero: no rings).
    fn preprocess(
        reader: &impl Read,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Option<Preprocess<Self::Preprocessed>>, SignError>;

    /// The signing set's preprocesses: our share.
    fn share(
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        state: Self::Preprocessed,
        preprocesses: &[(Participant, Vec<u8>)],
    ) -> Result<(Self::Shared, Vec<u8>), SignError>;

    /// The signing set's shares: the signed transaction (a bad share names its culprit).
    fn complete(
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        state: Self::Shared,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<SignedTransaction, SignError>;
}

/// An attempt's state after its preprocess, and the preprocess to send.
pub struct Preprocess<T> {
    /// What the attempt holds until the signing set's preprocesses arrive.
    pub state: T,
    /// The preprocess message.
    pub message: Vec<u8>,
}

/// Where one attempt of one chain stands.
enum Stage<S: ChainSigner> {
    Preprocessed(S::Preprocessed),
    Shared(S::Shared),
}

/// The live attempts of one chain's signer.
struct ChainAttempts<S: ChainSigner>(Attempts<Stage<S>>);

impl<S: ChainSigner> ChainAttempts<S> {
    fn new() -> Self {
        ChainAttempts(Attempts::new(MAX_LIVE_ATTEMPTS))
    }

    fn preprocess<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        id: SignId,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Option<ProcessorMessage>, SignError> {
        if sign::was_preprocessed(txn, id)? {
            return Ok(None);
        }
        let Some(Preprocess { state, message: preprocess }) = S::preprocess(txn, keys, record, rng)? else {
            return Ok(None);
        };
        sign::first_preprocess(txn, id)?;
        self.0.insert(id, Stage::Preprocessed(state));
        Ok(Some(ProcessorMessage::Sign(SignEvent::Preprocess { id, preprocess })))
    }

    fn share(
        &mut self,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        id: SignId,
        preprocesses: &[(Participant, Vec<u8>)],
    ) -> Result<Vec<u8>, SignError> {
        S::signing_set(keys)?.check(preprocesses.iter().map(|(participant, _)| participant))?;
        // Taken out now: whatever happens next, these nonces are never used again.
        let state = match self.0.take(&id) {
            Some(Stage::Preprocessed(state)) => state,
            // A repeated command: the attempt is past this step; it stays as it was.
            Some(shared) => {
                self.0.insert(id, shared);
                return Err(SignError::Refused(format!("{id:?} already has its share")));
            }
            None => {
                return Err(SignError::Refused(format!(
                    "no live nonces for {id:?} (already used, or lost in a restart)"
                )))
            }
        };
        let (state, share) = S::share(keys, record, state, preprocesses)?;
        self.0.insert(id, Stage::Shared(state));
        Ok(share)
    }

    fn complete(
        &mut self,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        id: SignId,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<SignedTransaction, SignError> {
        S::signing_set(keys)?.check_shares(shares.iter().map(|(participant, _)| participant))?;
        let state = match self.0.take(&id) {
            Some(Stage::Shared(state)) => state,
            // Shares before our share was made: the attempt stays as it was.
            Some(preprocessed) => {
                self.0.insert(id, preprocessed);
                return Err(SignError::Refused(format!("{id:?} has no share of ours yet")));
            }
            None => return Err(SignError::Refused(format!("no signing state for {id:?} here"))),
        };
        S::complete(keys, record, state, shares)
    }
}

/// In-memory transaction signing state of both chains. Never persisted.
pub struct TransactionSigner {
    bitcoin: ChainAttempts<bitcoin::BitcoinSigner>,
    monero: ChainAttempts<monero::MoneroSigner>,
    keys: KeyCache,
}

impl Default for TransactionSigner {
    fn default() -> Self {
        TransactionSigner { bitcoin: ChainAttempts::new(), monero: ChainAttempts::new(), keys: KeyCache::default() }
    }
}

impl TransactionSigner {
    /// Drops the parsed keys of a retired session.
    pub fn forget_keys(&mut self, session: crate::ids::SessionId) {
        self.keys.forget(session);
    }

    /// The plan attempt `id` signs, checked to be signed by `id`'s session.
    fn record<D: Db>(txn: &Txn<'_, D>, id: SignId) -> Result<PlanRecord, SignError> {
        let SignTarget::Transaction(plan) = id.target else {
            return Err(SignError::refused("not a transaction"));
        };
        let record = plan::plan(txn, plan)?.ok_or_else(|| SignError::Refused(format!("no plan {plan} here")))?;
        if record.session != id.session {
            return Err(SignError::Refused(format!("plan {plan} is not signed by session {}", id.session)));
        }
        Ok(record)
    }

    fn keys<D: Db>(&mut self, txn: &Txn<'_, D>, id: SignId) -> Result<std::sync::Arc<ThresholdKeyPair>, SignError> {
        sign::session_keys(&mut self.keys, txn, id.session)
    }

    /// A plan was just made (or its rings arrived): attempt 0 begins, if it can.
    pub fn start<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        plan: PlanId,
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let record = plan::plan(txn, plan)?.ok_or_else(|| SignError::Refused(format!("no plan {plan}")))?;
        if record.state != PlanState::Planned {
            return Ok(vec![]);
        }
        let id = SignId { session: record.session, target: SignTarget::Transaction(plan), attempt: record.attempt };
        Ok(self.preprocess(txn, rng, &record, id)?.into_iter().collect())
    }

    fn preprocess<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        record: &PlanRecord,
        id: SignId,
    ) -> Result<Option<ProcessorMessage>, SignError> {
        let inputs = record.plan.inputs.len();
        if inputs == 0 || inputs > MAX_INPUTS {
            return Err(SignError::Refused(format!("a plan with {inputs} inputs cannot be signed")));
        }
        let keys = self.keys(txn, id)?;
        match record.chain {
            ExternalChain::Bitcoin => self.bitcoin.preprocess(txn, &keys, record, id, rng),
            ExternalChain::Monero => self.monero.preprocess(txn, &keys, record, id, rng),
        }
    }

    /// The coordinator's next attempt at a plan: fresh nonces.
    pub fn reattempt<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        id: SignId,
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let mut record = Self::record(txn, id)?;
        if record.state != PlanState::Planned || id.attempt <= record.attempt {
            return Ok(vec![]);
        }
        record.attempt = id.attempt;
        plan::save_plan(txn, &record);
        Ok(self.preprocess(txn, rng, &record, id)?.into_iter().collect())
    }

    /// The signing set's preprocesses: our share of the transaction's signatures.
    pub fn preprocesses<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        id: SignId,
        preprocesses: &[(Participant, Vec<u8>)],
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let record = Self::record(txn, id)?;
        if record.state != PlanState::Planned {
            return Ok(vec![]);
        }
        let keys = self.keys(txn, id)?;
        let share = match record.chain {
            ExternalChain::Bitcoin => self.bitcoin.share(&keys, &record, id, preprocesses)?,
            ExternalChain::Monero => self.monero.share(&keys, &record, id, preprocesses)?,
        };
        Ok(vec![ProcessorMessage::Sign(SignEvent::Share { id, share })])
    }

    /// The signing set's shares: the signed transaction (kept to be published until it is seen
    /// final), and a completion report.
    pub fn shares<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        id: SignId,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let mut record = Self::record(txn, id)?;
        if record.state != PlanState::Planned {
            return Ok(vec![]);
        }
        let keys = self.keys(txn, id)?;
        let signed = match record.chain {
            ExternalChain::Bitcoin => self.bitcoin.complete(&keys, &record, id, shares)?,
            ExternalChain::Monero => self.monero.complete(&keys, &record, id, shares)?,
        };
        record.state = PlanState::Signed { transaction: signed.bytes.clone() };
        plan::save_plan(txn, &record);
        UNCONFIRMED.set(txn, &record.id, &signed.bytes);
        tracing::info!(plan = %record.id, chain = %record.chain, id = %hex::encode(&signed.id), "transaction signed");
        Ok(vec![ProcessorMessage::Sign(SignEvent::Completed { plan: record.id, transaction: signed.id })])
    }
}

/// Marks a plan complete, its transaction being in the final block at `at`: signing and
/// publishing stop, and what spending its inputs needed is dropped.
pub fn complete<D: Db>(txn: &mut Txn<'_, D>, record: &mut PlanRecord, transaction: Vec<u8>, at: BlockHeight) {
    UNCONFIRMED.delete(txn, &record.id);
    if record.chain == ExternalChain::Monero {
        monero::forget_inputs(txn, record);
    }
    tracing::info!(plan = %record.id, transaction = %hex::encode(&transaction), "plan completed on chain");
    record.state = PlanState::Completed { transaction };
    plan::save_plan(txn, record);
    plan::completed_at(txn, record, at);
}

/// Signed transactions not yet seen final, to (re)publish.
pub fn unconfirmed(reader: &impl Read) -> Result<Vec<(PlanId, Vec<u8>)>, DbError> {
    UNCONFIRMED.entries(reader)
}

/// The signed transaction of `plan`, while it is not yet final.
pub fn unconfirmed_transaction(reader: &impl Read, plan: PlanId) -> Result<Option<Vec<u8>>, DbError> {
    UNCONFIRMED.get(reader, &plan)
}
