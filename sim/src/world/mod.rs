//! The simulated world: madsim nodes for the coordinator and each processor, the chain and its
//! workload, a fault plan driven from the seed, and the invariant checks.

mod chain;
mod faulty_coordinator;
mod hostile;
mod invariants;
mod link;
mod node_view;
mod nodes;
mod storage;

use crate::scenario::{FaultCounts, Outcome, Scenario, Violation};
use crate::Invariant;
use chain::SimChain;
use coordinator::{Coordinator, SessionStatus};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use madsim::time::{sleep, Duration, Instant};
use processor_core::crypto::Identity;
use processor_core::db::MemDb;
use processor_core::ids::{ExternalChain, SessionId};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

const TAG: u64 = 0;
const TICK: Duration = Duration::from_millis(100);
/// Lines of trace kept for a violation report (`SIM_TRACE_TAIL` overrides, for debugging).
fn trace_tail_len() -> usize {
    static LEN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LEN.get_or_init(|| std::env::var("SIM_TRACE_TAIL").ok().and_then(|v| v.parse().ok()).unwrap_or(40))
}

fn coordinator_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1)
}

fn processor_addr(index: usize) -> SocketAddr {
    let index = u8::try_from(index + 1).expect("validator count is bounded by the scenario");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, index)), 1)
}

/// What the checks found scanning a block for a session's keys (`None`: not scannable).
type ScannedBlock = Option<Arc<invariants::ScannedOutputs>>;
/// A block scanned for some keys: the keys' sessions, and the block's id.
type ScanCacheKey = (Vec<SessionId>, [u8; 32]);

/// The transaction (by the simulation's id for it) that spent an output, and its publisher.
type SpentBy = (Vec<u8>, usize);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An ordered record of everything that happened, hashed as it grows.
struct Trace {
    start: Instant,
    hasher: Sha256,
    events: u64,
    tail: VecDeque<String>,
}

