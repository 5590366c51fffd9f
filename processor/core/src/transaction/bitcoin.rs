//! A Bitcoin plan as a transaction: built deterministically from the plan (so every signer signs
//! the same bytes and a plan has exactly one txid), signed input by input with the group key's
//! BIP341 key-path tweak, recognised on chain by its txid.
//!
//! Layout: version 2, lock time 0, inputs in plan order with final sequence numbers, outputs
//! in the order payments, branches, change (branches and change to the group's change address).

use super::{ChainSigner, Preprocess, SignedTransaction};
use crate::chain::bitcoin::{merkle_root, outpoint_of, script_of};
use crate::db::Read;
use crate::ids::Participant;
use crate::keygen::keys::{KeyShare, Secp256k1Tr};
use crate::keygen::{self, ChainKeyShare, ThresholdKeyPair};
use crate::messages::{decode, encode, ChainPublicKey, OutputKind};
use crate::plan::PlanRecord;
use crate::scheduler::{Plan, PlanKind};
use crate::sign::{self, SignError, SigningSet};
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{Amount, ScriptBuf, Sequence, TapSighashType, Transaction, TxIn, TxOut, Witness};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{Identifier, SigningPackage};
use frost_secp256k1_tr::keys::Tweak;
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;

/// The unsigned transaction of a plan and what its inputs spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignableTransaction {
    /// The transaction in the plan's layout, its witnesses still empty.
    pub transaction: Transaction,
    /// The output each input spends, in input order (BIP341 sighashes commit to all of them).
    pub prevouts: Vec<TxOut>,
    /// The taproot merkle root each input's key is tweaked with.
    pub roots: Vec<Option<[u8; 32]>>,
}

/// Builds the transaction of `plan`, for the group whose internal key is `internal_key`.
pub fn build(plan: &Plan, internal_key: &[u8; 32]) -> Result<SignableTransaction, String> {
    if !plan.conserves_value() {
        return Err("the plan does not conserve value".into());
    }
    let mut input = Vec::with_capacity(plan.inputs.len());
    let mut prevouts = Vec::with_capacity(plan.inputs.len());
    let mut roots = Vec::with_capacity(plan.inputs.len());
    for utxo in &plan.inputs {
        let previous_output = outpoint_of(&utxo.id).ok_or("an input's id is not an outpoint")?;
        input.push(TxIn {
            previous_output,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        });
        let script_pubkey = script_of(internal_key, utxo.kind).map_err(|e| e.to_string())?;
        prevouts.push(TxOut { value: Amount::from_sat(utxo.amount.0), script_pubkey });
        roots.push(merkle_root(utxo.kind));
    }
    // A forwarding's output goes to the active key's change address; every other plan's
    // change comes back to the key that signs it.
    let change_key = match plan.kind {
        PlanKind::Forward { to: ChainPublicKey::Bitcoin { internal_key } } => internal_key,
        PlanKind::Forward { to: ChainPublicKey::Monero { .. } } => {
            return Err("a Bitcoin plan forwards to a Monero key".into())
        }
        _ => *internal_key,
    };
    let change_script = script_of(&change_key, OutputKind::Change).map_err(|e| e.to_string())?;
    let mut output = Vec::with_capacity(plan.output_count());
    for payment in &plan.payments {
        let script_pubkey = ScriptBuf::from_bytes(payment.payment.destination.clone());
        output.push(TxOut { value: Amount::from_sat(payment.paid.0), script_pubkey });
    }
    for amount in plan.branches.iter().chain(plan.change.iter()) {
        output.push(TxOut { value: Amount::from_sat(amount.0), script_pubkey: change_script.clone() });
    }
    let transaction = Transaction { version: Version::TWO, lock_time: LockTime::ZERO, input, output };
    Ok(SignableTransaction { transaction, prevouts, roots })
}

impl SignableTransaction {
    /// The txid: witnesses are not part of it, so it is known before signing.
    pub fn txid(&self) -> [u8; 32] {
        self.transaction.compute_txid().to_byte_array()
    }

