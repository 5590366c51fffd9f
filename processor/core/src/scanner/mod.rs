//! Scanning: turns final blocks into reported deposits, and detects a final block changing.
//!
//! A block is final once `confirmations` blocks are on top of it (tip - height >= confirmations).
//! Blocks are scanned strictly in height order, each checked (its proof of work first, then the
//! height it commits to) to build on the previous one. A reorganisation shallower than the confirmation depth never touches a
//! final block, so it is invisible here; a deeper one shows up as a final block whose successor
//! names another parent. A halt is for good, so one block is not believed: the last scanned
//! height is fetched again first. If the node now serves another valid block there, the final
//! block changed and scanning halts for good with a report to the coordinator (nothing is ever
//! reported twice); if it still serves the scanned block, the successor was not on the node's
//! own chain: it is refused and fetched again later.

use crate::chain::{self, ChainError, ReceivedOutput, ScanKey, ScannedBlock, Watched};
use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{Amount, BlockHeight, BlockId, ExternalChain, OutputId};
use crate::keygen;
use crate::messages::{Deposit, OutputKind, ProcessorMessage, ScannerEvent};
use bincode::{Decode, Encode};

/// The smallest deposit credited on `chain`; a deposit below it is neither reported, credited nor
/// ever spent (the group pays nothing to spend what is not worth spending, and a flood of dust
/// costs its sender more than the group). Above it a deposit is credited in full: its spending
/// cost is paid by the payments it funds (see [`crate::scheduler`]).
/// - Bitcoin: 5,000 sat, the cost of spending a Taproot key-path input (58 vB) at 86 sat/vB.
/// - Monero: 0.0001 XMR (10^8 piconero), the cost of spending an input (about 700 weight
///   units) at about 140,000 piconero per weight unit, many times monerod's usual fee.
///
/// The group's own outputs (change, branches, consolidations) are always credited: plans never
/// make them below the dust threshold, and losing them would lose value the group accounted for.
pub const fn minimum_deposit(chain: ExternalChain) -> Amount {
    match chain {
        ExternalChain::Bitcoin => Amount(5_000),
        ExternalChain::Monero => Amount(100_000_000),
    }
}

/// Removes the deposits below the chain's minimum, returning how many there were.
fn drop_deposits_below_minimum(chain: ExternalChain, outputs: &mut Vec<ReceivedOutput>) -> usize {
    if crate::mutation::active(crate::mutation::Mutation::CreditBelowMinimum) {
        return 0;
    }
    let before = outputs.len();
    let minimum = minimum_deposit(chain);
    outputs.retain(|output| output.kind != OutputKind::External || output.amount >= minimum);
    let dropped = before - outputs.len();
    if dropped > 0 {
        tracing::warn!(%chain, dropped, %minimum, "deposits below the minimum are not credited");
    }
    dropped
}

/// At most this many final blocks are requested ahead of the scanned height.
pub const MAX_FETCH_AHEAD: u64 = 64;

tables! {
    /// The next block height to scan (set when the first keys become active).
    SCANNER_NEXT: Table<(), BlockHeight> = b"scan/next/";
    /// The last scanned final block, to check the next one builds on it.
    LAST_SCANNED: Table<(), ScannedTip> = b"scan/last/";
    /// Final blocks with outputs to the group, as reported, until their outputs joined the funds.
    FINAL_BLOCKS: Table<BlockHeight, FinalBlock> = b"scan/final/";
    /// Set when a final block changed: scanning stops for good.
    HALTED: Table<(), Halt> = b"scan/halted/";
    /// Set while the last scanned height is fetched again because the next block named another
    /// parent; cleared by the node's answer for that height.
    PARENT_DOUBT: Table<(), ParentDoubt> = b"scan/parent_doubt/";
    /// Monero: every one-time output key credited, with the output that was: a second output
    /// with the same key (the burning bug) is not credited.
    CREDITED_KEYS: Table<[u8; 32], OutputId> = b"scan/credited_key/";
}

/// Monero's burning bug: two transactions that reuse one transaction key pay the same one-time
/// output key; both outputs scan as received, but only one can ever be spent (one key image).
/// Every output key is remembered when first credited; a later output with a key seen before
/// is dropped from the block (reported to no one, never in the funds), and logged as an error.
pub(crate) fn drop_reused_output_keys<D: Db>(
    txn: &mut Txn<'_, D>,
    outputs: &mut Vec<ReceivedOutput>,
) -> Result<(), DbError> {
    let mut kept = Vec::with_capacity(outputs.len());
    for output in outputs.drain(..) {
        let Some(key) = chain::monero::output_key(&output.spend_data) else {
            tracing::error!(output = %output.id, "a scanned Monero output has no readable key; not credited");
            continue;
        };
        if let Some(first) = CREDITED_KEYS.get(txn, &key)? {
            tracing::error!(
                output = %output.id, first = %first, key = %hex::encode(key),
                "an output reuses the one-time key of an output already credited (the burning bug): not credited"
            );
            continue;
        }
        CREDITED_KEYS.set(txn, &key, &output.id);
        kept.push(output);
    }
    *outputs = kept;
    Ok(())
}