impl Trace {
    fn record(&mut self, line: String) {
        let line = format!("{:>8} ms {line}", self.start.elapsed().as_millis());
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.events += 1;
        if self.tail.len() >= trace_tail_len() {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// What survives crashes (the processors' DBs, the coordinator's persisted state, the chain),
/// and what the checks observe.
struct Shared {
    scenario: Scenario,
    chain_kind: ExternalChain,
    identities: Vec<Identity>,
    dbs: Vec<MemDb>,
    /// Each processor's next commit fails so, once armed (a storage fault).
    storage_faults: Vec<Arc<Mutex<Option<storage::StorageFault>>>>,
    coordinator: Mutex<Coordinator>,
    chain: Option<Mutex<SimChain>>,
    trace: Mutex<Trace>,
    faults: Mutex<FaultCounts>,
    rng: Mutex<ChaCha20Rng>,
    /// Nodes crashed and not yet restarted (processors by index, then the coordinator), so a
    /// down node is not crashed again (madsim would restart it twice).
    down: Mutex<Vec<bool>>,
    /// Every preprocess each processor sent, by the signing attempt it was for.
    preprocesses: Mutex<BTreeMap<Vec<u8>, (usize, processor_core::messages::SignId)>>,
    /// The signature share each processor sent for each signing attempt.
    shares: Mutex<BTreeMap<(usize, processor_core::messages::SignId), Vec<u8>>>,
    /// Every Burn Serai issued, in order, and whether it is valid (`None`: near its
    /// destination's dust limit, either way); a faulty coordinator re-sends some.
    issued_burns: Mutex<Vec<(processor_core::messages::Burn, Option<bool>)>>,
    /// Every output a published transaction spends, with that transaction's id and publisher.
    spent_by: Mutex<BTreeMap<Vec<u8>, SpentBy>>,
    /// Transactions published (first publications, by any processor).
    published: Mutex<u64>,
    /// What the checks found scanning each block for a session's keys, by block id (a block id
    /// never changes content).
    scan_cache: Mutex<BTreeMap<ScanCacheKey, ScannedBlock>>,
    /// Key rotations the coordinator started.
    rotations: Mutex<u32>,
    /// When rotations start and their thresholds: a stream of its own, so a seed's run is the
    /// same as without rotations until the first one starts.
    rotation_rng: Mutex<ChaCha20Rng>,
    /// Once the deep reorganisation of a deep-reorg scenario happened: the blocks it replaced
    /// and which processors had scanned one of them by then.
    deep_reorged: Mutex<Option<DeepReorg>>,
    /// Burns issued by Serai.
    burns: Mutex<u64>,
    /// The first invariant violation seen by a node, if any.
    violation: Mutex<Option<(Invariant, String)>>,
    /// Each processor's own node: behind, stalled, lying or on a stale fork.
    node_views: Mutex<node_view::NodeViews>,
    /// Each processor's active keys as the checks last parsed them (parsed again only when the
    /// stored keys change).
    active_keys: Mutex<Vec<processor_core::keygen::ActiveKeysMemo>>,
}

impl Shared {
    fn record(&self, line: String) {
        lock(&self.trace).record(line);
    }

    fn roll(&self, per_mille: u32) -> bool {
        per_mille > 0 && lock(&self.rng).next_u64() % 1000 < u64::from(per_mille)
    }

    fn random_below(&self, bound: u64) -> u64 {
        lock(&self.rng).next_u64() % bound.max(1)
    }

    /// The Byzantine validator's index and how it misbehaves.
    fn byzantine(&self) -> Option<(usize, crate::scenario::Byzantine)> {
        self.scenario.byzantine.map(|how| (self.identities.len() - 1, how))
    }

    fn deep_reorg_done(&self) -> bool {
        lock(&self.deep_reorged).is_some()
    }

    fn elapsed_ms(&self) -> u64 {
        lock(&self.trace).start.elapsed().as_millis() as u64
    }

    fn violate(&self, invariant: Invariant, detail: String) {
        let mut violation = lock(&self.violation);
        if violation.is_none() {
            *violation = Some((invariant, detail));
        }
    }
}

/// The first `chars` characters of `value`'s `Debug` text, formatting no further than that (a
/// message can be large; its text would be cut anyway).
fn debug_prefix(value: &impl core::fmt::Debug, chars: usize) -> String {
    struct Prefix {
        text: String,
        room: usize,
    }
    impl core::fmt::Write for Prefix {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for c in s.chars() {
                if self.room == 0 {
                    // Stops the formatting: the rest would be cut.
                    return Err(core::fmt::Error);
                }
                self.text.push(c);
                self.room -= 1;
            }
            Ok(())
        }
    }
    let mut prefix = Prefix { text: String::new(), room: chars };
    // An error only means the text was long enough.
    let _ = core::fmt::write(&mut prefix, format_args!("{value:?}"));
    prefix.text
}

/// A short description of a frame for the trace: its kind and sequence id, and a digest.
/// `to_processor` says which way it travels (both directions' messages share variant indexes).
fn describe(bytes: &[u8], to_processor: bool) -> String {
    use processor_core::messages::{decode, CoordinatorMessage, Envelope, Frame, ProcessorMessage, SignedEnvelope};
    fn kind<M: core::fmt::Debug>(frame: &Frame<M>) -> String {
        match frame {
            Frame::Ack { up_to } => format!("ack {up_to}"),
            Frame::Data { seq, message } => format!("#{seq} {}", debug_prefix(message, 90)),
        }
    }
    let hash = hex::encode(&Sha256::digest(bytes)[..4]);
    let Ok(signed) = decode::<SignedEnvelope>(bytes) else { return format!("{hash} (undecodable)") };
    if to_processor {
        if let Ok(envelope) = decode::<Envelope<CoordinatorMessage>>(&signed.envelope) {
            return format!("{hash} {}", kind(&envelope.frame));
        }
    } else if let Ok(envelope) = decode::<Envelope<ProcessorMessage>>(&signed.envelope) {
        return format!("{hash} {}", kind(&envelope.frame));
    }
    hash
}

/// Runs one seed of a scenario to completion. Deterministic: the same seed and scenario give
/// the same outcome, including the trace hash.
pub fn run(seed: u64, scenario: &Scenario) -> Outcome {
    let mut config = madsim::Config::default();
    config.net.packet_loss_rate = f64::from(scenario.loss_per_mille) / 1000.0;
    config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(scenario.max_latency_ms.max(2));
    let runtime = Runtime::with_seed_and_config(seed, config);
    let scenario = scenario.clone();
    runtime.block_on(async move { world(seed, scenario).await })
}

async fn world(seed: u64, scenario: Scenario) -> Outcome {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let shared = new_shared(seed, &scenario, &mut rng);
    let handle = Handle::current();
    let (coordinator_node, processor_nodes) = spawn_nodes(&shared, &handle);
    {
        let keys: Vec<_> = shared.identities.iter().map(Identity::peer_key).collect();
        let mut coordinator = lock(&shared.coordinator);
        if let Some(chain) = &shared.chain {
            coordinator.observe_chain_tip(processor_core::ids::BlockHeight(lock(chain).tip()));
        }
        // Delivered by the coordinator's retransmission on its next tick.
        let _ = coordinator.start_keygen(SessionId(1), scenario.threshold, keys);
        shared.record("coordinator orders key generation, session 1".into());
    }
    let start = Instant::now();
    let violation = drive(&shared, &handle, &coordinator_node, &processor_nodes, start).await;
    outcome(&shared, seed, start, violation)
}

/// The world of one seed: identities, the coordinator, the chain (even seeds Bitcoin, odd
/// seeds Monero), empty databases.
fn new_shared(seed: u64, scenario: &Scenario, rng: &mut ChaCha20Rng) -> Arc<Shared> {
    let chain_kind = if seed % 2 == 0 { ExternalChain::Bitcoin } else { ExternalChain::Monero };
    let coordinator_identity = Identity::generate(rng);
    let identities: Vec<Identity> = (0..scenario.validators).map(|_| Identity::generate(rng)).collect();
    let keys: Vec<_> = identities.iter().map(Identity::peer_key).collect();
    let mut coordinator = Coordinator::new(coordinator_identity, &keys);
    coordinator.retry_without_blamed(true);
    // A rotation's confirmation may reach a processor that was down or cut off for seconds:
    // tens of the simulation's blocks.
    coordinator.set_activation_margin(80);
    let chain = Some(Mutex::new(match chain_kind {
        ExternalChain::Bitcoin => SimChain::bitcoin(seed),
        ExternalChain::Monero => SimChain::monero(seed),
    }));
    let shared = Arc::new(Shared {
        chain_kind,
        dbs: identities.iter().map(|_| MemDb::new()).collect(),
        storage_faults: identities.iter().map(|_| Arc::default()).collect(),
        identities,
        coordinator: Mutex::new(coordinator),
        chain,
        trace: Mutex::new(Trace { start: Instant::now(), hasher: Sha256::new(), events: 0, tail: VecDeque::new() }),
        faults: Mutex::new(FaultCounts::default()),
        rng: Mutex::new(ChaCha20Rng::seed_from_u64(rng.next_u64())),
        down: Mutex::new(vec![false; scenario.validators + 1]),
        preprocesses: Mutex::new(BTreeMap::new()),
        shares: Mutex::new(BTreeMap::new()),
        issued_burns: Mutex::new(Vec::new()),
        spent_by: Mutex::new(BTreeMap::new()),
        published: Mutex::new(0),
        violation: Mutex::new(None),
        burns: Mutex::new(0),
        deep_reorged: Mutex::new(None),
        scan_cache: Mutex::new(BTreeMap::new()),
        rotations: Mutex::new(0),
        rotation_rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed ^ 0x726f_7461_7469_6f6e)),
        node_views: Mutex::new(node_view::NodeViews::new(scenario.validators)),
        active_keys: Mutex::new((0..scenario.validators).map(|_| Default::default()).collect()),
        scenario: scenario.clone(),
    });
    shared.record(format!("seed {seed}: {chain_kind}, {}-of-{}", scenario.threshold, scenario.validators));
    shared
}

