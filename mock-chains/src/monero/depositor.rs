//! A depositor wallet: scans the mock chain with monero-wallet's `Scanner` and pays with real
//! CLSAG + Bulletproofs+ transactions built by monero-wallet's `SignableTransaction`.

use std::collections::{BTreeMap, BTreeSet};

use monero_wallet::{
    address::MoneroAddress,
    ed25519::{Commitment, CompressedPoint, Point, Scalar},
    extra::ExtraField,
    interface::{FeeRate, ProvidesDecoys, ScannableBlock, TransactionsError},
    ringct::{
        bulletproofs::Bulletproof,
        clsag::{Clsag, ClsagContext},
        EncryptedAmount, RctBase, RctProofs, RctPrunable, RctType,
    },
    send::{Change, SendError, SignableTransaction},
    transaction::{Input, Output, Timelock, Transaction, TransactionPrefix},
    OutputWithDecoys, ScanError, Scanner, ViewPair, WalletOutput,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

use super::{
    block_on,
    chain::MockMonero,
    crypto::{
        add_scalars, commitment_mask, derive_output, derive_output_from_ecdh, encrypt_amount, mul, mul_base,
        shared_secret, tx_key, DerivedOutput, WalletKeys,
    },
    interface::fee_rate,
    MAX_INSTRUCTION_LEN, RING_LEN,
};

/// Most inputs one deposit spends.
const MAX_INPUTS: usize = 16;

/// Why a deposit could not be built.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DepositError {
    /// The instruction does not fit one arbitrary-data chunk.
    #[error("instruction of {len} bytes exceeds {max}")]
    InstructionTooLong {
        /// Its length.
        len: usize,
        /// [`MAX_INSTRUCTION_LEN`].
        max: usize,
    },
    /// Not enough unlocked, unspent funds for the amount plus the fee.
    #[error("{available} spendable, {requested} requested plus the fee")]
    InsufficientFunds {
        /// Spendable now.
        available: u64,
        /// Amount asked for.
        requested: u64,
    },
    /// monero-wallet's decoy selection failed (e.g. the chain is shorter than 11 blocks).
    #[error("decoy selection failed: {0}")]
    Decoys(TransactionsError),
    /// monero-wallet refused to build or sign the transaction.
    #[error("monero-wallet could not build the transaction: {0}")]
    Send(SendError),
    /// monero-wallet's scanner refused a block.
    #[error("scanning failed: {0}")]
    Scan(ScanError),
    /// The chain changed shape under the depositor (a block vanished while scanning).
    #[error("the chain has no block at height {0}")]
    MissingBlock(usize),
    /// An interface future did not complete at once (the mock's never suspend).
    #[error("an interface future did not complete")]
    NotReady,
    /// No payment, or more than one transaction can make.
    #[error("{count} payments, 1..={max} allowed")]
    Payments {
        /// Payments asked for.
        count: usize,
        /// [`MAX_PAYMENTS`].
        max: usize,
    },
    /// A hand-built deposit pays standard addresses only (a subaddress needs its own key).
    #[error("a hand-built deposit pays standard addresses only")]
    NotStandardAddress,
    /// A part of a hand-built deposit could not be made.
    #[error("a hand-built deposit failed at {0}")]
    Handmade(&'static str),
}

#[derive(Clone, Debug)]
struct Owned {
    output: WalletOutput,
    height: usize,
    key_image: [u8; 32],
}

/// Key images of a transaction built but not (yet) seen on chain or in the mempool.
#[derive(Clone, Debug)]
struct Pending {
    key_images: Vec<[u8; 32]>,
    /// Once seen, a transaction that disappears (dropped after a reorg) frees its inputs.
    seen: bool,
}

/// A depositor with its own Monero keys, funded by mining to [`Depositor::address`].
#[derive(Clone)]
pub struct Depositor {
    keys: WalletKeys,
    scanner: Scanner,
    rng: ChaCha20Rng,
    /// Hashes of the blocks scanned, by height: the fork point after a reorg.
    scanned: Vec<[u8; 32]>,
    /// Owned outputs by global index.
    owned: BTreeMap<u64, Owned>,
    /// Inputs of transactions built here, by transaction hash.
    pending: BTreeMap<[u8; 32], Pending>,
    /// `Some` once [`Depositor::with_stand_in_range_proofs`]: the one proof reused for each
    /// output count.
    stand_in_proofs: Option<BTreeMap<usize, Bulletproof>>,
}

impl core::fmt::Debug for Depositor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Depositor")
            .field("keys", &self.keys)
            .field("scanned_to", &self.scanned.len())
            .field("owned", &self.owned.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Depositor {
    /// A depositor whose keys and signing randomness come from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let keys = WalletKeys::random(&mut rng);
        let scanner = Scanner::new(keys.view_pair());
        Depositor {
            keys,
            scanner,
            rng,
            scanned: Vec::new(),
            owned: BTreeMap::new(),
            pending: BTreeMap::new(),
            stand_in_proofs: None,
        }
    }

    /// This depositor with stand-in range proofs, for a simulation: every deposit is built by
    /// hand (standard addresses, or one subaddress), and its Bulletproof+ is the first one proven
    /// for that many outputs, reused. Such a deposit verifies only through
    /// [`MockMonero::submit_with_stand_in_range_proof`]. Everything else in it is real: one-time
    /// keys, view tags, commitments, encrypted amounts, rings and CLSAGs.
    pub fn with_stand_in_range_proofs(mut self) -> Self {
        self.stand_in_proofs = Some(BTreeMap::new());
        self
    }

    /// Whether deposits carry stand-in range proofs ([`Depositor::with_stand_in_range_proofs`]).
    pub fn has_stand_in_range_proofs(&self) -> bool {
        self.stand_in_proofs.is_some()
    }

    /// The depositor's keys.
    pub fn keys(&self) -> &WalletKeys {
        &self.keys
    }

    /// Address to mine to (e.g. `chain.mine_to(&depositor.address())`).
    pub fn address(&self) -> MoneroAddress {
        self.keys.address()
    }

    /// The view pair scanning for the depositor.
    pub fn view_pair(&self) -> ViewPair {
        self.keys.view_pair()
    }

    /// Catches up with `chain`: rewinds past reorganised blocks, dropping outputs found there,
    /// scans new blocks with monero-wallet's `Scanner`, and frees inputs of built transactions
    /// that were seen and have since vanished.
    pub fn sync(&mut self, chain: &MockMonero) -> Result<(), DepositError> {
        // Hashes chain, so the first matching block from the top is the fork point.
        while let Some(last) = self.scanned.last() {
            if chain.block_hash(self.scanned.len() - 1) == Some(*last) {
                break;
            }
            self.scanned.pop();
        }
        let kept = self.scanned.len();
        self.owned.retain(|_, o| o.height < kept);

        for height in kept..=chain.tip_height() {
            let block = chain.scannable_block_at(height).ok_or(DepositError::MissingBlock(height))?;
            let hash = chain.block_hash(height).ok_or(DepositError::MissingBlock(height))?;
            // Timelocks are judged by the chain when spending, so take everything.
            let found = self.scanner.scan(block).map_err(DepositError::Scan)?.ignore_additional_timelock();
            for output in found {
                let key_image = self.key_image(&output);
                self.owned.insert(output.index_on_blockchain(), Owned { output, height, key_image });
            }
            self.scanned.push(hash);
        }

        for (hash, pending) in &mut self.pending {
            if chain.contains_transaction(hash) {
                pending.seen = true;
            }
        }
        self.pending.retain(|hash, p| !p.seen || chain.contains_transaction(hash));
        Ok(())
    }

    /// `(spend + offset) * Hp(K)`, the key image spending `output`.
    fn key_image(&self, output: &WalletOutput) -> [u8; 32] {
        let x = Scalar::from(self.keys.spend().into() + output.key_offset().into());
        let hp = Point::biased_hash(output.key().compress().to_bytes());
        mul(x, hp).compress().to_bytes()
    }

    /// Owned outputs spendable in the chain's next block and not reserved by a built
    /// transaction, largest first (ties by global index, so the choice is deterministic).
    fn spendable(&self, chain: &MockMonero) -> Vec<&Owned> {
        let reserved: BTreeSet<&[u8; 32]> = self.pending.values().flat_map(|p| &p.key_images).collect();
        let mut outputs: Vec<&Owned> = self
            .owned
            .values()
            .filter(|o| {
                chain.is_unlocked(o.output.index_on_blockchain())
                    && chain.key_image_status(&o.key_image).is_none()
                    && !reserved.contains(&o.key_image)
            })
            .collect();
        outputs.sort_by(|a, b| {
            b.output
                .commitment()
                .amount
                .cmp(&a.output.commitment().amount)
                .then(a.output.index_on_blockchain().cmp(&b.output.index_on_blockchain()))
        });
        outputs
    }

    /// What the depositor can spend in the chain's next block, after syncing.
    pub fn balance(&mut self, chain: &MockMonero) -> Result<u64, DepositError> {
        self.sync(chain)?;
        Ok(self.spendable(chain).iter().fold(0u64, |acc, o| acc.saturating_add(o.output.commitment().amount)))
    }

    /// Outputs found so far (spent or not), by global index.
    pub fn outputs(&self) -> Vec<WalletOutput> {
        self.owned.values().map(|o| o.output.clone()).collect()
    }

    /// Forgets which outputs built-but-unsubmitted transactions spend, so they may be spent
    /// again (e.g. to build a conflicting transaction on purpose).
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// Builds a real RingCT deposit of `amount` piconero to `to`: CLSAG inputs with 16-member
    /// rings whose decoys monero-wallet selects from `chain`, a Bulletproof+, change back to the
    /// depositor, and `instruction` (opaque, at most [`MAX_INSTRUCTION_LEN`] bytes) as one
    /// arbitrary-data chunk in the extra. Its inputs stay reserved, so deposits can be built back
    /// to back before any is submitted; a reservation ends once a sync has seen the transaction
    /// (on chain or in the mempool) and a later sync no longer finds it (dropped by a reorg), or
    /// on [`Depositor::forget_pending`]. Spent outputs are excluded through the chain's key images.
    pub fn deposit(
        &mut self,
        chain: &MockMonero,
        to: &MoneroAddress,
        amount: u64,
        instruction: Option<&[u8]>,
    ) -> Result<Transaction, DepositError> {
        if self.stand_in_proofs.is_some() {
            return self.handmade_payments(chain, &[(*to, amount)], instruction);
        }
        self.sync(chain)?;
        let candidates: Vec<Owned> = self.spendable(chain).into_iter().cloned().collect();
        let outputs: Vec<WalletOutput> = candidates.iter().map(|o| o.output.clone()).collect();
        let built = block_on(self.build(chain, &outputs, chain.tip_height(), to, amount, instruction, fee_rate()))
            .ok_or(DepositError::NotReady)?;
        let (tx, used) = built?;
        let key_images = candidates[..used].iter().map(|o| o.key_image).collect();
        self.pending.insert(tx.hash(), Pending { key_images, seen: false });
        Ok(tx)
    }

    /// Finds the depositor's outputs in a block from any source (a real node's RPC); coinbase
    /// timelocks are the spender's to respect.
    pub fn scan(&mut self, block: ScannableBlock) -> Result<Vec<WalletOutput>, DepositError> {
        Ok(self.scanner.scan(block).map_err(DepositError::Scan)?.ignore_additional_timelock())
    }

    /// Builds and signs a deposit from `candidates` (spendable, largest first) with rings
    /// selected from `interface` as of block `tip`: the fewest leading candidates covering the
    /// amount and the fee. Returns the transaction and how many candidates it spends. Works
    /// against the mock chain and a real node alike.
    #[allow(clippy::too_many_arguments)]
    pub async fn build(
        &mut self,
        interface: &impl ProvidesDecoys,
        candidates: &[WalletOutput],
        tip: usize,
        to: &MoneroAddress,
        amount: u64,
        instruction: Option<&[u8]>,
        fee_rate: FeeRate,
    ) -> Result<(Transaction, usize), DepositError> {
        self.build_payments(interface, candidates, tip, &[(*to, amount)], instruction, fee_rate).await
    }

    /// [`Depositor::deposit`] paying several outputs in one transaction (at most
    /// [`MAX_PAYMENTS`], the chain's 16 outputs with the change), each output carrying the one
    /// `instruction` of the transaction.
    pub fn deposit_many(
        &mut self,
        chain: &MockMonero,
        payments: &[(MoneroAddress, u64)],
        instruction: Option<&[u8]>,
    ) -> Result<Transaction, DepositError> {
        if self.stand_in_proofs.is_some() {
            return self.handmade_payments(chain, payments, instruction);
        }
        self.sync(chain)?;
        let candidates: Vec<Owned> = self.spendable(chain).into_iter().cloned().collect();
        let outputs: Vec<WalletOutput> = candidates.iter().map(|o| o.output.clone()).collect();
        let built =
            block_on(self.build_payments(chain, &outputs, chain.tip_height(), payments, instruction, fee_rate()))
                .ok_or(DepositError::NotReady)?;
        let (tx, used) = built?;
        let key_images = candidates[..used].iter().map(|o| o.key_image).collect();
        self.pending.insert(tx.hash(), Pending { key_images, seen: false });
        Ok(tx)
    }

    async fn build_payments(
        &mut self,
        interface: &impl ProvidesDecoys,
        candidates: &[WalletOutput],
        tip: usize,
        payments: &[(MoneroAddress, u64)],
        instruction: Option<&[u8]>,
        fee_rate: FeeRate,
    ) -> Result<(Transaction, usize), DepositError> {
        if let Some(instruction) = instruction {
            if instruction.len() > MAX_INSTRUCTION_LEN {
                return Err(DepositError::InstructionTooLong { len: instruction.len(), max: MAX_INSTRUCTION_LEN });
            }
        }
        if payments.is_empty() || payments.len() > MAX_PAYMENTS {
            return Err(DepositError::Payments { count: payments.len(), max: MAX_PAYMENTS });
        }
        let amount = payments.iter().fold(0u64, |acc, (_, amount)| acc.saturating_add(*amount));
        let available = candidates.iter().fold(0u64, |acc, o| acc.saturating_add(o.commitment().amount));
        let data = instruction.map(|i| vec![i.to_vec()]).unwrap_or_default();

        // Fewest inputs first; add the next largest output while the fee is not covered.
        let mut total = 0u128;
        for n in 1..=candidates.len().min(MAX_INPUTS) {
            total += u128::from(candidates[n - 1].commitment().amount);
            if total <= u128::from(amount) {
                continue;
            }
            let mut inputs = Vec::with_capacity(n);
            for output in &candidates[..n] {
                let with_decoys = OutputWithDecoys::new(&mut self.rng, interface, RING_LEN, tip, output.clone())
                    .await
                    .map_err(DepositError::Decoys)?;
                inputs.push(with_decoys);
            }
            // Seeds monero-wallet's per-transaction randomness (tx keys, shuffles); fresh each time.
            let mut outgoing_view_key = [0u8; 32];
            self.rng.fill_bytes(&mut outgoing_view_key);
            let signable = match SignableTransaction::new(
                RctType::ClsagBulletproofPlus,
                Into::into(outgoing_view_key),
                inputs,
                payments.to_vec(),
                Change::new(self.keys.view_pair(), None),
                data.clone(),
                fee_rate,
            ) {
                Ok(signable) => signable,
                Err(SendError::NotEnoughFunds { .. }) => continue,
                Err(e) => return Err(DepositError::Send(e)),
            };
            let tx = signable.sign(&mut self.rng, &Into::into(self.keys.spend())).map_err(DepositError::Send)?;
            return Ok((tx, n));
        }
        Err(DepositError::InsufficientFunds { available, requested: amount })
    }

    /// A deposit built by hand with the transaction key `tx_key` the caller chose: monero-wallet
    /// derives every transaction key from the inputs spent, so it never repeats one, and this is
    /// how a hostile depositor does. Output `o` pays `payments[o]` (standard addresses only),
    /// the change back to the depositor comes last, and `instruction` (if any) is the extra's one
    /// arbitrary-data chunk; the fee is an upper bound of the weight at the mock's rate. Two
    /// deposits with one key whose first payments go to one address pay the same one-time key at
    /// index 0, which only one of them can ever spend: Monero's burning bug.
    pub fn deposit_with_key(
        &mut self,
        chain: &MockMonero,
        payments: &[(MoneroAddress, u64)],
        instruction: Option<&[u8]>,
        tx_key: Scalar,
    ) -> Result<Transaction, DepositError> {
        if payments.is_empty() || payments.len() > MAX_PAYMENTS {
            return Err(DepositError::Payments { count: payments.len(), max: MAX_PAYMENTS });
        }
        if payments.iter().any(|(to, _)| to.is_subaddress() || to.is_guaranteed()) {
            return Err(DepositError::NotStandardAddress);
        }
        let outputs = payment_outputs(tx_key, payments);
        let extra = ExtraField::PublicKey(mul_base(tx_key).compress()).serialize();
        self.handmade(chain, outputs, payments.len(), extra, instruction, tx_key)
    }

    /// A twin of output `index` of `original`, built by anyone who knows the recipient's private
    /// view key (the group's is derived from its public spend key, by design): the original's
    /// transaction key copied into the extra gives the recipient's scanner the same shared secret,
    /// so the twin pays the same one-time key with the same view tag, at the same index, only its
    /// amount (`amount`, committed under the mask that secret yields) its own. The other outputs go
    /// back to the depositor under a second transaction key of its own. Mined first, the twin is
    /// the output a first-credited-wins defence against the burning bug credits.
    pub fn twin_of(
        &mut self,
        chain: &MockMonero,
        original: &Transaction,
        index: usize,
        recipient_view_key: Scalar,
        amount: u64,
    ) -> Result<Transaction, DepositError> {
        let copied = original.prefix().outputs.get(index).ok_or(DepositError::Handmade("the original's output"))?;
        let extra = monero_wallet::extra::Extra::read(&mut original.prefix().extra.as_slice())
            .map_err(|_| DepositError::Handmade("the original's extra"))?;
        let original_key = extra
            .keys()
            .and_then(|(keys, _)| keys.first().copied())
            .ok_or(DepositError::Handmade("the original's transaction key"))?;
        let view_tag = copied.view_tag.ok_or(DepositError::Handmade("the original's view tag"))?;
        let twin = Handmade {
            key: copied.key,
            view_tag,
            shared: shared_secret(mul(recipient_view_key, original_key), index),
            amount,
        };
        // The depositor's own outputs fill the other indexes; the change is the last of them.
        let tx_key = Scalar::random(&mut self.rng);
        let own = self.address();
        let mut outputs = Vec::with_capacity(index.max(1) + 1);
        for o in 0..=index.max(1) {
            if o == index {
                outputs.push(twin.clone());
            } else {
                outputs.push(Handmade::paying(derive_output(tx_key, &own, o, [0; 32]), 0));
            }
        }
        let mut extra_bytes = ExtraField::PublicKey(original_key.compress()).serialize();
        extra_bytes.extend(ExtraField::PublicKey(mul_base(tx_key).compress()).serialize());
        // Every output but the twin is the depositor's: the last of them takes the change.
        let change_at = if index == outputs.len() - 1 { index - 1 } else { outputs.len() - 1 };
        self.handmade_with_change_at(chain, outputs, change_at, extra_bytes, None)
    }

    /// A hand-built deposit paying `payments` (standard addresses, or exactly one subaddress)
    /// under a fresh transaction key, the change back to the depositor last: what
    /// [`Depositor::deposit`] builds with stand-in range proofs. A subaddress payment takes the
    /// transaction key `rD` (Monero's subaddress scheme), and the change is derived from `aR`
    /// under the depositor's view key `a`, as monero-wallet does for one subaddress payment.
    fn handmade_payments(
        &mut self,
        chain: &MockMonero,
        payments: &[(MoneroAddress, u64)],
        instruction: Option<&[u8]>,
    ) -> Result<Transaction, DepositError> {
        if payments.is_empty() || payments.len() > MAX_PAYMENTS {
            return Err(DepositError::Payments { count: payments.len(), max: MAX_PAYMENTS });
        }
        let subaddresses = payments.iter().filter(|(to, _)| to.is_subaddress()).count();
        if payments.iter().any(|(to, _)| to.is_guaranteed()) || (subaddresses > 0 && payments.len() > 1) {
            return Err(DepositError::NotStandardAddress);
        }
        let r = Scalar::random(&mut self.rng);
        let key = tx_key(r, &payments[0].0);
        let mut outputs = payment_outputs(r, payments);
        let change =
            derive_output_from_ecdh(mul(self.keys.view(), key), self.keys.spend_public(), None, payments.len());
        outputs.push(Handmade::paying(change, 0));
        let extra = ExtraField::PublicKey(key.compress()).serialize();
        self.handmade_with_change_at(chain, outputs, payments.len(), extra, instruction)
    }

    /// Funds and signs hand-made `outputs` (`payments` of them are payments; a change output to
    /// the depositor under `tx_key` is appended).
    fn handmade(
        &mut self,
        chain: &MockMonero,
        mut outputs: Vec<Handmade>,
        payments: usize,
        extra: Vec<u8>,
        instruction: Option<&[u8]>,
        tx_key: Scalar,
    ) -> Result<Transaction, DepositError> {
        let derived = derive_output(tx_key, &self.address(), payments, [0; 32]);
        outputs.push(Handmade::paying(derived, 0));
        self.handmade_with_change_at(chain, outputs, payments, extra, instruction)
    }

    /// Funds and signs hand-made `outputs`, output `change_at` (the depositor's) taking the
    /// change: the fewest largest spendable outputs covering the rest and the fee.
    fn handmade_with_change_at(
        &mut self,
        chain: &MockMonero,
        mut outputs: Vec<Handmade>,
        change_at: usize,
        extra: Vec<u8>,
        instruction: Option<&[u8]>,
    ) -> Result<Transaction, DepositError> {
        if let Some(instruction) = instruction {
            if instruction.len() > MAX_INSTRUCTION_LEN {
                return Err(DepositError::InstructionTooLong { len: instruction.len(), max: MAX_INSTRUCTION_LEN });
            }
        }
        self.sync(chain)?;
        let candidates: Vec<Owned> = self.spendable(chain).into_iter().cloned().collect();
        let amount = outputs.iter().fold(0u64, |acc, output| acc.saturating_add(output.amount));
        let available = candidates.iter().fold(0u64, |acc, o| acc.saturating_add(o.output.commitment().amount));
        let mut total = 0u64;
        for n in 1..=candidates.len().min(MAX_INPUTS) {
            total = total.saturating_add(candidates[n - 1].output.commitment().amount);
            let fee = handmade_fee_bound(n, outputs.len());
            let Some(change) = total.checked_sub(amount).and_then(|left| left.checked_sub(fee)) else { continue };
            outputs[change_at].amount = change;
            let tx = self.sign_handmade(chain, &candidates[..n], &outputs, fee, extra.clone(), instruction)?;
            let key_images = candidates[..n].iter().map(|o| o.key_image).collect();
            self.pending.insert(tx.hash(), Pending { key_images, seen: false });
            return Ok(tx);
        }
        Err(DepositError::InsufficientFunds { available, requested: amount })
    }

    fn sign_handmade(
        &mut self,
        chain: &MockMonero,
        spent: &[Owned],
        outputs: &[Handmade],
        fee: u64,
        mut extra: Vec<u8>,
        instruction: Option<&[u8]>,
    ) -> Result<Transaction, DepositError> {
        // Inputs, sorted by key image descending (monerod's order).
        let mut inputs = Vec::with_capacity(spent.len());
        for owned in spent {
            let with_decoys = block_on(OutputWithDecoys::new(
                &mut self.rng,
                chain,
                RING_LEN,
                chain.tip_height(),
                owned.output.clone(),
            ))
            .ok_or(DepositError::NotReady)?
            .map_err(DepositError::Decoys)?;
            inputs.push((owned.key_image, with_decoys));
        }
        inputs.sort_by(|(a, _), (b, _)| b.cmp(a));

        let mut commitments = Vec::with_capacity(outputs.len());
        let mut encrypted_amounts = Vec::with_capacity(outputs.len());
        for output in outputs {
            commitments.push(Commitment::new(commitment_mask(output.shared), output.amount));
            encrypted_amounts.push(EncryptedAmount::Compact { amount: encrypt_amount(output.shared, output.amount) });
        }
        if let Some(instruction) = instruction {
            // monero-wallet's arbitrary-data marker (127), then the data.
            let mut nonce = vec![127];
            nonce.extend(instruction);
            extra.extend(ExtraField::Nonce(nonce).serialize());
        }
        let reused = self.stand_in_proofs.as_ref().and_then(|proofs| proofs.get(&commitments.len()).cloned());
        let bulletproof = match reused {
            Some(bulletproof) => bulletproof,
            None => {
                let proven = Bulletproof::prove_plus(&mut self.rng, commitments.clone())
                    .map_err(|_| DepositError::Handmade("the range proof"))?;
                if let Some(proofs) = &mut self.stand_in_proofs {
                    proofs.insert(commitments.len(), proven.clone());
                }
                proven
            }
        };
        let mut tx = Transaction::V2 {
            prefix: TransactionPrefix {
                additional_timelock: Timelock::None,
                inputs: inputs
                    .iter()
                    .map(|(key_image, input)| Input::ToKey {
                        amount: None,
                        key_offsets: input.decoys().offsets().to_vec(),
                        key_image: CompressedPoint::from(*key_image),
                    })
                    .collect(),
                outputs: outputs
                    .iter()
                    .map(|output| Output { key: output.key, amount: None, view_tag: Some(output.view_tag) })
                    .collect(),
                extra,
            },
            proofs: Some(RctProofs {
                base: RctBase {
                    fee,
                    pseudo_outs: vec![],
                    encrypted_amounts,
                    commitments: commitments.iter().map(|c| c.commit().compress()).collect(),
                },
                prunable: RctPrunable::Clsag { bulletproof, clsags: vec![], pseudo_outs: vec![] },
            }),
        };

        // The CLSAGs, over the transaction's signature hash; the last pseudo-out balances the
        // output masks.
        let message = tx.signature_hash().ok_or(DepositError::Handmade("the signature hash"))?;
        let mask_sum = commitments.iter().fold(Scalar::ZERO, |sum, c| add_scalars(sum, c.mask));
        let mut signing = Vec::with_capacity(inputs.len());
        for (_, input) in &inputs {
            let key = Zeroizing::new(add_scalars(self.keys.spend(), input.key_offset()));
            let context = ClsagContext::new(input.decoys().clone(), input.commitment().clone())
                .map_err(|_| DepositError::Handmade("a ring"))?;
            signing.push((key, context));
        }
        let signed = Clsag::sign(&mut self.rng, signing, mask_sum, message)
            .map_err(|_| DepositError::Handmade("the ring signatures"))?;
        if let Transaction::V2 {
            proofs: Some(RctProofs { prunable: RctPrunable::Clsag { clsags, pseudo_outs, .. }, .. }),
            ..
        } = &mut tx
        {
            for (clsag, pseudo_out) in signed {
                clsags.push(clsag);
                pseudo_outs.push(pseudo_out.compress());
            }
        }
        Ok(tx)
    }
}

/// One output of a hand-built deposit: what the recipient's scanner recognises, and the amount.
#[derive(Clone)]
struct Handmade {
    key: CompressedPoint,
    view_tag: u8,
    /// The shared secret its mask and amount encryption derive from.
    shared: Scalar,
    amount: u64,
}

impl Handmade {
    fn paying(derived: DerivedOutput, amount: u64) -> Handmade {
        Handmade { key: derived.key, view_tag: derived.view_tag, shared: derived.shared, amount }
    }
}

/// Output `o` pays `payments[o]`, under the transaction randomness `r`.
fn payment_outputs(r: Scalar, payments: &[(MoneroAddress, u64)]) -> Vec<Handmade> {
    payments
        .iter()
        .enumerate()
        .map(|(o, (to, amount))| Handmade::paying(derive_output(r, to, o, [0; 32]), *amount))
        .collect()
}

/// Most payments one deposit makes: the chain's 16 outputs, one kept for the change.
pub const MAX_PAYMENTS: usize = 15;

/// A fee covering any hand-built deposit with `inputs` inputs and `outputs` outputs at the
/// mock's rate: an upper bound of the weight (a ring-16 CLSAG input weighs about 660, an output
/// with its share of the padded Bulletproof+ at most about 500, the rest at most 1,100).
fn handmade_fee_bound(inputs: usize, outputs: usize) -> u64 {
    let weight = 1_100 + 700 * inputs as u64 + 500 * outputs as u64;
    u64::try_from(fee_rate().calculate_fee_from_weight(weight)).unwrap_or(u64::MAX)
}
