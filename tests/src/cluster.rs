//! A cluster as operators would run it: N `processor run` daemons (separate processes, RocksDB
//! data dirs, metrics ports) for one chain, a coordinator service in this process, all on a real
//! NATS JetStream broker; the chain is the mock Bitcoin chain served over Bitcoin Core's JSON-RPC
//! from this process, or a real node the test provides.

use crate::{free_port, http_get, metric, wait_for_port, Nats, Process};
use coordinator::service::{Service, ServiceHandle};
use coordinator::{Coordinator, SessionStatus};
use mock_chains::bitcoin::rpc::RpcNode;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor::link::nats::{NatsConfig, NatsCoordinatorLink};
use processor_core::crypto::Identity;
use processor_core::ids::{BlockHeight, ExternalChain, PeerKey, SessionId};
use processor_core::messages::{Batch, GroupKeys};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The key-generation session the tests order.
pub const KEYGEN_SESSION: SessionId = SessionId(1);

/// The mock Bitcoin chain served over Bitcoin Core's JSON-RPC from this process, with a funded
/// depositor (coinbases mature after one block).
pub struct ServedBitcoin {
    pub chain: Arc<Mutex<MockBitcoin>>,
    pub node: RpcNode,
    pub depositor: Depositor,
}

impl ServedBitcoin {
    pub async fn start(seed: u64) -> ServedBitcoin {
        let (mock, depositor) = mock_chains::bitcoin::funded_chain(seed, 5);
        let chain = Arc::new(Mutex::new(mock));
        let node = RpcNode::start(chain.clone(), "user", "password").await.expect("the mock node serves");
        ServedBitcoin { chain, node, depositor }
    }

