//! A local devnet in one process: a coordinator and N processor daemons per chain. The daemons
//! are the production ones (RocksDB in a temporary directory, the real driver loop, metrics),
//! following mock chains: Bitcoin served over Bitcoin Core's JSON-RPC on a local port, Monero
//! in process. The coordinator reaches them over an in-process link. On each chain the
//! processors generate the threshold keys, deposits with InInstructions arrive, become final,
//! are reported and end in threshold-signed Batches, one daemon is killed and restarted, and
//! Burns are paid by threshold-signed transactions; everything is printed.

use bitcoin::key::{Secp256k1, TapTweak, XOnlyPublicKey};
use clap::Parser;
use coordinator::local::SyncMonero;
use coordinator::service::{Service, ServiceHandle};
use coordinator::{Coordinator, Observation, SessionStatus};
use mock_chains::bitcoin::rpc::RpcNode;
use mock_chains::bitcoin::{Depositor as BitcoinDepositor, MockBitcoin};
use mock_chains::monero::{Depositor as MoneroDepositor, MockMonero, MoneroConfig};
use processor::daemon::config::{DaemonConfig, LinkConfig, LogFormat, BITCOIN_PROFILES};
use processor::daemon::metrics::Metrics;
use processor::daemon::source::{BitcoinSource, InMemorySource, NodeSource};
use processor::daemon::Daemon;
use processor::link::embedded::{hub, EmbeddedHub};
use processor::rpc::bitcoin::BitcoinRpc;
use processor_core::chain::instruction::encode_instruction;
use processor_core::crypto::Identity;
use processor_core::ids::{Amount, BlockHeight, ExternalChain, Millis, PeerKey, SessionId};
use processor_core::messages::{Burn, ChainPublicKey, GroupKeys, InInstruction};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Parser, Debug)]
#[command(
    about = "Run a local devnet: a coordinator and N processor daemons per chain, keys, deposits, Batches, Burns"
)]
struct Args {
    /// Number of validators (processor daemons per chain).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Signers needed (t of n).
    #[arg(long, default_value_t = 3)]
    threshold: u16,
    /// Seed of the identities, the mock chains and the depositors.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.validators < 2 || args.validators > processor_core::keygen::MAX_PARTICIPANTS {
        eprintln!("error: --validators must be within 2..={}", processor_core::keygen::MAX_PARTICIPANTS);
        return ExitCode::from(2);
    }
    if args.threshold < 2 || usize::from(args.threshold) > args.validators {
        eprintln!("error: --threshold must be within 2..={}", args.validators);
        return ExitCode::from(2);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "devnet: {} validators, {}-of-{} keys, seed {}; processor daemons on RocksDB, coordinator on an in-process link",
        args.validators, args.threshold, args.validators, args.seed
    );
    for chain in [ExternalChain::Bitcoin, ExternalChain::Monero] {
        if let Err(error) = runtime.block_on(run_chain(&args, chain)) {
            eprintln!("error: {chain}: {error}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(rss) = resident_memory_kib() {
        println!("\ndevnet: whole process resident memory at the end: {} MiB", rss / 1024);
    }
    ExitCode::SUCCESS
}

/// Blocks on top of a block before the devnet's processors treat it as final.
const CONFIRMATIONS: u64 = 3;
/// The daemons' tick (tip polling, resends).
const TICK: Duration = Duration::from_millis(100);
/// How long any one stage may take before the devnet gives up.
const STAGE_TIMEOUT: Duration = Duration::from_secs(300);

/// The devnet's mock chain and the depositor funding the group on it.
// One value per run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Chain {
    /// The chain, its JSON-RPC server, the depositor.
    Bitcoin(Arc<Mutex<MockBitcoin>>, RpcNode, BitcoinDepositor),
    Monero(SyncMonero, MoneroDepositor),
}

const RPC_USER: &str = "devnet";
const RPC_PASSWORD: &str = "devnet";

