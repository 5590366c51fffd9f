//! The `processor` command line: the daemon (`processor run`) and its identity management. A
//! library module so that any binary (the `processor` one, test harnesses) runs the same thing.

use crate::daemon::config::{DaemonConfig, LinkConfig, LogFormat, RunArgs};
use crate::daemon::metrics::Metrics;
use crate::daemon::source::{BitcoinSource, MoneroSource, NodeSource};
use crate::daemon::{check_network, read_identity, write_identity, Daemon};
use crate::link::nats::NatsProcessorLink;
use crate::link::LinkError;
use crate::rpc::bitcoin::BitcoinRpc;
use clap::{Parser, Subcommand};
use processor_core::crypto::Identity;
use processor_core::ids::ExternalChain;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Parser)]
#[command(version, about = "Threshold-custody processor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the processor for one chain until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
    /// Create a new network identity (Ed25519) and print its public key, which the coordinator
    /// is configured with. Refuses to overwrite an existing file.
    NewIdentity {
        /// Where to write the secret key (hex, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of an identity file.
    ShowIdentity {
        #[arg(long)]
        path: PathBuf,
    },
    /// Show what a data directory holds (keys, heights, Batches, plans, Burns, funds, a halt),
    /// read-only: safe while the daemon runs.
    Inspect {
        /// The daemon's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => run(*args),
        Command::NewIdentity { out } => {
            let identity = Identity::generate(&mut rand_core::OsRng);
            write_identity(&out, &identity).map(|()| println!("{}", identity.peer_key()))
        }
        Command::ShowIdentity { path } => read_identity(&path).map(|identity| println!("{}", identity.peer_key())),
        Command::Inspect { data_dir, json } => crate::inspect::inspect(&data_dir).and_then(|report| {
            if json {
                serde_json::to_string_pretty(&report).map(|text| println!("{text}")).map_err(|e| e.to_string())
            } else {
                print!("{}", report.human());
                Ok(())
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    let config = DaemonConfig::load(&args)?;
    init_logs(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(run_daemon(config))
}

async fn run_daemon(config: DaemonConfig) -> Result<(), String> {
    let identity = read_identity(&config.identity)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(listen) = config.metrics_listen {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("metrics: binding {listen}: {e}"))?;
        tracing::info!(%listen, "serving /metrics and /health");
        tokio::spawn(crate::daemon::metrics::serve(listener, metrics.clone()));
    }
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping (signal)");
        let _ = stop.send(true);
    });
    let LinkConfig::Nats(nats) = &config.link else {
        return Err("no link configured: set nats_url (the in-process link exists only inside the devnet)".into());
    };
    // The node first: a node on another network is a configuration error to report at once.
    match config.chain {
        ExternalChain::Bitcoin => {
            let credentials = config.node_credentials.as_ref().map(|c| (c.user.as_str(), c.password.as_str()));
            let address = config.node_url.trim_start_matches("http://").trim_end_matches('/').to_string();
            let rpc = BitcoinRpc::new(address, credentials, config.node_timeout);
            check_network(&config, &rpc, shutdown.clone()).await?;
            let link = connect(nats, &identity, shutdown.clone()).await?;
            start(&config, identity, BitcoinSource(rpc), link, metrics, shutdown).await
        }
        ExternalChain::Monero => {
            // Holds the password: wiped on drop.
            let url = zeroize::Zeroizing::new(match &config.node_credentials {
                Some(c) => config.node_url.replacen("://", &format!("://{}:{}@", c.user, c.password.as_str()), 1),
                None => config.node_url.clone(),
            });
            let mut delay = std::time::Duration::from_millis(250);
            let mut stopping = shutdown.clone();
            let source = loop {
                match MoneroSource::connect(&url, config.node_timeout).await {
                    Ok(source) => break source,
                    Err(error) => {
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "cannot reach monerod")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopping.changed() => return Err("stopped before monerod answered".into()),
                }
                delay = (delay * 2).min(crate::daemon::MAX_BACKOFF);
            };
            let link = connect(nats, &identity, shutdown.clone()).await?;
            start(&config, identity, source, link, metrics, shutdown).await
        }
    }
}

async fn start<S: NodeSource>(
    config: &DaemonConfig,
    identity: Identity,
    source: S,
    link: NatsProcessorLink,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let daemon = Daemon::open(config, identity, source, link, metrics).map_err(|e| e.to_string())?;
    daemon.run(shutdown).await.map_err(|e| e.to_string())
}

/// Connects to the broker, retrying with backoff until it answers or the daemon is stopped.
async fn connect(
    nats: &crate::link::nats::NatsConfig,
    identity: &Identity,
    mut shutdown: watch::Receiver<bool>,
) -> Result<NatsProcessorLink, String> {
    let mut delay = std::time::Duration::from_millis(250);
    tracing::info!(url = %nats.url, stream = %nats.stream, "connecting to the broker");
    let me = identity.peer_key();
    loop {
        // The client retries an unreachable broker by itself: a stop must not wait for it.
        let attempt = tokio::select! {
            attempt = NatsProcessorLink::connect(nats, &me) => attempt,
            _ = shutdown.changed() => return Err("stopped before the broker answered".into()),
        };
        match attempt {
            Ok(link) => return Ok(link),
            Err(error @ LinkError::Misconfigured(_)) => return Err(error.to_string()),
            Err(error) => tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "cannot reach the broker"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return Err("stopped before the broker answered".into()),
        }
        delay = (delay * 2).min(crate::daemon::MAX_BACKOFF);
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
