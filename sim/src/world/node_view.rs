//! Each processor's own node: the chain source a processor reads, as in production, where its
//! node may be behind, stalled, lying or on a stale fork. The processor trusts its node only for
//! what it cannot check (`ARCHITECTURE.md`, "The adversary model"): which chain is best and its
//! tip. These faults test that it checks the rest (a corrupted block is refused and fetched
//! again) and waits out the rest (a node behind or stalled only delays it; a stale fork no
//! deeper than the confirmations never reaches a final block).
//!
//! Faults are drawn from the seed per processor and stop when the quiet phase starts: every
//! node is then in sync and truthful.

use super::chain::{ReplacedBlocks, SimChain};
use super::{lock, Shared};
use crate::Invariant;
use processor_core::core::{BlockStatus, Counters, Event, Outcome};
use processor_core::ids::ExternalChain;
use processor_core::inspect::Inspector;
use processor_core::transaction::monero::DecoyRequest;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The most blocks a node falls behind the best chain.
pub const MAX_LAG: u64 = 6;
/// The longest a node stays behind, stalled or on a stale fork (simulated ms).
const LAG_FOR_MS: u64 = 3_000;
const STALL_FOR_MS: u64 = 2_000;
const STALE_FOR_MS: u64 = 3_000;
/// Corrupted blocks served and not yet handled, kept per node (a crash loses what was queued).
const MAX_PENDING_LIES: usize = 64;

/// What a node serves.
#[derive(Clone, Debug)]
enum NodeState {
    /// The best chain.
    Synced,
    /// The best chain up to `height`, which catches up unevenly; it starts below what the node
    /// may have reported before (the processor failed over to a node further behind).
    Behind { height: u64, until_ms: u64 },
    /// Nothing at all.
    Stalled { until_ms: u64 },
    /// The blocks a shallow reorganisation replaced, with the tip they had, until it switches.
    Stale { replaced: Arc<ReplacedBlocks>, until_ms: u64 },
}

/// How a node corrupted a block. Each is something a processor can tell from the bytes it was
/// served and the blocks it scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Garbage {
    /// Cut short.
    Truncated,
    /// A bit of a transaction flipped (Monero: or a transaction the block does not list).
    TransactionsAltered,
    /// The block of another height, served as this one.
    OtherHeight,
    /// The header names another parent (Bitcoin: with its proof of work redone). Served only
    /// where the processor scanned the block below, so the parent check can tell.
    WrongParent,
    /// Bitcoin: the header's merkle root changed, its proof of work redone.
    BrokenMerkleRoot,
    /// Bitcoin: a header whose hash misses its target.
    InsufficientWork,
}

/// One processor's node.
struct NodeView {
    state: NodeState,
    /// Corrupted blocks served and not yet handled: (height, digest of the bytes) and how.
    lies: BTreeMap<(u64, [u8; 32]), Garbage>,
}

/// Every processor's node, and whether faults have stopped.
pub(super) struct NodeViews {
    nodes: Vec<NodeView>,
    quiet: bool,
}

impl NodeViews {
    pub fn new(processors: usize) -> NodeViews {
        let nodes = (0..processors).map(|_| NodeView { state: NodeState::Synced, lies: BTreeMap::new() }).collect();
        NodeViews { nodes, quiet: false }
    }
}

