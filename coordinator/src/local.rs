//! One coordinator and several processor cores in one process, with a seeded, faulty network:
//! every message is delayed by a random amount (so delivery is reordered), and may be
//! duplicated or dropped; processors may crash and restart from their committed DB. Time is
//! virtual. The same seed gives the same run.

use crate::{Coordinator, Outbound};
use processor_core::core::{Config, Effect, Event, Processor, ProofOfWork};
use processor_core::crypto::Identity;
use processor_core::db::MemDb;
use processor_core::ids::{BlockHeight, ExternalChain, Millis, PeerKey, SessionId};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;

/// Virtual time between ticks (retransmissions, crash rolls).
pub const TICK_MS: u64 = 100;

/// What the network does to messages and processors. Rates are per mille.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Each delivery takes 1..=max_delay_ms.
    pub max_delay_ms: u64,
    pub duplicate_per_mille: u32,
    pub drop_per_mille: u32,
    /// Chance per processor per tick of a crash and restart from its DB.
    pub crash_per_mille: u32,
}

impl Faults {
    /// Prompt, exactly-once delivery: still reordered by the per-message delay.
    pub fn none() -> Faults {
        Faults { max_delay_ms: 10, duplicate_per_mille: 0, drop_per_mille: 0, crash_per_mille: 0 }
    }
    /// Shuffled, delayed, duplicated and dropped delivery.
    pub fn unreliable() -> Faults {
        Faults { max_delay_ms: 400, duplicate_per_mille: 150, drop_per_mille: 100, crash_per_mille: 0 }
    }
    /// Unreliable delivery and processors that crash.
    pub fn crashing() -> Faults {
        Faults { crash_per_mille: 30, ..Faults::unreliable() }
    }
}

#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct NetworkStats {
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    /// Transactions handed to the chain source and accepted, or refused (already known,
    /// already spent...).
    pub published: u64,
    pub publish_refused: u64,
}

pub use processor_core::chain::ChainSource;

/// A mock Bitcoin chain shared between the network (which reads it) and its driver (which
/// mines, deposits and reorganises).
#[derive(Clone)]
pub struct SharedBitcoin(pub std::rc::Rc<std::cell::RefCell<mock_chains::bitcoin::MockBitcoin>>);

impl ChainSource for SharedBitcoin {
    fn tip(&self) -> u64 {
        self.0.borrow().tip_height()
    }
    fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        self.0.borrow().block_bytes(height)
    }
    fn publish(&self, transaction: &[u8]) -> Result<(), String> {
        let transaction = bitcoin::consensus::deserialize(transaction).map_err(|e| e.to_string())?;
        self.0.borrow_mut().submit(transaction).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// A mock Monero chain shared the same way.
#[derive(Clone)]
pub struct SharedMonero(pub std::rc::Rc<std::cell::RefCell<mock_chains::monero::MockMonero>>);

/// The bytes a Monero chain source hands the processor for one block.
pub fn monero_block_data(chain: &mock_chains::monero::MockMonero, height: usize) -> Option<Vec<u8>> {
    let block = chain.block(height)?;
    let transactions = chain.transactions(height);
    let first = chain.scannable_block_at(height)?.output_index_for_first_ringct_output;
    let data =
        processor_core::chain::monero::MoneroBlockData::new(block, transactions.get(1..).unwrap_or_default(), first);
    Some(data.encode())
}

impl ChainSource for SharedMonero {
    fn tip(&self) -> u64 {
        self.0.borrow().tip_height() as u64
    }
    fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        monero_block_data(&self.0.borrow(), usize::try_from(height).ok()?)
    }
    fn publish(&self, transaction: &[u8]) -> Result<(), String> {
        publish_monero(&mut self.0.borrow_mut(), transaction)
    }
    fn select_decoys(
        &self,
        request: &processor_core::transaction::monero::DecoyRequest,
    ) -> Result<Vec<Vec<u8>>, String> {
        select_monero_decoys(&self.0.borrow(), request)
    }
}

fn publish_monero(chain: &mut mock_chains::monero::MockMonero, transaction: &[u8]) -> Result<(), String> {
    let transaction = monero_wallet::transaction::Transaction::read(&mut &*transaction).map_err(|e| e.to_string())?;
    chain.submit(transaction).map(|_| ()).map_err(|e| format!("{e:?}"))
}

