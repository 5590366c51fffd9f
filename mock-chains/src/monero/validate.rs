//! Transaction validation against the best chain and the mempool.

use monero_wallet::{
    ed25519::{CompressedPoint, Point},
    extra::MAX_EXTRA_SIZE_BY_RELAY_RULE,
    primitives::keccak256,
    ringct::{clsag::ClsagError, EncryptedAmount, RctPrunable, RctType},
    transaction::{Input, Transaction},
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{
    chain::{ChainState, Mempool},
    crypto::{add, fee_commit, sum},
    interface::fee_rate,
    RING_LEN,
};

/// Most outputs a transaction may have (one aggregate Bulletproof+ covers at most 16).
const MAX_OUTPUTS: usize = 16;

/// Why [`super::MockMonero::submit`] refused a transaction.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TxRejected {
    /// The transaction is already in the best chain.
    #[error("transaction already on chain at height {height}")]
    AlreadyOnChain {
        /// Height of the block holding it.
        height: usize,
    },
    /// The transaction is already in the mempool.
    #[error("transaction already in the mempool")]
    AlreadyInMempool,
    /// A miner (`Gen`) input outside a block.
    #[error("miner transactions cannot be submitted")]
    MinerTransaction,
    /// Not a v2 CLSAG + Bulletproof+ RingCT transaction.
    #[error("not a CLSAG/Bulletproof+ RingCT transaction: {0}")]
    NotRingCt(&'static str),
    /// Inconsistent structure (vector lengths, cleartext amounts, encodings...).
    #[error("malformed transaction: {0}")]
    Malformed(&'static str),
    /// Fewer than the two outputs Monero requires.
    #[error("{0} outputs, at least 2 required")]
    TooFewOutputs(usize),
    /// More outputs than one Bulletproof+ can cover.
    #[error("{0} outputs, at most 16 allowed")]
    TooManyOutputs(usize),
    /// An output key that is not a valid point.
    #[error("output {output} has an invalid key")]
    InvalidOutputKey {
        /// Index of the output in the transaction.
        output: usize,
    },
    /// An output commitment that is not a valid point.
    #[error("output {output} has an invalid commitment")]
    InvalidOutputCommitment {
        /// Index of the output in the transaction.
        output: usize,
    },
    /// The extra field exceeds the relay limit.
    #[error("extra of {0} bytes exceeds the relay limit")]
    ExtraTooLarge(usize),
    /// The fee is below the minimum for the transaction's weight.
    #[error("fee {fee} below the required {required}")]
    FeeTooLow {
        /// Fee paid.
        fee: u64,
        /// Minimum fee for the weight.
        required: u128,
    },
    /// Two inputs share a key image.
    #[error("two inputs share a key image")]
    DuplicateKeyImage,
    /// Inputs are not sorted by key image, strictly descending, as monerod requires.
    #[error("inputs are not sorted by key image")]
    KeyImagesUnsorted,
    /// A key image already spent on the best chain.
    #[error("key image of input {input} already spent at height {height}")]
    KeyImageSpent {
        /// Index of the input.
        input: usize,
        /// Height of the block spending it.
        height: usize,
    },
    /// A key image already spent by a mempool transaction.
    #[error("key image of input {input} already spent in the mempool")]
    KeyImageInMempool {
        /// Index of the input.
        input: usize,
    },
    /// A ring of the wrong size.
    #[error("input {input} has a ring of {len}, {RING_LEN} required")]
    RingSize {
        /// Index of the input.
        input: usize,
        /// Ring size used.
        len: usize,
    },
    /// A ring member whose global output index does not exist.
    #[error("input {input} references unknown output {index}")]
    RingMemberUnknown {
        /// Index of the input.
        input: usize,
        /// Global output index referenced.
        index: u64,
    },
    /// A ring member still locked (10-block window or its transaction's timelock).
    #[error("input {input} references locked output {index}")]
    RingMemberLocked {
        /// Index of the input.
        input: usize,
        /// Global output index referenced.
        index: u64,
    },
    /// Sum of pseudo-outs differs from sum of output commitments plus the fee.
    #[error("commitments do not balance")]
    Unbalanced,
    /// The Bulletproof+ does not verify for the output commitments.
    #[error("range proof does not verify")]
    InvalidRangeProof,
    /// A CLSAG does not verify.
    #[error("CLSAG of input {input} does not verify: {reason}")]
    InvalidSignature {
        /// Index of the input.
        input: usize,
        /// monero-clsag's verdict.
        reason: ClsagError,
    },
}

/// A validated transaction with what the chain needs to apply it.
#[derive(Clone, Debug)]
pub(crate) struct PoolTx {
    pub tx: Transaction,
    pub hash: [u8; 32],
    pub fee: u64,
    pub key_images: Vec<[u8; 32]>,
    pub output_keys: Vec<Point>,
    pub commitments: Vec<Point>,
}

/// What a transaction's range proof and signatures were verified against: the transaction (its
/// hash covers every byte, proofs included) and its rings' members as the chain resolved them.
fn proofs_key(hash: &[u8; 32], rings: &[Vec<[CompressedPoint; 2]>]) -> [u8; 32] {
    let mut preimage = Vec::with_capacity(32 + rings.iter().map(|ring| ring.len() * 64).sum::<usize>());
    preimage.extend(hash);
    for member in rings.iter().flatten() {
        preimage.extend(member[0].to_bytes());
        preimage.extend(member[1].to_bytes());
    }
    keccak256(preimage)
}

/// Checks `tx` for inclusion in the block after the current tip, given the mempool. The range
/// proof and signatures of a transaction are verified once per set of rings (the pool's cache);
/// everything that depends on the chain's state is checked every time.
pub(crate) fn validate(state: &ChainState, pool: &mut Mempool, tx: &Transaction) -> Result<PoolTx, TxRejected> {
    let hash = tx.hash();
    if let Some(height) = state.tx_height(&hash) {
        return Err(TxRejected::AlreadyOnChain { height });
    }
    if pool.contains(&hash) {
        return Err(TxRejected::AlreadyInMempool);
    }

    let (prefix, proofs) = match tx {
        Transaction::V1 { prefix, .. } => {
            if prefix.inputs.iter().any(|i| matches!(i, Input::Gen(_))) {
                return Err(TxRejected::MinerTransaction);
            }
            return Err(TxRejected::NotRingCt("version 1"));
        }
        Transaction::V2 { prefix, proofs } => (prefix, proofs),
    };

    // Inputs: key images, sorted strictly descending (monerod's memcmp rule; monero-wallet
    // sorts the same way).
    if prefix.inputs.is_empty() {
        return Err(TxRejected::Malformed("no inputs"));
    }
    let mut key_images = Vec::with_capacity(prefix.inputs.len());
    let mut offsets = Vec::with_capacity(prefix.inputs.len());
    for input in &prefix.inputs {
        match input {
            Input::Gen(_) => return Err(TxRejected::MinerTransaction),
            Input::ToKey { amount: Some(_), .. } => return Err(TxRejected::Malformed("input with a cleartext amount")),
            Input::ToKey { amount: None, key_offsets, key_image } => {
                key_images.push(*key_image);
                offsets.push(key_offsets);
            }
        }
    }
    let Some(proofs) = proofs else {
        return Err(TxRejected::NotRingCt("no RingCT proofs"));
    };
    if proofs.rct_type() != RctType::ClsagBulletproofPlus {
        return Err(TxRejected::NotRingCt("RingCT type is not CLSAG + Bulletproof+"));
    }
    let RctPrunable::Clsag { bulletproof, clsags, pseudo_outs } = &proofs.prunable else {
        return Err(TxRejected::NotRingCt("RingCT type is not CLSAG + Bulletproof+"));
    };

    // Outputs.
    let outputs = &prefix.outputs;
    if outputs.len() < 2 {
        return Err(TxRejected::TooFewOutputs(outputs.len()));
    }
    if outputs.len() > MAX_OUTPUTS {
        return Err(TxRejected::TooManyOutputs(outputs.len()));
    }
    let mut output_keys = Vec::with_capacity(outputs.len());
    for (o, output) in outputs.iter().enumerate() {
        if output.amount.is_some() {
            return Err(TxRejected::Malformed("RingCT output with a cleartext amount"));
        }
        if output.view_tag.is_none() {
            return Err(TxRejected::Malformed("output without a view tag (required since v15)"));
        }
        output_keys.push(output.key.decompress().ok_or(TxRejected::InvalidOutputKey { output: o })?);
    }
    if prefix.extra.len() > MAX_EXTRA_SIZE_BY_RELAY_RULE {
        return Err(TxRejected::ExtraTooLarge(prefix.extra.len()));
    }

    // Proof shapes: a transaction built in memory need not be readable, so check what parsing
    // would have enforced.
    let base = &proofs.base;
    if base.commitments.len() != outputs.len()
        || base.encrypted_amounts.len() != outputs.len()
        || !base.pseudo_outs.is_empty()
        || clsags.len() != prefix.inputs.len()
        || pseudo_outs.len() != prefix.inputs.len()
    {
        return Err(TxRejected::Malformed("proof vectors do not match the inputs/outputs"));
    }
    if base.encrypted_amounts.iter().any(|a| !matches!(a, EncryptedAmount::Compact { .. })) {
        return Err(TxRejected::Malformed("non-compact encrypted amount"));
    }

    let weight = u64::try_from(tx.weight()).unwrap_or(u64::MAX);
    let required = fee_rate().calculate_fee_from_weight(weight);
    if u128::from(base.fee) < required {
        return Err(TxRejected::FeeTooLow { fee: base.fee, required });
    }

    // Key images against the transaction itself (strictly descending also means unique), the
    // chain and the mempool.
    for pair in key_images.windows(2) {
        match pair[0].to_bytes().cmp(&pair[1].to_bytes()) {
            core::cmp::Ordering::Equal => return Err(TxRejected::DuplicateKeyImage),
            core::cmp::Ordering::Less => return Err(TxRejected::KeyImagesUnsorted),
            core::cmp::Ordering::Greater => {}
        }
    }
    for (input, ki) in key_images.iter().enumerate() {
        if let Some(height) = state.key_image_height(&ki.to_bytes()) {
            return Err(TxRejected::KeyImageSpent { input, height });
        }
        if pool.spends(&ki.to_bytes()) {
            return Err(TxRejected::KeyImageInMempool { input });
        }
    }

    // Rings: existing, unlocked, strictly increasing members.
    let tip = state.tip();
    let mut rings = Vec::with_capacity(offsets.len());
    for (input, key_offsets) in offsets.iter().enumerate() {
        if key_offsets.len() != usize::from(RING_LEN) {
            return Err(TxRejected::RingSize { input, len: key_offsets.len() });
        }
        let mut ring = Vec::with_capacity(key_offsets.len());
        let mut position = 0u64;
        for (j, offset) in key_offsets.iter().enumerate() {
            if j != 0 && *offset == 0 {
                return Err(TxRejected::Malformed("ring repeats a member"));
            }
            position = position.checked_add(*offset).ok_or(TxRejected::Malformed("ring offsets overflow"))?;
            let Some(member) = state.output(position) else {
                return Err(TxRejected::RingMemberUnknown { input, index: position });
            };
            if !state.unlocked(member, tip, true) {
                return Err(TxRejected::RingMemberLocked { input, index: position });
            }
            ring.push([member.key, member.commitment_compressed]);
        }
        rings.push(ring);
    }

    // Balance: sum(pseudo-outs) == sum(output commitments) + fee * H.
    let pseudo = pseudo_outs
        .iter()
        .map(CompressedPoint::decompress)
        .collect::<Option<Vec<_>>>()
        .ok_or(TxRejected::Malformed("pseudo-out is not a point"))?;
    let mut commitments = Vec::with_capacity(outputs.len());
    for (o, c) in base.commitments.iter().enumerate() {
        commitments.push(c.decompress().ok_or(TxRejected::InvalidOutputCommitment { output: o })?);
    }
    let inputs_sum = sum(pseudo.iter().copied());
    let outputs_sum = sum(commitments.iter().copied()).map(|s| add(s, fee_commit(base.fee)));
    if inputs_sum.is_none() || inputs_sum != outputs_sum {
        return Err(TxRejected::Unbalanced);
    }

    let proofs = proofs_key(&hash, &rings);
    if !pool.proofs_verified.contains(&proofs) {
        // Range proof. The verifier's RNG only draws batch weights, so seeding it from the hash
        // keeps the chain's own stream untouched and the verdict deterministic.
        let mut rng = ChaCha20Rng::from_seed(hash);
        if !pool.stand_in_range_proofs.contains(&hash) && !bulletproof.verify(&mut rng, &base.commitments) {
            return Err(TxRejected::InvalidRangeProof);
        }

        // Signatures over the transaction's signature hash.
        let msg = tx.signature_hash().ok_or(TxRejected::Malformed("no signature hash"))?;
        for (input, ((clsag, ring), (ki, pseudo_out))) in
            clsags.iter().zip(rings).zip(key_images.iter().zip(pseudo_outs)).enumerate()
        {
            clsag
                .verify(ring, ki, pseudo_out, &msg)
                .map_err(|reason| TxRejected::InvalidSignature { input, reason })?;
        }
        pool.proofs_verified.insert(proofs);
    }

    Ok(PoolTx {
        tx: tx.clone(),
        hash,
        fee: base.fee,
        key_images: key_images.iter().map(CompressedPoint::to_bytes).collect(),
        output_keys,
        commitments,
    })
}