/// The coordinator's node and one node per processor.
fn spawn_nodes(shared: &Arc<Shared>, handle: &Handle) -> (NodeHandle, Vec<NodeHandle>) {
    let coordinator_node = {
        let shared = shared.clone();
        handle
            .create_node()
            .name("coordinator")
            .ip(coordinator_addr().ip())
            .init(move || nodes::coordinator_node(shared.clone()))
            .build()
    };
    let processor_nodes = (0..shared.scenario.validators)
        .map(|index| {
            let shared = shared.clone();
            handle
                .create_node()
                .name(format!("processor-{index}"))
                .ip(processor_addr(index).ip())
                .init(move || nodes::processor_node(shared.clone(), index))
                .build()
        })
        .collect();
    (coordinator_node, processor_nodes)
}

/// What a finished run produced.
fn outcome(shared: &Shared, seed: u64, start: Instant, violation: Option<(Invariant, String)>) -> Outcome {
    let faults = *lock(&shared.faults);
    let (deposits, reorgs, hostile) = shared.chain.as_ref().map_or((0, 0, Default::default()), |c| {
        let chain = lock(c);
        (chain.deposits, chain.reorgs, chain.hostile.counts)
    });
    let burns = *lock(&shared.burns);
    let plans = invariants::plans_at(shared, 0);
    let paid = invariants::plans_completed_at(shared, 0);
    let trace = lock(&shared.trace);
    let coordinator = lock(&shared.coordinator);
    let keys_confirmed =
        coordinator.sessions().filter(|(_, status)| matches!(status, SessionStatus::Confirmed(_))).count() as u64;
    let count = |wanted: &dyn Fn(&coordinator::Observation) -> bool| {
        coordinator.observations().iter().filter(|o| wanted(o)).count() as u64
    };
    let blames = count(&|o| {
        matches!(o, coordinator::Observation::Blamed { .. } | coordinator::Observation::SigningBlamed { .. })
    });
    let halted = count(&|o| matches!(o, coordinator::Observation::ChainHalted { .. }));
    Outcome {
        seed,
        simulated_ms: start.elapsed().as_millis() as u64,
        trace_hash: trace.hasher.clone().finalize().into(),
        events: trace.events,
        sessions_started: coordinator.latest_session().map_or(0, |s| u64::from(s.0)),
        keys_confirmed,
        keys_retired: coordinator.sessions().filter(|(session, _)| coordinator.retired(*session)).count() as u64,
        blames,
        deposits,
        batches: coordinator.signed_batches().count() as u64,
        burns,
        plans,
        paid,
        halted,
        faults: FaultCounts { reorgs, ..faults },
        hostile,
        violation: violation.map(|(invariant, detail)| Violation {
            invariant,
            detail,
            trace_tail: trace.tail.iter().cloned().collect(),
        }),
    }
}

