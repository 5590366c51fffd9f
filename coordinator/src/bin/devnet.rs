//! A local devnet in one process: a coordinator and several processors over a faulty in-process
//! network, generating each chain's threshold keys and printing what happens.

use bitcoin::key::{Secp256k1, TapTweak, XOnlyPublicKey};
use clap::Parser;
use coordinator::local::{Faults, LocalNetwork};
use coordinator::{Observation, SessionStatus};
use processor::ids::{ExternalChain, Millis, SessionId};
use processor::messages::{ChainPublicKey, GroupKeys};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Run a local devnet: a coordinator and N processors generate threshold keys")]
struct Args {
    /// Number of validators (processors per chain).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Signers needed (t of n).
    #[arg(long, default_value_t = 3)]
    threshold: u16,
    /// Seed of the network's faults and of every processor's randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Deliver messages reliably instead of dropping, duplicating and crashing.
    #[arg(long)]
    reliable: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.validators < 2 || args.validators > processor::keygen::MAX_PARTICIPANTS {
        eprintln!("error: --validators must be within 2..={}", processor::keygen::MAX_PARTICIPANTS);
        return ExitCode::from(2);
    }
    if args.threshold < 2 || usize::from(args.threshold) > args.validators {
        eprintln!("error: --threshold must be within 2..={}", args.validators);
        return ExitCode::from(2);
    }
    println!(
        "devnet: {} validators, {}-of-{} keys, seed {}, network {}",
        args.validators,
        args.threshold,
        args.validators,
        args.seed,
        if args.reliable { "reliable" } else { "dropping, duplicating, reordering; processors crashing" }
    );
    for chain in [ExternalChain::Bitcoin, ExternalChain::Monero] {
        if let Err(error) = run_chain(&args, chain) {
            eprintln!("error: {chain}: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run_chain(args: &Args, chain: ExternalChain) -> Result<(), String> {
    let faults = if args.reliable { Faults::none() } else { Faults::crashing() };
    // Each chain has its own processors, so each gets its own stream of randomness.
    let mut network = LocalNetwork::new(args.validators, chain, args.seed.wrapping_mul(2).wrapping_add(chain as u64), faults);
    let session = SessionId(1);
    println!("\n[{chain}] coordinator orders key generation, session {session}");
    let started = Instant::now();
    network.start_keygen(session, args.threshold, None);

    let mut printed = 0;
    let done = network.run_until(Millis(3_600_000), |net| {
        let observations = net.coordinator().observations();
        for observation in &observations[printed ..] {
            print_observation(chain, net.now(), observation);
        }
        printed = observations.len();
        let activated = observations.iter().filter(|o| matches!(o, Observation::Activated { .. })).count();
        activated == net.len() || matches!(net.coordinator().status(session), Some(SessionStatus::Failed { .. }))
    });
    let stats = network.stats();
    println!(
        "[{chain}] network: {} delivered, {} dropped, {} duplicated, {} processor crashes; {} ms virtual, {:.1} ms wall",
        stats.delivered,
        stats.dropped,
        stats.duplicated,
        stats.crashes,
        network.now().0,
        started.elapsed().as_secs_f64() * 1000.0
    );
    match network.coordinator().status(session) {
        Some(SessionStatus::Confirmed(keys)) if done => {
            print_keys(chain, keys);
            Ok(())
        }
        other => Err(format!("key generation did not complete: {other:?}")),
    }
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
        Observation::BlockAcknowledged { height, batch: Some(batch) } => format!("block {height} acknowledged as Batch {batch}"),
        Observation::BlockAcknowledged { height, batch: None } => format!("block {height} acknowledged (no InInstructions)"),
        Observation::Payments { by, event } => format!("processor {by}: {event:?}"),
        Observation::BatchSigned { batch, .. } => {
            format!("Batch {} signed: {} InInstructions from block {}", batch.id, batch.instructions.len(), batch.block)
        }
        Observation::SigningBlamed { id, by, accused } => format!("processor {by} blames {accused} in {id:?}"),
        Observation::Reattempted { id } => format!("signing re-attempted: {id:?}"),
        Observation::ChainHalted { by, height } => format!("processor {by} halted its chain at {height}"),
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
