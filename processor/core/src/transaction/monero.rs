//! A Monero plan as a transaction: real RingCT (CLSAG, Bulletproofs+) built by monero-wallet
//! and signed t-of-n with its multisig machines over the group's Ed25519 key.
//!
//! Every signer must build byte-identical transactions, so everything is derived from the plan
//! and the final chain: the rings are selected with monero-wallet's deterministic selection,
//! seeded by the plan id, over the chain as of a fixed height (the height where the plan's
//! newest input unlocks), asked of the driver only once that height is final; the transaction
//! keys come from an outgoing view key derived from the group key and the plan id. (Both are
//! derivable by anyone who knows the group key, like the group's view key: Monero payments of
//! the group are as transparent as its deposits, by design.) Change and branch outputs go to the
//! group's change subaddress. A preprocess carries a hash of the transaction it signs, so
//! signers who somehow built different transactions disagree instead of blaming each other.
//!
//! The Eventuality is monero-wallet's: a transaction with the plan's extra, outputs and
//! inputs' key images; scanning checks every transaction of a final block against the pending
//! ones, and keeps the group's own transactions so a plan made late still completes.

use super::{ChainSigner, Preprocess, SignedTransaction};
use crate::chain::monero::{change_address, view_pair, CHANGE_SUBADDRESS};
use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, OutputId, Participant, PlanId};
use crate::keygen::keys::{Ed25519, KeyShare};
use crate::keygen::{ChainKeyShare, ThresholdKeyPair};
use crate::messages::{decode, encode, ChainPublicKey, PaymentsEvent, ProcessorMessage};
use crate::plan::{self, PlanRecord, PlanState};
use crate::scheduler::PlanKind;
use crate::sign::{SignError, SigningSet};
use bincode::{Decode, Encode};
use monero_wallet::address::{MoneroAddress, Network};
use monero_wallet::interface::{FeeRate, ProvidesDecoys};
use monero_wallet::ringct::RctType;
use monero_wallet::send::{Change, Eventuality, SignableTransaction};
use monero_wallet::{OutputWithDecoys, WalletOutput};
use rand_chacha::rand_core::SeedableRng;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Ring members per input (Monero's consensus rule).
pub const RING_LEN: u8 = 16;
/// Blocks before an output may be spent (Monero's default lock window).
pub const LOCK_WINDOW: u64 = 10;
/// The fee-rate rounding mask (as monerod quotes).
pub const FEE_MASK: u64 = 10_000;
/// The network addresses are read in.
pub const NETWORK: Network = Network::Mainnet;

tables! {
    /// Monero outputs to the group, with what spending them needs.
    MONERO_OUTPUTS: Table<OutputId, MoneroOutput> = b"pay/monero_output/";
    /// Monero plans waiting for their inputs' rings from the chain source.
    AWAITING_DECOYS: Table<PlanId, ()> = b"pay/awaiting_decoys/";
    /// Monero plans' inputs with their rings (serialized `OutputWithDecoys`), once selected.
    MONERO_INPUTS: Table<PlanId, Vec<Vec<u8>>> = b"pay/monero_inputs/";
}

/// A Monero output to the group as scanning stored it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MoneroOutput {
    /// The height of the final block it is in.
    pub final_at: BlockHeight,
    /// monero-wallet's serialized `WalletOutput`, which spending it needs.
    pub wallet_output: Vec<u8>,
}

/// Keeps what spending a scanned output needs.
pub fn store_output<D: Db>(txn: &mut Txn<'_, D>, id: &OutputId, output: &MoneroOutput) {
    MONERO_OUTPUTS.set(txn, id, output);
}

/// A new plan waits for its inputs' rings (its transaction, hence its Eventuality, exists once
/// they are selected).
pub fn await_decoys<D: Db>(txn: &mut Txn<'_, D>, plan: PlanId) {
    AWAITING_DECOYS.set(txn, &plan, &());
}