fn select_monero_decoys(
    chain: &mock_chains::monero::MockMonero,
    request: &processor_core::transaction::monero::DecoyRequest,
) -> Result<Vec<Vec<u8>>, String> {
    mock_chains::monero::block_on(processor_core::transaction::monero::select_decoys(chain, request))
        .ok_or("the mock chain's futures did not complete")?
}

/// A mock Monero chain shared across threads (the devnet's daemons run on a thread pool).
#[derive(Clone)]
pub struct SyncMonero(pub std::sync::Arc<std::sync::Mutex<mock_chains::monero::MockMonero>>);

impl SyncMonero {
    fn lock(&self) -> std::sync::MutexGuard<'_, mock_chains::monero::MockMonero> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ChainSource for SyncMonero {
    fn tip(&self) -> u64 {
        self.lock().tip_height() as u64
    }
    fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        monero_block_data(&self.lock(), usize::try_from(height).ok()?)
    }
    fn publish(&self, transaction: &[u8]) -> Result<(), String> {
        publish_monero(&mut self.lock(), transaction)
    }
    fn select_decoys(
        &self,
        request: &processor_core::transaction::monero::DecoyRequest,
    ) -> Result<Vec<Vec<u8>>, String> {
        select_monero_decoys(&self.lock(), request)
    }
}

/// Confirmations processors wait for unless a test says otherwise.
pub const DEFAULT_CONFIRMATIONS: u64 = 3;

/// Blocks after a rotation's handover during which the retiring key is still credited (short,
/// so tests see a rotation through).
pub const DEFAULT_RETIREMENT_WINDOW: u64 = 12;

/// What a Byzantine processor corrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehaviour {
    KeyGenShares,
    SignatureShares,
}

#[derive(Clone, Copy, Debug)]
enum Destination {
    Coordinator,
    Processor(usize),
}

struct Node {
    identity: Identity,
    db: MemDb,
    processor: Processor<MemDb, ChaCha20Rng>,
}

pub struct LocalNetwork {
    rng: ChaCha20Rng,
    now: u64,
    next_tick: u64,
    chain: ExternalChain,
    coordinator: Coordinator,
    nodes: Vec<Node>,
    /// (delivery time, arrival order) -> message.
    in_flight: BTreeMap<(u64, u64), (Destination, Vec<u8>)>,
    sent: u64,
    faults: Faults,
    byzantine: Option<(usize, Misbehaviour)>,
    /// Processors cut off from the network (nothing to or from them is delivered).
    silent: std::collections::BTreeSet<usize>,
    stats: NetworkStats,
    confirmations: u64,
    source: Option<Box<dyn ChainSource>>,
}

impl LocalNetwork {
    pub fn new(processors: usize, chain: ExternalChain, seed: u64, faults: Faults) -> LocalNetwork {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let coordinator_identity = Identity::generate(&mut rng);
        let identities: Vec<Identity> = (0..processors).map(|_| Identity::generate(&mut rng)).collect();
        let keys: Vec<PeerKey> = identities.iter().map(Identity::peer_key).collect();
        let coordinator = Coordinator::new(coordinator_identity, &keys);
        let mut network = LocalNetwork {
            rng,
            now: 0,
            next_tick: TICK_MS,
            chain,
            coordinator,
            nodes: Vec::new(),
            in_flight: BTreeMap::new(),
            sent: 0,
            faults,
            byzantine: None,
            silent: Default::default(),
            stats: NetworkStats::default(),
            confirmations: DEFAULT_CONFIRMATIONS,
            source: None,
        };
        for identity in identities {
            let db = MemDb::new();
            let processor = network.open_processor(&identity, &db);
            network.nodes.push(Node { identity, db, processor });
        }
        network
    }

    fn open_processor(&mut self, identity: &Identity, db: &MemDb) -> Processor<MemDb, ChaCha20Rng> {
        // The mock chains mine at regtest difficulty.
        let config = Config {
            chain: self.chain,
            coordinator: self.coordinator.peer_key(),
            confirmations: self.confirmations,
            proof_of_work: ProofOfWork::REGTEST,
            retirement_window: DEFAULT_RETIREMENT_WINDOW,
        };
        let rng = ChaCha20Rng::seed_from_u64(self.rng.next_u64());
        Processor::open(db.clone(), identity.clone(), config, rng).expect("the in-memory DB opens")
    }

