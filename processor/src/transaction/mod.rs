//! Plans become threshold-signed transactions, and their completion is recognised on chain.
//!
//! Signing starts when a plan is made (attempt 0) and follows the Batch protocol's shape: a
//! preprocess per attempt, the signing set's preprocesses from the coordinator, a share, the
//! set's shares. A plan's transaction is built deterministically from the plan, so whatever
//! the attempt, the group only ever signs one version of it: no two transactions spending the
//! same inputs to different outputs. Nonces live only in memory and each attempt is
//! preprocessed at most once (the marker is shared with Batches).
//!
//! **Eventualities.** When a plan is made, its first input is watched, with the txid that must
//! spend it. Scanning a final block that spends the input by that txid completes the plan
//! (whoever published it); a spend by any other transaction is an alarm, logged as an error.
//!
//! Monero (see [`monero`]) differs in two ways: a plan's inputs need rings from the chain,
//! which the core asks the driver for ([`crate::core::Effect::SelectDecoys`]) before signing
//! can begin, and its Eventuality is monero-wallet's, matched against every transaction of a
//! final block.

pub mod bitcoin;
pub mod monero;

use crate::db::{schema, Db, DbError, Txn};
use crate::ids::{ExternalChain, Participant, PlanId};
use crate::keygen::{self, keys::Secp256k1Tr, ChainKeyShare, ThresholdKeyPair};
use crate::messages::{decode, encode, BlameReason, ProcessorMessage, SignEvent, SignId, SignTarget};
use crate::payments::{PlanRecord, PlanState};
use crate::batch::SignError;
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{Identifier, SigningPackage};
use frost_secp256k1_tr::keys::Tweak;
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;

/// Transaction signing attempts held in memory at once.
pub const MAX_LIVE_ATTEMPTS: usize = 64;
/// Inputs one plan may have (bounds a preprocess's size and the signing work per command).
pub const MAX_INPUTS: usize = 1_000;

/// What watching a plan's first input expects.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Eventuality {
    pub plan: PlanId,
    /// The chain id of the plan's transaction.
    pub transaction: Vec<u8>,
}

/// The Bitcoin signing material of one plan, at one attempt.
struct Signing {
    nonces: Vec<SigningNonces<Secp256k1Tr>>,
    packages: Vec<SigningPackage<Secp256k1Tr>>,
}

/// Where a Monero signing attempt stands: monero-wallet's machines, in memory only.
enum MoneroSigning {
    Preprocessed { machine: monero_wallet::send::TransactionSignMachine, signable: [u8; 32] },
    Shared(monero_wallet::send::TransactionSignatureMachine),
}

/// In-memory transaction signing state. Never persisted.
#[derive(Default)]
pub struct TransactionSigner {
    live: BTreeMap<SignId, Signing>,
    monero: BTreeMap<SignId, MoneroSigning>,
    keys: crate::keygen::KeyCache,
}

/// The processor's own participant index in a key share.
fn me<C: frost_core::Ciphersuite>(share: &crate::keygen::keys::KeyShare<C>) -> Option<Participant> {
    crate::batch::participant_of(share.share.identifier(), share.public.verifying_shares().len() as u16)
}

fn monero_share(keys: &ThresholdKeyPair) -> Result<&crate::keygen::keys::KeyShare<crate::keygen::keys::Ed25519>, SignError> {
    match &keys.chain {
        ChainKeyShare::Monero(share) => Ok(share),
        ChainKeyShare::Bitcoin(_) => Err(SignError::Refused("a Monero plan under a Bitcoin key".into())),
    }
}

fn bitcoin_keys(keys: &ThresholdKeyPair) -> Result<&crate::keygen::keys::KeyShare<Secp256k1Tr>, SignError> {
    match &keys.chain {
        ChainKeyShare::Bitcoin(share) => Ok(share),
        ChainKeyShare::Monero(_) => Err(SignError::Refused("threshold Monero transaction signing is not implemented".into())),
    }
}

fn internal_key(keys: &ThresholdKeyPair) -> Result<[u8; 32], SignError> {
    match keys.group_keys().chain {
        crate::messages::ChainPublicKey::Bitcoin { internal_key } => Ok(internal_key),
        crate::messages::ChainPublicKey::Monero { .. } => {
            Err(SignError::Refused("threshold Monero transaction signing is not implemented".into()))
        }
    }
}

