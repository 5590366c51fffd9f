//! Scanning: turns final blocks into reported deposits, and detects a final block changing.
//!
//! A block is final once `confirmations` blocks are on top of it (tip - height >= confirmations).
//! Blocks are scanned strictly in height order, each checked to build on the previous one. A
//! reorganisation shallower than the confirmation depth never touches a final block, so it is
//! invisible here; a deeper one shows up as a final block whose successor names another parent,
//! and halts scanning for good with a report to the coordinator: nothing is ever reported twice.

use crate::chain::{self, ChainError, ReceivedOutput, ScanKey};
use crate::db::{schema, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, BlockId, ExternalChain};
use crate::keygen;
use crate::messages::{Deposit, ProcessorMessage, ScannerEvent};
use bincode::{Decode, Encode};

/// At most this many final blocks are requested ahead of the scanned height.
pub const MAX_FETCH_AHEAD: u64 = 64;

/// A final block with outputs to the group, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FinalBlock {
    pub id: BlockId,
    pub outputs: Vec<ReceivedOutput>,
}

impl FinalBlock {
    pub fn has_instructions(&self) -> bool {
        self.outputs.iter().any(|output| output.instruction.is_some())
    }
}

/// Why scanning stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Halt {
    pub height: BlockHeight,
    pub reported: BlockId,
    pub found: BlockId,
}

/// What handling one block did.
#[derive(Debug)]
pub enum BlockOutcome {
    /// Not the block awaited, or not final: nothing changed.
    Ignored(&'static str),
    /// The chain source sent bytes that are not a valid block: nothing changed.
    Refused(ChainError),
    /// Scanned and reported.
    Scanned { messages: Vec<ProcessorMessage> },
    /// A final block changed: halted.
    Halted { messages: Vec<ProcessorMessage> },
}

/// Whether block `height` was scanned here (or never will be, scanning having halted).
pub fn scanned_or_halted(reader: &impl Read, height: BlockHeight) -> Result<bool, DbError> {
    if schema::HALTED.get(reader, &())?.is_some() {
        return Ok(true);
    }
    Ok(schema::SCANNER_NEXT.get(reader, &())?.is_some_and(|next| next > height))
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
    if schema::HALTED.get(reader, &())?.is_some() {
        return Ok(vec![]);
    }
    let Some(next) = schema::SCANNER_NEXT.get(reader, &())? else {
        return Ok(vec![]);
    };
    let Some(last_final) = tip.0.checked_sub(confirmations) else {
        return Ok(vec![]);
    };
    let from = match requested_through {
        Some(through) if through.0 >= next.0 => through.0 + 1,
        _ => next.0,
    };
    let to = last_final.min(next.0 + MAX_FETCH_AHEAD - 1);
    Ok((from ..= to).map(BlockHeight).collect())
}

/// Scans block `height` if it is the next final block, in the caller's transaction.
pub fn on_block<D: Db>(
    txn: &mut Txn<'_, D>,
    key_cache: &mut keygen::KeyCache,
    chain: ExternalChain,
    mut confirmations: u64,
    tip: Option<BlockHeight>,
    height: BlockHeight,
    bytes: &[u8],
) -> Result<BlockOutcome, DbError> {
    if crate::mutation::active(crate::mutation::Mutation::ReportBeforeFinal) {
        confirmations = confirmations.saturating_sub(1);
    }
    if schema::HALTED.get(txn, &())?.is_some() {
        return Ok(BlockOutcome::Ignored("scanning is halted"));
    }
    if schema::SCANNER_NEXT.get(txn, &())? != Some(height) {
        return Ok(BlockOutcome::Ignored("not the next block to scan"));
    }
    if !tip.is_some_and(|tip| tip.0.saturating_sub(height.0) >= confirmations) {
        return Ok(BlockOutcome::Ignored("not final"));
    }
    let Some(keys) = key_cache.active(txn)? else {
        return Ok(BlockOutcome::Ignored("no active keys"));
    };
    let scan_keys = [ScanKey { session: keys.session, key: keys.group_keys().chain }];
    let watched = crate::transaction::watched(txn, chain)?;
    let scanned = match chain::scan_block_watching(chain, bytes, &scan_keys, &watched) {
        Ok(scanned) => scanned,
        Err(error) => return Ok(BlockOutcome::Refused(error)),
    };

    if let Some((last_height, last_id)) = schema::LAST_SCANNED.get(txn, &())? {
        assert_eq!(last_height.0 + 1, height.0, "blocks are scanned strictly in order");
        if scanned.parent != last_id {
            let halt = Halt { height: last_height, reported: last_id, found: scanned.parent };
            tracing::error!(
                %chain, height = %last_height, reported = %last_id, found = %scanned.parent,
                "a final block changed (reorganisation deeper than the confirmation depth): scanning halts"
            );
            schema::HALTED.set(txn, &(), &halt);
            let event = ScannerEvent::Halted { height: halt.height, reported: halt.reported, found: halt.found };
            return Ok(BlockOutcome::Halted { messages: vec![ProcessorMessage::Scanner(event)] });
        }
    }

    schema::LAST_SCANNED.set(txn, &(), &(height, scanned.id));
    schema::SCANNER_NEXT.set(txn, &(), &BlockHeight(height.0 + 1));
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
        schema::FINAL_BLOCKS.set(txn, &height, &FinalBlock { id: scanned.id, outputs: scanned.outputs.clone() });
    }
    let event = ScannerEvent::BlockFinal { height, block: scanned.id, deposits };
    let mut messages = vec![ProcessorMessage::Scanner(event)];
    messages.extend(crate::transaction::resolve(txn, chain, height, &scanned)?);
    Ok(BlockOutcome::Scanned { messages })
}
