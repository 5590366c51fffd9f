//! A lying node: what the processor can check of the blocks it is served, it checks; a block
//! that fails is refused, changes nothing and is fetched again (ARCHITECTURE.md, the adversary
//! model). Each test is named after the hole it closes.

mod common;

use bitcoin::block::Header;
use bitcoin::pow::CompactTarget;
use bitcoin::Block;
use common::*;
use coordinator::local::{ChainSource, Faults, LocalNetwork};
use coordinator::Observation;
use mock_chains::bitcoin::MockBitcoin;
use processor_core::chain::bitcoin::{check_proof_of_work, PowError};
use processor_core::chain::ChainError;
use processor_core::core::ProofOfWork;
use processor_core::ids::{BlockHeight, BlockId, ExternalChain};
use processor_core::inspect::Inspector;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;

/// The mock chain, except where a lie is queued: each fetch of a height with lies left gets
/// the next lie instead of the block. Every fetch is logged.
#[derive(Clone)]
struct LyingNode {
    chain: Rc<RefCell<MockBitcoin>>,
    lies: Rc<RefCell<BTreeMap<u64, VecDeque<Vec<u8>>>>>,
    /// Heights whose true block is not served (while their lies run out).
    withheld: Rc<RefCell<Vec<u64>>>,
    fetched: Rc<RefCell<Vec<u64>>>,
}

impl LyingNode {
    fn new(chain: Rc<RefCell<MockBitcoin>>) -> LyingNode {
        LyingNode { chain, lies: Rc::default(), withheld: Rc::default(), fetched: Rc::default() }
    }

    fn lie(&self, height: u64, bytes: Vec<u8>) {
        self.lies.borrow_mut().entry(height).or_default().push_back(bytes);
    }

    fn lies_left(&self) -> usize {
        self.lies.borrow().values().map(VecDeque::len).sum()
    }
}

impl ChainSource for LyingNode {
    fn tip(&self) -> u64 {
        self.chain.borrow().tip_height()
    }
    fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        self.fetched.borrow_mut().push(height);
        if let Some(lie) = self.lies.borrow_mut().get_mut(&height).and_then(VecDeque::pop_front) {
            return Some(lie);
        }
        if self.withheld.borrow().contains(&height) {
            return None;
        }
        self.chain.borrow().block_bytes(height)
    }
    fn publish(&self, transaction: &[u8]) -> Result<(), String> {
        SharedBitcoin(self.chain.clone()).publish(transaction)
    }
}

/// Two processors, 2-of-2, with keys, following `node` and scanned to its final tip; returns
/// the last scanned height.
fn network_on(seed: u64, node: &LyingNode) -> (LocalNetwork, u64) {
    let (mut network, _keys) =
        network_with_keys(2, 2, ExternalChain::Bitcoin, seed, Faults::none(), Box::new(node.clone()), CONFIRMATIONS);
    for _ in 0..=CONFIRMATIONS {
        node.chain.borrow_mut().mine();
    }
    run_for(&mut network, 10_000);
    let last_final = node.chain.borrow().tip_height() - CONFIRMATIONS;
    for index in 0..network.len() {
        let scanned = Inspector::new(network.db(index)).last_scanned().unwrap().map(|tip| tip.height.0);
        assert_eq!(scanned, Some(last_final), "processor {index}");
    }
    (network, last_final)
}

