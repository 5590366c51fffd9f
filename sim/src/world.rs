//! The simulated world: madsim nodes for the coordinator and each processor, a fault plan
//! driven from the seed, and the invariant checks.

use crate::scenario::{FaultCounts, Outcome, Scenario, Violation};
use coordinator::{byzantine, Coordinator, Outbound, SessionStatus};
use madsim::net::{Endpoint, NetSim};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use madsim::time::{sleep, timeout, Duration, Instant};
use processor::core::{Config, Effect, Event, Processor};
use processor::crypto::Identity;
use processor::db::MemDb;
use processor::ids::{ExternalChain, Millis, SessionId};
use processor::keygen;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

const TAG: u64 = 0;
const TICK: Duration = Duration::from_millis(100);
/// Lines of trace kept for a violation report.
const TRACE_TAIL: usize = 40;

fn coordinator_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1)
}

fn processor_addr(index: usize) -> SocketAddr {
    let index = u8::try_from(index + 1).expect("validator count is bounded by the scenario");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, index)), 1)
}

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
        if self.tail.len() == TRACE_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// What survives crashes: the processors' DBs and the coordinator's persisted state.
struct Shared {
    scenario: Scenario,
    chain: ExternalChain,
    identities: Vec<Identity>,
    dbs: Vec<MemDb>,
    coordinator: Mutex<Coordinator>,
    trace: Mutex<Trace>,
    faults: Mutex<FaultCounts>,
    rng: Mutex<ChaCha20Rng>,
    /// Nodes crashed and not yet restarted (processors by index, then the coordinator), so a
    /// down node is not crashed again (madsim would restart it twice).
    down: Mutex<Vec<bool>>,
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

    fn byzantine(&self) -> Option<usize> {
        self.scenario.byzantine.then(|| self.identities.len() - 1)
    }
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[.. 6])
}

/// Runs one seed of a scenario to completion. Deterministic: the same seed and scenario give
/// the same outcome, including the trace hash.
pub fn run(seed: u64, scenario: &Scenario) -> Outcome {
    let mut config = madsim::Config::default();
    config.net.packet_loss_rate = f64::from(scenario.loss_per_mille) / 1000.0;
    config.net.send_latency = Duration::from_millis(1) .. Duration::from_millis(scenario.max_latency_ms.max(2));
    let runtime = Runtime::with_seed_and_config(seed, config);
    let scenario = scenario.clone();
    runtime.block_on(async move { world(seed, scenario).await })
}

async fn world(seed: u64, scenario: Scenario) -> Outcome {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let chain = if seed % 2 == 0 { ExternalChain::Bitcoin } else { ExternalChain::Monero };
    let coordinator_identity = Identity::generate(&mut rng);
    let identities: Vec<Identity> = (0 .. scenario.validators).map(|_| Identity::generate(&mut rng)).collect();
    let keys: Vec<_> = identities.iter().map(Identity::peer_key).collect();
    let mut coordinator = Coordinator::new(coordinator_identity, &keys);
    coordinator.retry_without_blamed(true);
    let shared = Arc::new(Shared {
        chain,
        dbs: identities.iter().map(|_| MemDb::new()).collect(),
        identities,
        coordinator: Mutex::new(coordinator),
        trace: Mutex::new(Trace { start: Instant::now(), hasher: Sha256::new(), events: 0, tail: VecDeque::new() }),
        faults: Mutex::new(FaultCounts::default()),
        rng: Mutex::new(ChaCha20Rng::seed_from_u64(rng.next_u64())),
        down: Mutex::new(vec![false; scenario.validators + 1]),
        scenario: scenario.clone(),
    });
    shared.record(format!("seed {seed}: {chain}, {}-of-{}", scenario.threshold, scenario.validators));

    let handle = Handle::current();
    let coordinator_node = {
        let shared = shared.clone();
        handle
            .create_node()
            .name("coordinator")
            .ip(coordinator_addr().ip())
            .init(move || coordinator_node(shared.clone()))
            .build()
    };
    let processor_nodes: Vec<NodeHandle> = (0 .. scenario.validators)
        .map(|index| {
            let shared = shared.clone();
            handle
                .create_node()
                .name(format!("processor-{index}"))
                .ip(processor_addr(index).ip())
                .init(move || processor_node(shared.clone(), index))
                .build()
        })
        .collect();

    {
        let participants = keys.clone();
        let out = lock(&shared.coordinator).start_keygen(SessionId(1), scenario.threshold, participants);
        // Delivered by the coordinator's retransmission on its next tick.
        drop(out);
        shared.record("coordinator orders key generation, session 1".into());
    }

    let start = Instant::now();
    let violation = drive(&shared, &handle, &coordinator_node, &processor_nodes, start).await;
    let faults = *lock(&shared.faults);
    let trace = lock(&shared.trace);
    let coordinator = lock(&shared.coordinator);
    let keys_confirmed =
        coordinator.sessions().filter(|(_, status)| matches!(status, SessionStatus::Confirmed(_))).count() as u64;
    let blames = coordinator.observations().iter().filter(|o| matches!(o, coordinator::Observation::Blamed { .. })).count() as u64;
    let outcome = Outcome {
        seed,
        simulated_ms: start.elapsed().as_millis() as u64,
        trace_hash: trace.hasher.clone().finalize().into(),
        events: trace.events,
        sessions_started: coordinator.latest_session().map_or(0, |s| u64::from(s.0)),
        keys_confirmed,
        blames,
        faults,
        violation: violation.map(|(invariant, detail)| Violation {
            invariant,
            detail,
            trace_tail: trace.tail.iter().cloned().collect(),
        }),
    };
    outcome
}

