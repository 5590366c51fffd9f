//! The daemon's configuration: a TOML file, overridden by environment variables
//! (`PROCESSOR_*`), overridden by flags. Everything is checked before anything starts.

use processor_core::core::ProofOfWork;
use processor_core::ids::{ExternalChain, PeerKey};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `processor run`; each also reads an environment variable. (No `Debug`: it holds
/// the node's password.)
#[derive(clap::Args, Default, Clone)]
pub struct RunArgs {
    /// A TOML file with the settings below (flags and environment override it).
    #[arg(long, env = "PROCESSOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// `bitcoin` or `monero`.
    #[arg(long, env = "PROCESSOR_CHAIN")]
    pub chain: Option<String>,
    /// The RocksDB directory (created if missing).
    #[arg(long, env = "PROCESSOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The identity file (`processor new-identity`).
    #[arg(long, env = "PROCESSOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// The coordinator's public key (hex): the only signer commands are accepted from.
    #[arg(long, env = "PROCESSOR_COORDINATOR_KEY")]
    pub coordinator_key: Option<String>,
    /// Blocks on top of a block before it is final.
    #[arg(long, env = "PROCESSOR_CONFIRMATIONS")]
    pub confirmations: Option<u64>,
    /// Blocks after a key rotation's handover during which deposits to the old key are still
    /// credited (default: about a day, 144 Bitcoin blocks or 720 Monero blocks).
    #[arg(long, env = "PROCESSOR_RETIREMENT_WINDOW")]
    pub retirement_window: Option<u64>,
    /// The node's RPC URL (`http://host:port`).
    #[arg(long, env = "PROCESSOR_NODE_URL")]
    pub node_url: Option<String>,
    #[arg(long, env = "PROCESSOR_NODE_USER")]
    pub node_user: Option<String>,
    #[arg(long, env = "PROCESSOR_NODE_PASSWORD", hide_env_values = true)]
    pub node_password: Option<String>,
    /// How long one node call may take.
    #[arg(long, env = "PROCESSOR_NODE_TIMEOUT_MS")]
    pub node_timeout_ms: Option<u64>,
    /// Bitcoin-family network profile: bitcoin, testnet, signet, regtest, litecoin-regtest,
    /// devnet (the mock chain).
    #[arg(long, env = "PROCESSOR_NETWORK")]
    pub network: Option<String>,
    /// The broker (`nats://host:port`).
    #[arg(long, env = "PROCESSOR_NATS_URL")]
    pub nats_url: Option<String>,
    /// The JetStream stream the link uses.
    #[arg(long, env = "PROCESSOR_NATS_STREAM")]
    pub nats_stream: Option<String>,
    /// Where to serve /metrics and /health (`127.0.0.1:9100`); off if unset.
    #[arg(long, env = "PROCESSOR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// `human` or `json`.
    #[arg(long, env = "PROCESSOR_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// The TOML file's shape (every field optional here; required ones are checked after merging).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    chain: Option<String>,
    data_dir: Option<PathBuf>,
    identity: Option<PathBuf>,
    coordinator_key: Option<String>,
    confirmations: Option<u64>,
    retirement_window: Option<u64>,
    network: Option<String>,
    tick_ms: Option<u64>,
    #[serde(default)]
    node: NodeSection,
    #[serde(default)]
    nats: NatsSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    log: LogSection,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct NatsSection {
    url: Option<String>,
    stream: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<SocketAddr>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// A Bitcoin-family network: how addresses are shown, which genesis the node must have and
/// what every block's header must prove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitcoinProfile {
    pub name: &'static str,
    /// Bech32 human-readable part of segwit addresses.
    pub hrp: &'static str,
    /// The genesis block hash (display order); `None` skips the check (the mock chain).
    pub genesis: Option<&'static str>,
    /// The proof-of-work hash and the network's easiest target.
    pub proof_of_work: ProofOfWork,
}

pub const BITCOIN_PROFILES: &[BitcoinProfile] = &[
    BitcoinProfile {
        name: "bitcoin",
        hrp: "bc",
        genesis: Some("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
        proof_of_work: ProofOfWork::BITCOIN,
    },
    BitcoinProfile {
        name: "testnet",
        hrp: "tb",
        genesis: Some("000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"),
        proof_of_work: ProofOfWork::BITCOIN,
    },
    BitcoinProfile {
        name: "signet",
        hrp: "tb",
        genesis: Some("00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"),
        proof_of_work: ProofOfWork::SIGNET,
    },
    BitcoinProfile {
        name: "regtest",
        hrp: "bcrt",
        genesis: Some("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
        proof_of_work: ProofOfWork::REGTEST,
    },
    // Litecoin Core 0.21: bech32 prefix `rltc`; its own genesis; blocks without MWEB data
    // parse as Bitcoin blocks (MWEB is not activated on a fresh regtest chain); proof of work
    // by scrypt.
    BitcoinProfile {
        name: "litecoin-regtest",
        hrp: "rltc",
        genesis: Some("530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"),
        proof_of_work: ProofOfWork::LITECOIN_REGTEST,
    },
    // The mock chain mines at regtest difficulty.
    BitcoinProfile { name: "devnet", hrp: "bcrt", genesis: None, proof_of_work: ProofOfWork::REGTEST },
];

#[derive(Clone, Debug)]
pub enum LinkConfig {
    Nats(crate::link::nats::NatsConfig),
    /// In-process (the devnet); only usable when the daemon is started as a library.
    Embedded,
}

/// The node's RPC login. The password never reaches a log or a Debug print, and is wiped on
/// drop.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    pub user: String,
    pub password: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub chain: ExternalChain,
    pub data_dir: PathBuf,
    pub identity: PathBuf,
    pub coordinator: PeerKey,
    pub confirmations: u64,
    pub retirement_window: u64,
    pub node_url: String,
    pub node_credentials: Option<NodeCredentials>,
    pub node_timeout: Duration,
    pub bitcoin_profile: BitcoinProfile,
    pub link: LinkConfig,
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub tick: Duration,
}

pub fn parse_chain(text: &str) -> Result<ExternalChain, String> {
    match text {
        "bitcoin" => Ok(ExternalChain::Bitcoin),
        "monero" => Ok(ExternalChain::Monero),
        other => Err(format!("unknown chain {other:?} (bitcoin or monero)")),
    }
}

pub fn parse_peer_key(text: &str) -> Result<PeerKey, String> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| format!("{text:?} is not a 32-byte hex key"))?;
    Ok(PeerKey(key))
}

impl DaemonConfig {
    /// Merges the file (if any) under the flags and environment, then checks everything.
    pub fn load(args: &RunArgs) -> Result<DaemonConfig, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let required =
            |name: &str| format!("{name} is not set (flag --{}, file or environment)", name.replace('_', "-"));
        let chain = parse_chain(&args.chain.clone().or(file.chain).ok_or_else(|| required("chain"))?)?;
        let coordinator = parse_peer_key(
            &args.coordinator_key.clone().or(file.coordinator_key).ok_or_else(|| required("coordinator_key"))?,
        )
        .map_err(|e| format!("coordinator_key: {e}"))?;
        let confirmations = args.confirmations.or(file.confirmations).unwrap_or(match chain {
            ExternalChain::Bitcoin => 6,
            ExternalChain::Monero => 10,
        });
        if confirmations == 0 {
            return Err("confirmations must be at least 1".into());
        }
        let retirement_window = args
            .retirement_window
            .or(file.retirement_window)
            .unwrap_or(processor_core::core::Config::default_retirement_window(chain));
        if retirement_window == 0 {
            return Err("retirement_window must be at least 1 block".into());
        }
        let network = args.network.clone().or(file.network).unwrap_or_else(|| "bitcoin".into());
        let bitcoin_profile = *BITCOIN_PROFILES
            .iter()
            .find(|p| p.name == network)
            .ok_or_else(|| format!("unknown network {network:?}; one of: {}", profile_names()))?;
        let user = args.node_user.clone().or(file.node.user);
        let password = args.node_password.clone().or(file.node.password);
        let node_credentials = match (user, password) {
            (Some(user), Some(password)) => Some(NodeCredentials { user, password: password.into() }),
            (None, None) => None,
            _ => return Err("node user and password go together".into()),
        };
        let nats_url = args.nats_url.clone().or(file.nats.url);
        let link = match nats_url {
            Some(url) => LinkConfig::Nats(crate::link::nats::NatsConfig {
                url,
                stream: args.nats_stream.clone().or(file.nats.stream).unwrap_or_else(|| "CUSTODY".into()),
            }),
            None => LinkConfig::Embedded,
        };
        let log_format = match args.log_format.clone().or(file.log.format).as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(format!("unknown log format {other:?} (human or json)")),
        };
        // The loop turns at least once a tick; /health calls a loop that has not turned for 30 s
        // stalled, so a tick is bounded well below that.
        let tick_ms = file.tick_ms.unwrap_or(250);
        if !(10..=5_000).contains(&tick_ms) {
            return Err(format!("tick_ms {tick_ms} is outside 10..=5000"));
        }
        Ok(DaemonConfig {
            chain,
            data_dir: args.data_dir.clone().or(file.data_dir).ok_or_else(|| required("data_dir"))?,
            identity: args.identity.clone().or(file.identity).ok_or_else(|| required("identity"))?,
            coordinator,
            confirmations,
            retirement_window,
            node_url: args.node_url.clone().or(file.node.url).ok_or_else(|| required("node_url"))?,
            node_credentials,
            node_timeout: Duration::from_millis(args.node_timeout_ms.or(file.node.timeout_ms).unwrap_or(10_000).max(1)),
            bitcoin_profile,
            link,
            metrics_listen: args.metrics_listen.or(file.metrics.listen),
            log_format,
            tick: Duration::from_millis(tick_ms),
        })
    }
}

