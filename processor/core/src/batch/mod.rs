//! Batches: once the coordinator acknowledges a final block with InInstructions, the group
//! threshold-signs the block's Batch with the batch key (FROST Ed25519).
//!
//! Every honest processor builds the same Batch for the same block (the block's InInstructions
//! in block order), so a Batch id is only ever signed with one content. Nonces live only in
//! memory and are bound to one [`SignId`] (session, Batch, attempt); before a preprocess is
//! sent its attempt is recorded in the DB, so an attempt is never preprocessed twice. After a
//! restart the nonces are gone and the attempt is abandoned: the coordinator's next attempt
//! gets fresh nonces.

use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{Attempt, BatchId, BlockHeight, BlockId, ExternalChain, Participant, SessionId};
use crate::keygen::{self, keys::Ed25519, KeyCache};
use crate::messages::{encode, Batch, KeyGenEvent, ProcessorMessage, ScannerEvent, SignEvent, SignId, SignTarget};
use crate::scanner::{self, FinalBlock};
use crate::scheduler::{self, Utxo};
use crate::sign::{self, Attempts, SignError, SigningSet};
use bincode::{Decode, Encode};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::SigningPackage;
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;

/// Signing attempts held in memory at once; older ones are dropped (they can be re-attempted).
pub const MAX_LIVE_ATTEMPTS: usize = 256;

tables! {
    /// Batches this processor built, and their signatures once known.
    BATCHES: Table<BatchId, BatchRecord> = b"batch/record/";
    /// Every height the coordinator acknowledged here, with what it acknowledged: a height is
    /// acknowledged once (a second acknowledgement would add its outputs to the funds again).
    ACKNOWLEDGED: Table<BlockHeight, Acknowledgement> = b"batch/acknowledged/";
}

/// Every height the coordinator acknowledged here, with what it acknowledged.
pub fn acknowledgements(reader: &impl Read) -> Result<Vec<(BlockHeight, Acknowledgement)>, DbError> {
    ACKNOWLEDGED.entries(reader)
}

/// What the coordinator acknowledged at a height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Acknowledgement {
    /// The block.
    pub block: BlockId,
    /// Its Batch's id, if it has InInstructions.
    pub batch: Option<BatchId>,
}

/// The Batch with this id built here, if any.
pub fn batch(reader: &impl Read, id: BatchId) -> Result<Option<BatchRecord>, DbError> {
    BATCHES.get(reader, &id)
}

/// Every Batch built here, by id.
pub fn batches(reader: &impl Read) -> Result<Vec<(BatchId, BatchRecord)>, DbError> {
    BATCHES.entries(reader)
}

/// Stores a Batch record as built (for benchmarks and tests that start from a signing round).
pub fn store_batch<D: Db>(txn: &mut Txn<'_, D>, id: BatchId, record: &BatchRecord) {
    BATCHES.set(txn, &id, record);
}

/// A Batch this processor built and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BatchRecord {
    /// The key-generation session whose batch key signs it (the one active when it was built).
    pub session: SessionId,
    /// The height of the final block it reports, on the external chain.
    pub height: BlockHeight,
    /// The Batch itself.
    pub batch: Batch,
    /// The latest attempt this processor took part in.
    pub attempt: Attempt,
    /// The aggregate Ed25519 signature, once signing completed here.
    pub signature: Option<[u8; 64]>,
    /// Whether the coordinator reported the Batch published on Serai (its outputs then joined
    /// the group's funds).
    pub published: bool,
}

/// The bytes the batch key signs: domain-separated, so no other message can be confused with it.
pub fn batch_message(batch: &Batch) -> Vec<u8> {
    let mut message = b"threshold-custody processor: Batch v1".to_vec();
    message.extend(encode(batch));
    message
}

/// The part of the final block at `height` that is credited (see
/// [`keygen::stage::credited`]): a deposit to a retiring key after its window closed is
/// reported by scanning but never credited nor spent.
fn credited_part<D: Db>(
    txn: &Txn<'_, D>,
    height: BlockHeight,
    mut block: FinalBlock,
    window: u64,
) -> Result<FinalBlock, DbError> {
    let mut kept = Vec::with_capacity(block.outputs.len());
    for output in block.outputs {
        if keygen::stage::credited(txn, output.session, output.kind, height, window)? {
            kept.push(output);
        } else {
            tracing::error!(
                output = %output.id, session = %output.session, amount = %output.amount, %height,
                "an output paid to a retiring key after its window closed is not credited"
            );
        }
    }
    block.outputs = kept;
    Ok(block)
}