/// The fault plan and workload, then the quiet phase; checks safety throughout and liveness
/// at the end.
async fn drive(
    shared: &Arc<Shared>,
    handle: &Handle,
    coordinator_node: &NodeHandle,
    processor_nodes: &[NodeHandle],
    start: Instant,
) -> Option<(Invariant, String)> {
    let scenario = &shared.scenario;
    let net = NetSim::current();
    while start.elapsed() < Duration::from_millis(scenario.fault_phase_ms) {
        sleep(Duration::from_millis(scenario.block_interval_ms)).await;
        if let Err(violation) = invariants::check_safety(shared) {
            return Some(violation);
        }
        workload(shared, true);
        rotate(shared);
        if scenario.deep_reorg
            && !shared.deep_reorg_done()
            && start.elapsed() > Duration::from_millis(scenario.fault_phase_ms / 2)
        {
            deep_reorg(shared);
        }
        inject_faults(shared, handle, coordinator_node, processor_nodes, &net);
        faulty_coordinator::act(shared);
        faulty_coordinator::restore_if_due(shared, false);
        node_view::step(shared);
    }
    faulty_coordinator::restore_if_due(shared, true);
    quiet_phase(shared, &net).await
}

/// What a deep reorganisation replaced.
#[derive(Clone, Debug)]
pub(crate) struct DeepReorg {
    /// The replaced blocks' ids, by height.
    pub replaced: BTreeMap<u64, [u8; 32]>,
    /// Which processors had scanned a replaced block when it happened: they must halt. Any other
    /// may halt too, if its node still served it replaced blocks afterwards (a stale or lagging
    /// node): what matters is that a halt names a replaced block it reported.
    pub must_halt: Vec<bool>,
}

