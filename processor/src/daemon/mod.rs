//! The production daemon: the deterministic core driven by real time, a node's RPC, a
//! coordinator link and RocksDB.
//!
//! One loop owns the core. It wakes on a tick (retransmission, tip polling) or on an inbound
//! frame, hands the event to the core, and performs the effects the core returns: sends on the
//! link, block fetches, publications and ring selections against the node. Every event's state
//! change and outbound messages are committed by the core in one DB transaction before any
//! effect is performed, so stopping (or being killed) between two events loses nothing: the core
//! resends what was not acknowledged and asks again for what was not delivered.
//!
//! Node failures back off (doubling up to [`MAX_BACKOFF`]); they are counted by kind in the
//! metrics. A final block that changed halts scanning for good (the core's decision); the daemon
//! keeps serving the link and reports itself unhealthy.

pub mod cli;
pub mod config;
pub mod metrics;
pub mod source;

use crate::db::RocksDb;
use crate::link::{LinkError, ProcessorLink};
use crate::rpc::RpcError;
use config::DaemonConfig;
use metrics::{Metrics, StateGauges};
use processor_core::core::{BlockStatus, Config, CoreError, Effect, Event, InboundStatus, Processor};
use processor_core::crypto::Identity;
use processor_core::ids::{BlockHeight, Millis};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use source::NodeSource;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The longest wait between node calls after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often the state gauges are read from the DB.
const GAUGES_EVERY: Duration = Duration::from_secs(1);
/// Unhealthy when the node has failed for this long.
const NODE_UNHEALTHY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("storage failed: {0}")]
    Core(#[from] CoreError),
    #[error("the coordinator link closed")]
    LinkClosed,
    #[error("cannot start: {0}")]
    Start(String),
}

/// Exponential backoff for node calls.
struct Backoff {
    delay: Duration,
    until: Option<Instant>,
    failing_since: Option<Instant>,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { delay: FIRST_BACKOFF, until: None, failing_since: None }
    }
    fn ready(&self) -> bool {
        self.until.is_none_or(|until| Instant::now() >= until)
    }
    fn failed(&mut self) {
        let now = Instant::now();
        self.until = Some(now + self.delay);
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
        self.failing_since.get_or_insert(now);
    }
    fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

pub struct Daemon<S: NodeSource, L: ProcessorLink> {
    core: Processor<RocksDb, ChaCha20Rng>,
    db: RocksDb,
    source: S,
    link: L,
    metrics: Arc<Metrics>,
    tick: Duration,
    confirmations: u64,
    started: Instant,
    backoff: Backoff,
    tip: Option<u64>,
    last_gauges: Option<Instant>,
    halt_logged: bool,
    /// When the core last said it next needs a tick (on the daemon's clock, [`Self::now`]).
    next_tick: Millis,
}

impl<S: NodeSource, L: ProcessorLink> Daemon<S, L> {
    /// Opens the core on the data dir's RocksDB (creating it if missing).
    pub fn open(
        config: &DaemonConfig,
        identity: Identity,
        source: S,
        link: L,
        metrics: Arc<Metrics>,
    ) -> Result<Daemon<S, L>, DaemonError> {
        let db = RocksDb::open(&config.data_dir)
            .map_err(|e| DaemonError::Start(format!("opening {}: {e}", config.data_dir.display())))?;
        let core_config = Config {
            chain: config.chain,
            coordinator: config.coordinator,
            confirmations: config.confirmations,
            proof_of_work: config.bitcoin_profile.proof_of_work,
            retirement_window: config.retirement_window,
        };
        // Fresh randomness per start (nonces never outlive a process).
        let rng =
            ChaCha20Rng::from_rng(rand_core::OsRng).map_err(|e| DaemonError::Start(format!("no randomness: {e}")))?;
        let core = Processor::open(db.clone(), identity, core_config, rng)?;
        metrics.update(|m| m.chain = format!("{:?}", config.chain).to_lowercase());
        Ok(Daemon {
            core,
            db,
            source,
            link,
            metrics,
            tick: config.tick,
            confirmations: config.confirmations,
            started: Instant::now(),
            backoff: Backoff::new(),
            tip: None,
            last_gauges: None,
            halt_logged: false,
            next_tick: Millis(0),
        })
    }