/// The fault plan, then the quiet phase; checks safety throughout and liveness at the end.
async fn drive(
    shared: &Arc<Shared>,
    handle: &Handle,
    coordinator_node: &NodeHandle,
    processor_nodes: &[NodeHandle],
    start: Instant,
) -> Option<(String, String)> {
    let scenario = &shared.scenario;
    let net = NetSim::current();
    while start.elapsed() < Duration::from_millis(scenario.fault_phase_ms) {
        sleep(Duration::from_millis(50 + shared.random_below(450))).await;
        if let Err(violation) = check_safety(shared) {
            return Some(violation);
        }
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

    // Quiet phase: faults stop (crashed nodes come back, partitions heal within their bounded
    // lengths, the network stops losing messages); everything must now finish.
    net.update_config(|config| config.packet_loss_rate = 0.0);
    shared.record("quiet phase: faults stop".into());
    let quiet_start = Instant::now();
    loop {
        sleep(Duration::from_millis(200)).await;
        if let Err(violation) = check_safety(shared) {
            return Some(violation);
        }
        if live(shared) {
            shared.record("all honest processors hold the confirmed keys".into());
            return None;
        }
        if quiet_start.elapsed() > Duration::from_millis(scenario.liveness_deadline_ms) {
            let status: Vec<_> = lock(&shared.coordinator).sessions().map(|(s, st)| format!("{s}: {st:?}")).collect();
            return Some((
                "liveness: keys confirmed and active after faults stop".into(),
                format!("not done {} ms into the quiet phase; sessions: {status:?}", scenario.liveness_deadline_ms),
            ));
        }
    }
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

/// Safety: whatever any processor activated is exactly what the coordinator confirmed for
/// that session, and nothing from a failed session is active anywhere.
fn check_safety(shared: &Shared) -> Result<(), (String, String)> {
    let coordinator = lock(&shared.coordinator);
    for (index, db) in shared.dbs.iter().enumerate() {
        let active = keygen::active_keys(db).map_err(|e| ("storage".to_string(), e.to_string()))?;
        let Some(active) = active else { continue };
        match coordinator.status(active.session) {
            Some(SessionStatus::Confirmed(keys)) if *keys == active.group_keys() => {}
            status => {
                return Err((
                    "agreement: active keys are the confirmed keys of a session that did not fail".into(),
                    format!("processor {index} activated session {} with {:?}; coordinator: {status:?}", active.session, active.group_keys()),
                ))
            }
        }
    }
    Ok(())
}

/// Liveness: the latest session is confirmed and every one of its participants activated it.
fn live(shared: &Shared) -> bool {
    let coordinator = lock(&shared.coordinator);
    let Some(session) = coordinator.latest_session() else { return false };
    if !matches!(coordinator.status(session), Some(SessionStatus::Confirmed(_))) {
        return false;
    }
    let participants = coordinator.participants(session).unwrap_or_default();
    shared.identities.iter().zip(&shared.dbs).all(|(identity, db)| {
        !participants.contains(&identity.peer_key())
            || keygen::active_keys(db).ok().flatten().is_some_and(|keys| keys.session == session)
    })
}

async fn processor_node(shared: Arc<Shared>, index: usize) {
    let endpoint = match Endpoint::bind(processor_addr(index)).await {
        Ok(endpoint) => endpoint,
        Err(error) => panic!("processor {index} cannot bind: {error}"),
    };
    let config = Config {
        chain: shared.chain,
        coordinator: lock(&shared.coordinator).peer_key(),
        confirmations: coordinator::local::DEFAULT_CONFIRMATIONS,
    };
    let rng = ChaCha20Rng::seed_from_u64(madsim::rand::random());
    let mut core = Processor::new(shared.dbs[index].clone(), shared.identities[index].clone(), config, rng);
    shared.record(format!("processor {index} starts"));
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let event = match timeout(wait, endpoint.recv_from_raw(TAG)).await {
            Ok(Ok((payload, _))) => match payload.downcast::<Vec<u8>>() {
                Ok(bytes) => {
                    shared.record(format!("processor {index} <- {}", digest(&bytes)));
                    Event::Inbound(*bytes)
                }
                Err(_) => continue,
            },
            Ok(Err(_)) => continue,
            Err(_) => {
                next_tick += TICK;
                Event::Tick { now: Millis(lock(&shared.trace).start.elapsed().as_millis() as u64) }
            }
        };
        let effects = match core.handle(event) {
            Ok(effects) => effects,
            Err(error) => panic!("processor {index} storage failed: {error}"),
        };
        for effect in effects {
            let Effect::Send(bytes) = effect else { continue };
            let bytes = if shared.byzantine() == Some(index) {
                byzantine::corrupt_keygen_shares(&shared.identities[index], &lock(&shared.coordinator), bytes)
            } else {
                bytes
            };
            shared.record(format!("processor {index} -> {}", digest(&bytes)));
            let _ = endpoint.send_to_raw(coordinator_addr(), TAG, Box::new(bytes)).await;
        }
    }
}

async fn coordinator_node(shared: Arc<Shared>) {
    let endpoint = match Endpoint::bind(coordinator_addr()).await {
        Ok(endpoint) => endpoint,
        Err(error) => panic!("coordinator cannot bind: {error}"),
    };
    shared.record("coordinator starts".into());
    let keys: Vec<_> = shared.identities.iter().map(Identity::peer_key).collect();
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let out: Vec<Outbound> = match timeout(wait, endpoint.recv_from_raw(TAG)).await {
            Ok(Ok((payload, _))) => match payload.downcast::<Vec<u8>>() {
                Ok(bytes) => {
                    shared.record(format!("coordinator <- {}", digest(&bytes)));
                    lock(&shared.coordinator).handle(&bytes)
                }
                Err(_) => continue,
            },
            Ok(Err(_)) => continue,
            Err(_) => {
                next_tick += TICK;
                let now = Millis(lock(&shared.trace).start.elapsed().as_millis() as u64);
                lock(&shared.coordinator).tick(now)
            }
        };
        for Outbound { to, bytes } in out {
            let Some(index) = keys.iter().position(|k| *k == to) else { continue };
            let copies = if shared.roll(shared.scenario.duplicate_per_mille) {
                lock(&shared.faults).duplicates += 1;
                2
            } else {
                1
            };
            for _ in 0 .. copies {
                shared.record(format!("coordinator -> processor {index} {}", digest(&bytes)));
                let _ = endpoint.send_to_raw(processor_addr(index), TAG, Box::new(bytes.clone())).await;
            }
        }
    }
}