/// The plan's Bitcoin transaction as the group `keys` signs it.
fn signable(record: &PlanRecord, keys: &ThresholdKeyPair) -> Result<bitcoin::SignableTransaction, SignError> {
    bitcoin::build(&record.plan, &internal_key(keys)?).map_err(SignError::Refused)
}

/// The key package and public package tweaked for each input's merkle root.
fn tweaked(
    share: &crate::keygen::keys::KeyShare<Secp256k1Tr>,
    roots: &[Option<[u8; 32]>],
) -> Vec<(KeyPackage<Secp256k1Tr>, PublicKeyPackage<Secp256k1Tr>)> {
    let mut by_root: BTreeMap<Option<[u8; 32]>, (KeyPackage<Secp256k1Tr>, PublicKeyPackage<Secp256k1Tr>)> = BTreeMap::new();
    roots
        .iter()
        .map(|root| {
            by_root
                .entry(*root)
                .or_insert_with(|| {
                    let root = root.as_ref().map(|r| r.as_slice());
                    (share.share.clone().tweak(root), share.public.clone().tweak(root))
                })
                .clone()
        })
        .collect()
}

/// Parses one participant's per-input list.
fn per_input<T>(
    participant: Participant,
    bytes: &[u8],
    inputs: usize,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, SignError> {
    let malformed = SignError::Blame { accused: participant, reason: BlameReason::Malformed };
    let items: Vec<Vec<u8>> = decode(bytes).map_err(|_| malformed)?;
    if items.len() != inputs {
        return Err(SignError::Blame { accused: participant, reason: BlameReason::Malformed });
    }
    items
        .iter()
        .map(|item| parse(item).ok_or(SignError::Blame { accused: participant, reason: BlameReason::Malformed }))
        .collect()
}

/// Records a new plan's eventuality. Bitcoin: if scanning already saw its first input spent
/// (a processor may scan ahead of the commands it has handled), the plan is complete at once:
/// returns the completing transaction's id. Monero: the plan waits for its rings first (see
/// [`decoys_arrived`]).
pub fn watch<D: Db>(txn: &mut Txn<'_, D>, record: &PlanRecord) -> Result<Option<Vec<u8>>, SignError> {
    if record.chain == ExternalChain::Monero {
        // Its transaction, hence its Eventuality, exists once the rings are selected.
        schema::AWAITING_DECOYS.set(txn, &record.id.0.to_vec(), &());
        return Ok(None);
    }
    let keys = keygen::generated_keys(txn, record.session)?
        .ok_or_else(|| SignError::Refused(format!("no keys for session {}", record.session)))?;
    let signable = signable(record, &keys)?;
    let first = record.plan.inputs.first().ok_or_else(|| SignError::Refused("a plan without inputs".into()))?;
    let eventuality = Eventuality { plan: record.id, transaction: signable.txid().to_vec() };
    if let Some(spender) = schema::SPENT.take(txn, &first.id)? {
        if spender == eventuality.transaction {
            tracing::info!(plan = %record.id, "plan already completed on chain when it was made here");
            return Ok(Some(spender));
        }
        tracing::error!(plan = %record.id, found = %hex::encode(&spender), "a plan's input was already spent by another transaction");
        return Ok(None);
    }
    schema::EVENTUALITIES.set(txn, &first.id, &eventuality);
    Ok(None)
}

/// What scanning must look for: (Bitcoin) every output to the group seen final and not yet
/// seen spent; (Monero) the pending plans' Eventualities.
pub fn watched(reader: &impl crate::db::Read, chain: ExternalChain) -> Result<crate::chain::Watched, DbError> {
    Ok(match chain {
        ExternalChain::Bitcoin => crate::chain::Watched {
            outputs: schema::GROUP_OUTPUTS.entries(reader)?.into_iter().map(|(output, ())| output).collect(),
            eventualities: vec![],
        },
        ExternalChain::Monero => {
            crate::chain::Watched { outputs: Default::default(), eventualities: schema::MONERO_EVENTUALITIES.entries(reader)? }
        }
    })
}

/// A final block's outputs to the group and spends of them: completes the plans they resolve
/// and remembers spends no plan here awaits yet.
pub fn resolve<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    height: crate::ids::BlockHeight,
    scanned: &crate::chain::ScannedBlock,
) -> Result<Vec<ProcessorMessage>, DbError> {
    let (outputs, spends) = (&scanned.outputs, &scanned.spends);
    if chain == ExternalChain::Monero {
        return resolve_monero(txn, height, scanned);
    }
    for output in outputs {
        schema::GROUP_OUTPUTS.set(txn, &output.id, &());
    }
    let mut messages = Vec::new();
    for spend in spends {
        schema::GROUP_OUTPUTS.delete(txn, &spend.output);
        let Some(eventuality) = schema::EVENTUALITIES.take(txn, &spend.output)? else {
            schema::SPENT.set(txn, &spend.output, &spend.transaction);
            continue;
        };
        if eventuality.transaction != spend.transaction {
            tracing::error!(
                plan = %eventuality.plan,
                expected = %hex::encode(&eventuality.transaction),
                found = %hex::encode(&spend.transaction),
                "a group output was spent by a transaction that is not its plan's: the plan cannot complete"
            );
            continue;
        }
        let Some(mut record) = schema::PLANS.get(txn, &eventuality.plan.0.to_vec())? else { continue };
        complete(txn, &mut record, spend.transaction.clone());
        messages.push(ProcessorMessage::Sign(SignEvent::Completed { plan: record.id, transaction: spend.transaction.clone() }));
    }
    Ok(messages)
}