/// The session whose batch key signs the Batch of the acknowledged block at `height`, while
/// that Batch is not yet published.
pub fn pending_batch_session(reader: &impl Read, height: BlockHeight) -> Result<Option<SessionId>, DbError> {
    let Some(Acknowledgement { batch: Some(id), .. }) = ACKNOWLEDGED.get(reader, &height)? else {
        return Ok(None);
    };
    Ok(BATCHES.get(reader, &id)?.filter(|record| !record.published).map(|record| record.session))
}

/// The Batch of a final block: its InInstructions in block order.
pub fn build_batch(chain: ExternalChain, id: BatchId, block: &FinalBlock) -> Batch {
    let instructions = block
        .outputs
        .iter()
        .filter_map(|output| output.instruction.clone().map(|instruction| (instruction, output.amount)))
        .collect();
    Batch { chain, id, block: block.id, instructions }
}

/// In-memory signing state: nonces and signing packages by attempt. Never persisted.
pub struct BatchSigner {
    nonces: Attempts<SigningNonces<Ed25519>>,
    packages: Attempts<SigningPackage<Ed25519>>,
    keys: KeyCache,
}

impl Default for BatchSigner {
    fn default() -> Self {
        BatchSigner {
            nonces: Attempts::new(MAX_LIVE_ATTEMPTS),
            packages: Attempts::new(MAX_LIVE_ATTEMPTS),
            keys: KeyCache::default(),
        }
    }
}

impl BatchSigner {
    /// Drops the parsed keys of a retired session.
    pub fn forget_keys(&mut self, session: crate::ids::SessionId) {
        self.keys.forget(session);
    }