/// Forgets what spending a completed plan's inputs needed.
pub fn forget_inputs<D: Db>(txn: &mut Txn<'_, D>, record: &PlanRecord) {
    MONERO_INPUTS.delete(txn, &record.id);
    for input in &record.plan.inputs {
        MONERO_OUTPUTS.delete(txn, &input.id);
    }
}

/// Stores a plan's inputs with their rings as selected (for benchmarks and tests that start
/// from a signing round).
pub fn store_inputs<D: Db>(txn: &mut Txn<'_, D>, plan: PlanId, inputs: &[Vec<u8>]) {
    MONERO_INPUTS.set(txn, &plan, &inputs.to_vec());
}

pub use crate::chain::monero::DecoyRequest;

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The decoy request of a plan, from the outputs scanning stored.
pub fn decoy_request(reader: &impl Read, record: &PlanRecord) -> Result<DecoyRequest, String> {
    let mut outputs = Vec::with_capacity(record.plan.inputs.len());
    let mut newest = 0;
    for input in &record.plan.inputs {
        let output = MONERO_OUTPUTS
            .get(reader, &input.id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no scanned output {}", input.id))?;
        newest = newest.max(output.final_at.0);
        outputs.push(output.wallet_output);
    }
    Ok(DecoyRequest {
        plan: record.id,
        block_number: newest + LOCK_WINDOW - 1,
        outputs,
        seed: hash(&[b"threshold-custody processor: Monero decoys", &record.id.0]),
    })
}

/// Selects each input's ring (the driver's half, with the chain source's RPC).
pub async fn select_decoys(rpc: &impl ProvidesDecoys, request: &DecoyRequest) -> Result<Vec<Vec<u8>>, String> {
    let block_number = usize::try_from(request.block_number).map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(request.outputs.len());
    for (index, bytes) in request.outputs.iter().enumerate() {
        let output = WalletOutput::read(&mut bytes.as_slice()).map_err(|e| format!("input {index}: {e}"))?;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(hash(&[&request.seed, &(index as u64).to_le_bytes()]));
        let with_decoys =
            OutputWithDecoys::fingerprintable_deterministic_new(&mut rng, rpc, RING_LEN, block_number, output)
                .await
                .map_err(|e| format!("input {index}: {e:?}"))?;
        inputs.push(with_decoys.serialize());
    }
    Ok(inputs)
}

/// Parses the driver's answer and checks it is the request's inputs, in order.
pub fn parse_inputs(request: &DecoyRequest, inputs: &[Vec<u8>]) -> Result<Vec<OutputWithDecoys>, String> {
    if inputs.len() != request.outputs.len() || inputs.is_empty() {
        return Err(format!("{} inputs for {} outputs", inputs.len(), request.outputs.len()));
    }
    let mut parsed = Vec::with_capacity(inputs.len());
    for (index, (bytes, output)) in inputs.iter().zip(&request.outputs).enumerate() {
        let input = OutputWithDecoys::read(&mut bytes.as_slice()).map_err(|e| format!("input {index}: {e}"))?;
        let output = WalletOutput::read(&mut output.as_slice()).map_err(|e| format!("output {index}: {e}"))?;
        if input.key() != output.key() || input.commitment().amount != output.commitment().amount {
            return Err(format!("input {index} is not the plan's output"));
        }
        if input.decoys().len() != usize::from(RING_LEN) {
            return Err(format!("input {index} has a ring of {}", input.decoys().len()));
        }
        parsed.push(input);
    }
    Ok(parsed)
}

/// The plan's transaction, before signing.
pub fn signable(
    record: &PlanRecord,
    spend_key: &[u8; 32],
    inputs: Vec<OutputWithDecoys>,
) -> Result<SignableTransaction, String> {
    let mut payments = Vec::with_capacity(record.plan.output_count());
    for payment in &record.plan.payments {
        let text =
            core::str::from_utf8(&payment.payment.destination).map_err(|_| "a destination is not text".to_string())?;
        let address =
            MoneroAddress::from_str(NETWORK, text).map_err(|e| format!("a destination does not parse: {e:?}"))?;
        payments.push((address, payment.paid.0));
    }
    // A forwarding pays the active key, and its change (what the fee model over-estimated)
    // goes there too: nothing of it comes back to the retiring key.
    let change_key = match record.plan.kind {
        PlanKind::Forward { to: ChainPublicKey::Monero { spend_key } } => spend_key,
        PlanKind::Forward { to: ChainPublicKey::Bitcoin { .. } } => {
            return Err("a Monero plan forwards to a Bitcoin key".into())
        }
        _ => *spend_key,
    };
    let change = change_address(&change_key, NETWORK).map_err(|e| e.to_string())?;
    for branch in &record.plan.branches {
        payments.push((change, branch.0));
    }
    // monero-wallet builds no transaction without an output besides its change: a
    // consolidation (no payment, no branch) pays its merged amount to the change address
    // explicitly, and monero-wallet's change output takes what the fee model over-estimated.
    if payments.is_empty() {
        let merged = record.plan.change.ok_or("a plan with no output at all")?;
        payments.push((change, merged.0));
    }
    let view_pair = view_pair(&change_key).map_err(|e| e.to_string())?;
    let outgoing_view_key =
        Zeroizing::new(hash(&[b"threshold-custody processor: outgoing view key", spend_key, &record.id.0]));
    let fee_rate = FeeRate::new(record.fee_rate.max(1), FEE_MASK).ok_or("a zero fee rate")?;
    SignableTransaction::new(
        RctType::ClsagBulletproofPlus,
        outgoing_view_key,
        inputs,
        payments,
        Change::new(view_pair, CHANGE_SUBADDRESS),
        vec![],
        fee_rate,
    )
    .map_err(|e| format!("the transaction cannot be built: {e:?}"))
}

/// What signers compare: a hash of the whole unsigned transaction.
pub fn signable_hash(signable: &SignableTransaction) -> [u8; 32] {
    hash(&[b"threshold-custody processor: Monero signable", &signable.serialize()])
}

/// The plan's Eventuality: the extra its transaction has, and the Eventuality serialized.
pub fn eventuality(signable: &SignableTransaction) -> (Vec<u8>, Eventuality) {
    let eventuality = Eventuality::from(signable.clone());
    (eventuality.extra(), eventuality)
}

/// Whether a stored own transaction (pruned, serialized) completes the eventuality.
pub fn completes(eventuality: &Eventuality, transaction: &[u8]) -> bool {
    let Ok(transaction) =
        monero_wallet::transaction::Transaction::<monero_wallet::transaction::Pruned>::read(&mut &*transaction)
    else {
        return false;
    };
    transaction.prefix().extra == eventuality.extra() && eventuality.matches(&transaction)
}

/// The inputs with rings for a Monero plan arrived from the driver: the transaction is fixed
/// now; its Eventuality is watched (or already met). `Some(messages)` when the plan moved on
/// (signing may begin if `messages` is empty); `None` if it was not waiting.
pub fn decoys_arrived<D: Db>(
    txn: &mut Txn<'_, D>,
    plan: PlanId,
    inputs: &[Vec<u8>],
) -> Result<Option<Vec<ProcessorMessage>>, SignError> {
    if AWAITING_DECOYS.get(txn, &plan)?.is_none() {
        return Ok(None);
    }
    let mut record = plan::plan(txn, plan)?.ok_or_else(|| SignError::Refused(format!("no plan {plan}")))?;
    let request = decoy_request(txn, &record).map_err(SignError::Refused)?;
    let parsed = parse_inputs(&request, inputs).map_err(SignError::Refused)?;
    let keys = crate::keygen::generated_keys(txn, record.session)?
        .ok_or_else(|| SignError::Refused(format!("no keys for session {}", record.session)))?;
    let spend_key = group_spend_key(&keys)?;
    let signable = match signable(&record, &spend_key, parsed) {
        Ok(signable) => signable,
        Err(reason) => {
            // Deterministic given the plan and the (validated) rings: asking again would only
            // repeat the work. Reported; the inputs stay out of the spendable funds.
            tracing::error!(%plan, %reason, "a Monero plan's transaction cannot be built");
            AWAITING_DECOYS.delete(txn, &plan);
            record.state = PlanState::Failed { reason: reason.clone() };
            plan::save_plan(txn, &record);
            return Ok(Some(vec![ProcessorMessage::Payments(PaymentsEvent::PlanFailed { plan, reason })]));
        }
    };
    let (extra, eventuality) = eventuality(&signable);
    AWAITING_DECOYS.delete(txn, &plan);
    MONERO_INPUTS.set(txn, &plan, &inputs.to_vec());
    match super::eventuality::watch_monero(txn, plan, extra, &eventuality)? {
        // Scanning saw the transaction already (it ran ahead of the commands here).
        Some((hash, at)) => {
            super::complete(txn, &mut record, hash.clone(), at);
            Ok(Some(vec![ProcessorMessage::Sign(crate::messages::SignEvent::Completed { plan, transaction: hash })]))
        }
        None => Ok(Some(vec![])),
    }
}

/// Monero plans waiting for rings, with what to ask the driver.
pub fn decoy_requests(reader: &impl Read) -> Result<Vec<DecoyRequest>, DbError> {
    let mut requests = Vec::new();
    for (plan, ()) in AWAITING_DECOYS.entries(reader)? {
        let Some(record) = plan::plan(reader, plan)? else { continue };
        match decoy_request(reader, &record) {
            Ok(request) => requests.push(request),
            Err(error) => tracing::error!(plan = %record.id, %error, "a Monero plan's inputs are unknown here"),
        }
    }
    Ok(requests)
}

fn group_spend_key(keys: &ThresholdKeyPair) -> Result<[u8; 32], SignError> {
    match keys.group_keys().chain {
        ChainPublicKey::Monero { spend_key } => Ok(spend_key),
        ChainPublicKey::Bitcoin { .. } => Err(SignError::refused("a Monero plan under a Bitcoin key")),
    }
}

fn monero_share(keys: &ThresholdKeyPair) -> Result<&KeyShare<Ed25519>, SignError> {
    match &keys.chain {
        ChainKeyShare::Monero(share) => Ok(share),
        ChainKeyShare::Bitcoin(_) => Err(SignError::refused("a Monero plan under a Bitcoin key")),
    }
}

fn frost_error(error: modular_frost::FrostError, step: &str) -> SignError {
    match error {
        modular_frost::FrostError::InvalidPreprocess(participant)
        | modular_frost::FrostError::InvalidShare(participant) => match Participant::new(u16::from(participant)) {
            Some(accused) => SignError::Blame { accused, reason: crate::messages::BlameReason::InvalidSignatureShare },
            None => SignError::Refused(format!("{step}: {error:?}")),
        },
        other => SignError::Refused(format!("{step}: {other:?}")),
    }
}

fn frost_participant(participant: Participant) -> Result<modular_frost::Participant, SignError> {
    modular_frost::Participant::new(participant.get()).ok_or_else(|| SignError::refused("participant 0"))
}

/// Threshold signing of a Monero plan with monero-wallet's multisig machines (CLSAG per input),
/// over the group's Ed25519 key.
pub struct MoneroSigner;

/// An attempt after its preprocess: the machine, and the hash of the transaction it signs.
pub struct MoneroPreprocessed {
    machine: monero_wallet::send::TransactionSignMachine,
    signable: [u8; 32],
}

impl ChainSigner for MoneroSigner {
    type Preprocessed = MoneroPreprocessed;
    type Shared = monero_wallet::send::TransactionSignatureMachine;

    fn signing_set(keys: &ThresholdKeyPair) -> Result<SigningSet, SignError> {
        SigningSet::of(monero_share(keys)?)
    }

    /// Builds the plan's transaction and monero-wallet's machine; the preprocess is the
    /// transaction's hash, then the machine's preprocess.
    fn preprocess(
        reader: &impl Read,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Option<Preprocess<Self::Preprocessed>>, SignError> {
        use modular_frost::sign::{PreprocessMachine, Writable};
        // Signing begins once the rings are known.
        let Some(inputs) = MONERO_INPUTS.get(reader, &record.id)? else { return Ok(None) };
        let share = monero_share(keys)?;
        let me = SigningSet::of(share)?.me;
        let threshold_keys =
            crate::keygen::monero::monero_threshold_keys(share, me).map_err(|e| SignError::Refused(e.to_string()))?;
        // Checked against the plan's outputs when they were stored.
        let parsed = inputs
            .iter()
            .map(|bytes| OutputWithDecoys::read(&mut bytes.as_slice()).map_err(|e| SignError::Refused(e.to_string())))
            .collect::<Result<_, _>>()?;
        let signable = signable(record, &group_spend_key(keys)?, parsed).map_err(SignError::Refused)?;
        let hash = signable_hash(&signable);
        let machine = signable.multisig(threshold_keys).map_err(|e| SignError::Refused(format!("multisig: {e:?}")))?;
        let (machine, preprocess) = machine.preprocess(rng);
        Ok(Some(Preprocess {
            state: MoneroPreprocessed { machine, signable: hash },
            message: encode(&(hash, preprocess.serialize())),
        }))
    }

    fn share(
        keys: &ThresholdKeyPair,
        _record: &PlanRecord,
        state: Self::Preprocessed,
        preprocesses: &[(Participant, Vec<u8>)],
    ) -> Result<(Self::Shared, Vec<u8>), SignError> {
        use modular_frost::sign::{SignMachine, Writable};
        let me = SigningSet::of(monero_share(keys)?)?.me;
        let MoneroPreprocessed { machine, signable } = state;
        let mut parsed = std::collections::HashMap::new();
        for (participant, bytes) in preprocesses {
            if *participant == me {
                continue;
            }
            let (theirs, preprocess): ([u8; 32], Vec<u8>) =
                decode(bytes).map_err(|_| SignError::malformed(*participant))?;
            if theirs != signable {
                return Err(SignError::Refused(format!(
                    "participant {participant} signs another transaction (different rings?)"
                )));
            }
            let preprocess =
                machine.read_preprocess(&mut preprocess.as_slice()).map_err(|_| SignError::malformed(*participant))?;
            parsed.insert(frost_participant(*participant)?, preprocess);
        }
        let (machine, share) = machine.sign(parsed, &[]).map_err(|error| frost_error(error, "signing"))?;
        Ok((machine, share.serialize()))
    }

    fn complete(
        keys: &ThresholdKeyPair,
        _record: &PlanRecord,
        machine: Self::Shared,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<SignedTransaction, SignError> {
        use modular_frost::sign::SignatureMachine;
        let me = SigningSet::of(monero_share(keys)?)?.me;
        // modular-frost wants everyone's shares but ours.
        let mut parsed = std::collections::HashMap::new();
        let mut mine = false;
        for (participant, bytes) in shares {
            if *participant == me {
                mine = true;
                continue;
            }
            let share = machine.read_share(&mut bytes.as_slice()).map_err(|_| SignError::malformed(*participant))?;
            parsed.insert(frost_participant(*participant)?, share);
        }
        if !mine {
            return Err(SignError::refused("the signing set lacks us"));
        }
        let transaction = machine.complete(parsed).map_err(|error| frost_error(error, "completing"))?;
        Ok(SignedTransaction { id: transaction.hash().to_vec(), bytes: transaction.serialize() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a chain source answers for a ring selection, parsing it is an error or a
        /// checked list, never a panic.
        #[test]
        fn arbitrary_ring_answers_are_refused_not_panicked_on(
            outputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0 .. 300), 0 .. 3),
            answers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0 .. 600), 0 .. 3),
        ) {
            let request = DecoyRequest { plan: PlanId([1; 32]), block_number: 10, outputs, seed: [2; 32] };
            prop_assert!(parse_inputs(&request, &answers).is_err());
        }

        /// Garbage where a stored own transaction is expected is never a panic (fuzzing the
        /// parser the completion check relies on).
        #[test]
        fn garbage_transaction_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0 .. 600)) {
            let _ = monero_wallet::transaction::Transaction::<monero_wallet::transaction::Pruned>::read(&mut bytes.as_slice());
        }
    }
}