    /// Runs until `shutdown` turns true (or its sender is dropped). Returns after the event in
    /// hand is fully handled: nothing committed is lost, nothing half-done is committed.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
        tracing::info!(key = %self.core.peer_key(), "processor running");
        // Ticks come every `tick` (tip polling rides on them), earlier when the core asks.
        let mut next_wake = Instant::now();
        loop {
            let core_wants = self.started + Duration::from_millis(self.next_tick.0);
            next_wake = next_wake.min(core_wants);
            if *shutdown.borrow() {
                break;
            }
            self.metrics.update(|m| m.progress_at = Some(Instant::now()));
            let inbound = tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() { break }
                    continue;
                }
                () = tokio::time::sleep_until(next_wake) => None,
                received = self.link.recv() => match received {
                    Ok(bytes) => {
                        self.metrics.update(|m| m.link_failing_since = None);
                        Some(bytes)
                    }
                    Err(LinkError::Closed | LinkError::Misconfigured(_)) => return Err(DaemonError::LinkClosed),
                    Err(LinkError::Transient(error)) => {
                        tracing::warn!(%error, "coordinator link");
                        self.metrics.update(|m| {
                            m.edges.link_errors += 1;
                            m.link_failing_since.get_or_insert_with(Instant::now);
                        });
                        tokio::time::sleep(FIRST_BACKOFF).await;
                        continue;
                    }
                },
            };
            match inbound {
                Some(bytes) => {
                    let status = self.handle(Event::Inbound(bytes)).await?;
                    // Only what is committed is acked: a frame held in memory comes back.
                    if status == Some(InboundStatus::Held) {
                        self.link.defer().await;
                    } else {
                        self.link.handled().await;
                    }
                }
                None => {
                    self.on_tick().await?;
                    next_wake = Instant::now() + self.tick;
                }
            }
        }
        tracing::info!("processor stopped");
        Ok(())
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn on_tick(&mut self) -> Result<(), DaemonError> {
        self.handle(Event::Tick { now: self.now() }).await?;
        if self.backoff.ready() {
            match self.source.tip().await {
                Ok(height) => {
                    self.backoff.succeeded();
                    self.tip = Some(height);
                    self.handle(Event::ChainTip { height: BlockHeight(height) }).await?;
                }
                Err(error) => self.node_failed("tip", &error),
            }
        }
        let due = self.last_gauges.is_none_or(|at| at.elapsed() >= GAUGES_EVERY);
        if due {
            self.last_gauges = Some(Instant::now());
            self.refresh_gauges();
        }
        Ok(())
    }

    fn refresh_gauges(&mut self) {
        let state = match StateGauges::read(&self.db, self.tip.unwrap_or(0), self.confirmations) {
            Ok(state) => state,
            Err(error) => {
                tracing::error!(%error, "reading the state for metrics");
                return;
            }
        };
        if state.halted && !self.halt_logged {
            self.halt_logged = true;
            tracing::error!("a final block changed: scanning has halted for good; operator action needed");
        }
        let node_down = self.backoff.failing_since.is_some_and(|since| since.elapsed() >= NODE_UNHEALTHY_AFTER);
        let unhealthy = if state.halted {
            Some("halted: a final block changed".to_string())
        } else if node_down {
            Some("the node has been failing for over a minute".to_string())
        } else {
            None
        };
        let counters = self.core.counters().clone();
        let now = self.now().0;
        self.metrics.update(|m| {
            m.state = state;
            m.core = counters;
            m.unhealthy = unhealthy;
            m.last_loop_ms = now;
        });
    }

    fn node_failed(&mut self, call: &str, error: &RpcError) {
        tracing::warn!(call, %error, "node call failed");
        self.backoff.failed();
        self.metrics.update(|m| {
            m.edges.node_errors += 1;
            match error {
                RpcError::Timeout => m.edges.node_timeouts += 1,
                RpcError::Malformed(_) => m.edges.node_malformed += 1,
                _ => {}
            }
        });
    }

    /// Hands `event` to the core and performs the effects, feeding the answers back in;
    /// returns what became of `event` if it was an inbound frame.
    async fn handle(&mut self, event: Event) -> Result<Option<InboundStatus>, DaemonError> {
        let mut events = VecDeque::from([event]);
        let mut inbound = None;
        while let Some(event) = events.pop_front() {
            let outcome = off_the_event_loop(|| self.core.handle(event))?;
            self.metrics.update(|m| m.progress_at = Some(Instant::now()));
            inbound = inbound.or(outcome.inbound);
            self.next_tick = outcome.next_tick;
            if outcome.block == Some(BlockStatus::Refused) {
                tracing::warn!("the node served a block the core refused");
                self.backoff.failed();
            }
            let effects = outcome.effects;
            // Once a node call fails, the rest of this round's node calls wait for the backoff.
            for effect in effects {
                match effect {
                    Effect::Send(bytes) => match self.link.send(bytes).await {
                        Ok(()) => self.metrics.update(|m| m.link_failing_since = None),
                        Err(error) => {
                            // The core resends until acknowledged.
                            tracing::debug!(%error, "send failed");
                            self.metrics.update(|m| {
                                m.edges.link_errors += 1;
                                m.link_failing_since.get_or_insert_with(Instant::now);
                            });
                        }
                    },
                    Effect::FetchBlock { height } => {
                        if !self.backoff.ready() {
                            continue;
                        }
                        match self.source.block(height.0).await {
                            Ok(bytes) => events.push_back(Event::Block { height, bytes }),
                            Err(error) => self.node_failed("block", &error),
                        }
                    }
                    Effect::Publish { transaction } => match self.source.publish(&transaction).await {
                        Ok(()) => {
                            tracing::info!("transaction published");
                            self.metrics.update(|m| m.edges.published += 1);
                        }
                        Err(error) => {
                            tracing::debug!(%error, "publication refused (often: already known)");
                            self.metrics.update(|m| m.edges.publish_refused += 1);
                        }
                    },
                    Effect::SelectDecoys(request) => {
                        if !self.backoff.ready() {
                            continue;
                        }
                        match self.source.select_decoys(&request).await {
                            Ok(inputs) => events.push_back(Event::Decoys { plan: request.plan, inputs }),
                            Err(error) => self.node_failed("select decoys", &error),
                        }
                    }
                }
            }
        }
        Ok(inbound)
    }
}