fn resolve_monero<D: Db>(
    txn: &mut Txn<'_, D>,
    height: crate::ids::BlockHeight,
    scanned: &crate::chain::ScannedBlock,
) -> Result<Vec<ProcessorMessage>, DbError> {
    for output in &scanned.outputs {
        schema::MONERO_OUTPUTS.set(txn, &output.id, &(height, output.spend_data.clone()));
    }
    let mut messages = Vec::new();
    let mut resolved = Vec::new();
    for spend in &scanned.spends {
        if schema::MONERO_EVENTUALITIES.take(txn, &spend.output)?.is_none() {
            continue;
        }
        resolved.push(spend.transaction.clone());
        let Some(mut record) = schema::PLANS.get(txn, &spend.output)? else { continue };
        complete(txn, &mut record, spend.transaction.clone());
        messages.push(ProcessorMessage::Sign(SignEvent::Completed { plan: record.id, transaction: spend.transaction.clone() }));
    }
    for (hash, transaction) in &scanned.own_transactions {
        if !resolved.contains(hash) {
            schema::OWN_TRANSACTIONS.set(txn, hash, transaction);
        }
    }
    Ok(messages)
}

/// The inputs with rings for a Monero plan arrived from the driver: the transaction is fixed
/// now; its Eventuality is watched (or already met), and signing begins.
pub fn decoys_arrived<D: Db>(
    txn: &mut Txn<'_, D>,
    plan: PlanId,
    inputs: &[Vec<u8>],
) -> Result<Option<Vec<ProcessorMessage>>, SignError> {
    let key = plan.0.to_vec();
    if schema::AWAITING_DECOYS.get(txn, &key)?.is_none() {
        return Ok(None);
    }
    let mut record = schema::PLANS.get(txn, &key)?.ok_or_else(|| SignError::Refused(format!("no plan {plan}")))?;
    let request = monero::decoy_request(txn, &record).map_err(SignError::Refused)?;
    let parsed = monero::parse_inputs(&request, inputs).map_err(SignError::Refused)?;
    let keys = keygen::generated_keys(txn, record.session)?
        .ok_or_else(|| SignError::Refused(format!("no keys for session {}", record.session)))?;
    let crate::messages::ChainPublicKey::Monero { spend_key } = keys.group_keys().chain else {
        return Err(SignError::Refused("a Monero plan under a Bitcoin key".into()));
    };
    let signable = match monero::signable(&record, &spend_key, parsed) {
        Ok(signable) => signable,
        Err(reason) => {
            // Deterministic given the plan and the (validated) rings: asking again would only
            // repeat the work. Reported; the inputs stay out of the spendable funds.
            tracing::error!(%plan, %reason, "a Monero plan's transaction cannot be built");
            schema::AWAITING_DECOYS.delete(txn, &key);
            record.state = PlanState::Failed { reason: reason.clone() };
            schema::PLANS.set(txn, &key, &record);
            return Ok(Some(vec![ProcessorMessage::Payments(crate::messages::PaymentsEvent::PlanFailed { plan, reason })]));
        }
    };
    let (extra, eventuality) = monero::eventuality(&signable);
    schema::AWAITING_DECOYS.delete(txn, &key);
    schema::MONERO_INPUTS.set(txn, &key, &inputs.to_vec());
    // Scanning may have seen the transaction already (it ran ahead of the commands here).
    for (hash, transaction) in schema::OWN_TRANSACTIONS.entries(txn)? {
        if monero::completes(&eventuality, &transaction) {
            schema::OWN_TRANSACTIONS.delete(txn, &hash);
            complete(txn, &mut record, hash.clone());
            return Ok(Some(vec![ProcessorMessage::Sign(SignEvent::Completed { plan, transaction: hash })]));
        }
    }
    schema::MONERO_EVENTUALITIES.set(txn, &key, &(extra, eventuality.serialize()));
    Ok(Some(vec![]))
}

