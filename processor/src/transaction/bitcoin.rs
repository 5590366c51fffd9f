//! A Bitcoin plan as a transaction: built deterministically from the plan (so every signer signs
//! the same bytes and a plan has exactly one txid), signed input by input with the group key's
//! BIP341 key-path tweak, recognised on chain by its txid.
//!
//! Layout: version 2, lock time 0, inputs in plan order with final sequence numbers, outputs
//! in the order payments, branches, change (branches and change to the group's change address).

use crate::chain::bitcoin::{merkle_root, outpoint_of, script_of};
use crate::messages::OutputKind;
use crate::scheduler::Plan;
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{Amount, ScriptBuf, Sequence, TapSighashType, Transaction, TxIn, TxOut, Witness};

/// The unsigned transaction of a plan and what its inputs spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignableTransaction {
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
        input.push(TxIn { previous_output, script_sig: ScriptBuf::new(), sequence: Sequence::MAX, witness: Witness::new() });
        let script_pubkey = script_of(internal_key, utxo.kind).map_err(|e| e.to_string())?;
        prevouts.push(TxOut { value: Amount::from_sat(utxo.amount.0), script_pubkey });
        roots.push(merkle_root(utxo.kind));
    }
    let change_script = script_of(internal_key, OutputKind::Change).map_err(|e| e.to_string())?;
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
        (0 .. self.transaction.input.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Amount as Sats;
    use crate::scheduler::{FeeModel, Payment, Scheduler, Utxo};
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
            let mut scheduler = Scheduler::default();
            for (index, (amount, change)) in holdings.iter().enumerate() {
                let mut id = [index as u8; 32].to_vec();
                id.extend((index as u32).to_le_bytes());
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
            inputs: vec![Utxo { id: [1; 36].to_vec(), amount: Sats(100_000), kind: OutputKind::External }],
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