/// Runs `work` (the core's handling: signing rounds, block scans, tens of milliseconds) so it
/// blocks no other task: on a multi-threaded runtime the worker hands its other tasks (the
/// metrics endpoint, the broker client) to another thread first. The core stays sequential; only
/// the tasks that shared this worker go on meanwhile.
fn off_the_event_loop<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Reads an identity file (hex secret key).
pub fn read_identity(path: &std::path::Path) -> Result<Identity, String> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?);
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), secret.as_mut())
        .map_err(|_| format!("{} does not hold a 32-byte hex secret key", path.display()))?;
    Ok(Identity::from_secret_bytes(&secret))
}

/// Writes a new identity file (mode 0600, never overwriting).
pub fn write_identity(path: &std::path::Path, identity: &Identity) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let secret = zeroize::Zeroizing::new(hex::encode(&identity.secret_bytes()[..]));
    file.write_all(secret.as_bytes()).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Checks the node serves the configured network (Bitcoin-family: the genesis hash). A node
/// that does not answer yet is waited for (with backoff, until `shutdown`); a node on another
/// network is an error.
pub async fn check_network(
    config: &DaemonConfig,
    rpc: &crate::rpc::bitcoin::BitcoinRpc,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let Some(expected) = config.bitcoin_profile.genesis else { return Ok(()) };
    let mut backoff = Backoff::new();
    let genesis = loop {
        match rpc.block_hash(0).await {
            Ok(genesis) => break genesis,
            Err(error) => {
                backoff.failed();
                tracing::warn!(%error, retry_in_ms = backoff.delay.as_millis() as u64, "cannot ask the node for its genesis");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay) => {}
                    _ = shutdown.changed() => return Err("stopped before the node answered".into()),
                }
            }
        }
    };
    if genesis.to_string() != expected {
        return Err(format!(
            "the node's genesis is {genesis}, not {}'s ({expected}): wrong node or wrong `network`",
            config.bitcoin_profile.name
        ));
    }
    Ok(())
}

