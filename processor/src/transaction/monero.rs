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

use crate::chain::monero::{change_address, view_pair, CHANGE_SUBADDRESS};
use crate::db::{schema, Read};
use crate::ids::PlanId;
use crate::payments::PlanRecord;
use bincode::{Decode, Encode};
use monero_wallet::address::{MoneroAddress, Network};
use monero_wallet::interface::{FeeRate, ProvidesDecoys};
use monero_wallet::ringct::RctType;
use monero_wallet::send::{Change, Eventuality, SignableTransaction};
use monero_wallet::{OutputWithDecoys, WalletOutput};
use rand_chacha::rand_core::SeedableRng;
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

/// What the driver must fetch from the chain for a plan: each input with its ring.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DecoyRequest {
    pub plan: PlanId,
    /// Decoys are selected from the chain as of this height (it must be final).
    pub block_number: u64,
    /// The inputs, as monero-wallet `WalletOutput`s, in plan order.
    pub outputs: Vec<Vec<u8>>,
    /// Seeds the deterministic selection (the same at every processor).
    pub seed: [u8; 32],
}

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
        let (height, output) = schema::MONERO_OUTPUTS
            .get(reader, &input.id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no scanned output {}", hex::encode(&input.id)))?;
        newest = newest.max(height.0);
        outputs.push(output);
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
        let with_decoys = OutputWithDecoys::fingerprintable_deterministic_new(&mut rng, rpc, RING_LEN, block_number, output)
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
pub fn signable(record: &PlanRecord, spend_key: &[u8; 32], inputs: Vec<OutputWithDecoys>) -> Result<SignableTransaction, String> {
    let mut payments = Vec::with_capacity(record.plan.output_count());
    for payment in &record.plan.payments {
        let text = core::str::from_utf8(&payment.payment.destination).map_err(|_| "a destination is not text".to_string())?;
        let address = MoneroAddress::from_str(NETWORK, text).map_err(|e| format!("a destination does not parse: {e:?}"))?;
        payments.push((address, payment.paid.0));
    }
    let change = change_address(spend_key, NETWORK).map_err(|e| e.to_string())?;
    for branch in &record.plan.branches {
        payments.push((change, branch.0));
    }
    let view_pair = view_pair(spend_key).map_err(|e| e.to_string())?;
    let outgoing_view_key = Zeroizing::new(hash(&[b"threshold-custody processor: outgoing view key", spend_key, &record.id.0]));
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
    let Ok(transaction) = monero_wallet::transaction::Transaction::<monero_wallet::transaction::Pruned>::read(&mut &*transaction) else {
        return false;
    };
    transaction.prefix().extra == eventuality.extra() && eventuality.matches(&transaction)
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