/// Reorganises the chain deeper than the confirmations, noting the replaced blocks and which
/// processors had scanned one (those must halt).
fn deep_reorg(shared: &Shared) {
    let depth = shared.scenario.confirmations as usize + 3 + shared.random_below(3) as usize;
    let Some(chain) = &shared.chain else { return };
    let mut chain = lock(chain);
    let first_replaced = (chain.tip() + 1).saturating_sub(depth as u64);
    let replaced: BTreeMap<u64, [u8; 32]> =
        (first_replaced..=chain.tip()).filter_map(|height| Some((height, chain.block_id(height)?))).collect();
    if !chain.reorg(depth, false) {
        return;
    }
    let must_halt = shared
        .dbs
        .iter()
        .map(|db| {
            processor_core::inspect::Inspector::new(db)
                .last_scanned()
                .ok()
                .flatten()
                .is_some_and(|tip| tip.height.0 >= first_replaced)
        })
        .collect();
    shared.record(format!(
        "chain: reorganisation of depth {depth} from height {first_replaced}, deeper than the confirmations; must halt: {must_halt:?}"
    ));
    *lock(&shared.deep_reorged) = Some(DeepReorg { replaced, must_halt });
    drop(chain);
    node_view::deep_reorg(shared);
}

/// One block interval's faults: processor and coordinator crashes, partitions.
fn inject_faults(
    shared: &Arc<Shared>,
    handle: &Handle,
    coordinator_node: &NodeHandle,
    processor_nodes: &[NodeHandle],
    net: &Arc<NetSim>,
) {
    let scenario = &shared.scenario;
    if shared.roll(scenario.processor_crash_per_mille) {
        let index = shared.random_below(processor_nodes.len() as u64) as usize;
        let down = Duration::from_millis(1 + shared.random_below(2_000));
        if crash(shared, handle, processor_nodes[index].id(), index, down) {
            shared.record(format!("fault: processor {index} crashes for {} ms", down.as_millis()));
            lock(&shared.faults).processor_crashes += 1;
        }
    }
    if shared.roll(scenario.coordinator_crash_per_mille) {
        let down = Duration::from_millis(1 + shared.random_below(2_000));
        if crash(shared, handle, coordinator_node.id(), processor_nodes.len(), down) {
            shared.record(format!("fault: coordinator crashes for {} ms", down.as_millis()));
            lock(&shared.faults).coordinator_crashes += 1;
        }
    }
    if shared.roll(scenario.storage_fault_per_mille) {
        let index = shared.random_below(processor_nodes.len() as u64) as usize;
        let fault =
            if shared.random_below(2) == 0 { storage::StorageFault::Lost } else { storage::StorageFault::Applied };
        let mut armed = lock(&shared.storage_faults[index]);
        if armed.is_none() {
            *armed = Some(fault);
            drop(armed);
            shared.record(format!("fault: processor {index}'s next commit fails ({fault:?})"));
        }
    }
    if shared.roll(scenario.partition_per_mille) {
        let index = shared.random_below(processor_nodes.len() as u64) as usize;
        let length = Duration::from_millis(1 + shared.random_below(3_000));
        shared.record(format!("fault: processor {index} partitioned for {} ms", length.as_millis()));
        lock(&shared.faults).partitions += 1;
        let (a, b) = (coordinator_node.id(), processor_nodes[index].id());
        net.clog_link(a, b);
        net.clog_link(b, a);
        let net = net.clone();
        madsim::task::spawn(async move {
            sleep(length).await;
            net.unclog_link(a, b);
            net.unclog_link(b, a);
        });
    }
}

