//! A local devnet in one process: a coordinator and several processors over a faulty in-process
//! network, following mock Bitcoin and Monero chains. On each chain the processors generate
//! the threshold keys, deposits with InInstructions arrive, become final, are reported and end
//! in threshold-signed Batches, and Burns are planned into transactions; everything printed.

use bitcoin::key::{Secp256k1, TapTweak, XOnlyPublicKey};
use clap::Parser;
use coordinator::local::{ChainSource, Faults, LocalNetwork, SharedBitcoin, SharedMonero};
use mock_chains::bitcoin::{Depositor as BitcoinDepositor, MockBitcoin};
use mock_chains::monero::{Depositor as MoneroDepositor, MockMonero, MoneroConfig};
use processor::chain::instruction::encode_instruction;
use processor::ids::Amount;
use processor::messages::{Burn, InInstruction};
use std::cell::RefCell;
use std::rc::Rc;
use coordinator::{Observation, SessionStatus};
use processor::ids::{ExternalChain, Millis, SessionId};
use processor::messages::{ChainPublicKey, GroupKeys};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Run a local devnet: a coordinator and N processors per chain, keys, deposits, Batches, Burns")]
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

/// Blocks on top of a block before the devnet's processors treat it as final.
const CONFIRMATIONS: u64 = 3;

/// The devnet's mock chain and the depositor funding the group on it.
enum Chain {
    Bitcoin(Rc<RefCell<MockBitcoin>>, BitcoinDepositor),
    Monero(Rc<RefCell<MockMonero>>, MoneroDepositor),
}

impl Chain {
    fn new(chain: ExternalChain, seed: u64) -> Chain {
        match chain {
            ExternalChain::Bitcoin => {
                let mut mock = MockBitcoin::new(seed);
                mock.set_coinbase_maturity(1);
                let depositor = BitcoinDepositor::new(seed);
                for _ in 0 .. 5 {
                    mock.mine_to(depositor.script_pubkey());
                }
                Chain::Bitcoin(Rc::new(RefCell::new(mock)), depositor)
            }
            ExternalChain::Monero => {
                let mut mock = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
                let depositor = MoneroDepositor::new(seed);
                for _ in 0 .. 12 {
                    mock.mine_to(&depositor.address());
                }
                Chain::Monero(Rc::new(RefCell::new(mock)), depositor)
            }
        }
    }

    fn source(&self) -> Box<dyn ChainSource> {
        match self {
            Chain::Bitcoin(mock, _) => Box::new(SharedBitcoin(mock.clone())),
            Chain::Monero(mock, _) => Box::new(SharedMonero(mock.clone())),
        }
    }

    fn mine(&self) {
        match self {
            Chain::Bitcoin(mock, _) => drop(mock.borrow_mut().mine()),
            Chain::Monero(mock, _) => drop(mock.borrow_mut().mine()),
        }
    }

    /// A deposit to the group, with an InInstruction crediting `account` if given.
    fn deposit(&mut self, keys: &GroupKeys, amount: u64, account: Option<u8>) -> Result<(), String> {
        let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
        match (self, keys.chain) {
            (Chain::Bitcoin(mock, depositor), ChainPublicKey::Bitcoin { internal_key }) => {
                let script = processor::chain::bitcoin::group_script(&internal_key).map_err(|e| e.to_string())?;
                let tx = depositor
                    .deposit(&mock.borrow(), &script, bitcoin::Amount::from_sat(amount), instruction.as_deref())
                    .map_err(|e| format!("{e:?}"))?;
                mock.borrow_mut().submit(tx).map(drop).map_err(|e| format!("{e:?}"))
            }
            (Chain::Monero(mock, depositor), ChainPublicKey::Monero { spend_key }) => {
                let address = processor::chain::monero::group_address(&spend_key, monero_wallet::address::Network::Mainnet)
                    .map_err(|e| e.to_string())?;
                let tx = depositor.deposit(&mock.borrow(), &address, amount, instruction.as_deref()).map_err(|e| format!("{e:?}"))?;
                mock.borrow_mut().submit(tx).map(drop).map_err(|e| format!("{e:?}"))
            }
            _ => Err("the keys are for another chain".into()),
        }
    }

    /// A payable destination for a Burn (or, if `!valid`, one that is not).
    fn destination(&self, seed: u64, valid: bool) -> Vec<u8> {
        match (self, valid) {
            (Chain::Bitcoin(..), true) => BitcoinDepositor::new(seed).script_pubkey().to_bytes(),
            (Chain::Monero(..), true) => mock_chains::monero::WalletKeys::from_seed(seed).address().to_string().into_bytes(),
            (_, false) => b"nowhere".to_vec(),
        }
    }

    /// Amounts in the chain's unit: deposits, and the fee rate.
    fn unit(&self) -> (u64, u64) {
        match self {
            Chain::Bitcoin(mock, _) => (10_000, mock.borrow().fee_rate_sat_per_vb()),
            Chain::Monero(..) => (100_000_000, 20_000),
        }
    }
}