/// Monero plans waiting for rings, with what to ask the driver.
pub fn decoy_requests(reader: &impl crate::db::Read) -> Result<Vec<monero::DecoyRequest>, DbError> {
    let mut requests = Vec::new();
    for (plan, ()) in schema::AWAITING_DECOYS.entries(reader)? {
        let Some(record) = schema::PLANS.get(reader, &plan)? else { continue };
        match monero::decoy_request(reader, &record) {
            Ok(request) => requests.push(request),
            Err(error) => tracing::error!(plan = %record.id, %error, "a Monero plan's inputs are unknown here"),
        }
    }
    Ok(requests)
}

/// Marks a plan complete: signing and publishing stop, and what spending its inputs needed is
/// dropped.
pub fn complete<D: Db>(txn: &mut Txn<'_, D>, record: &mut PlanRecord, transaction: Vec<u8>) {
    schema::UNCONFIRMED.delete(txn, &record.id.0.to_vec());
    schema::MONERO_INPUTS.delete(txn, &record.id.0.to_vec());
    for input in &record.plan.inputs {
        schema::MONERO_OUTPUTS.delete(txn, &input.id);
    }
    tracing::info!(plan = %record.id, transaction = %hex::encode(&transaction), "plan completed on chain");
    record.state = PlanState::Completed { transaction };
    schema::PLANS.set(txn, &record.id.0.to_vec(), record);
}

impl TransactionSigner {
    fn record<D: Db>(txn: &Txn<'_, D>, id: SignId) -> Result<PlanRecord, SignError> {
        let SignTarget::Transaction(plan) = id.target else {
            return Err(SignError::Refused("not a transaction".into()));
        };
        let record =
            schema::PLANS.get(txn, &plan.0.to_vec())?.ok_or_else(|| SignError::Refused(format!("no plan {plan} here")))?;
        if record.session != id.session {
            return Err(SignError::Refused(format!("plan {plan} is not signed by session {}", id.session)));
        }
        Ok(record)
    }

    fn remember(&mut self, id: SignId, signing: Signing) {
        self.live.retain(|other, _| other.target != id.target || other.attempt > id.attempt);
        while self.live.len() >= MAX_LIVE_ATTEMPTS {
            self.live.pop_first();
        }
        self.live.insert(id, signing);
    }