/// The quiet phase: faults and deposits stop (crashed nodes come back, partitions heal within
/// their bounded lengths, the network stops losing messages); blocks keep coming so every
/// deposit becomes final; everything must now finish.
async fn quiet_phase(shared: &Shared, net: &Arc<NetSim>) -> Option<(Invariant, String)> {
    let scenario = &shared.scenario;
    net.update_config(|config| config.packet_loss_rate = 0.0);
    node_view::quiet(shared);
    shared.record("quiet phase: faults stop".into());
    let quiet_start = Instant::now();
    loop {
        sleep(Duration::from_millis(scenario.block_interval_ms)).await;
        workload(shared, false);
        if let Err(violation) = invariants::check_safety(shared) {
            return Some(violation);
        }
        match invariants::live(shared) {
            Ok(()) => {
                shared.record("live".into());
                return None;
            }
            Err((invariant, waiting_for)) => {
                if quiet_start.elapsed() > Duration::from_millis(scenario.liveness_deadline_ms) {
                    return Some((
                        invariant,
                        format!("{} ms into the quiet phase: {waiting_for}", scenario.liveness_deadline_ms),
                    ));
                }
            }
        }
    }
}

/// Maybe starts a key rotation: while rotations remain and none is under way, the coordinator
/// has the latest session's validators generate new keys with a new threshold.
fn rotate(shared: &Shared) {
    let scenario = &shared.scenario;
    if *lock(&shared.rotations) >= scenario.rotations {
        return;
    }
    let mut rng = lock(&shared.rotation_rng);
    if rng.next_u64() % 1000 >= u64::from(scenario.rotation_per_mille) {
        return;
    }
    let mut coordinator = lock(&shared.coordinator);
    let Some(latest) = coordinator.latest_session() else { return };
    if coordinator.rotating() || !matches!(coordinator.status(latest), Some(SessionStatus::Confirmed(_))) {
        return;
    }
    let participants = coordinator.participants(latest).unwrap_or_default().to_vec();
    let byzantine =
        scenario.byzantine.is_some() && participants.contains(&shared.identities[scenario.validators - 1].peer_key());
    let highest = if byzantine { participants.len() - 1 } else { participants.len() };
    if highest < 2 {
        return;
    }
    let threshold = (2 + rng.next_u64() % (highest as u64 - 1)) as u16;
    drop(rng);
    let session = SessionId(latest.0 + 1);
    // Delivered by the coordinator's retransmission on its next tick.
    let _ = coordinator.start_keygen(session, threshold, participants.clone());
    drop(coordinator);
    *lock(&shared.rotations) += 1;
    shared
        .record(format!("coordinator orders a key rotation: session {session}, {threshold}-of-{}", participants.len()));
}

/// The keys deposits are made to: the keys of the session signing at the chain's tip (what the
/// exchange hands out), or a quarter of the time, while the previous session is not retired,
/// the previous keys (a depositor using an old address: credited inside the window).
fn deposit_keys(shared: &Shared, coordinator: &Coordinator, tip: u64) -> Option<processor_core::messages::GroupKeys> {
    let current = coordinator.signing_session_at(processor_core::ids::BlockHeight(tip))?;
    let previous = coordinator
        .sessions()
        .filter(|(session, status)| *session < current && matches!(status, SessionStatus::Confirmed(_)))
        .map(|(session, _)| session)
        .next_back()
        .filter(|previous| !coordinator.retired(*previous));
    let session = match previous {
        Some(previous) if shared.roll(250) => previous,
        _ => current,
    };
    match coordinator.status(session) {
        Some(SessionStatus::Confirmed(keys)) => Some(*keys),
        _ => None,
    }
}