/// The group's Bitcoin deposit address in the configured network's encoding.
pub fn bitcoin_address(profile: &config::BitcoinProfile, script: &bitcoin::Script) -> Option<String> {
    use bitcoin::bech32::{segwit, Fe32, Hrp};
    if !script.is_p2tr() {
        return None;
    }
    let hrp = Hrp::parse(profile.hrp).ok()?;
    let program = &script.as_bytes()[2..];
    segwit::encode(hrp, Fe32::P, program).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_profile_and_match_rust_bitcoin_on_bitcoin() {
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let key = bitcoin::key::XOnlyPublicKey::from_slice(&[2; 32]).unwrap();
        let address = bitcoin::Address::p2tr(&secp, key, None, bitcoin::Network::Bitcoin);
        let script = address.script_pubkey();
        let bitcoin_profile = config::BITCOIN_PROFILES.iter().find(|p| p.name == "bitcoin").unwrap();
        assert_eq!(bitcoin_address(bitcoin_profile, &script), Some(address.to_string()));
        let litecoin = config::BITCOIN_PROFILES.iter().find(|p| p.name == "litecoin-regtest").unwrap();
        let encoded = bitcoin_address(litecoin, &script).unwrap();
        assert!(encoded.starts_with("rltc1p"), "{encoded}");
        // Only Taproot outputs are the group's.
        use bitcoin::hashes::Hash;
        let p2wpkh = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([1; 20]));
        assert_eq!(bitcoin_address(bitcoin_profile, &p2wpkh), None);
    }

    /// A task spawned just before the core's handling sits in the worker's own slot, which no
    /// other worker steals: run inline, the handling would block it until it returns. Handed
    /// off, the task runs meanwhile (the handling here waits for it, up to a generous bound).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cores_handling_blocks_no_other_task() {
        // On a worker, as the daemon's loop runs (the test's own body does not).
        let on_a_worker = tokio::spawn(async {
            let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = ran.clone();
            let other = tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
            let seen_while_handling = off_the_event_loop(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while std::time::Instant::now() < deadline {
                    if ran.load(std::sync::atomic::Ordering::SeqCst) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                false
            });
            other.await.unwrap();
            seen_while_handling
        });
        assert!(on_a_worker.await.unwrap(), "the other task waited for the handling to end");
        // On a single-threaded runtime the work runs inline (block_in_place would panic there).
        let inline = tokio::task::spawn_blocking(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async { off_the_event_loop(|| 7) })
        });
        assert_eq!(inline.await.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new();
        assert!(backoff.ready());
        backoff.failed();
        assert!(!backoff.ready());
        tokio::time::advance(FIRST_BACKOFF).await;
        assert!(backoff.ready());
        for _ in 0..20 {
            backoff.failed();
        }
        assert_eq!(backoff.delay, MAX_BACKOFF);
        assert!(backoff.failing_since.is_some());
        backoff.succeeded();
        assert!(backoff.ready() && backoff.failing_since.is_none());
    }
}