    /// The coordinator acknowledged the final block `block` at `height` (scanned here: the core
    /// holds the command back until it is). Its outputs without InInstructions join the
    /// group's funds now; if it has a Batch, the Batch is built and signing starts.
    pub fn acknowledged<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        chain: ExternalChain,
        height: BlockHeight,
        acknowledgement: Acknowledgement,
        retirement_window: u64,
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let Acknowledgement { block, batch } = acknowledgement;
        let earlier = ACKNOWLEDGED.get(txn, &height)?;
        let earlier =
            earlier.filter(|_| !crate::mutation::active(crate::mutation::Mutation::NoDoubleAcknowledgementGuard));
        if let Some(earlier) = earlier {
            if earlier == (Acknowledgement { block, batch }) {
                // The same command again (a coordinator's resend under a new sequence id).
                return Ok(vec![]);
            }
            return Err(SignError::Refused(format!(
                "height {height} was already acknowledged as block {} with Batch {:?}",
                earlier.block, earlier.batch
            )));
        }
        if let Some(batch_id) = batch {
            if let Some(record) = BATCHES.get(txn, &batch_id)? {
                if record.height == height && record.batch.block == block {
                    return Ok(vec![]);
                }
                return Err(SignError::Refused(format!("Batch {batch_id} already names another block")));
            }
        }
        let Some(final_block) = scanner::final_block(txn, height)? else {
            return Err(SignError::Refused(format!(
                "no outputs to the group at height {height} here (or already acknowledged)"
            )));
        };
        if final_block.id != block && !crate::mutation::active(crate::mutation::Mutation::NoAcknowledgedBlockCheck) {
            return Err(SignError::Refused(format!(
                "acknowledged block {block} at {height} is not the final block seen here"
            )));
        }
        if final_block.has_instructions() != batch.is_some() {
            return Err(SignError::Refused(format!("block {height}'s Batch does not match its InInstructions")));
        }
        ACKNOWLEDGED.set(txn, &height, &Acknowledgement { block, batch });
        // A key whose activation height this block reaches takes over before its Batch is
        // built: a block's Batch is signed by the newest key activated at or below it.
        let mut messages = Vec::new();
        if let Some((session, from)) = keygen::hand_over(txn, height)? {
            messages.push(ProcessorMessage::KeyGen(KeyGenEvent::HandedOver { session, from, height }));
        }
        let final_block = credited_part(txn, height, final_block, retirement_window)?;
        for output in final_block.outputs.iter().filter(|o| o.instruction.is_none()) {
            let utxo = Utxo { id: output.id.clone(), amount: output.amount, kind: output.kind };
            scheduler::add_output(txn, output.session, utxo)?;
        }
        let Some(batch_id) = batch else {
            scanner::forget_final_block(txn, height);
            return Ok(messages);
        };
        let session = match keygen::stage::batch_session_at(txn, height)? {
            Some(session) => session,
            None => self.keys.active(txn)?.ok_or_else(|| SignError::Refused("no active keys".into()))?.session,
        };
        let batch = build_batch(chain, batch_id, &final_block);
        let attempt = Attempt(0);
        let record = BatchRecord { session, height, batch, attempt, signature: None, published: false };
        BATCHES.set(txn, &batch_id, &record);
        let id = SignId { session, target: SignTarget::Batch(batch_id), attempt };
        messages.extend(self.preprocess(txn, rng, id)?);
        Ok(messages)
    }

    /// Commits to fresh nonces for `id`, unless this attempt was ever preprocessed before.
    fn preprocess<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        id: SignId,
    ) -> Result<Option<ProcessorMessage>, SignError> {
        let keys = sign::session_keys(&mut self.keys, txn, id.session)?;
        if !sign::first_preprocess(txn, id)? {
            return Ok(None);
        }
        let (nonces, commitments) = if crate::mutation::active(crate::mutation::Mutation::ReuseNonce) {
            // The deliberate bug: the same nonces for every attempt at this target.
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&id.session.0.to_le_bytes());
            if let SignTarget::Batch(batch) = id.target {
                seed[4..8].copy_from_slice(&batch.0.to_le_bytes());
            }
            let mut fixed = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::from_seed(seed);
            frost_core::round1::commit(keys.batch.share.signing_share(), &mut fixed)
        } else {
            frost_core::round1::commit(keys.batch.share.signing_share(), rng)
        };
        let preprocess =
            commitments.serialize().map_err(|e| SignError::Refused(format!("serializing our commitments: {e}")))?;
        self.nonces.insert(id, nonces);
        Ok(Some(ProcessorMessage::Sign(SignEvent::Preprocess { id, preprocess })))
    }

    /// Begins the coordinator's new attempt `id` at a Batch not yet signed here: fresh nonces,
    /// and our preprocess. An attempt no later than the latest one taken part in is ignored.
    pub fn reattempt<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        rng: &mut (impl RngCore + CryptoRng),
        id: SignId,
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let SignTarget::Batch(batch_id) = id.target else {
            return Err(SignError::refused("not a Batch"));
        };
        let Some(mut record) = BATCHES.get(txn, &batch_id)? else {
            return Err(SignError::Refused(format!("no Batch {batch_id} here to re-attempt")));
        };
        if record.signature.is_some() || id.attempt <= record.attempt || id.session != record.session {
            return Ok(vec![]);
        }
        record.attempt = id.attempt;
        BATCHES.set(txn, &batch_id, &record);
        Ok(self.preprocess(txn, rng, id)?.into_iter().collect())
    }

    /// The signing set's preprocesses: produce our signature share.
    pub fn preprocesses<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        id: SignId,
        preprocesses: &[(Participant, Vec<u8>)],
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let record = self.record(txn, id)?;
        let keys = sign::session_keys(&mut self.keys, txn, id.session)?;
        SigningSet::of(&keys.batch)?.check(preprocesses.iter().map(|(participant, _)| participant))?;
        let mut commitments = BTreeMap::new();
        for (participant, bytes) in preprocesses {
            let parsed =
                SigningCommitments::<Ed25519>::deserialize(bytes).map_err(|_| SignError::malformed(*participant))?;
            commitments.insert(keygen::dkg_identifier::<Ed25519>(*participant), parsed);
        }
        // Nonces are taken out now: whatever happens next, they are never used again.
        let Some(nonces) = self.nonces.take(&id) else {
            return Err(SignError::Refused(format!("no live nonces for {id:?} (already used, or lost in a restart)")));
        };
        if crate::mutation::active(crate::mutation::Mutation::KeepNoncesAfterSigning) {
            self.nonces.insert(id, nonces.clone());
        }
        if commitments.get(keys.batch.share.identifier()) != Some(nonces.commitments()) {
            return Err(SignError::refused("the signing set lacks our own commitments"));
        }
        let package = SigningPackage::new(commitments, &batch_message(&record.batch));
        let share = frost_core::round2::sign(&package, &nonces, &keys.batch.share)
            .map_err(|e| SignError::Refused(format!("signing failed: {e}")))?;
        self.packages.insert(id, package);
        Ok(vec![ProcessorMessage::Sign(SignEvent::Share { id, share: share.serialize() })])
    }

    /// The signing set's shares: aggregate, verify, and emit the signed Batch.
    pub fn shares<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        id: SignId,
        shares: &[(Participant, Vec<u8>)],
    ) -> Result<Vec<ProcessorMessage>, SignError> {
        let SignTarget::Batch(batch_id) = id.target else {
            return Err(SignError::refused("not a Batch"));
        };
        let mut record = self.record(txn, id)?;
        if record.signature.is_some() {
            return Ok(vec![]);
        }
        let keys = sign::session_keys(&mut self.keys, txn, id.session)?;
        SigningSet::of(&keys.batch)?.check_shares(shares.iter().map(|(participant, _)| participant))?;
        let Some(package) = self.packages.take(&id) else {
            return Err(SignError::Refused(format!("no signing package for {id:?} here")));
        };
        let mut parsed = BTreeMap::new();
        for (participant, bytes) in shares {
            let share =
                SignatureShare::<Ed25519>::deserialize(bytes).map_err(|_| SignError::malformed(*participant))?;
            parsed.insert(keygen::dkg_identifier::<Ed25519>(*participant), share);
        }
        let (signature, bytes) = sign::aggregate(&package, &parsed, &keys.batch.public)?;
        // Second line of defence: the aggregate verifies under the group key for this Batch.
        keys.batch
            .public
            .verifying_key()
            .verify(&batch_message(&record.batch), &signature)
            .map_err(|e| SignError::Refused(format!("aggregate does not verify: {e}")))?;
        record.signature = Some(bytes);
        BATCHES.set(txn, &batch_id, &record);
        Ok(vec![ProcessorMessage::Scanner(ScannerEvent::SignedBatch { batch: record.batch, signature: bytes })])
    }

    /// Serai acknowledged the Batch: signing is over, and its outputs become spendable.
    pub fn published<D: Db>(
        &mut self,
        txn: &mut Txn<'_, D>,
        batch_id: BatchId,
        retirement_window: u64,
    ) -> Result<(), SignError> {
        let Some(mut record) = BATCHES.get(txn, &batch_id)? else {
            return Err(SignError::Refused(format!("unknown Batch {batch_id}")));
        };
        if record.published {
            return Ok(());
        }
        record.published = true;
        BATCHES.set(txn, &batch_id, &record);
        if let Some(block) = scanner::take_final_block(txn, record.height)? {
            let credited = credited_part(txn, record.height, block, retirement_window)?;
            for output in credited.outputs.into_iter().filter(|o| o.instruction.is_some()) {
                let utxo = Utxo { id: output.id, amount: output.amount, kind: output.kind };
                scheduler::add_output(txn, output.session, utxo)?;
            }
        }
        self.nonces.forget(SignTarget::Batch(batch_id));
        self.packages.forget(SignTarget::Batch(batch_id));
        Ok(())
    }

    fn record<D: Db>(&self, txn: &Txn<'_, D>, id: SignId) -> Result<BatchRecord, SignError> {
        let SignTarget::Batch(batch_id) = id.target else {
            return Err(SignError::refused("not a Batch"));
        };
        let record =
            BATCHES.get(txn, &batch_id)?.ok_or_else(|| SignError::Refused(format!("no Batch {batch_id} here")))?;
        if record.session != id.session {
            return Err(SignError::Refused(format!("Batch {batch_id} is not signed by session {}", id.session)));
        }
        Ok(record)
    }
}