    /// Each input's BIP341 key-path sighash (SIGHASH_DEFAULT), in input order.
    pub fn sighashes(&self) -> Result<Vec<[u8; 32]>, String> {
        let mut cache = SighashCache::new(&self.transaction);
        (0..self.transaction.input.len())
            .map(|index| {
                cache
                    .taproot_key_spend_signature_hash(index, &Prevouts::All(&self.prevouts), TapSighashType::Default)
                    .map(|hash| hash.to_byte_array())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    /// The signed transaction, given one BIP340 signature per input.
    pub fn complete(mut self, signatures: &[[u8; 64]]) -> Result<Transaction, String> {
        if signatures.len() != self.transaction.input.len() {
            return Err(format!("{} signatures for {} inputs", signatures.len(), self.transaction.input.len()));
        }
        for (input, signature) in self.transaction.input.iter_mut().zip(signatures) {
            // SIGHASH_DEFAULT: the bare 64-byte signature.
            input.witness = Witness::from_slice(&[signature.as_slice()]);
        }
        Ok(self.transaction)
    }
}

/// Threshold signing of a Bitcoin plan: one FROST (secp256k1, BIP340) signature per input, under
/// the group key tweaked for the input's taproot merkle root.
pub struct BitcoinSigner;

fn bitcoin_share(keys: &ThresholdKeyPair) -> Result<&KeyShare<Secp256k1Tr>, SignError> {
    match &keys.chain {
        ChainKeyShare::Bitcoin(share) => Ok(share),
        ChainKeyShare::Monero(_) => Err(SignError::refused("a Bitcoin plan under a Monero key")),
    }
}

/// The plan's transaction as the group `keys` signs it.
fn signable(record: &PlanRecord, keys: &ThresholdKeyPair) -> Result<SignableTransaction, SignError> {
    let ChainPublicKey::Bitcoin { internal_key } = keys.group_keys().chain else {
        return Err(SignError::refused("a Bitcoin plan under a Monero key"));
    };
    build(&record.plan, &internal_key).map_err(SignError::Refused)
}

/// The plan's txid under the group `keys` (known before signing: witnesses are not part of it).
pub fn plan_txid(record: &PlanRecord, keys: &ThresholdKeyPair) -> Result<[u8; 32], SignError> {
    Ok(signable(record, keys)?.txid())
}

/// A key share and the group's public package, tweaked for one merkle root.
type TweakedKeys = (KeyPackage<Secp256k1Tr>, PublicKeyPackage<Secp256k1Tr>);

/// The key package and public package tweaked for each input's merkle root.
fn tweaked(share: &KeyShare<Secp256k1Tr>, roots: &[Option<[u8; 32]>]) -> Vec<TweakedKeys> {
    let mut by_root: BTreeMap<Option<[u8; 32]>, TweakedKeys> = BTreeMap::new();
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

/// Parses one participant's per-input list: exactly `inputs` items, each parsing.
fn per_input<T>(
    participant: Participant,
    bytes: &[u8],
    inputs: usize,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, SignError> {
    let items: Vec<Vec<u8>> = decode(bytes).map_err(|_| SignError::malformed(participant))?;
    if items.len() != inputs {
        return Err(SignError::malformed(participant));
    }
    items.iter().map(|item| parse(item).ok_or_else(|| SignError::malformed(participant))).collect()
}

impl ChainSigner for BitcoinSigner {
    type Preprocessed = Vec<SigningNonces<Secp256k1Tr>>;
    type Shared = Vec<SigningPackage<Secp256k1Tr>>;

    fn signing_set(keys: &ThresholdKeyPair) -> Result<SigningSet, SignError> {
        SigningSet::of(bitcoin_share(keys)?)
    }

    fn preprocess(
        _reader: &impl Read,
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Option<Preprocess<Self::Preprocessed>>, SignError> {
        let share = bitcoin_share(keys)?;
        let inputs = record.plan.inputs.len();
        let mut nonces = Vec::with_capacity(inputs);
        let mut commitments = Vec::with_capacity(inputs);
        for _ in 0..inputs {
            let (nonce, commitment) = frost_core::round1::commit(share.share.signing_share(), rng);
            commitments
                .push(commitment.serialize().map_err(|e| SignError::Refused(format!("serializing commitments: {e}")))?);
            nonces.push(nonce);
        }
        Ok(Some(Preprocess { state: nonces, message: encode(&commitments) }))
    }

    fn share(
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        nonces: Self::Preprocessed,
        preprocesses: &[(Participant, Vec<u8>)],
    ) -> Result<(Self::Shared, Vec<u8>), SignError> {
        let share = bitcoin_share(keys)?;
        let signable = signable(record, keys)?;
        let sighashes = signable.sighashes().map_err(SignError::Refused)?;
        let inputs = sighashes.len();
        if nonces.len() != inputs {
            return Err(SignError::refused("the attempt's nonces are not one per input"));
        }
        let mut by_input: Vec<BTreeMap<Identifier<Secp256k1Tr>, SigningCommitments<Secp256k1Tr>>> =
            vec![BTreeMap::new(); inputs];
        for (participant, bytes) in preprocesses {
            let parsed = per_input(*participant, bytes, inputs, |item| {
                SigningCommitments::<Secp256k1Tr>::deserialize(item).ok()
            })?;
            let identifier = keygen::dkg_identifier::<Secp256k1Tr>(*participant);
            for (input, commitments) in parsed.into_iter().enumerate() {
                by_input[input].insert(identifier, commitments);
            }
        }
        let me = *share.share.identifier();
        for (input, commitments) in by_input.iter().enumerate() {
            if commitments.get(&me) != Some(nonces[input].commitments()) {
                return Err(SignError::refused("the signing set lacks our own commitments"));
            }
        }
        let tweaked = tweaked(share, &signable.roots);
        let mut packages = Vec::with_capacity(inputs);
        let mut shares = Vec::with_capacity(inputs);
        for (input, commitments) in by_input.into_iter().enumerate() {
            let package = SigningPackage::new(commitments, &sighashes[input]);
            let signature_share = frost_core::round2::sign(&package, &nonces[input], &tweaked[input].0)
                .map_err(|e| SignError::Refused(format!("signing input {input} failed: {e}")))?;
            shares.push(signature_share.serialize());
            packages.push(package);
        }
        Ok((packages, encode(&shares)))
    }

    fn complete(
        keys: &ThresholdKeyPair,
        record: &PlanRecord,
        packages: Self::Shared,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<SignedTransaction, SignError> {
        let share = bitcoin_share(keys)?;
        let signable = signable(record, keys)?;
        let inputs = packages.len();
        let mut by_input: Vec<BTreeMap<Identifier<Secp256k1Tr>, SignatureShare<Secp256k1Tr>>> =
            vec![BTreeMap::new(); inputs];
        for (participant, bytes) in shares {
            let parsed =
                per_input(*participant, bytes, inputs, |item| SignatureShare::<Secp256k1Tr>::deserialize(item).ok())?;
            for (input, signature_share) in parsed.into_iter().enumerate() {
                by_input[input].insert(keygen::dkg_identifier::<Secp256k1Tr>(*participant), signature_share);
            }
        }
        let tweaked = tweaked(share, &signable.roots);
        let mut signatures = Vec::with_capacity(inputs);
        for (input, package) in packages.iter().enumerate() {
            // Aggregation verifies the signature under the input's tweaked key, and names the
            // culprit when it does not.
            let (_, bytes) = sign::aggregate(package, &by_input[input], &tweaked[input].1)?;
            signatures.push(bytes);
        }
        let txid = signable.txid().to_vec();
        let transaction = signable.complete(&signatures).map_err(SignError::Refused)?;
        Ok(SignedTransaction { id: txid, bytes: ::bitcoin::consensus::serialize(&transaction) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Amount as Sats;
    use crate::scheduler::{FeeModel, MemFunds, Payment, Utxo};
    use proptest::prelude::*;

    /// The x coordinate of secp256k1's generator: a valid x-only key.
    fn internal_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        hex::decode_to_slice("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", &mut key).unwrap();
        key
    }

    fn destination(kind: u8, seed: u8) -> Vec<u8> {
        use bitcoin::hashes::Hash;
        match kind % 3 {
            0 => ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([seed; 20])).to_bytes(),
            1 => ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([seed; 20])).to_bytes(),
            _ => script_of(&internal_key(), OutputKind::External).unwrap().to_bytes(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Every plan the scheduler makes builds into a transaction that spends exactly the
        /// plan's inputs, pays exactly its outputs (the difference is the plan's fee), is no
        /// larger once signed than the fee model charged for, and has one txid however often
        /// it is built.
        #[test]
        fn plans_build_into_transactions_the_fee_model_covers(
            holdings in proptest::collection::vec((10_000u64 .. 5_000_000, any::<bool>()), 1 .. 30),
            payments in proptest::collection::vec((1_000u64 .. 2_000_000, any::<u8>()), 1 .. 40),
            rate in 1u64 .. 60,
        ) {
            let model = FeeModel::BITCOIN;
            let mut scheduler = MemFunds::default();
            for (index, (amount, change)) in holdings.iter().enumerate() {
                let mut id = [index as u8; 32].to_vec();
                id.extend((index as u32).to_le_bytes());
                let id = crate::ids::OutputId(id);
                let kind = if *change { OutputKind::Change } else { OutputKind::External };
                scheduler.add_output(Utxo { id, amount: Sats(*amount), kind });
            }
            for (index, (amount, kind)) in payments.iter().enumerate() {
                let mut id = [0u8; 32];
                id[.. 8].copy_from_slice(&(index as u64).to_le_bytes());
                scheduler.queue_payment(Payment { id, destination: destination(*kind, index as u8), amount: Sats(*amount) });
            }
            for plan in scheduler.schedule(rate, &model).plans {
                let signable = build(&plan, &internal_key()).unwrap();
                prop_assert_eq!(signable.txid(), build(&plan, &internal_key()).unwrap().txid());
                let sighashes = signable.sighashes().unwrap();
                prop_assert_eq!(sighashes.len(), plan.inputs.len());
                let outputs: u64 = signable.transaction.output.iter().map(|o| o.value.to_sat()).sum();
                let inputs: u64 = signable.prevouts.iter().map(|o| o.value.to_sat()).sum();
                prop_assert_eq!(inputs, plan.input_total());
                prop_assert_eq!(inputs - outputs, plan.fee.0);
                prop_assert_eq!(signable.transaction.output.len(), plan.output_count());
                let signed = signable.complete(&vec![[7u8; 64]; plan.inputs.len()]).unwrap();
                let charged = model.fee(1, plan.inputs.len(), plan.output_count()).0;
                prop_assert!(signed.vsize() as u64 <= charged, "{} vbytes, the model charged for {charged}", signed.vsize());
                prop_assert!(plan.fee.0 >= signed.vsize() as u64 * rate, "fee {} below {rate} sat/vB for {} vbytes", plan.fee.0, signed.vsize());
            }
        }
    }

    #[test]
    fn change_goes_to_the_change_address_and_payments_first() {
        let plan = crate::scheduler::Plan {
            kind: crate::scheduler::PlanKind::Payments,
            inputs: vec![Utxo {
                id: crate::ids::OutputId([1; 36].to_vec()),
                amount: Sats(100_000),
                kind: OutputKind::External,
            }],
            payments: vec![crate::scheduler::PlannedPayment {
                payment: Payment { id: [2; 32], destination: destination(0, 5), amount: Sats(40_000) },
                paid: Sats(39_000),
            }],
            branches: vec![],
            change: Some(Sats(60_000)),
            fee: Sats(1_000),
        };
        let signable = build(&plan, &internal_key()).unwrap();
        let outputs = &signable.transaction.output;
        assert_eq!(outputs[0].script_pubkey.to_bytes(), destination(0, 5));
        assert_eq!(outputs[1].script_pubkey, script_of(&internal_key(), OutputKind::Change).unwrap());
        assert_ne!(outputs[1].script_pubkey, script_of(&internal_key(), OutputKind::External).unwrap());
        assert_eq!(signable.roots, vec![None]);
        // A plan that does not conserve value is refused.
        let mut broken = plan;
        broken.fee = Sats(2_000);
        assert!(build(&broken, &internal_key()).is_err());
    }
}
