//! A seeded wallet that funds a group's Taproot address, optionally with an instruction.

use std::collections::BTreeSet;

use bitcoin::script::PushBytesBuf;
use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use bitcoin::{Amount, OutPoint, Script, ScriptBuf, Transaction, TxOut, Witness};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::chain::MockBitcoin;
use super::sign::{keypair_from_rng, p2tr_script, seeded_rng, spend_key_path, unsigned_transaction, SignError};

/// Longest instruction carried (Bitcoin Core's default `-datacarriersize` payload).
pub const MAX_INSTRUCTION_LEN: usize = 80;
/// Smallest change output worth creating: Bitcoin Core's dust threshold for P2TR at 3 sat/vB.
pub const P2TR_DUST: Amount = Amount::from_sat(330);

/// Why a deposit could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    #[error("instruction of {len} bytes exceeds {MAX_INSTRUCTION_LEN}")]
    InstructionTooLong { len: usize },
    #[error("destination is not a P2TR script, so the group could not spend it")]
    DestinationNotTaproot,
    #[error("{amount} is below the 330 sat dust limit of a Taproot output: no node relays it")]
    BelowDust { amount: Amount },
    #[error("deposit needs {needed} but only {available} is spendable")]
    InsufficientFunds { needed: Amount, available: Amount },
    #[error("signing failed: {0}")]
    Signing(#[from] SignError),
}

/// A depositor owning one Taproot key (BIP86-style: key path only, no script tree).
///
/// Coins come from the chain's view ([`MockBitcoin::spendable_outputs`]), so reorganisations
/// and mempool changes are followed without bookkeeping here. Inputs of built transactions are
/// locked so several deposits can be built before any is submitted; a deposit that will never be
/// submitted should be handed to [`Depositor::release`].
#[derive(Clone, Debug)]
pub struct Depositor {
    keypair: Keypair,
    script_pubkey: ScriptBuf,
    /// BIP340 aux randomness, seeded.
    rng: ChaCha20Rng,
    locked: BTreeSet<OutPoint>,
}

/// A chain whose coinbases mature after one block, with `blocks` blocks mined to a depositor;
/// both seeded by `seed`. The usual start of a test or a devnet.
pub fn funded_chain(seed: u64, blocks: usize) -> (MockBitcoin, Depositor) {
    let mut chain = MockBitcoin::new(seed);
    chain.set_coinbase_maturity(1);
    let depositor = Depositor::new(seed);
    for _ in 0..blocks {
        chain.mine_to(depositor.script_pubkey());
    }
    (chain, depositor)
}

impl Depositor {
    /// A depositor whose key and signing randomness derive from `seed`.
    pub fn new(seed: u64) -> Self {
        let keypair = keypair_from_rng(&mut seeded_rng(b"depositor-key", seed));
        let script_pubkey = p2tr_script(keypair.x_only_public_key().0);
        Depositor { keypair, script_pubkey, rng: seeded_rng(b"depositor-aux", seed), locked: BTreeSet::new() }
    }

    /// The untweaked (internal) key pair.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The internal key; the output key is its BIP341 tweak.
    pub fn internal_key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    /// The P2TR script this depositor receives on (mine to it to fund it).
    pub fn script_pubkey(&self) -> &Script {
        &self.script_pubkey
    }

    /// Coins spendable now and not locked by a deposit already built, in selection order
    /// (largest first, then by outpoint, for determinism).
    pub fn coins(&self, chain: &MockBitcoin) -> Vec<(OutPoint, TxOut)> {
        let mut coins: Vec<_> = chain
            .spendable_outputs(&self.script_pubkey)
            .into_iter()
            .filter(|(outpoint, _)| !self.locked.contains(outpoint))
            .collect();
        coins.sort_by(|(a, a_out), (b, b_out)| b_out.value.cmp(&a_out.value).then(a.cmp(b)));
        coins
    }

    /// Total of [`Depositor::coins`].
    pub fn balance(&self, chain: &MockBitcoin) -> Amount {
        self.coins(chain).iter().map(|(_, txout)| txout.value).sum()
    }