impl Chain {
    async fn new(chain: ExternalChain, seed: u64) -> Result<Chain, String> {
        Ok(match chain {
            ExternalChain::Bitcoin => {
                let (mock, depositor) = mock_chains::bitcoin::funded_chain(seed, 5);
                let mock = Arc::new(Mutex::new(mock));
                let node = RpcNode::start(mock.clone(), RPC_USER, RPC_PASSWORD)
                    .await
                    .map_err(|e| format!("serving the mock Bitcoin chain: {e}"))?;
                println!("[{chain}] mock chain served over JSON-RPC at http://{}", node.address);
                Chain::Bitcoin(mock, node, depositor)
            }
            ExternalChain::Monero => {
                let mut mock =
                    MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
                let depositor = MoneroDepositor::new(seed);
                for _ in 0..12 {
                    mock.mine_to(&depositor.address());
                }
                println!("[{chain}] mock chain in process");
                Chain::Monero(SyncMonero(Arc::new(Mutex::new(mock))), depositor)
            }
        })
    }

    fn tip(&self) -> u64 {
        match self {
            Chain::Bitcoin(mock, ..) => lock(mock).tip_height(),
            Chain::Monero(mock, _) => lock(&mock.0).tip_height() as u64,
        }
    }

    fn mine(&self) {
        match self {
            Chain::Bitcoin(mock, ..) => drop(lock(mock).mine()),
            Chain::Monero(mock, _) => drop(lock(&mock.0).mine()),
        }
    }

    /// A deposit to the group, with an InInstruction crediting `account` if given.
    fn deposit(&mut self, keys: &GroupKeys, amount: u64, account: Option<u8>) -> Result<(), String> {
        let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
        match (self, keys.chain) {
            (Chain::Bitcoin(mock, _, depositor), ChainPublicKey::Bitcoin { internal_key }) => {
                let script = processor_core::chain::bitcoin::group_script(&internal_key).map_err(|e| e.to_string())?;
                let mut mock = lock(mock);
                let tx = depositor
                    .deposit(&mock, &script, bitcoin::Amount::from_sat(amount), instruction.as_deref())
                    .map_err(|e| format!("{e:?}"))?;
                mock.submit(tx).map(drop).map_err(|e| format!("{e:?}"))
            }
            (Chain::Monero(mock, depositor), ChainPublicKey::Monero { spend_key }) => {
                let address =
                    processor_core::chain::monero::group_address(&spend_key, monero_wallet::address::Network::Mainnet)
                        .map_err(|e| e.to_string())?;
                let mut mock = lock(&mock.0);
                let tx =
                    depositor.deposit(&mock, &address, amount, instruction.as_deref()).map_err(|e| format!("{e:?}"))?;
                mock.submit(tx).map(drop).map_err(|e| format!("{e:?}"))
            }
            _ => Err("the keys are for another chain".into()),
        }
    }

    /// A payable destination for a Burn (or, if `!valid`, one that is not).
    fn destination(&self, seed: u64, valid: bool) -> Vec<u8> {
        match (self, valid) {
            (Chain::Bitcoin(..), true) => BitcoinDepositor::new(seed).script_pubkey().to_bytes(),
            (Chain::Monero(..), true) => {
                mock_chains::monero::WalletKeys::from_seed(seed).address().to_string().into_bytes()
            }
            (_, false) => b"nowhere".to_vec(),
        }
    }