/// `block` with its nonce changed until its hash misses its own target (about every second
/// nonce does at regtest difficulty).
fn without_its_work(block: &Block) -> Block {
    let mut block = block.clone();
    let target = block.header.target();
    while block.header.validate_pow(target).is_ok() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

/// `block` with `bits` and a nonce meeting them.
fn with_bits(block: &Block, bits: u32) -> Block {
    let mut block = block.clone();
    block.header.bits = CompactTarget::from_consensus(bits);
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

fn id_of(header: &Header) -> [u8; 32] {
    use bitcoin::hashes::Hash;
    header.block_hash().to_byte_array()
}

fn halts(network: &LocalNetwork) -> usize {
    network.coordinator().observations().iter().filter(|o| matches!(o, Observation::ChainHalted { .. })).count()
}

/// A chain, a lying node over it, processors following the node, and the next height to scan
/// (already final).
fn lying_network(seed: u64) -> (Rc<RefCell<MockBitcoin>>, LyingNode, LocalNetwork, u64) {
    let (chain, _depositor) = mock_chains::bitcoin::funded_chain(seed, 5);
    let chain = Rc::new(RefCell::new(chain));
    let node = LyingNode::new(chain.clone());
    let (network, scanned) = network_on(seed, &node);
    for _ in 0..=CONFIRMATIONS {
        chain.borrow_mut().mine();
    }
    (chain, node, network, scanned + 1)
}

fn counted(network: &LocalNetwork, counter: impl Fn(&processor_core::core::Counters) -> u64) -> u64 {
    (0..network.len()).map(|index| counter(network.processor(index).counters())).sum()
}

#[test]
fn hole_10_a_block_without_its_proof_of_work_is_refused() {
    let (chain, node, mut network, next) = lying_network(51);
    let scanned = next - 1;
    let block = chain.borrow().block(next).unwrap().clone();

    // Its transactions intact, its header without the work: hash above target, or a target
    // easier than regtest's limit (met by the hash).
    let unworked = without_its_work(&block);
    let too_easy = with_bits(&block, 0x2100_ffff);
    let lies = [bitcoin::consensus::serialize(&unworked), bitcoin::consensus::serialize(&too_easy)];
    for lie in &lies {
        for _ in 0..network.len() {
            node.lie(next, lie.clone());
        }
    }
    // The typed reasons.
    let bits = |block: &Block| block.header.bits.to_consensus();
    assert_eq!(
        check_proof_of_work(&lies[0], &ProofOfWork::REGTEST),
        Err(ChainError::ProofOfWork(PowError::HashAboveTarget { bits: bits(&unworked) }))
    );
    assert_eq!(
        check_proof_of_work(&lies[1], &ProofOfWork::REGTEST),
        Err(ChainError::ProofOfWork(PowError::TargetAboveLimit { bits: 0x2100_ffff, limit_bits: 0x207f_ffff }))
    );
    // A regtest-difficulty block is no block on mainnet, whatever its hash.
    let real = bitcoin::consensus::serialize(&block);
    assert_eq!(check_proof_of_work(&real, &ProofOfWork::REGTEST), Ok(()));
    assert_eq!(
        check_proof_of_work(&real, &ProofOfWork::BITCOIN),
        Err(ChainError::ProofOfWork(PowError::TargetAboveLimit { bits: bits(&block), limit_bits: 0x1d00_ffff }))
    );

    node.withheld.borrow_mut().push(next);
    run_for(&mut network, 10_000);
    assert_eq!(node.lies_left(), 0, "every lie was served");
    assert_eq!(counted(&network, |c| c.refused_blocks), 2 * network.len() as u64, "every lie was refused");
    for index in 0..network.len() {
        let inspector = Inspector::new(network.db(index));
        assert_eq!(inspector.last_scanned().unwrap().unwrap().height, BlockHeight(scanned), "processor {index}");
        assert!(reports_by(&network, index).iter().all(|(height, _, _)| *height < next), "processor {index}");
    }

    // The true block, served at last, is scanned.
    node.withheld.borrow_mut().clear();
    run_for(&mut network, 10_000);
    for index in 0..network.len() {
        let report = reports_by(&network, index).into_iter().find(|(height, _, _)| *height == next);
        assert_eq!(report.map(|(_, id, _)| id), Some(id_of(&block.header)), "processor {index}");
    }
    assert_eq!(halts(&network), 0);
}

/// A valid block at `height` of a chain the node does not follow.
fn block_of_another_chain(height: u64) -> bitcoin::Block {
    let mut fork = MockBitcoin::new(99);
    while fork.tip_height() < height {
        fork.mine();
    }
    fork.block(height).unwrap().clone()
}

#[test]
fn hole_10_a_wrong_parent_is_confirmed_by_refetching_before_halting() {
    let (chain, node, mut network, next) = lying_network(52);
    let scanned = next - 1;

    // The node serves, once per processor, a valid block of another chain as the next one:
    // it names a parent the node's own chain does not have.
    let stray = block_of_another_chain(next);
    assert_ne!(stray.header.prev_blockhash, chain.borrow().block_hash(scanned).unwrap());
    for _ in 0..network.len() {
        node.lie(next, bitcoin::consensus::serialize(&stray));
    }
    let fetched_before = node.fetched.borrow().len();
    run_for(&mut network, 20_000);

    assert_eq!(node.lies_left(), 0);
    assert_eq!(halts(&network), 0, "a halt on one block's word");
    let lies = network.len() as u64;
    assert_eq!(counted(&network, |c| c.parent_rechecks), lies, "each stray block had its parent checked");
    assert_eq!(counted(&network, |c| c.refused_blocks), lies, "each stray block was refused");
    let fetched = node.fetched.borrow()[fetched_before..].to_vec();
    let refetches = fetched.iter().filter(|height| **height == scanned).count();
    assert_eq!(refetches, network.len(), "the scanned height is fetched again once per stray block: {fetched:?}");
    // Consistent blocks scan on.
    let tip = chain.borrow().tip_height();
    for index in 0..network.len() {
        let inspector = Inspector::new(network.db(index));
        assert_eq!(inspector.halted().unwrap(), None, "processor {index}");
        assert_eq!(inspector.parent_doubt().unwrap(), None, "processor {index}");
        assert_eq!(inspector.last_scanned().unwrap().unwrap().height, BlockHeight(tip - CONFIRMATIONS));
        let report = reports_by(&network, index).into_iter().find(|(height, _, _)| *height == next);
        let truth = id_of(&chain.borrow().block(next).unwrap().header);
        assert_eq!(report.map(|(_, id, _)| id), Some(truth), "processor {index}");
    }

    // A reorganisation deeper than the confirmations: confirmed at the re-fetch, every
    // processor halts, and reports it once.
    let last = Inspector::new(network.db(0)).last_scanned().unwrap().unwrap();
    chain.borrow_mut().reorg(usize::try_from(CONFIRMATIONS + 3).unwrap()).unwrap();
    chain.borrow_mut().mine();
    let replaced = id_of(&chain.borrow().block(last.height.0).unwrap().header);
    assert_ne!(replaced, last.id.0);
    run_for(&mut network, 20_000);
    assert_eq!(halts(&network), network.len(), "every processor halts, once");
    for index in 0..network.len() {
        let halt = Inspector::new(network.db(index)).halted().unwrap().unwrap();
        assert_eq!((halt.height, halt.reported, halt.found), (last.height, last.id, BlockId(replaced)));
    }
    assert_eq!(counted(&network, |c| c.parent_rechecks), lies + network.len() as u64);
}

#[test]
fn hole_10_a_block_of_another_height_is_refused_as_the_first_block() {
    let (chain, _depositor) = mock_chains::bitcoin::funded_chain(54, 5);
    let chain = Rc::new(RefCell::new(chain));
    let node = LyingNode::new(chain.clone());
    let (mut network, _keys) =
        network_with_keys(2, 2, ExternalChain::Bitcoin, 54, Faults::none(), Box::new(node.clone()), CONFIRMATIONS);
    let first = Inspector::new(network.db(0)).next_height().unwrap().unwrap().0;
    assert_eq!(Inspector::new(network.db(0)).last_scanned().unwrap(), None, "nothing scanned yet");

    // The first block to scan has no scanned parent to be compared with: the node serves its
    // own valid block of the height above instead, once per processor.
    for _ in 0..=CONFIRMATIONS + 1 {
        chain.borrow_mut().mine();
    }
    let above = chain.borrow().block_bytes(first + 1).unwrap();
    for _ in 0..network.len() {
        node.lie(first, above.clone());
    }
    run_for(&mut network, 20_000);

    assert_eq!(node.lies_left(), 0, "every lie was served");
    assert_eq!(halts(&network), 0, "another height's block was taken for the first block");
    assert_eq!(counted(&network, |c| c.refused_blocks), network.len() as u64, "every lie was refused");
    let truth = id_of(&chain.borrow().block(first).unwrap().header);
    for index in 0..network.len() {
        let report = reports_by(&network, index).into_iter().find(|(height, _, _)| *height == first);
        assert_eq!(report.map(|(_, id, _)| id), Some(truth), "processor {index}");
    }
}

#[test]
fn hole_10_a_block_of_another_height_does_not_settle_a_parent_doubt() {
    let (chain, node, mut network, next) = lying_network(53);
    let scanned = next - 1;

    // A valid block of another chain as the next one makes each processor fetch the scanned
    // height again; there the node serves its own valid block of two heights below: another
    // block, but not one of that height, so no sign that the final block changed.
    let stray = bitcoin::consensus::serialize(&block_of_another_chain(next));
    let older = chain.borrow().block_bytes(scanned - 2).unwrap();
    for _ in 0..network.len() {
        node.lie(next, stray.clone());
        node.lie(scanned, older.clone());
    }
    run_for(&mut network, 20_000);

    assert_eq!(node.lies_left(), 0, "every lie was served");
    assert_eq!(halts(&network), 0, "another height's block halted the chain");
    let processors = network.len() as u64;
    assert_eq!(counted(&network, |c| c.parent_rechecks), processors, "each stray block had its parent checked");
    // Refused: the older block (its height), then the stray block (off the node's chain).
    assert_eq!(counted(&network, |c| c.refused_blocks), 2 * processors);
    let tip = chain.borrow().tip_height();
    for index in 0..network.len() {
        let inspector = Inspector::new(network.db(index));
        assert_eq!(inspector.halted().unwrap(), None, "processor {index}");
        assert_eq!(inspector.parent_doubt().unwrap(), None, "processor {index}");
        assert_eq!(inspector.last_scanned().unwrap().unwrap().height, BlockHeight(tip - CONFIRMATIONS));
    }
}