/// The last block scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ScannedTip {
    /// Its height.
    pub height: BlockHeight,
    /// Its id.
    pub id: BlockId,
}

/// Scanning begins at `height` (the first keys' activation height), unless it already began.
pub fn start_at<D: Db>(txn: &mut Txn<'_, D>, height: BlockHeight) -> Result<(), DbError> {
    if SCANNER_NEXT.get(txn, &())?.is_none() {
        SCANNER_NEXT.set(txn, &(), &height);
    }
    Ok(())
}

/// The next height to scan, once scanning began.
pub fn next_height(reader: &impl Read) -> Result<Option<BlockHeight>, DbError> {
    SCANNER_NEXT.get(reader, &())
}

/// The last block scanned, if any.
pub fn last_scanned(reader: &impl Read) -> Result<Option<ScannedTip>, DbError> {
    LAST_SCANNED.get(reader, &())
}

/// Why scanning halted, if it did.
pub fn halted(reader: &impl Read) -> Result<Option<Halt>, DbError> {
    HALTED.get(reader, &())
}

/// The final block at `height` whose outputs have not all joined the funds yet.
pub fn final_block(reader: &impl Read, height: BlockHeight) -> Result<Option<FinalBlock>, DbError> {
    FINAL_BLOCKS.get(reader, &height)
}

/// Whether a final block at or below `through` still holds outputs of `session`'s key that
/// have not joined the funds (a Batch not yet published), or has a Batch `signed_by` says is
/// that session's. Blocks above `through` are not read: what they hold depends on how far
/// this processor scanned, which is not the same everywhere.
pub fn holds_pending<D: Db>(
    txn: &Txn<'_, D>,
    session: crate::ids::SessionId,
    through: BlockHeight,
    signed_by: impl Fn(BlockHeight) -> Result<Option<crate::ids::SessionId>, DbError>,
) -> Result<bool, DbError> {
    let mut after = None;
    loop {
        let page = FINAL_BLOCKS.page(txn, after.as_ref(), 64)?;
        let done = page.len() < 64;
        for (height, block) in &page {
            if *height > through {
                return Ok(false);
            }
            if block.outputs.iter().any(|output| output.session == session) || signed_by(*height)? == Some(session) {
                return Ok(true);
            }
        }
        after = page.last().map(|(height, _)| *height);
        if done {
            return Ok(false);
        }
    }
}

/// Takes the final block at `height` out: all its outputs are joining the funds now.
pub fn take_final_block<D: Db>(txn: &mut Txn<'_, D>, height: BlockHeight) -> Result<Option<FinalBlock>, DbError> {
    FINAL_BLOCKS.take(txn, &height)
}

/// Forgets the final block at `height` (a block without a Batch: its outputs joined the funds
/// when it was acknowledged).
pub fn forget_final_block<D: Db>(txn: &mut Txn<'_, D>, height: BlockHeight) {
    FINAL_BLOCKS.delete(txn, &height);
}

/// A final block with outputs to the group, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FinalBlock {
    /// The block's id.
    pub id: BlockId,
    /// Its outputs to the group, in block order.
    pub outputs: Vec<ReceivedOutput>,
}

impl FinalBlock {
    /// Whether any output carries an InInstruction (then the block has a Batch).
    pub fn has_instructions(&self) -> bool {
        self.outputs.iter().any(|output| output.instruction.is_some())
    }
}

/// Why scanning stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Halt {
    /// The height of the final block that changed.
    pub height: BlockHeight,
    /// The block reported at that height.
    pub reported: BlockId,
    /// The block the chain source serves at that height now (fetched again to confirm the
    /// parent the next block named).
    pub found: BlockId,
}

/// A block named a parent other than the last scanned block; that block's height is being
/// fetched again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ParentDoubt {
    /// The last scanned block: its height is fetched again, its id compared.
    pub scanned: ScannedTip,
    /// The parent the next block named instead.
    pub named: BlockId,
}

/// The block whose parent is being confirmed, if one is.
pub fn parent_doubt(reader: &impl Read) -> Result<Option<ParentDoubt>, DbError> {
    PARENT_DOUBT.get(reader, &())
}