/// A block a processor is about to handle: where it was served, and whether it is a lie.
pub(super) struct ServedBlock {
    height: u64,
    lie: Option<Garbage>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// One block interval of node faults: states expire, nodes behind catch up a little, nodes in
/// sync may fall behind or stall, and after a shallow reorganisation some stay on the replaced
/// blocks.
pub(super) fn step(shared: &Shared) {
    let Some(chain) = &shared.chain else { return };
    let scenario = &shared.scenario;
    let now = shared.elapsed_ms();
    let mut views = lock(&shared.node_views);
    if views.quiet {
        return;
    }
    let (tip, replaced) = {
        let mut chain = lock(chain);
        (chain.tip(), chain.take_replaced().map(Arc::new))
    };
    for (index, node) in views.nodes.iter_mut().enumerate() {
        let expired = match &node.state {
            NodeState::Synced => false,
            NodeState::Behind { until_ms, .. }
            | NodeState::Stalled { until_ms }
            | NodeState::Stale { until_ms, .. } => now >= *until_ms,
        };
        if expired {
            node.state = NodeState::Synced;
            shared.record(format!("node {index}: in sync again"));
        }
        if let NodeState::Behind { height, .. } = &mut node.state {
            // The best chain grows a block per interval; the node 0 to 2.
            *height = (*height + shared.random_below(3)).min(tip).max(tip.saturating_sub(MAX_LAG));
        }
        if !matches!(node.state, NodeState::Synced) {
            continue;
        }
        if let Some(replaced) = &replaced {
            if shared.roll(scenario.node_stale_per_mille) {
                let until_ms = now + 1 + shared.random_below(STALE_FOR_MS);
                shared.record(format!(
                    "node {index}: stays on the replaced blocks from height {} (tip {}) until {until_ms} ms",
                    replaced.first_height,
                    replaced.tip()
                ));
                node.state = NodeState::Stale { replaced: replaced.clone(), until_ms };
                lock(&shared.faults).stale_nodes += 1;
                continue;
            }
        }
        if shared.roll(scenario.node_lag_per_mille) {
            let height = tip.saturating_sub(1 + shared.random_below(MAX_LAG));
            let until_ms = now + 1 + shared.random_below(LAG_FOR_MS);
            shared.record(format!("node {index}: falls behind to height {height} until {until_ms} ms"));
            node.state = NodeState::Behind { height, until_ms };
            lock(&shared.faults).node_lags += 1;
        } else if shared.roll(scenario.node_stall_per_mille) {
            let until_ms = now + 1 + shared.random_below(STALL_FOR_MS);
            shared.record(format!("node {index}: stops answering until {until_ms} ms"));
            node.state = NodeState::Stalled { until_ms };
            lock(&shared.faults).node_stalls += 1;
        }
    }
}

/// A reorganisation deeper than the confirmations: nodes on a stale fork switch to the best
/// chain (a stale fork is only ever a shallow one's).
pub(super) fn deep_reorg(shared: &Shared) {
    let mut views = lock(&shared.node_views);
    for node in &mut views.nodes {
        if matches!(node.state, NodeState::Stale { .. }) {
            node.state = NodeState::Synced;
        }
    }
}

/// The quiet phase: every node catches up and tells the truth from now on.
pub(super) fn quiet(shared: &Shared) {
    let mut views = lock(&shared.node_views);
    views.quiet = true;
    for node in &mut views.nodes {
        node.state = NodeState::Synced;
    }
}

/// A processor (re)starts: what its previous incarnation was served is gone.
pub(super) fn processor_started(shared: &Shared, index: usize) {
    lock(&shared.node_views).nodes[index].lies.clear();
}

/// The tip processor `index`'s node reports, if it answers.
pub(super) fn tip(shared: &Shared, index: usize) -> Option<u64> {
    let chain = shared.chain.as_ref()?;
    let views = lock(&shared.node_views);
    match &views.nodes[index].state {
        NodeState::Synced => Some(lock(chain).tip()),
        NodeState::Behind { height, .. } => Some(*height),
        NodeState::Stalled { .. } => None,
        NodeState::Stale { replaced, .. } => Some(replaced.tip()),
    }
}

/// The block at `height` as the node serves it, if it answers.
fn served_block(state: &NodeState, chain: &SimChain, height: u64) -> Option<Vec<u8>> {
    match state {
        NodeState::Synced => chain.block_bytes(height),
        NodeState::Behind { height: tip, .. } => (height <= *tip).then(|| chain.block_bytes(height)).flatten(),
        NodeState::Stalled { .. } => None,
        NodeState::Stale { replaced, .. } => match height.checked_sub(replaced.first_height) {
            Some(offset) => replaced.blocks.get(usize::try_from(offset).ok()?).cloned(),
            None => chain.block_bytes(height),
        },
    }
}

fn node_tip(state: &NodeState, chain: &SimChain) -> u64 {
    match state {
        NodeState::Synced | NodeState::Stalled { .. } => chain.tip(),
        NodeState::Behind { height, .. } => *height,
        NodeState::Stale { replaced, .. } => replaced.tip(),
    }
}

/// Processor `index` asks its node for the block at `height`: the bytes it gets, if any
/// (sometimes corrupted).
pub(super) fn fetch_block(shared: &Shared, index: usize, height: u64) -> Option<Vec<u8>> {
    let chain = shared.chain.as_ref()?;
    let mut views = lock(&shared.node_views);
    let quiet = views.quiet;
    let node = &mut views.nodes[index];
    let chain = lock(chain);
    let bytes = served_block(&node.state, &chain, height)?;
    if quiet || !shared.roll(shared.scenario.node_garbage_per_mille) {
        return Some(bytes);
    }
    let parent_checked = parent_checked(shared, index, height);
    let (garbage, kind) = corrupt(shared, &node.state, &chain, height, bytes, parent_checked);
    shared.record(format!("node {index}: serves a corrupted block at height {height} ({kind:?})"));
    lock(&shared.faults).garbage_blocks += 1;
    if node.lies.len() >= MAX_PENDING_LIES {
        node.lies.pop_first();
    }
    node.lies.insert((height, digest(&garbage)), kind);
    Some(garbage)
}

/// Whether the processor will check the parent of a block at `height` against a block it
/// scanned: a wrong parent is a lie it can tell only then (at the first block it scans, or at a
/// height fetched again to settle a doubt, another parent is what a real fork looks like).
fn parent_checked(shared: &Shared, index: usize, height: u64) -> bool {
    let inspector = Inspector::new(&shared.dbs[index]);
    let doubt = inspector.parent_doubt().ok().flatten();
    let next = inspector.next_height().ok().flatten();
    let scanned = inspector.last_scanned().ok().flatten();
    doubt.is_none() && next.is_some_and(|next| height > next.0 || (height == next.0 && scanned.is_some()))
}

/// Corrupts `bytes`, the block at `height` of the node's chain, in one of the ways a processor
/// can tell.
fn corrupt(
    shared: &Shared,
    state: &NodeState,
    chain: &SimChain,
    height: u64,
    bytes: Vec<u8>,
    parent_checked: bool,
) -> (Vec<u8>, Garbage) {
    let kinds: &[Garbage] = match shared.chain_kind {
        ExternalChain::Bitcoin => &[
            Garbage::Truncated,
            Garbage::TransactionsAltered,
            Garbage::OtherHeight,
            Garbage::WrongParent,
            Garbage::BrokenMerkleRoot,
            Garbage::InsufficientWork,
        ],
        ExternalChain::Monero => {
            &[Garbage::Truncated, Garbage::TransactionsAltered, Garbage::OtherHeight, Garbage::WrongParent]
        }
    };
    let mut kind = kinds[shared.random_below(kinds.len() as u64) as usize];
    if kind == Garbage::WrongParent && !parent_checked {
        kind = Garbage::TransactionsAltered;
    }
    let corrupted = match kind {
        Garbage::Truncated => None,
        Garbage::TransactionsAltered => alter_transactions(shared, &bytes),
        Garbage::OtherHeight => {
            let tip = node_tip(state, chain);
            let distance = 1 + shared.random_below(3);
            let other = if shared.roll(500) { height.checked_sub(distance) } else { Some(height + distance) };
            other.filter(|other| (1..=tip).contains(other)).and_then(|other| served_block(state, chain, other))
        }
        Garbage::WrongParent | Garbage::BrokenMerkleRoot | Garbage::InsufficientWork => {
            alter_header(shared, kind, &bytes)
        }
    };
    match corrupted {
        Some(corrupted) => (corrupted, kind),
        // Nothing else to corrupt here: cut it short instead.
        None => {
            let keep = shared.random_below(bytes.len() as u64) as usize;
            (bytes[..keep].to_vec(), Garbage::Truncated)
        }
    }
}

fn random_hash(shared: &Shared) -> [u8; 32] {
    let mut hash = [0u8; 32];
    for chunk in hash.chunks_mut(8) {
        chunk.copy_from_slice(&shared.random_below(u64::MAX).to_le_bytes());
    }
    hash
}

/// Bitcoin: a bit of the transactions flipped (the merkle root or the witness commitment no
/// longer matches, or the bytes no longer decode). Monero: a bit of a transaction flipped, or a
/// transaction added that the block does not list.
fn alter_transactions(shared: &Shared, bytes: &[u8]) -> Option<Vec<u8>> {
    const HEADER: usize = 80;
    match shared.chain_kind {
        ExternalChain::Bitcoin => {
            let span = bytes.len().checked_sub(HEADER).filter(|span| *span > 0)?;
            let mut bytes = bytes.to_vec();
            let bit = shared.random_below(span as u64 * 8) as usize;
            bytes[HEADER + bit / 8] ^= 1 << (bit % 8);
            Some(bytes)
        }
        ExternalChain::Monero => {
            use processor_core::chain::monero::MoneroBlockData;
            let mut data: MoneroBlockData = processor_core::messages::decode(bytes).ok()?;
            let count = data.transactions.len() as u64;
            match data.transactions.get_mut(shared.random_below(count) as usize) {
                Some(transaction) if !transaction.is_empty() => {
                    let bit = shared.random_below(transaction.len() as u64 * 8) as usize;
                    transaction[bit / 8] ^= 1 << (bit % 8);
                }
                _ => data.transactions.push(random_hash(shared).to_vec()),
            }
            Some(data.encode())
        }
    }
}

/// A header changed: another parent (Bitcoin: its proof of work redone, Monero has none to
/// redo), another merkle root with its proof of work redone, or a nonce missing the target.
fn alter_header(shared: &Shared, kind: Garbage, bytes: &[u8]) -> Option<Vec<u8>> {
    use bitcoin::hashes::Hash;
    match shared.chain_kind {
        ExternalChain::Bitcoin => {
            let mut block: bitcoin::Block = bitcoin::consensus::deserialize(bytes).ok()?;
            let header = &mut block.header;
            match kind {
                Garbage::WrongParent => {
                    header.prev_blockhash = bitcoin::BlockHash::from_byte_array(random_hash(shared))
                }
                Garbage::BrokenMerkleRoot => {
                    header.merkle_root = bitcoin::TxMerkleNode::from_byte_array(random_hash(shared))
                }
                _ => {}
            }
            // Regtest's target is met by about every second hash: a few nonces find either.
            let wanted = kind != Garbage::InsufficientWork;
            let found = (0..256).any(|_| {
                header.nonce = header.nonce.wrapping_add(1);
                header.validate_pow(header.target()).is_ok() == wanted
            });
            found.then(|| bitcoin::consensus::serialize(&block))
        }
        ExternalChain::Monero => {
            use processor_core::chain::monero::MoneroBlockData;
            if kind != Garbage::WrongParent {
                return None;
            }
            let mut data: MoneroBlockData = processor_core::messages::decode(bytes).ok()?;
            let mut block = monero_wallet::block::Block::read(&mut data.block.as_slice()).ok()?;
            block.header.previous = random_hash(shared);
            data.block = block.serialize();
            Some(data.encode())
        }
    }
}

/// Before processor `index` handles `event`: the block it is, if it is one.
pub(super) fn served(shared: &Shared, index: usize, event: &Event) -> Option<ServedBlock> {
    let Event::Block { height, bytes } = event else { return None };
    let lie = lock(&shared.node_views).nodes[index].lies.remove(&(height.0, digest(bytes)));
    Some(ServedBlock { height: height.0, lie })
}

/// After processor `index` handled a block: a corrupted one must have been refused or set
/// aside (its parent rechecked), never scanned and never a halt; refusals are recorded.
pub(super) fn handled(shared: &Shared, index: usize, served: ServedBlock, outcome: &Outcome, counters: &Counters) {
    let Some(status) = outcome.block else { return };
    let ServedBlock { height, lie } = served;
    if status == BlockStatus::Refused {
        lock(&shared.faults).blocks_refused += 1;
    }
    match lie {
        Some(kind) if matches!(status, BlockStatus::Scanned | BlockStatus::Halted) => shared.violate(
            Invariant::CorruptedBlockRefused,
            format!("processor {index} took a corrupted block at height {height} ({kind:?}): {status:?}"),
        ),
        Some(kind) => shared.record(format!(
            "processor {index}: corrupted block at height {height} ({kind:?}) {status:?} ({} refused, {} parent \
             rechecks so far)",
            counters.refused_blocks, counters.parent_rechecks
        )),
        None if matches!(status, BlockStatus::Refused | BlockStatus::Rechecking) => shared.record(format!(
            "processor {index}: block at height {height} {status:?} ({} refused, {} parent rechecks so far)",
            counters.refused_blocks, counters.parent_rechecks
        )),
        None => {}
    }
}

/// Processor `index` asks its node for a Monero plan's rings: the node selects them from its
/// own chain, so a node behind the decoy height cannot answer yet (the processor asks again).
pub(super) fn select_decoys(
    shared: &Shared,
    index: usize,
    request: &DecoyRequest,
) -> Option<Result<Vec<Vec<u8>>, String>> {
    let chain = shared.chain.as_ref()?;
    let views = lock(&shared.node_views);
    let chain = lock(chain);
    let tip = match &views.nodes[index].state {
        NodeState::Stalled { .. } => {
            lock(&shared.faults).rings_unanswered += 1;
            return Some(Err("the node does not answer".into()));
        }
        // Below the replaced blocks its chain is the best chain; above, this harness does not
        // keep their outputs, so the node knows only what lies below.
        NodeState::Stale { replaced, .. } => replaced.first_height.saturating_sub(1),
        state => node_tip(state, &chain),
    };
    let rings = chain.select_decoys_as_of(request, tip);
    if rings.is_err() {
        lock(&shared.faults).rings_unanswered += 1;
    }
    Some(rings)
}

/// Processor `index` hands its node a signed transaction; `None` if the node does not answer
/// (the processor publishes it again later).
pub(super) fn publish(shared: &Shared, index: usize, transaction: &[u8]) -> Option<Result<(), super::chain::Refusal>> {
    let chain = shared.chain.as_ref()?;
    if matches!(lock(&shared.node_views).nodes[index].state, NodeState::Stalled { .. }) {
        return None;
    }
    Some(lock(chain).publish(transaction))
}

/// Watches what processor `index` sends for block reports: whatever its node showed it, a
/// processor reports only blocks of the best chain with the confirmations on top.
pub(super) fn observe_report(shared: &Shared, index: usize, bytes: &[u8]) {
    use processor_core::messages::{decode, Envelope, Frame, ProcessorMessage, ScannerEvent, SignedEnvelope};
    // The processor's own bytes: decoded without checking the signature, which is not the point.
    let Ok(signed) = decode::<SignedEnvelope>(bytes) else { return };
    let Ok(envelope) = decode::<Envelope<ProcessorMessage>>(&signed.envelope) else { return };
    let Frame::Data { message: ProcessorMessage::Scanner(ScannerEvent::BlockFinal { height, block, .. }), .. } =
        envelope.frame
    else {
        return;
    };
    // A reorganisation deeper than the confirmations replaces final blocks by design.
    if shared.deep_reorg_done() {
        return;
    }
    let Some(chain) = &shared.chain else { return };
    let (best, tip) = {
        let chain = lock(chain);
        (chain.block_id(height.0), chain.tip())
    };
    if best != Some(block.0) || tip < height.0 + shared.scenario.confirmations {
        shared.violate(
            Invariant::ReportedBlockIsFinal,
            format!(
                "processor {index} reported block {block} at height {height}; the best chain has {} there, tip {tip}",
                best.map_or("nothing".into(), hex::encode)
            ),
        );
    }
}