fn profile_names() -> String {
    BITCOIN_PROFILES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            chain: Some("bitcoin".into()),
            data_dir: Some("db".into()),
            identity: Some("id".into()),
            coordinator_key: Some("11".repeat(32)),
            node_url: Some("http://127.0.0.1:1".into()),
            ..RunArgs::default()
        }
    }

    #[test]
    fn flags_override_the_file_and_missing_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("processor.toml");
        std::fs::write(&path, "chain = \"monero\"\nconfirmations = 3\n[nats]\nurl = \"nats://h:1\"\n").unwrap();
        let config = DaemonConfig::load(&RunArgs { config: Some(path.clone()), ..args() }).unwrap();
        assert_eq!(config.chain, ExternalChain::Bitcoin, "the flag wins");
        assert_eq!(config.confirmations, 3, "the file fills what flags leave unset");
        assert!(
            matches!(config.link, LinkConfig::Nats(ref nats) if nats.url == "nats://h:1" && nats.stream == "CUSTODY")
        );

        let error = DaemonConfig::load(&RunArgs { node_url: None, ..args() }).unwrap_err();
        assert!(error.contains("node_url"), "{error}");
        std::fs::write(&path, "chian = \"bitcoin\"\n").unwrap();
        let error = DaemonConfig::load(&RunArgs { config: Some(path.clone()), ..args() }).unwrap_err();
        assert!(error.contains("chian"), "an unknown key is refused: {error}");
        let error = DaemonConfig::load(&RunArgs { network: Some("dogecoin".into()), ..args() }).unwrap_err();
        assert!(error.contains("litecoin-regtest"), "{error}");
        let error = DaemonConfig::load(&RunArgs { coordinator_key: Some("zz".into()), ..args() }).unwrap_err();
        assert!(error.contains("coordinator_key"), "{error}");
        for tick_ms in [0, 9, 5_001] {
            std::fs::write(&path, format!("tick_ms = {tick_ms}\n")).unwrap();
            let error = DaemonConfig::load(&RunArgs { config: Some(path.clone()), ..args() }).unwrap_err();
            assert!(error.contains("tick_ms"), "{error}");
        }
    }

    #[test]
    fn the_example_file_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("processor.example.toml");
        let config = DaemonConfig::load(&RunArgs { config: Some(path), ..RunArgs::default() }).unwrap();
        assert_eq!(config.chain, ExternalChain::Bitcoin);
        assert_eq!(config.log_format, LogFormat::Json);
        let credentials = config.node_credentials.clone().unwrap();
        assert_eq!((credentials.user.as_str(), credentials.password.as_str()), ("processor", "change-me"));
        assert!(!format!("{config:?}").contains("change-me"), "the password is not printed");
        assert!(config.metrics_listen.is_some());
    }

    #[test]
    fn known_profiles_match_the_bitcoin_crate() {
        use bitcoin::Network;
        for (name, network) in [
            ("bitcoin", Network::Bitcoin),
            ("testnet", Network::Testnet),
            ("signet", Network::Signet),
            ("regtest", Network::Regtest),
        ] {
            let profile = BITCOIN_PROFILES.iter().find(|p| p.name == name).unwrap();
            let genesis = bitcoin::constants::genesis_block(network);
            assert_eq!(profile.genesis, Some(genesis.block_hash().to_string().as_str()), "{name}");
            // The same easiest target as the bitcoin crate's, and the genesis proves its work.
            let limit = bitcoin::params::Params::new(network).max_attainable_target.to_compact_lossy();
            assert_eq!(profile.proof_of_work.limit_bits(), limit.to_consensus(), "{name}");
            let bytes = bitcoin::consensus::serialize(&genesis);
            processor_core::chain::bitcoin::check_proof_of_work(&bytes, &profile.proof_of_work).unwrap();
        }
    }
}