    /// Amounts in the chain's unit: deposits, and the fee rate.
    fn unit(&self) -> (u64, u64) {
        match self {
            Chain::Bitcoin(mock, ..) => (10_000, lock(mock).fee_rate_sat_per_vb()),
            Chain::Monero(..) => (100_000_000, 20_000),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One processor daemon running as a task.
struct Running {
    identity: Identity,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), String>>,
}

/// Everything a chain's daemons share.
struct Devnet {
    chain: ExternalChain,
    coordinator_key: PeerKey,
    hub: EmbeddedHub,
    data: tempfile::TempDir,
    processors: Vec<Running>,
}

impl Devnet {
    fn config(&self, index: usize) -> DaemonConfig {
        DaemonConfig {
            chain: self.chain,
            data_dir: self.data.path().join(format!("processor-{}", index + 1)),
            identity: self.data.path().join(format!("processor-{}.key", index + 1)),
            coordinator: self.coordinator_key,
            confirmations: CONFIRMATIONS,
            retirement_window: processor_core::core::Config::default_retirement_window(self.chain),
            node_url: String::new(),
            node_credentials: None,
            node_timeout: Duration::from_secs(5),
            bitcoin_profile: BITCOIN_PROFILES
                .iter()
                .copied()
                .find(|p| p.name == "devnet")
                .expect("the devnet profile exists"),
            link: LinkConfig::Embedded,
            metrics_listen: None,
            log_format: LogFormat::Human,
            tick: TICK,
        }
    }

    fn start(&self, index: usize, identity: Identity, chain: &Chain) -> Result<Running, String> {
        let config = self.config(index);
        let metrics = Arc::new(Metrics::default());
        let link = self.hub.connect(identity.peer_key());
        let (stop, shutdown) = watch::channel(false);
        let task = match chain {
            Chain::Bitcoin(_, node, _) => {
                let rpc = BitcoinRpc::new(node.address.clone(), Some((RPC_USER, RPC_PASSWORD)), Duration::from_secs(5));
                spawn_daemon(&config, identity.clone(), BitcoinSource(rpc), link, metrics.clone(), shutdown)?
            }
            Chain::Monero(mock, _) => {
                spawn_daemon(&config, identity.clone(), InMemorySource(mock.clone()), link, metrics.clone(), shutdown)?
            }
        };
        Ok(Running { identity, metrics, stop, task })
    }

    /// Kills daemon `index` (its task is dropped at whatever await it is in: only what RocksDB
    /// committed survives) and starts it again on the same data.
    async fn kill_and_restart(&mut self, index: usize, chain: &Chain) -> Result<(), String> {
        let running = &mut self.processors[index];
        running.task.abort();
        // Wait for the task to be gone (and RocksDB's lock released).
        let _ = (&mut running.task).await;
        let identity = running.identity.clone();
        self.processors[index] = self.start(index, identity, chain)?;
        Ok(())
    }

    async fn stop(self) -> Result<(), String> {
        for running in &self.processors {
            let _ = running.stop.send(true);
        }
        for (index, running) in self.processors.into_iter().enumerate() {
            match running.task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(format!("processor {} failed: {error}", index + 1)),
                Err(error) => return Err(format!("processor {} panicked: {error}", index + 1)),
            }
        }
        Ok(())
    }
}

fn spawn_daemon<S: NodeSource + 'static>(
    config: &DaemonConfig,
    identity: Identity,
    source: S,
    link: processor::link::embedded::EmbeddedProcessorLink,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let daemon = Daemon::open(config, identity, source, link, metrics).map_err(|e| e.to_string())?;
    Ok(tokio::spawn(async move { daemon.run(shutdown).await.map_err(|e| e.to_string()) }))
}

/// Prints the coordinator's new observations; remembers how many it printed.
struct Printer {
    chain: ExternalChain,
    printed: usize,
    started: Instant,
}

impl Printer {
    fn print_new(&mut self, coordinator: &ServiceHandle) {
        let (chain, started) = (self.chain, self.started);
        let printed = self.printed;
        self.printed = coordinator.read(|c| {
            let observations = c.observations();
            for observation in &observations[printed.min(observations.len())..] {
                print_observation(chain, Millis(started.elapsed().as_millis() as u64), observation);
            }
            observations.len()
        });
    }
}