    /// A plan was just made: attempt 0 begins.
    pub fn start<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        plan: PlanId,
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let record = schema::PLANS.get(txn, &plan.0.to_vec())?.ok_or_else(|| SignError::Refused(format!("no plan {plan}")))?;
        if record.state != PlanState::Planned {
            return Ok(vec![]);
        }
        if record.chain == ExternalChain::Monero && schema::MONERO_INPUTS.get(txn, &plan.0.to_vec())?.is_none() {
            // Signing begins once the rings are known.
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
        let marker = encode(&id);
        if schema::PREPROCESSED.get(txn, &marker)?.is_some() {
            return Ok(None);
        }
        let inputs = record.plan.inputs.len();
        if inputs == 0 || inputs > MAX_INPUTS {
            return Err(SignError::Refused(format!("a plan with {inputs} inputs cannot be signed")));
        }
        let keys = self.keys.get(txn, id.session)?.ok_or_else(|| SignError::Refused(format!("no keys for session {}", id.session)))?;
        if record.chain == ExternalChain::Monero {
            let Some(inputs) = schema::MONERO_INPUTS.get(txn, &record.id.0.to_vec())? else {
                return Ok(None);
            };
            let preprocess = self.monero_preprocess(&keys, record, id, &inputs, rng)?;
            schema::PREPROCESSED.set(txn, &marker, &());
            return Ok(Some(ProcessorMessage::Sign(SignEvent::Preprocess { id, preprocess })));
        }
        let share = bitcoin_keys(&keys)?;
        let mut nonces = Vec::with_capacity(inputs);
        let mut commitments = Vec::with_capacity(inputs);
        for _ in 0 .. inputs {
            let (nonce, commitment) = frost_core::round1::commit(share.share.signing_share(), rng);
            commitments.push(commitment.serialize().map_err(|e| SignError::Refused(format!("serializing commitments: {e}")))?);
            nonces.push(nonce);
        }
        schema::PREPROCESSED.set(txn, &marker, &());
        self.remember(id, Signing { nonces, packages: vec![] });
        Ok(Some(ProcessorMessage::Sign(SignEvent::Preprocess { id, preprocess: encode(&commitments) })))
    }

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
        schema::PLANS.set(txn, &record.id.0.to_vec(), &record);
        Ok(self.preprocess(txn, rng, &record, id)?.into_iter().collect())
    }

    /// The signing set's preprocesses: our share of every input's signature.
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
        let keys = self.keys.get(txn, id.session)?.ok_or_else(|| SignError::Refused(format!("no keys for session {}", id.session)))?;
        if record.chain == ExternalChain::Monero {
            let share = self.monero_share_step(&keys, id, preprocesses)?;
            return Ok(vec![ProcessorMessage::Sign(SignEvent::Share { id, share })]);
        }
        let share = bitcoin_keys(&keys)?;
        let threshold = usize::from(*share.share.min_signers());
        if preprocesses.len() < threshold {
            return Err(SignError::Refused(format!("{} preprocesses, {threshold} needed", preprocesses.len())));
        }
        // Nonces are taken out now: whatever happens next, they are never used again.
        let Some(signing) = self.live.remove(&id) else {
            return Err(SignError::Refused(format!("no live nonces for {id:?} (already used, or lost in a restart)")));
        };
        let signable = signable(&record, &keys)?;
        let sighashes = signable.sighashes().map_err(SignError::Refused)?;
        let inputs = sighashes.len();
        let n = share.public.verifying_shares().len() as u16;
        let mut by_input: Vec<BTreeMap<Identifier<Secp256k1Tr>, SigningCommitments<Secp256k1Tr>>> = vec![BTreeMap::new(); inputs];
        for (participant, bytes) in preprocesses {
            if participant.get() == 0 || participant.get() > n {
                return Err(SignError::Refused(format!("participant {participant} is not in the session")));
            }
            let parsed = per_input(*participant, bytes, inputs, |item| SigningCommitments::<Secp256k1Tr>::deserialize(item).ok())?;
            let identifier = keygen::dkg_identifier::<Secp256k1Tr>(*participant);
            for (input, commitments) in parsed.into_iter().enumerate() {
                if by_input[input].insert(identifier, commitments).is_some() {
                    return Err(SignError::Refused("a participant's preprocess appears twice".into()));
                }
            }
        }
        let me = *share.share.identifier();
        for (input, commitments) in by_input.iter().enumerate() {
            if commitments.get(&me) != Some(signing.nonces[input].commitments()) {
                return Err(SignError::Refused("the signing set lacks our own commitments".into()));
            }
        }
        let tweaked = tweaked(share, &signable.roots);
        let mut packages = Vec::with_capacity(inputs);
        let mut shares = Vec::with_capacity(inputs);
        for (input, commitments) in by_input.into_iter().enumerate() {
            let package = SigningPackage::new(commitments, &sighashes[input]);
            let signature_share = frost_core::round2::sign(&package, &signing.nonces[input], &tweaked[input].0)
                .map_err(|e| SignError::Refused(format!("signing input {input} failed: {e}")))?;
            shares.push(signature_share.serialize());
            packages.push(package);
        }
        self.remember(id, Signing { nonces: vec![], packages });
        Ok(vec![ProcessorMessage::Sign(SignEvent::Share { id, share: encode(&shares) })])
    }

    /// The signing set's shares: every input's signature, the signed transaction (kept to be
    /// published until it is seen final), and a completion report.
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
        if record.chain == ExternalChain::Monero {
            let keys = self.keys.get(txn, id.session)?.ok_or_else(|| SignError::Refused(format!("no keys for session {}", id.session)))?;
            let transaction = self.monero_complete(&keys, id, shares)?;
            let hash = transaction.hash().to_vec();
            let bytes = transaction.serialize();
            record.state = PlanState::Signed { transaction: bytes.clone() };
            schema::PLANS.set(txn, &record.id.0.to_vec(), &record);
            schema::UNCONFIRMED.set(txn, &record.id.0.to_vec(), &bytes);
            tracing::info!(plan = %record.id, hash = %hex::encode(&hash), "Monero transaction signed");
            return Ok(vec![ProcessorMessage::Sign(SignEvent::Completed { plan: record.id, transaction: hash })]);
        }
        let Some(signing) = self.live.remove(&id).filter(|signing| !signing.packages.is_empty()) else {
            return Err(SignError::Refused(format!("no signing packages for {id:?} here")));
        };
        let keys = self.keys.get(txn, id.session)?.ok_or_else(|| SignError::Refused(format!("no keys for session {}", id.session)))?;
        let share = bitcoin_keys(&keys)?;
        let signable = signable(&record, &keys)?;
        let inputs = signing.packages.len();
        let mut by_input: Vec<BTreeMap<Identifier<Secp256k1Tr>, SignatureShare<Secp256k1Tr>>> = vec![BTreeMap::new(); inputs];
        for (participant, bytes) in shares {
            let parsed = per_input(*participant, bytes, inputs, |item| SignatureShare::<Secp256k1Tr>::deserialize(item).ok())?;
            for (input, signature_share) in parsed.into_iter().enumerate() {
                by_input[input].insert(keygen::dkg_identifier::<Secp256k1Tr>(*participant), signature_share);
            }
        }
        let tweaked = tweaked(share, &signable.roots);
        let mut signatures = Vec::with_capacity(inputs);
        for (input, package) in signing.packages.iter().enumerate() {
            // Aggregation verifies the signature under the input's tweaked key, and names the
            // culprit when it does not.
            let (_, bytes) = crate::batch::aggregate(package, &by_input[input], &tweaked[input].1)?;
            signatures.push(bytes);
        }
        let txid = signable.txid().to_vec();
        let transaction = signable.complete(&signatures).map_err(SignError::Refused)?;
        let bytes = ::bitcoin::consensus::serialize(&transaction);
        record.state = PlanState::Signed { transaction: bytes.clone() };
        schema::PLANS.set(txn, &record.id.0.to_vec(), &record);
        schema::UNCONFIRMED.set(txn, &record.id.0.to_vec(), &bytes);
        tracing::info!(plan = %record.id, txid = %hex::encode(&txid), inputs, "transaction signed");
        Ok(vec![ProcessorMessage::Sign(SignEvent::Completed { plan: record.id, transaction: txid })])
    }
}

