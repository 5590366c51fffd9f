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