/// Polls `done` (printing what happens, mining a block every `mine_every` if set) until it holds.
async fn wait_for(
    what: &str,
    printer: &mut Printer,
    coordinator: &ServiceHandle,
    chain: &Chain,
    mine_every: Option<Duration>,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut last_mined = Instant::now();
    loop {
        printer.print_new(coordinator);
        if done() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > STAGE_TIMEOUT {
            return Err(format!("timed out waiting for {what}"));
        }
        if mine_every.is_some_and(|every| last_mined.elapsed() >= every) {
            chain.mine();
            last_mined = Instant::now();
        }
        coordinator.act(|c| {
            c.observe_chain_tip(BlockHeight(chain.tip()));
            vec![]
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_chain(args: &Args, chain_kind: ExternalChain) -> Result<(), String> {
    // Each chain has its own processors, so each gets its own seed.
    let seed = args.seed.wrapping_mul(2).wrapping_add(chain_kind as u64);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut chain = Chain::new(chain_kind, seed).await?;
    let coordinator_identity = Identity::generate(&mut rng);
    let identities: Vec<Identity> = (0..args.validators).map(|_| Identity::generate(&mut rng)).collect();
    let keys: Vec<PeerKey> = identities.iter().map(Identity::peer_key).collect();
    let (service, coordinator) = Service::new(Coordinator::new(coordinator_identity.clone(), &keys));
    let (coordinator_link, hub) = hub();
    let (stop_service, service_shutdown) = watch::channel(false);
    let service_task = tokio::spawn(service.run(coordinator_link, service_shutdown));
    let data = tempfile::Builder::new().prefix("devnet-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut devnet =
        Devnet { chain: chain_kind, coordinator_key: coordinator_identity.peer_key(), hub, data, processors: vec![] };
    for (index, identity) in identities.into_iter().enumerate() {
        let running = devnet.start(index, identity, &chain)?;
        devnet.processors.push(running);
    }
    println!("[{chain_kind}] {} processor daemons started, data in {}", args.validators, devnet.data.path().display());

    let mut printer = Printer { chain: chain_kind, printed: 0, started: Instant::now() };
    let session = SessionId(1);
    println!("\n[{chain_kind}] coordinator orders key generation, session {session}");
    coordinator.act(|c| {
        c.observe_chain_tip(BlockHeight(chain.tip()));
        c.start_keygen(session, args.threshold, keys.clone())
    });
    let validators = args.validators;
    let took = wait_for("key generation", &mut printer, &coordinator, &chain, None, || {
        coordinator.read(|c| {
            let activated = c.observations().iter().filter(|o| matches!(o, Observation::Activated { .. })).count();
            activated == validators || matches!(c.status(session), Some(SessionStatus::Failed { .. }))
        })
    })
    .await?;
    let group_keys = match coordinator.read(|c| c.status(session).cloned()) {
        Some(SessionStatus::Confirmed(keys)) => keys,
        other => return Err(format!("key generation did not complete: {other:?}")),
    };
    println!("[{chain_kind}] keys generated and active in {} ms", took.as_millis());
    print_keys(chain_kind, &group_keys);

    // Deposits: three credited on Serai, one without an InInstruction (kept by the group).
    let (unit, fee_rate) = chain.unit();
    println!("[{chain_kind}] depositing 40, 25 and 35 (with InInstructions) and 10 (without) x {unit}");
    for (amount, account) in [(40, Some(1)), (25, Some(2)), (10, None), (35, Some(3))] {
        chain.deposit(&group_keys, amount * unit, account)?;
        // Mined one by one, so the depositor's change is spendable again for the next.
        chain.mine();
    }
    for _ in 0..CONFIRMATIONS {
        chain.mine();
    }
    // The last deposit's block is final from this moment on.
    let took = wait_for("the deposits' Batches", &mut printer, &coordinator, &chain, None, || {
        coordinator.read(|c| c.signed_batches().count() >= 3)
    })
    .await?;
    println!(
        "[{chain_kind}] time from the last deposit's block becoming final to its signed Batch: {} ms",
        took.as_millis()
    );

    let victim = args.validators - 1;
    println!("[{chain_kind}] killing processor {} and restarting it on its RocksDB", victim + 1);
    devnet.kill_and_restart(victim, &chain).await?;

    // Burns: three payable, one to nowhere.
    let burns: Vec<Burn> = [(11u8, 15u64, true), (12, 20, true), (13, 5, true), (14, 5, false)]
        .into_iter()
        .map(|(id, amount, valid)| Burn {
            id: [id; 32],
            destination: chain.destination(u64::from(id), valid),
            amount: Amount(amount * unit),
        })
        .collect();
    println!("[{chain_kind}] Serai burns 15, 20 and 5 x {unit} to three addresses and 5 x {unit} to nowhere, at fee rate {fee_rate}");
    coordinator.act(|c| c.burn(chain_kind, burns, fee_rate));
    // Mine while the group plans, signs, publishes and sees its transactions final everywhere.
    let metrics: Vec<Arc<Metrics>> = devnet.processors.iter().map(|p| p.metrics.clone()).collect();
    let took = wait_for(
        "the Burns' transactions",
        &mut printer,
        &coordinator,
        &chain,
        Some(Duration::from_millis(500)),
        || {
            metrics.iter().all(|m| {
                let state = m.snapshot().state;
                state.plans_completed > 0 && state.plans_planned + state.plans_signed + state.plans_failed == 0
            })
        },
    )
    .await?;
    let plans = metrics[0].snapshot().state.plans_completed;
    println!(
        "[{chain_kind}] every processor saw the plans' transactions in final blocks ({} ms after the Burns)",
        took.as_millis()
    );

    let batches = coordinator.read(|c| c.signed_batches().count());
    let snapshots: Vec<_> = metrics.iter().map(|m| m.snapshot()).collect();
    let blocks: u64 = snapshots.iter().map(|s| s.core.blocks_scanned).sum();
    let refused: u64 = snapshots.iter().map(|s| s.core.refused_frames + s.core.refused_blocks).sum();
    devnet.stop().await?;
    let _ = stop_service.send(true);
    let _ = service_task.await;
    println!(
        "[{chain_kind}] summary: keys confirmed, {batches} Batch(es) signed, {plans} transaction(s) paid on chain (threshold-signed), one processor killed and restarted; {blocks} blocks scanned over all processors, {refused} frames or blocks refused; every daemon stopped cleanly"
    );
    Ok(())
}

/// This process's resident memory (Linux).
fn resident_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn print_observation(chain: ExternalChain, now: Millis, observation: &Observation) {
    let line = match observation {
        Observation::KeysGenerated { participant, .. } => format!("processor {participant} generated its key shares"),
        Observation::KeysConfirmed { .. } => "every processor reported the same keys: confirmed".to_string(),
        Observation::KeysDisagree { .. } => "processors reported different keys".to_string(),
        Observation::Blamed { by, accused, reason, .. } => format!("processor {by} blames {accused}: {reason:?}"),
        Observation::Activated { participant, .. } => format!("processor {participant} activated the keys"),
        Observation::RefusedFrame { error } => format!("refused a frame: {error}"),
        Observation::BlockReported { by, height, deposits, .. } => {
            format!("processor {by} reports final block {height} with {} deposits", deposits.len())
        }
        Observation::BlockAcknowledged { height, batch: Some(batch) } => {
            format!("block {height} acknowledged as Batch {batch}")
        }
        Observation::BlockAcknowledged { height, batch: None } => {
            format!("block {height} acknowledged (no InInstructions)")
        }
        Observation::Payments { by, event } => match event {
            processor_core::messages::PaymentsEvent::BurnRejected { reason, .. } => {
                format!("processor {by} rejects a Burn: {reason}")
            }
            processor_core::messages::PaymentsEvent::BurnForfeited { amount, .. } => {
                format!("processor {by} forfeits a Burn of {amount} (cannot pay its fee)")
            }
            processor_core::messages::PaymentsEvent::Planned { plan, burns } => {
                format!("processor {by} planned {plan} paying {} Burn(s)", burns.len())
            }
            processor_core::messages::PaymentsEvent::PlanFailed { plan, reason } => {
                format!("processor {by}: {plan} cannot be built: {reason}")
            }
        },
        Observation::BatchSigned { batch, .. } => {
            format!("Batch {} signed: {} InInstructions from block {}", batch.id, batch.instructions.len(), batch.block)
        }
        Observation::SigningBlamed { id, by, accused } => format!("processor {by} blames {accused} in {id:?}"),
        Observation::Reattempted { id } => format!("signing re-attempted: {id:?}"),
        Observation::ChainHalted { by, height } => format!("processor {by} halted its chain at {height}"),
        Observation::HandedOver { session, from, participant, height } => {
            format!("processor {participant}: session {session}'s keys took over from session {from} at {height}")
        }
        Observation::Retired { session, participant, height } => {
            format!("processor {participant}: session {session}'s keys retired at {height}, shares deleted")
        }
        Observation::TransactionCompleted { by, plan, transaction } => {
            format!("processor {by}: {plan} complete, transaction {}", hex::encode(transaction))
        }
    };
    println!("[{chain}] {:>7} ms  {line}", now.0);
}

fn print_keys(chain: ExternalChain, keys: &GroupKeys) {
    println!("[{chain}] batch key (Ed25519):      {}", keys.batch);
    match keys.chain {
        ChainPublicKey::Bitcoin { internal_key } => {
            println!("[{chain}] internal key (x-only):    {}", hex::encode(internal_key));
            if let Ok(internal) = XOnlyPublicKey::from_slice(&internal_key) {
                let secp = Secp256k1::verification_only();
                let (output, _) = internal.tap_tweak(&secp, None);
                println!("[{chain}] output key (BIP341):      {}", output);
                let address = bitcoin::Address::p2tr(&secp, internal, None, bitcoin::Network::Regtest);
                println!("[{chain}] regtest address:          {address}");
            }
        }
        ChainPublicKey::Monero { spend_key } => {
            println!("[{chain}] spend key (Ed25519):      {}", hex::encode(spend_key));
        }
    }
}