    /// How daemons reach it.
    pub fn settings(&self, confirmations: u64, timeout_ms: u64) -> NodeSettings {
        NodeSettings {
            chain: ExternalChain::Bitcoin,
            url: format!("http://{}", self.node.address),
            credentials: Some(("user".into(), "password".into())),
            network: "devnet",
            confirmations,
            timeout_ms,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, MockBitcoin> {
        self.chain.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a daemon is pointed at.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub chain: ExternalChain,
    pub url: String,
    pub credentials: Option<(String, String)>,
    pub network: &'static str,
    pub confirmations: u64,
    /// How long one node call may take (ms).
    pub timeout_ms: u64,
}

pub struct Daemon {
    pub process: Process,
    pub identity: Identity,
    pub metrics_port: u16,
}

impl Daemon {
    /// The daemon's metrics, if it answers.
    pub fn metrics(&self) -> Option<String> {
        http_get(self.metrics_port, "/metrics").map(|(_, body)| body)
    }

    pub fn metric(&self, name: &str) -> Option<u64> {
        metric(&self.metrics()?, name)
    }
}

pub struct Cluster {
    pub nats: Nats,
    pub coordinator: ServiceHandle,
    pub daemons: Vec<Daemon>,
    pub keys: Vec<PeerKey>,
    stop_service: watch::Sender<bool>,
    service: tokio::task::JoinHandle<()>,
}

impl Cluster {
    /// Starts the broker, the coordinator service and `validators` daemons of `binary`.
    pub async fn start(binary: &str, dir: &Path, validators: usize, seed: u64, node: &NodeSettings) -> Cluster {
        let nats = Nats::start(dir);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let coordinator_identity = Identity::generate(&mut rng);
        let identities: Vec<Identity> = (0..validators).map(|_| Identity::generate(&mut rng)).collect();
        let keys: Vec<PeerKey> = identities.iter().map(Identity::peer_key).collect();
        let nats_config = NatsConfig { url: nats.url(), stream: "CUSTODY".into() };
        let mut daemons = Vec::new();
        for (index, identity) in identities.into_iter().enumerate() {
            let identity_file = dir.join(format!("processor-{index}.key"));
            processor::daemon::write_identity(&identity_file, &identity).expect("the identity file is written");
            let metrics_port = free_port();
            let mut command = vec![
                binary.to_string(),
                "run".into(),
                "--chain".into(),
                match node.chain {
                    ExternalChain::Bitcoin => "bitcoin".into(),
                    ExternalChain::Monero => "monero".into(),
                },
                "--data-dir".into(),
                dir.join(format!("processor-{index}")).display().to_string(),
                "--identity".into(),
                identity_file.display().to_string(),
                "--coordinator-key".into(),
                coordinator_identity.peer_key().to_string(),
                "--confirmations".into(),
                node.confirmations.to_string(),
                "--node-url".into(),
                node.url.clone(),
                "--network".into(),
                node.network.into(),
                "--node-timeout-ms".into(),
                node.timeout_ms.to_string(),
                "--nats-url".into(),
                nats.url(),
                "--metrics-listen".into(),
                format!("127.0.0.1:{metrics_port}"),
            ];
            if let Some((user, password)) = &node.credentials {
                command.extend(["--node-user".into(), user.clone(), "--node-password".into(), password.clone()]);
            }
            let process = Process::start(command, &dir.join(format!("processor-{index}.log")));
            daemons.push(Daemon { process, identity, metrics_port });
        }
        for daemon in &daemons {
            assert!(
                wait_for_port(daemon.metrics_port, Duration::from_secs(30)),
                "a daemon did not come up:\n{}",
                daemon.process.log_tail(30)
            );
        }
        let link = NatsCoordinatorLink::connect(&nats_config).await.expect("the coordinator connects to the broker");
        let (service, coordinator) = Service::new(Coordinator::new(coordinator_identity, &keys));
        let (stop_service, shutdown) = watch::channel(false);
        let service = tokio::spawn(async move {
            let _ = service.run(link, shutdown).await;
        });
        Cluster { nats, coordinator, daemons, keys, stop_service, service }
    }

    /// Stops the coordinator service (the daemons stop when the cluster is dropped).
    pub async fn stop_coordinator(&mut self) {
        let _ = self.stop_service.send(true);
        let _ = (&mut self.service).await;
    }

    /// Orders key generation (session 1, the chain's keys active from `tip`) and waits until
    /// the coordinator confirms the keys.
    pub async fn keygen(&self, threshold: u16, tip: u64, within: Duration) -> GroupKeys {
        self.order_keygen(threshold, tip);
        self.wait("key generation", within, |c| {
            matches!(c.status(KEYGEN_SESSION), Some(SessionStatus::Confirmed(_) | SessionStatus::Failed { .. }))
        })
        .await;
        self.confirmed_keys()
    }

    /// Orders key generation without waiting.
    pub fn order_keygen(&self, threshold: u16, tip: u64) {
        let keys = self.keys.clone();
        self.coordinator.act(|c| {
            c.observe_chain_tip(BlockHeight(tip));
            c.start_keygen(KEYGEN_SESSION, threshold, keys)
        });
    }

    /// The confirmed keys (panics if key generation did not succeed).
    pub fn confirmed_keys(&self) -> GroupKeys {
        match self.coordinator.read(|c| c.status(KEYGEN_SESSION).cloned()) {
            Some(SessionStatus::Confirmed(keys)) => keys,
            other => self.fail(&format!("key generation did not complete: {other:?}")),
        }
    }

    /// Polls the coordinator until `done`; panics with the daemons' logs after `within`.
    pub async fn wait(&self, what: &str, within: Duration, mut done: impl FnMut(&Coordinator) -> bool) {
        let started = Instant::now();
        while !self.coordinator.read(&mut done) {
            if started.elapsed() > within {
                self.fail(&format!("timed out waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics with `message` and the end of every daemon's log.
    pub fn fail(&self, message: &str) -> ! {
        let logs: Vec<String> = self
            .daemons
            .iter()
            .enumerate()
            .map(|(i, d)| format!("--- processor {i}:\n{}", d.process.log_tail(15)))
            .collect();
        panic!("{message}\n{}", logs.join("\n"))
    }

    /// Signed Batches, without their signatures (those differ run to run), by id.
    pub fn batches(&self) -> Vec<Batch> {
        let mut batches: Vec<Batch> =
            self.coordinator.read(|c| c.signed_batches().map(|(batch, _)| batch.clone()).collect());
        batches.sort_by_key(|batch| batch.id);
        batches.dedup();
        batches
    }
}