    /// Builds and signs a transaction paying `amount` to `to` (a P2TR script of the group), with
    /// `instruction` in an `OP_RETURN` output after it, change (if above dust) back to this
    /// depositor last, and a fee of the chain's current rate. The transaction is not submitted.
    pub fn deposit(
        &mut self,
        chain: &MockBitcoin,
        to: &Script,
        amount: Amount,
        instruction: Option<&[u8]>,
    ) -> Result<Transaction, DepositError> {
        if !to.is_p2tr() {
            return Err(DepositError::DestinationNotTaproot);
        }
        // An honest deposit is one a node relays (a hostile one is built with `pay`).
        if amount < Amount::from_sat(330) {
            return Err(DepositError::BelowDust { amount });
        }
        let mut outputs = vec![TxOut { value: amount, script_pubkey: to.to_owned() }];
        if let Some(instruction) = instruction {
            if instruction.len() > MAX_INSTRUCTION_LEN {
                return Err(DepositError::InstructionTooLong { len: instruction.len() });
            }
            let data = PushBytesBuf::try_from(instruction.to_vec())
                .map_err(|_| DepositError::InstructionTooLong { len: instruction.len() })?;
            outputs.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(data) });
        }

        self.pay(chain, outputs)
    }

    /// Builds and signs a transaction with `outputs` as given (any scripts: the chain's relay
    /// policy judges them), change (if above dust) back to this depositor last, and a fee of the
    /// chain's current rate: what a hostile depositor sends (many outputs at once, malformed
    /// instruction data). The transaction is not submitted.
    pub fn pay(&mut self, chain: &MockBitcoin, mut outputs: Vec<TxOut>) -> Result<Transaction, DepositError> {
        let amount: Amount = outputs.iter().map(|output| output.value).sum();
        // Locks only matter until the spend reaches the mempool (then the chain no longer offers
        // the coin); dropping the others keeps the set small and frees coins of transactions a
        // reorganisation invalidated.
        let spendable: BTreeSet<OutPoint> =
            chain.spendable_outputs(&self.script_pubkey).into_iter().map(|(outpoint, _)| outpoint).collect();
        self.locked.retain(|outpoint| spendable.contains(outpoint));

        let fee_rate = chain.fee_rate_sat_per_vb();
        let coins = self.coins(chain);
        let available: Amount = coins.iter().map(|(_, txout)| txout.value).sum();
        let mut selected = Vec::new();
        let mut total = Amount::ZERO;
        for coin in coins {
            total += coin.1.value;
            selected.push(coin);
            let Some(left) = total.checked_sub(amount) else {
                continue;
            };
            let with_change = fee(&selected, &outputs, true, fee_rate);
            if let Some(change) = left.checked_sub(with_change).filter(|change| *change >= P2TR_DUST) {
                outputs.push(TxOut { value: change, script_pubkey: self.script_pubkey.clone() });
                return self.sign(selected, outputs);
            }
            // No change worth an output: the surplus over the smaller fee goes to the miner.
            if left >= fee(&selected, &outputs, false, fee_rate) {
                return self.sign(selected, outputs);
            }
        }
        let needed = amount.checked_add(fee(&selected, &outputs, true, fee_rate)).unwrap_or(Amount::MAX);
        Err(DepositError::InsufficientFunds { needed, available })
    }

    /// Unlocks the inputs of a deposit that will not be submitted.
    pub fn release(&mut self, tx: &Transaction) {
        for input in &tx.input {
            self.locked.remove(&input.previous_output);
        }
    }

    fn sign(&mut self, inputs: Vec<(OutPoint, TxOut)>, outputs: Vec<TxOut>) -> Result<Transaction, DepositError> {
        let mut aux = [0u8; 32];
        self.rng.fill_bytes(&mut aux);
        let tx = spend_key_path(&inputs, outputs, &self.keypair, &aux)?;
        self.locked.extend(inputs.iter().map(|(outpoint, _)| *outpoint));
        Ok(tx)
    }
}

/// Fee at `fee_rate` for spending `inputs` to `outputs` (plus a P2TR change output if
/// `with_change`). Key-path witnesses are exactly one 64-byte signature, so this is exact.
fn fee(inputs: &[(OutPoint, TxOut)], outputs: &[TxOut], with_change: bool, fee_rate: u64) -> Amount {
    let outpoints: Vec<OutPoint> = inputs.iter().map(|(outpoint, _)| *outpoint).collect();
    let mut outputs = outputs.to_vec();
    if with_change {
        // Any P2TR script has the same size as the depositor's.
        outputs.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0; 34]) });
    }
    let mut tx = unsigned_transaction(&outpoints, outputs);
    for input in &mut tx.input {
        input.witness = Witness::from_slice(&[[0u8; 64]]);
    }
    Amount::from_sat(tx.vsize() as u64 * fee_rate)
}