/// One step of the chain's life: a block, maybe deposits, maybe a reorganisation no deeper
/// than the confirmations.
fn workload(shared: &Shared, faults: bool) {
    let Some(chain) = &shared.chain else { return };
    let scenario = &shared.scenario;
    let tip = lock(chain).tip();
    let confirmed = deposit_keys(shared, &lock(&shared.coordinator), tip);
    let mut chain = lock(chain);
    if faults && shared.roll(scenario.reorg_per_mille) {
        // A reorganisation replacing up to `confirmations` blocks leaves every block with that
        // many blocks on top in place: the deepest reorganisation finality absorbs.
        let depth = 1 + shared.random_below(scenario.confirmations) as usize;
        if chain.reorg(depth, true) {
            shared.record(format!("chain: reorganisation of depth {depth}"));
        }
    }
    if let (true, Some(keys)) = (faults, confirmed) {
        while shared.roll(scenario.deposit_per_mille) {
            let amount = chain.deposit_amount(shared.random_below(u64::MAX));
            let account = shared.roll(800).then(|| {
                let mut account = [0u8; 32];
                account[..8].copy_from_slice(&shared.random_below(u64::MAX).to_le_bytes());
                account
            });
            if chain.deposit(&keys, amount, account) {
                shared.record(format!(
                    "chain: deposit of {amount} ({})",
                    if account.is_some() { "instruction" } else { "no instruction" }
                ));
            }
        }
        if shared.roll(scenario.dust_per_mille) {
            for _ in 0..1 + shared.random_below(3) {
                let amount = chain.dust_amount(shared.random_below(u64::MAX));
                let account = shared.roll(500).then_some([0xd5; 32]);
                if chain.deposit(&keys, amount, account) {
                    shared.record(format!("chain: hostile dust deposit of {amount}"));
                }
            }
        }
        hostile::deposits(shared, &mut chain, &keys);
    }
    if let (true, Some(_)) = (faults, confirmed) {
        if shared.roll(scenario.burn_per_mille) {
            let count = 1 + shared.random_below(4) as usize;
            let issued: Vec<(processor_core::messages::Burn, Option<bool>)> = (0..count)
                .map(|_| {
                    let mut id = [0u8; 32];
                    id[..8].copy_from_slice(&shared.random_below(u64::MAX).to_le_bytes());
                    let near_dust = shared
                        .roll(scenario.near_dust_burn_per_mille)
                        .then(|| chain.near_dust_burn(shared.random_below(u64::MAX)))
                        .flatten();
                    // A near-dust Burn may be valid or not, as its destination's dust limit says.
                    let (destination, amount, valid) = match near_dust {
                        Some((destination, amount)) => (destination, amount, None),
                        None => {
                            let valid = shared.roll(900);
                            let amount = chain.deposit_amount(shared.random_below(u64::MAX)) / 2;
                            (chain.burn_destination(shared.random_below(u64::MAX), valid), amount, Some(valid))
                        }
                    };
                    let burn =
                        processor_core::messages::Burn { id, destination, amount: processor_core::ids::Amount(amount) };
                    (burn, valid)
                })
                .collect();
            let burns: Vec<processor_core::messages::Burn> = issued.iter().map(|(burn, _)| burn.clone()).collect();
            let fee_rate = chain.fee_rate();
            shared.record(format!("serai: {count} Burns at fee rate {fee_rate}"));
            *lock(&shared.burns) += count as u64;
            lock(&shared.issued_burns).extend(issued);
            // Delivered by the coordinator's retransmission.
            let _ = lock(&shared.coordinator).burn(shared.chain_kind, burns, fee_rate);
        }
    }
    chain.mine();
}

/// Kills a node and restarts it after `down`, unless it is already down.
fn crash(shared: &Arc<Shared>, handle: &Handle, id: madsim::task::NodeId, slot: usize, down: Duration) -> bool {
    if std::mem::replace(&mut lock(&shared.down)[slot], true) {
        return false;
    }
    handle.kill(id);
    let (handle, shared) = (handle.clone(), shared.clone());
    madsim::task::spawn(async move {
        sleep(down).await;
        handle.restart(id);
        lock(&shared.down)[slot] = false;
    });
    true
}