impl TransactionSigner {
    fn remember_monero(&mut self, id: SignId, signing: MoneroSigning) {
        self.monero.retain(|other, _| other.target != id.target || other.attempt > id.attempt);
        while self.monero.len() >= MAX_LIVE_ATTEMPTS {
            self.monero.pop_first();
        }
        self.monero.insert(id, signing);
    }

    /// Builds the plan's transaction and monero-wallet's machine; returns the preprocess
    /// (the transaction's hash, then the machine's preprocess).
    fn monero_preprocess(
        &mut self,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        id: SignId,
        inputs: &[Vec<u8>],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, SignError> {
        use modular_frost::sign::{PreprocessMachine, Writable};
        let share = monero_share(keys)?;
        let me = me(share).ok_or_else(|| SignError::Refused("our share is not in the group".into()))?;
        let threshold_keys = crate::keygen::monero::monero_threshold_keys(share, me).map_err(|e| SignError::Refused(e.to_string()))?;
        let crate::messages::ChainPublicKey::Monero { spend_key } = keys.group_keys().chain else {
            return Err(SignError::Refused("a Monero plan under a Bitcoin key".into()));
        };
        // Checked against the plan's outputs when they were stored.
        let parsed = inputs
            .iter()
            .map(|bytes| monero_wallet::OutputWithDecoys::read(&mut bytes.as_slice()).map_err(|e| SignError::Refused(e.to_string())))
            .collect::<Result<_, _>>()?;
        let signable = monero::signable(record, &spend_key, parsed).map_err(SignError::Refused)?;
        let hash = monero::signable_hash(&signable);
        let machine = signable.multisig(threshold_keys).map_err(|e| SignError::Refused(format!("multisig: {e:?}")))?;
        let (machine, preprocess) = machine.preprocess(rng);
        self.remember_monero(id, MoneroSigning::Preprocessed { machine, signable: hash });
        Ok(encode(&(hash, preprocess.serialize())))
    }

    fn monero_share_step(&mut self, keys: &ThresholdKeyPair, id: SignId, preprocesses: &[(Participant, Vec<u8>)]) -> Result<Vec<u8>, SignError> {
        use modular_frost::sign::{SignMachine, Writable};
        let share = monero_share(keys)?;
        let me = me(share).ok_or_else(|| SignError::Refused("our share is not in the group".into()))?;
        let threshold = usize::from(*share.share.min_signers());
        if preprocesses.len() < threshold {
            return Err(SignError::Refused(format!("{} preprocesses, {threshold} needed", preprocesses.len())));
        }
        if !preprocesses.iter().any(|(p, _)| *p == me) {
            return Err(SignError::Refused("the signing set lacks us".into()));
        }
        // Taken out now: whatever happens next, these nonces are never used again.
        let Some(MoneroSigning::Preprocessed { machine, signable }) = self.monero.remove(&id) else {
            return Err(SignError::Refused(format!("no live machine for {id:?} (already used, or lost in a restart)")));
        };
        let mut parsed = std::collections::HashMap::new();
        for (participant, bytes) in preprocesses {
            if *participant == me {
                continue;
            }
            let malformed = SignError::Blame { accused: *participant, reason: BlameReason::Malformed };
            let (theirs, preprocess): ([u8; 32], Vec<u8>) = decode(bytes).map_err(|_| malformed)?;
            if theirs != signable {
                return Err(SignError::Refused(format!("participant {participant} signs another transaction (different rings?)")));
            }
            let preprocess = machine
                .read_preprocess(&mut preprocess.as_slice())
                .map_err(|_| SignError::Blame { accused: *participant, reason: BlameReason::Malformed })?;
            let frost_participant =
                modular_frost::Participant::new(participant.get()).ok_or_else(|| SignError::Refused("participant 0".into()))?;
            if parsed.insert(frost_participant, preprocess).is_some() {
                return Err(SignError::Refused("a participant's preprocess appears twice".into()));
            }
        }
        let (machine, share) = machine.sign(parsed, &[]).map_err(|error| frost_error(error, "signing"))?;
        self.remember_monero(id, MoneroSigning::Shared(machine));
        Ok(share.serialize())
    }

    fn monero_complete(
        &mut self,
        keys: &ThresholdKeyPair,
        id: SignId,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<monero_wallet::transaction::Transaction, SignError> {
        use modular_frost::sign::SignatureMachine;
        let me = me(monero_share(keys)?).ok_or_else(|| SignError::Refused("our share is not in the group".into()))?;
        let Some(MoneroSigning::Shared(machine)) = self.monero.remove(&id) else {
            return Err(SignError::Refused(format!("no signature machine for {id:?} here")));
        };
        // modular-frost wants everyone's shares but ours.
        let mut parsed = std::collections::HashMap::new();
        let mut mine = false;
        for (participant, bytes) in shares {
            if *participant == me {
                mine = true;
                continue;
            }
            let frost_participant =
                modular_frost::Participant::new(participant.get()).ok_or_else(|| SignError::Refused("participant 0".into()))?;
            let share = machine
                .read_share(&mut bytes.as_slice())
                .map_err(|_| SignError::Blame { accused: *participant, reason: BlameReason::Malformed })?;
            parsed.insert(frost_participant, share);
        }
        if !mine {
            return Err(SignError::Refused("the signing set lacks us".into()));
        }
        machine.complete(parsed).map_err(|error| frost_error(error, "completing"))
    }
}

fn frost_error(error: modular_frost::FrostError, step: &str) -> SignError {
    match error {
        modular_frost::FrostError::InvalidPreprocess(participant) | modular_frost::FrostError::InvalidShare(participant) => {
            match Participant::new(u16::from(participant)) {
                Some(accused) => SignError::Blame { accused, reason: BlameReason::InvalidSignatureShare },
                None => SignError::Refused(format!("{step}: {error:?}")),
            }
        }
        other => SignError::Refused(format!("{step}: {other:?}")),
    }
}


/// Signed transactions not yet seen final, to (re)publish.
pub fn unconfirmed(reader: &impl crate::db::Read) -> Result<Vec<(PlanId, Vec<u8>)>, DbError> {
    Ok(schema::UNCONFIRMED
        .entries(reader)?
        .into_iter()
        .filter_map(|(plan, bytes)| Some((PlanId(plan.try_into().ok()?), bytes)))
        .collect())
}