    /// Processors follow `source`, a block final after `confirmations`. Call before anything runs.
    pub fn attach_chain(&mut self, source: Box<dyn ChainSource>, confirmations: u64) {
        assert_eq!(self.now, 0, "attach the chain before running the network");
        self.confirmations = confirmations;
        self.source = Some(source);
        for index in 0..self.nodes.len() {
            let identity = self.nodes[index].identity.clone();
            let db = self.nodes[index].db.clone();
            self.nodes[index].processor = self.open_processor(&identity, &db);
        }
    }

    pub fn coordinator_mut(&mut self) -> &mut Coordinator {
        &mut self.coordinator
    }

    pub fn peer_keys(&self) -> Vec<PeerKey> {
        self.nodes.iter().map(|n| n.identity.peer_key()).collect()
    }
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }
    pub fn processor(&self, index: usize) -> &Processor<MemDb, ChaCha20Rng> {
        &self.nodes[index].processor
    }
    pub fn db(&self, index: usize) -> &MemDb {
        &self.nodes[index].db
    }
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn now(&self) -> Millis {
        Millis(self.now)
    }
    pub fn stats(&self) -> &NetworkStats {
        &self.stats
    }

    /// From now on, processor `index` corrupts the key-generation shares it sends (it gives
    /// each recipient another recipient's share), as a Byzantine validator would.
    pub fn make_byzantine(&mut self, index: usize) {
        self.byzantine = Some((index, Misbehaviour::KeyGenShares));
    }

    /// From now on, processor `index` sends well-formed but wrong signature shares.
    pub fn make_byzantine_signer(&mut self, index: usize) {
        self.byzantine = Some((index, Misbehaviour::SignatureShares));
    }

    /// Cuts processor `index` off the network (or reconnects it): a validator gone silent.
    pub fn set_silent(&mut self, index: usize, silent: bool) {
        if silent {
            self.silent.insert(index);
        } else {
            self.silent.remove(&index);
        }
    }

    /// Orders a key generation among the given processors (all of them if `None`).
    pub fn start_keygen(&mut self, session: SessionId, threshold: u16, members: Option<&[usize]>) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let members = members.unwrap_or(&all);
        let participants = members.iter().map(|i| self.nodes[*i].identity.peer_key()).collect();
        let out = self.coordinator.start_keygen(session, threshold, participants);
        self.deliver_outbound(out);
    }

    /// Crashes processor `index` (losing everything not committed) and restarts it on its DB.
    pub fn restart(&mut self, index: usize) {
        let identity = self.nodes[index].identity.clone();
        let db = self.nodes[index].db.clone();
        self.nodes[index].processor = self.open_processor(&identity, &db);
        self.stats.crashes += 1;
    }

    /// Runs until `done` holds (true) or virtual time passes `deadline` (false).
    pub fn run_until(&mut self, deadline: Millis, mut done: impl FnMut(&LocalNetwork) -> bool) -> bool {
        while self.now <= deadline.0 {
            if done(self) {
                return true;
            }
            let next_delivery = self.in_flight.keys().next().map(|(at, _)| *at);
            match next_delivery {
                Some(at) if at < self.next_tick => {
                    let (_, (destination, bytes)) = self.in_flight.pop_first().expect("peeked");
                    self.now = at;
                    self.deliver(destination, bytes);
                }
                _ => self.tick(),
            }
        }
        false
    }

    fn tick(&mut self) {
        self.now = self.next_tick;
        self.next_tick += TICK_MS;
        let tip = self.source.as_ref().map(|source| source.tip());
        if let Some(tip) = tip {
            self.coordinator.observe_chain_tip(BlockHeight(tip));
        }
        for index in 0..self.nodes.len() {
            if self.roll(self.faults.crash_per_mille) {
                self.restart(index);
            }
            let mut events = vec![Event::Tick { now: Millis(self.now) }];
            if let Some(tip) = tip {
                events.push(Event::ChainTip { height: BlockHeight(tip) });
            }
            for event in events {
                let effects = self.nodes[index].processor.handle(event);
                self.deliver_effects(index, effects.expect("the in-memory DB does not fail").effects);
            }
        }
        let out = self.coordinator.tick(Millis(self.now));
        self.deliver_outbound(out);
    }

    fn deliver(&mut self, destination: Destination, bytes: Vec<u8>) {
        self.stats.delivered += 1;
        match destination {
            Destination::Coordinator => {
                let out = self.coordinator.handle(&bytes);
                self.deliver_outbound(out);
            }
            Destination::Processor(index) => {
                if self.silent.contains(&index) {
                    return;
                }
                let effects = self.nodes[index].processor.handle(Event::Inbound(bytes));
                self.deliver_effects(index, effects.expect("the in-memory DB does not fail").effects);
            }
        }
    }

    fn deliver_outbound(&mut self, out: Vec<Outbound>) {
        for Outbound { to, bytes } in out {
            if let Some(index) = self.nodes.iter().position(|n| n.identity.peer_key() == to) {
                self.transmit(Destination::Processor(index), bytes);
            }
        }
    }

    fn deliver_effects(&mut self, index: usize, effects: Vec<Effect>) {
        let mut pending: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = pending.pop_front() {
            match effect {
                Effect::Send(bytes) => {
                    if self.silent.contains(&index) {
                        continue;
                    }
                    let bytes = match self.byzantine {
                        Some((byzantine, how)) if byzantine == index => self.corrupt(index, how, bytes),
                        _ => bytes,
                    };
                    self.transmit(Destination::Coordinator, bytes);
                }
                // The chain source answers at once; a missing block is simply not delivered.
                Effect::FetchBlock { height } => {
                    let Some(bytes) = self.source.as_ref().and_then(|source| source.block_bytes(height.0)) else {
                        continue;
                    };
                    let effects = self.nodes[index].processor.handle(Event::Block { height, bytes });
                    pending.extend(effects.expect("the in-memory DB does not fail").effects);
                }
                Effect::SelectDecoys(request) => {
                    let Some(Ok(inputs)) = self.source.as_ref().map(|source| source.select_decoys(&request)) else {
                        continue;
                    };
                    let event = Event::Decoys { plan: request.plan, inputs };
                    let effects = self.nodes[index].processor.handle(event);
                    pending.extend(effects.expect("the in-memory DB does not fail").effects);
                }
                Effect::Publish { transaction } => {
                    if let Some(source) = &self.source {
                        match source.publish(&transaction) {
                            Ok(()) => self.stats.published += 1,
                            Err(_) => self.stats.publish_refused += 1,
                        }
                    }
                }
            }
        }
    }

    fn transmit(&mut self, destination: Destination, bytes: Vec<u8>) {
        if self.roll(self.faults.drop_per_mille) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.roll(self.faults.duplicate_per_mille) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = 1 + self.rng.next_u64() % self.faults.max_delay_ms.max(1);
            self.sent += 1;
            self.in_flight.insert((self.now + delay, self.sent), (destination, bytes.clone()));
        }
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && (self.rng.next_u64() % 1000) < u64::from(per_mille)
    }

    fn corrupt(&self, index: usize, how: Misbehaviour, bytes: Vec<u8>) -> Vec<u8> {
        let identity = &self.nodes[index].identity;
        match how {
            Misbehaviour::KeyGenShares => crate::byzantine::corrupt_keygen_shares(identity, &self.coordinator, bytes),
            Misbehaviour::SignatureShares => {
                crate::byzantine::corrupt_signature_shares(identity, &self.coordinator, bytes)
            }
        }
    }
}

impl LocalNetwork {
    /// Sends Burns from Serai through the coordinator.
    pub fn burn(&mut self, chain: ExternalChain, burns: Vec<processor_core::messages::Burn>, fee_rate: u64) {
        let out = self.coordinator.burn(chain, burns, fee_rate);
        self.deliver_outbound(out);
    }

    /// Lets a test act as a faulty coordinator: `act` produces messages that are then delivered.
    pub fn coordinator_acts(&mut self, act: impl FnOnce(&mut Coordinator) -> Vec<Outbound>) {
        let out = act(&mut self.coordinator);
        self.deliver_outbound(out);
    }
}