/// What handling one block did.
#[derive(Debug)]
pub enum BlockOutcome {
    /// Not the block awaited, or not final: nothing changed.
    Ignored(&'static str),
    /// The chain source sent bytes that are not a valid block, or a block off its own chain:
    /// nothing changed but a parent doubt being settled.
    Refused(ChainError),
    /// The block named a parent other than the last scanned block: the height below is to be
    /// fetched again before anything is concluded (recorded as a [`ParentDoubt`]).
    Rechecking {
        /// The height to fetch again.
        height: BlockHeight,
    },
    /// Scanned and reported.
    Scanned {
        /// The reports.
        messages: Vec<ProcessorMessage>,
        /// What scanning found, for the caller to resolve the group's plans against.
        block: ScannedBlock,
        /// Deposits to the group below [`minimum_deposit`], not credited.
        below_minimum: usize,
    },
    /// A final block changed: halted.
    Halted {
        /// The halt's report.
        messages: Vec<ProcessorMessage>,
    },
}

/// Whether block `height` was scanned here (or never will be, scanning having halted).
pub fn scanned_or_halted(reader: &impl Read, height: BlockHeight) -> Result<bool, DbError> {
    if HALTED.get(reader, &())?.is_some() {
        return Ok(true);
    }
    Ok(SCANNER_NEXT.get(reader, &())?.is_some_and(|next| next > height))
}

/// The heights to fetch next, given the chain tip: final, not yet scanned, bounded.
pub fn heights_to_fetch(
    reader: &impl Read,
    tip: BlockHeight,
    mut confirmations: u64,
    requested_through: Option<BlockHeight>,
) -> Result<Vec<BlockHeight>, DbError> {
    if crate::mutation::active(crate::mutation::Mutation::ReportBeforeFinal) {
        confirmations = confirmations.saturating_sub(1);
    }
    if HALTED.get(reader, &())?.is_some() {
        return Ok(vec![]);
    }
    let Some(next) = SCANNER_NEXT.get(reader, &())? else {
        return Ok(vec![]);
    };
    // While a parent is doubted only the height below it is wanted, once per request round.
    if let Some(doubt) = PARENT_DOUBT.get(reader, &())? {
        let height = doubt.scanned.height;
        return Ok(if requested_through == Some(height) { vec![] } else { vec![height] });
    }
    let Some(last_final) = tip.0.checked_sub(confirmations) else {
        return Ok(vec![]);
    };
    let from = match requested_through {
        Some(through) if through.0 >= next.0 => through.0 + 1,
        _ => next.0,
    };
    let to = last_final.min(next.0 + MAX_FETCH_AHEAD - 1);
    Ok((from..=to).map(BlockHeight).collect())
}

/// The chain as a processor sees it when a block arrives.
#[derive(Clone, Copy, Debug)]
pub struct ChainView {
    /// The chain served.
    pub chain: ExternalChain,
    /// Blocks on top of a block before it is final.
    pub confirmations: u64,
    /// The chain source's best height, once known.
    pub tip: Option<BlockHeight>,
    /// What a Bitcoin-family block's header must prove.
    pub proof_of_work: chain::bitcoin::ProofOfWork,
}

/// Scans block `height` if it is the next final block, in the caller's transaction.
pub fn on_block<D: Db>(
    txn: &mut Txn<'_, D>,
    view: ChainView,
    height: BlockHeight,
    bytes: &[u8],
    watched: impl FnOnce(&Txn<'_, D>) -> Result<Watched, DbError>,
) -> Result<BlockOutcome, DbError> {
    let ChainView { chain, mut confirmations, tip, proof_of_work } = view;
    if crate::mutation::active(crate::mutation::Mutation::ReportBeforeFinal) {
        confirmations = confirmations.saturating_sub(1);
    }
    if HALTED.get(txn, &())?.is_some() {
        return Ok(BlockOutcome::Ignored("scanning is halted"));
    }
    if let Some(doubt) = PARENT_DOUBT.get(txn, &())? {
        if doubt.scanned.height != height {
            return Ok(BlockOutcome::Ignored("the last scanned block is being fetched again"));
        }
        return settle_doubt(txn, chain, &proof_of_work, doubt, bytes);
    }
    if SCANNER_NEXT.get(txn, &())? != Some(height) {
        return Ok(BlockOutcome::Ignored("not the next block to scan"));
    }
    if tip.is_none_or(|tip| tip.0.saturating_sub(height.0) < confirmations) {
        return Ok(BlockOutcome::Ignored("not final"));
    }
    // Every live key from its activation, and a retired key until the next key's activation
    // (see `keygen::stage`): a function of the height alone, so every processor finds the
    // same outputs in the block whenever it scans it.
    let scan_keys: Vec<ScanKey> = keygen::stage::scanned_at(txn, height)?
        .into_iter()
        .map(|(session, keys)| ScanKey { session, key: keys.chain })
        .collect();
    if scan_keys.is_empty() {
        return Ok(BlockOutcome::Ignored("no active keys"));
    }
    if let Err(error) = chain::check_header(chain, bytes, &proof_of_work) {
        return Ok(BlockOutcome::Refused(error));
    }
    let watched = watched(txn)?;
    let mut scanned = match chain::scan_block_watching(chain, bytes, &scan_keys, &watched) {
        Ok(scanned) => scanned,
        Err(error) => return Ok(BlockOutcome::Refused(error)),
    };
    // Another height's block would otherwise pass for this one where no parent is compared:
    // the first block scanned.
    if scanned.height != Some(height) {
        return Ok(BlockOutcome::Refused(ChainError::WrongHeight { asked: height, committed: scanned.height }));
    }

    if let Some(last) = LAST_SCANNED.get(txn, &())? {
        assert_eq!(last.height.0 + 1, height.0, "blocks are scanned strictly in order");
        if scanned.parent != last.id {
            // One block naming another parent may be the node's mistake, and a halt is for good.
            tracing::warn!(
                %chain, %height, named = %scanned.parent, scanned = %last.id,
                "a block names a parent other than the block scanned below it: fetching that height again"
            );
            PARENT_DOUBT.set(txn, &(), &ParentDoubt { scanned: last, named: scanned.parent });
            return Ok(BlockOutcome::Rechecking { height: last.height });
        }
    }

    let below_minimum = drop_deposits_below_minimum(chain, &mut scanned.outputs);
    if chain == ExternalChain::Monero && !crate::mutation::active(crate::mutation::Mutation::NoOutputKeyCheck) {
        drop_reused_output_keys(txn, &mut scanned.outputs)?;
    }
    LAST_SCANNED.set(txn, &(), &ScannedTip { height, id: scanned.id });
    SCANNER_NEXT.set(txn, &(), &BlockHeight(height.0 + 1));
    keygen::stage::forget_finished_scans(txn, BlockHeight(height.0 + 1))?;
    let deposits: Vec<Deposit> = scanned
        .outputs
        .iter()
        .map(|output| Deposit {
            output_id: output.id.clone(),
            amount: output.amount,
            instruction: output.instruction.clone(),
            kind: output.kind,
        })
        .collect();
    // Outputs join the group's funds only when the coordinator acknowledges the block (and,
    // for those with InInstructions, publishes its Batch): at the same point of the command
    // stream at every processor, so every processor schedules alike.
    if !scanned.outputs.is_empty() {
        FINAL_BLOCKS.set(txn, &height, &FinalBlock { id: scanned.id, outputs: scanned.outputs.clone() });
    }
    let event = ScannerEvent::BlockFinal { height, block: scanned.id, deposits };
    Ok(BlockOutcome::Scanned { messages: vec![ProcessorMessage::Scanner(event)], block: scanned, below_minimum })
}

/// The node's answer for a doubted height: another valid block there confirms the final block
/// changed (halt); the scanned block again means the successor was off the node's own chain
/// (refused, to be fetched again). A block that fails its checks settles nothing.
fn settle_doubt<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    proof_of_work: &chain::bitcoin::ProofOfWork,
    doubt: ParentDoubt,
    bytes: &[u8],
) -> Result<BlockOutcome, DbError> {
    let checked = chain::check_header(chain, bytes, proof_of_work).and_then(|()| chain::scan_block(chain, bytes, &[]));
    let block = match checked {
        Ok(block) => block,
        Err(error) => return Ok(BlockOutcome::Refused(error)),
    };
    // Another height's block is no other block at this height: it must not halt the chain.
    if block.height != Some(doubt.scanned.height) {
        let error = ChainError::WrongHeight { asked: doubt.scanned.height, committed: block.height };
        return Ok(BlockOutcome::Refused(error));
    }
    PARENT_DOUBT.delete(txn, &());
    let ParentDoubt { scanned, named } = doubt;
    if block.id == scanned.id {
        let error = ChainError::OffTheNodesChain { height: BlockHeight(scanned.height.0 + 1), named, kept: scanned.id };
        return Ok(BlockOutcome::Refused(error));
    }
    Ok(halt(txn, chain, Halt { height: scanned.height, reported: scanned.id, found: block.id }))
}

/// Halts scanning for good, with the report to the coordinator.
fn halt<D: Db>(txn: &mut Txn<'_, D>, chain: ExternalChain, halt: Halt) -> BlockOutcome {
    tracing::error!(
        %chain, height = %halt.height, reported = %halt.reported, found = %halt.found,
        "a final block changed (reorganisation deeper than the confirmation depth): scanning halts"
    );
    HALTED.set(txn, &(), &halt);
    let event = ScannerEvent::Halted { height: halt.height, reported: halt.reported, found: halt.found };
    BlockOutcome::Halted { messages: vec![ProcessorMessage::Scanner(event)] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::monero::{group_address, MoneroBlockData};
    use crate::db::MemDb;
    use crate::ids::SessionId;
    use crate::messages::ChainPublicKey;
    use mock_chains::monero::{Depositor, MockMonero, MoneroConfig};

    /// What a block is checked against besides its parent: the height it commits to (BIP34's
    /// coinbase height, from OP_0 and OP_1..OP_16 up; Monero's miner input).
    #[test]
    fn blocks_commit_to_their_heights() {
        let mut bitcoin = mock_chains::bitcoin::MockBitcoin::new(5);
        let mut monero = MockMonero::with_config(5, MoneroConfig { coinbase_lock: 1, ..MoneroConfig::default() });
        for _ in 0..20 {
            bitcoin.mine();
            monero.mine();
        }
        for height in 0..=20u64 {
            let bytes = bitcoin.block_bytes(height).unwrap();
            let scanned = chain::scan_block(ExternalChain::Bitcoin, &bytes, &[]).unwrap();
            assert_eq!(scanned.height, Some(BlockHeight(height)), "Bitcoin block {height}");
            let at = usize::try_from(height).unwrap();
            let first = monero.scannable_block_at(at).unwrap().output_index_for_first_ringct_output;
            let bytes = MoneroBlockData::new(monero.block(at).unwrap(), &monero.transactions(at)[1..], first).encode();
            let scanned = chain::scan_block(ExternalChain::Monero, &bytes, &[]).unwrap();
            assert_eq!(scanned.height, Some(BlockHeight(height)), "Monero block {height}");
        }
        // A block of version 1 commits to no height.
        let mut block = bitcoin.block(17).unwrap().clone();
        block.header.version = bitcoin::block::Version::ONE;
        assert_eq!(chain::bitcoin::coinbase_height(&block), None);
    }

    /// Monero's burning bug (hole 1 of the hostile-inputs review): a second output paying an
    /// already credited one-time key is not credited, in the same block or a later one.
    #[test]
    fn an_output_reusing_a_credited_one_time_key_is_not_credited() {
        // The Ed25519 basepoint: a valid group spend key.
        let mut spend_key = [0x66; 32];
        spend_key[0] = 0x58;
        let mut chain = MockMonero::with_config(71, MoneroConfig { coinbase_lock: 1, ..MoneroConfig::default() });
        let mut depositor = Depositor::new(71);
        for _ in 0..14 {
            chain.mine_to(&depositor.address());
        }
        let group = group_address(&spend_key, monero_wallet::address::Network::Mainnet).unwrap();
        let deposit = depositor.deposit(&chain, &group, 5_000_000_000, None).unwrap();
        chain.submit(deposit).unwrap();
        chain.mine();
        let height = chain.tip_height();
        let bytes = MoneroBlockData::new(
            chain.block(height).unwrap(),
            &chain.transactions(height)[1..],
            chain.scannable_block_at(height).unwrap().output_index_for_first_ringct_output,
        )
        .encode();
        let keys = [ScanKey { session: SessionId(1), key: ChainPublicKey::Monero { spend_key } }];
        let scanned = chain::scan_block(ExternalChain::Monero, &bytes, &keys).unwrap();
        assert_eq!(scanned.outputs.len(), 1);
        let real = scanned.outputs[0].clone();
        // What a reused transaction key yields: another output (another id) with the same key.
        let mut twin = real.clone();
        twin.id = OutputId([7; 40].to_vec());

        let db = MemDb::new();
        let mut txn = db.txn();
        let mut outputs = vec![real.clone(), twin.clone()];
        drop_reused_output_keys(&mut txn, &mut outputs).unwrap();
        assert_eq!(outputs, vec![real.clone()], "both outputs of one key were credited");
        // In a later block too, and the first credit is not undone.
        let mut later = vec![twin];
        drop_reused_output_keys(&mut txn, &mut later).unwrap();
        assert!(later.is_empty());
        let mut again = vec![real];
        drop_reused_output_keys(&mut txn, &mut again).unwrap();
        assert!(again.is_empty(), "an output is credited once");
    }
}