fn run_chain(args: &Args, chain: ExternalChain) -> Result<(), String> {
    let faults = if args.reliable { Faults::none() } else { Faults::crashing() };
    // Each chain has its own processors, so each gets its own stream of randomness.
    let seed = args.seed.wrapping_mul(2).wrapping_add(chain as u64);
    let mut network = LocalNetwork::new(args.validators, chain, seed, faults);
    let mut mock = Chain::new(chain, seed);
    network.attach_chain(mock.source(), CONFIRMATIONS);
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
    let keys = match network.coordinator().status(session) {
        Some(SessionStatus::Confirmed(keys)) if done => *keys,
        other => return Err(format!("key generation did not complete: {other:?}")),
    };
    print_keys(chain, &keys);

    // Deposits: three credited on Serai, one without an InInstruction (kept by the group).
    let (unit, fee_rate) = mock.unit();
    println!("[{chain}] depositing 40, 25 and 35 (with InInstructions) and 10 (without) x {unit}");
    for (amount, account) in [(40, Some(1)), (25, Some(2)), (10, None), (35, Some(3))] {
        mock.deposit(&keys, amount * unit, account)?;
        // Mined one by one, so the depositor's change is spendable again for the next.
        mock.mine();
    }
    for _ in 0 ..= CONFIRMATIONS {
        mock.mine();
    }
    let done = network.run_until(Millis(network.now().0 + 300_000), |net| {
        let observations = net.coordinator().observations();
        for observation in &observations[printed ..] {
            print_observation(chain, net.now(), observation);
        }
        printed = observations.len();
        net.coordinator().signed_batches().count() >= 3
    });
    if !done {
        return Err("the deposits' Batches were not signed".into());
    }

    // Burns: three payable, one to nowhere.
    let burns: Vec<Burn> = [(11u8, 15u64, true), (12, 20, true), (13, 5, true), (14, 5, false)]
        .into_iter()
        .map(|(id, amount, valid)| Burn { id: [id; 32], destination: mock.destination(u64::from(id), valid), amount: Amount(amount * unit) })
        .collect();
    println!("[{chain}] Serai burns 15, 20 and 5 x {unit} to three addresses and 5 x {unit} to nowhere, at fee rate {fee_rate}");
    network.burn(chain, burns, fee_rate);
    network.run_until(Millis(network.now().0 + 10_000), |net| {
        let observations = net.coordinator().observations();
        for observation in &observations[printed ..] {
            print_observation(chain, net.now(), observation);
        }
        printed = observations.len();
        false
    });
    // Signing progress differs between processors; what they planned may not.
    let planned = |net: &LocalNetwork, index: usize| -> Result<Vec<_>, String> {
        let plans = processor::db::schema::PLANS.entries(net.db(index)).map_err(|e| e.to_string())?;
        Ok(plans.into_iter().map(|(_, record)| (record.id, record.plan)).collect::<Vec<_>>())
    };
    let reference = planned(&network, 0)?;
    for index in 1 .. network.len() {
        if planned(&network, index)? != reference {
            return Err(format!("processor {} planned differently from processor 1", index + 1));
        }
    }
    let plans = processor::db::schema::PLANS.entries(network.db(0)).map_err(|e| e.to_string())?;
    for (_, record) in &plans {
        let paid: Vec<String> = record.plan.payments.iter().map(|p| format!("{} (asked {})", p.paid, p.payment.amount)).collect();
        println!(
            "[{chain}] planned transaction {}: {} input(s) of {}, pays {}, change {:?}, fee {}",
            record.id,
            record.plan.inputs.len(),
            record.plan.input_total(),
            paid.join(", "),
            record.plan.change.map(|c| c.0),
            record.plan.fee
        );
    }
    let paid;
    {
        // Mine while the group signs, publishes and sees its transactions final everywhere.
        let all_complete = |net: &LocalNetwork| {
            (0 .. net.len()).all(|index| {
                processor::db::schema::PLANS.entries(net.db(index)).is_ok_and(|plans| {
                    plans.iter().all(|(_, r)| matches!(r.state, processor::payments::PlanState::Completed { .. }))
                })
            })
        };
        let deadline = network.now().0 + 600_000;
        while !all_complete(&network) {
            if network.now().0 > deadline {
                return Err("the planned transactions were not paid on chain".into());
            }
            mock.mine();
            network.run_until(Millis(network.now().0 + 2_000), |net| {
                let observations = net.coordinator().observations();
                for observation in &observations[printed ..] {
                    print_observation(chain, net.now(), observation);
                }
                printed = observations.len();
                false
            });
        }
        paid = plans.len();
        println!("[{chain}] every processor saw the plans' transactions in final blocks");
    }
    let stats = network.stats();
    println!(
        "[{chain}] summary: keys confirmed, {} Batch(es) signed, {} transaction(s) planned identically by all {} processors, {paid} paid on chain (threshold-signed); {} processor crashes, {} messages dropped, {} duplicated",
        network.coordinator().signed_batches().count(),
        plans.len(),
        network.len(),
        stats.crashes,
        stats.dropped,
        stats.duplicated
    );
    Ok(())
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
        Observation::Payments { by, event } => match event {
            processor::messages::PaymentsEvent::BurnRejected { reason, .. } => format!("processor {by} rejects a Burn: {reason}"),
            processor::messages::PaymentsEvent::BurnForfeited { amount, .. } => format!("processor {by} forfeits a Burn of {amount} (cannot pay its fee)"),
            processor::messages::PaymentsEvent::Planned { plan, burns } => format!("processor {by} planned {plan} paying {} Burn(s)", burns.len()),
            processor::messages::PaymentsEvent::PlanFailed { plan, reason } => format!("processor {by}: {plan} cannot be built: {reason}"),
        },
        Observation::BatchSigned { batch, .. } => {
            format!("Batch {} signed: {} InInstructions from block {}", batch.id, batch.instructions.len(), batch.block)
        }
        Observation::SigningBlamed { id, by, accused } => format!("processor {by} blames {accused} in {id:?}"),
        Observation::Reattempted { id } => format!("signing re-attempted: {id:?}"),
        Observation::ChainHalted { by, height } => format!("processor {by} halted its chain at {height}"),
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
