//! The command line: one seed or a range, a progress line, a summary table, and for a failing
//! seed the command that reproduces it.

use clap::Parser;
use sim::{Outcome, Scenario};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(about = "Deterministic simulation of a validator set's processors")]
pub struct Args {
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of consecutive seeds to run.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    #[arg(long, default_value_t = 4)]
    validators: usize,
    #[arg(long, default_value_t = 3)]
    threshold: u16,
    /// Message loss, per mille.
    #[arg(long, default_value_t = 100)]
    loss: u32,
    /// Maximum message latency, ms.
    #[arg(long, default_value_t = 300)]
    latency_ms: u64,
    /// Coordinator duplicates, per mille.
    #[arg(long, default_value_t = 100)]
    duplicate: u32,
    /// Processor crashes per block, per mille.
    #[arg(long, default_value_t = 40)]
    crash: u32,
    /// Coordinator crashes per block, per mille.
    #[arg(long, default_value_t = 15)]
    coordinator_crash: u32,
    /// Coordinator/processor partitions per block, per mille.
    #[arg(long, default_value_t = 30)]
    partition: u32,
    /// Failed commits per block, per mille (half lost, half on disk though reported failed;
    /// the processor restarts).
    #[arg(long, default_value_t = Scenario::standard().storage_fault_per_mille)]
    storage_fault: u32,
    /// Chance per block, per processor, that its node falls behind the best chain, per mille.
    #[arg(long, default_value_t = 20)]
    node_lag: u32,
    /// Chance per block, per processor, that its node stops answering for a while, per mille.
    #[arg(long, default_value_t = 10)]
    node_stall: u32,
    /// Chance that a block a node serves is corrupted, per mille.
    #[arg(long, default_value_t = 50)]
    node_garbage: u32,
    /// Chance per shallow reorganisation, per processor, that its node stays on the replaced
    /// blocks for a while, per mille.
    #[arg(long, default_value_t = 250)]
    node_stale: u32,
    /// Deposits per block, per mille (another one is drawn while the roll succeeds).
    #[arg(long, default_value_t = Scenario::standard().deposit_per_mille)]
    deposit: u32,
    /// Serai's Burns (1 to 4) per block, per mille.
    #[arg(long, default_value_t = Scenario::standard().burn_per_mille)]
    burn: u32,
    /// Hostile dust floods (deposits below the minimum) per block, per mille.
    #[arg(long, default_value_t = Scenario::standard().dust_per_mille)]
    dust: u32,
    /// Monero burning-bug deposits (a twin reusing a deposit's transaction key) per block, per
    /// mille.
    #[arg(long, default_value_t = Scenario::standard().twin_deposit_per_mille)]
    twin_deposit: u32,
    /// Payments to the group's change address per block, per mille.
    #[arg(long, default_value_t = Scenario::standard().change_deposit_per_mille)]
    change_deposit: u32,
    /// Blocks with thousands of deposits per block, per mille (each costs seconds).
    #[arg(long, default_value_t = Scenario::standard().large_block_per_mille)]
    large_block: u32,
    /// Key rotations at most (0..=3), each started with this chance per block
    /// (`--rotation-rate`).
    #[arg(long, default_value_t = 0)]
    rotations: u32,
    /// Chance per block that a rotation starts, per mille.
    #[arg(long, default_value_t = Scenario::rotating().rotation_per_mille)]
    rotation_rate: u32,
    /// Deposits with malformed instruction data per block, per mille.
    #[arg(long, default_value_t = Scenario::standard().malformed_instruction_per_mille)]
    malformed_instruction: u32,
    /// Share of Bitcoin Burns near their destination's dust limit, per mille.
    #[arg(long, default_value_t = Scenario::standard().near_dust_burn_per_mille)]
    near_dust_burn: u32,
    /// An adversary, repeatable: the last validator Byzantine, `keygen` (corrupt DKG shares)
    /// or `signing` (wrong signature shares); or a faulty `coordinator` (commands it must not
    /// send, at `--faulty-coordinator` per mille per block).
    #[arg(long)]
    byzantine: Vec<sim::Byzantine>,
    /// A faulty coordinator's hostile commands per block, per mille (with `--byzantine
    /// coordinator`).
    #[arg(long, default_value_t = 150)]
    faulty_coordinator: u32,
    /// Blocks on top of a block before it is final.
    #[arg(long, default_value_t = 3)]
    confirmations: u64,
    /// Every seed draws its own shape (validators, threshold, confirmations, block interval,
    /// every fault rate, which adversaries are present) from the seed alone; the other shape
    /// options are ignored.
    #[arg(long)]
    swarm: bool,
    /// Run swarm seeds from `--seed` on until this many minutes have passed (then finish the
    /// seeds under way), and print what was found per invariant and per fault.
    #[arg(long)]
    minutes: Option<f64>,
    /// Once during the run, reorganise the chain deeper than the confirmations (the run must
    /// end in a clean halt).
    #[arg(long)]
    deep_reorg: bool,
    /// Blocks mined during the fault phase (one every 100 simulated ms); more follow in the
    /// quiet phase until everything is final.
    #[arg(long, default_value_t = 200)]
    blocks: u64,
    /// Turn every fault off.
    #[arg(long)]
    calm: bool,
    /// Run each seed twice and compare the hashes of their whole event traces.
    #[arg(long)]
    check_determinism: bool,
    /// Switch on one of the processor's deliberate bugs (its name, e.g. `NoBurnDeduplication`),
    /// to see which invariant catches it.
    #[arg(long)]
    mutation: Option<String>,
    /// Seeds run side by side (each seed is its own single-threaded simulation).
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Args {
    /// The validator misbehaving, if any (`coordinator` is not a validator).
    fn byzantine_validator(&self) -> Option<sim::Byzantine> {
        self.byzantine.iter().copied().find(|b| *b != sim::Byzantine::Coordinator)
    }

    fn faulty_coordinator(&self) -> u32 {
        if self.byzantine.contains(&sim::Byzantine::Coordinator) {
            self.faulty_coordinator
        } else {
            0
        }
    }

    fn swarm(&self) -> bool {
        self.swarm || self.minutes.is_some()
    }

    /// The scenario of one seed.
    fn scenario_for(&self, seed: u64) -> Scenario {
        if self.swarm() {
            Scenario::swarm(seed)
        } else {
            self.scenario()
        }
    }

    fn scenario(&self) -> Scenario {
        let byzantine = self.byzantine_validator();
        let faulty_coordinator_per_mille = self.faulty_coordinator();
        let mut scenario = Scenario {
            validators: self.validators,
            threshold: self.threshold,
            loss_per_mille: self.loss,
            max_latency_ms: self.latency_ms,
            duplicate_per_mille: self.duplicate,
            processor_crash_per_mille: self.crash,
            coordinator_crash_per_mille: self.coordinator_crash,
            partition_per_mille: self.partition,
            storage_fault_per_mille: self.storage_fault,
            node_lag_per_mille: self.node_lag,
            node_stall_per_mille: self.node_stall,
            node_garbage_per_mille: self.node_garbage,
            node_stale_per_mille: self.node_stale,
            deposit_per_mille: self.deposit,
            burn_per_mille: self.burn,
            dust_per_mille: self.dust,
            twin_deposit_per_mille: self.twin_deposit,
            change_deposit_per_mille: self.change_deposit,
            large_block_per_mille: self.large_block,
            malformed_instruction_per_mille: self.malformed_instruction,
            near_dust_burn_per_mille: self.near_dust_burn,
            rotations: self.rotations,
            rotation_per_mille: self.rotation_rate,
            byzantine,
            faulty_coordinator_per_mille,
            confirmations: self.confirmations,
            deep_reorg: self.deep_reorg,
            ..Scenario::standard()
        };
        if self.calm {
            scenario = Scenario {
                byzantine,
                faulty_coordinator_per_mille,
                confirmations: self.confirmations,
                deep_reorg: self.deep_reorg,
                rotations: self.rotations,
                rotation_per_mille: self.rotation_rate,
                ..Scenario::calm(self.validators, self.threshold)
            };
        }
        scenario.fault_phase_ms = self.blocks.saturating_mul(scenario.block_interval_ms);
        scenario
    }

    /// The command reproducing one seed with these settings.
    fn reproduce(&self, seed: u64) -> String {
        if self.swarm() {
            return format!("scripts/sim.sh --swarm --seed {seed}");
        }
        let mut command = format!(
            "scripts/sim.sh --seed {seed} --validators {} --threshold {} --blocks {} --confirmations {}",
            self.validators, self.threshold, self.blocks, self.confirmations
        );
        if self.calm {
            command.push_str(" --calm");
        } else {
            command.push_str(&format!(
                " --loss {} --latency-ms {} --duplicate {} --crash {} --coordinator-crash {} --partition {} \
                 --storage-fault {}",
                self.loss,
                self.latency_ms,
                self.duplicate,
                self.crash,
                self.coordinator_crash,
                self.partition,
                self.storage_fault
            ));
            command.push_str(&format!(" --deposit {} --burn {}", self.deposit, self.burn));
            command.push_str(&format!(
                " --dust {} --twin-deposit {} --change-deposit {} --large-block {} --malformed-instruction {} \
                 --near-dust-burn {}",
                self.dust,
                self.twin_deposit,
                self.change_deposit,
                self.large_block,
                self.malformed_instruction,
                self.near_dust_burn
            ));
            command.push_str(&format!(
                " --node-lag {} --node-stall {} --node-garbage {} --node-stale {}",
                self.node_lag, self.node_stall, self.node_garbage, self.node_stale
            ));
        }
        for byzantine in &self.byzantine {
            command.push_str(match byzantine {
                sim::Byzantine::KeyGen => " --byzantine keygen",
                sim::Byzantine::Signing => " --byzantine signing",
                sim::Byzantine::Coordinator => " --byzantine coordinator",
            });
        }
        if self.faulty_coordinator() > 0 {
            command.push_str(&format!(" --faulty-coordinator {}", self.faulty_coordinator));
        }
        if self.deep_reorg {
            command.push_str(" --deep-reorg");
        }
        command
    }
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    // `SIM_LOG=warn` (or any tracing filter) shows the processors' own logs, for debugging.
    if let Ok(filter) = std::env::var("SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    if !args.swarm() {
        if let Err(error) = args.scenario().validate() {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    }
    if let Some(name) = &args.mutation {
        let Some(mutation) = sim::Mutation::ALL.into_iter().find(|m| format!("{m:?}") == *name) else {
            let names: Vec<String> = sim::Mutation::ALL.iter().map(|m| format!("{m:?}")).collect();
            eprintln!("error: no mutation `{name}` (there are {})", names.join(", "));
            return ExitCode::from(2);
        };
        sim::set_mutation(mutation);
    }
    if args.seeds == 0 {
        eprintln!("error: --seeds must be at least 1");
        return ExitCode::from(2);
    }
    if args.jobs == 0 {
        eprintln!("error: --jobs must be at least 1");
        return ExitCode::from(2);
    }
    if args.minutes.is_some_and(|minutes| !(minutes > 0.0 && minutes.is_finite())) {
        eprintln!("error: --minutes must be a positive number");
        return ExitCode::from(2);
    }

    let started = Instant::now();
    let deadline = args.minutes.map(|minutes| started + std::time::Duration::from_secs_f64(minutes * 60.0));
    // With a deadline, seeds go on from `--seed` until it passes; otherwise `--seeds` of them.
    let last_seed = if deadline.is_some() { u64::MAX } else { args.seed.saturating_add(args.seeds) };
    let next = std::sync::atomic::AtomicU64::new(args.seed);
    let results = std::sync::Mutex::new(Vec::<(Outcome, bool)>::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(usize::try_from(last_seed - args.seed).unwrap_or(usize::MAX)) {
            scope.spawn(|| loop {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if seed >= last_seed {
                    break;
                }
                let scenario = args.scenario_for(seed);
                if args.swarm() && args.seeds == 1 && deadline.is_none() {
                    eprintln!("seed {seed}: {}", scenario.describe());
                }
                let outcome = sim::run(seed, &scenario);
                let deterministic = !args.check_determinism || {
                    let again = sim::run(seed, &scenario);
                    again.trace_hash == outcome.trace_hash && again.events == outcome.events
                };
                let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                results.push((outcome, deterministic));
                let outcomes: Vec<&Outcome> = results.iter().map(|(o, _)| o).collect();
                match deadline {
                    Some(_) => progress_for(started.elapsed().as_secs(), &outcomes),
                    None => progress(outcomes.len() as u64, args.seeds, &outcomes),
                }
            });
        }
    });
    let wall = started.elapsed();
    eprintln!();
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(outcome, _)| outcome.seed);
    let nondeterministic: Vec<u64> = results.iter().filter(|(_, d)| !d).map(|(o, _)| o.seed).collect();
    let outcomes: Vec<Outcome> = results.into_iter().map(|(o, _)| o).collect();

    summarise(&args, &outcomes, wall.as_secs_f64());
    let mut failed = false;
    for outcome in &outcomes {
        if let Some(violation) = &outcome.violation {
            failed = true;
            println!("\nseed {} FAILED\n{violation}reproduce: {}", outcome.seed, args.reproduce(outcome.seed));
            if args.swarm() {
                println!("shape: {}", Scenario::swarm(outcome.seed).describe());
            }
        }
    }
    if args.check_determinism {
        if nondeterministic.is_empty() {
            println!("determinism: every seed gave the same trace hash twice");
        } else {
            failed = true;
            for seed in &nondeterministic {
                println!(
                    "determinism: seed {seed} gave two different traces; reproduce: {} --check-determinism",
                    args.reproduce(*seed)
                );
            }
        }
    }
    let violations = outcomes.iter().filter(|o| o.violation.is_some()).count();
    println!("{} passed, {} failed", outcomes.len() - violations, violations + nondeterministic.len());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn progress(done: u64, total: u64, outcomes: &[&Outcome]) {
    const WIDTH: u64 = 30;
    let filled = done * WIDTH / total;
    let failed = outcomes.iter().filter(|o| o.violation.is_some()).count();
    eprint!(
        "\r[{}{}] {done}/{total} seeds, {failed} failed",
        "#".repeat(filled as usize),
        " ".repeat((WIDTH - filled) as usize)
    );
}

/// Progress of a timed run: seeds so far.
fn progress_for(elapsed_seconds: u64, outcomes: &[&Outcome]) {
    let failed = outcomes.iter().filter(|o| o.violation.is_some()).count();
    eprint!("\r{elapsed_seconds:>6} s: {} seeds, {failed} failed", outcomes.len());
}

/// The spread of the shapes a swarm drew, and what was found per invariant and per fault.
fn summarise_swarm(outcomes: &[Outcome]) {
    use std::collections::BTreeMap;
    let shapes: Vec<Scenario> = outcomes.iter().map(|o| Scenario::swarm(o.seed)).collect();
    let count = |wanted: &dyn Fn(&Scenario) -> bool| shapes.iter().filter(|s| wanted(s)).count();
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for shape in &shapes {
        *sizes.entry(shape.validators).or_default() += 1;
    }
    let sizes: Vec<String> = sizes.iter().map(|(n, seeds)| format!("{n}: {seeds}")).collect();
    println!("{:<22}{}", "validators (seeds)", sizes.join(", "));
    let unanimous = count(&|s| usize::from(s.threshold) == s.validators);
    let minimal = count(&|s| s.threshold == 2);
    println!("{:<22}{minimal} with t = 2, {unanimous} with t = n", "thresholds");
    let confirmations: Vec<String> = (1..=6).map(|c| format!("{c}: {}", count(&|s| s.confirmations == c))).collect();
    println!("{:<22}{}", "confirmations (seeds)", confirmations.join(", "));
    println!(
        "{:<22}{} faulty coordinator, {} bad signer, {} bad key-generation shares, {} deep reorganisation, {} without faults of a kind",
        "adversaries (seeds)",
        count(&|s| s.faulty_coordinator_per_mille > 0),
        count(&|s| s.byzantine == Some(sim::Byzantine::Signing)),
        count(&|s| s.byzantine == Some(sim::Byzantine::KeyGen)),
        count(&|s| s.deep_reorg),
        count(&|s| s.loss_per_mille == 0 || s.processor_crash_per_mille == 0 || s.reorg_per_mille == 0),
    );
    let mut violated: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for outcome in outcomes {
        if let Some(violation) = &outcome.violation {
            violated.entry(format!("{:?}", violation.invariant)).or_default().push(outcome.seed);
        }
    }
    if violated.is_empty() {
        println!("{:<22}none", "invariants violated");
    }
    for (invariant, seeds) in violated {
        println!("{:<22}{invariant}: seeds {seeds:?}", "invariant violated");
    }
    let faulted = |wanted: &dyn Fn(&sim::FaultCounts) -> u64| {
        let seeds = outcomes.iter().filter(|o| wanted(&o.faults) > 0).count();
        let failed = outcomes.iter().filter(|o| wanted(&o.faults) > 0 && o.violation.is_some()).count();
        format!("{seeds} seeds ({failed} failed)")
    };
    println!("{:<22}processor crashes in {}", "per fault", faulted(&|f| f.processor_crashes));
    println!("{:<22}coordinator crashes in {}", "", faulted(&|f| f.coordinator_crashes));
    println!("{:<22}partitions in {}", "", faulted(&|f| f.partitions));
    println!("{:<22}failed commits in {}", "", faulted(&|f| f.storage_faults));
    println!("{:<22}reorganisations in {}", "", faulted(&|f| f.reorgs));
    println!("{:<22}faulty-coordinator commands in {}", "", faulted(&|f| f.coordinator_faults));
}

fn summarise(args: &Args, outcomes: &[Outcome], wall_seconds: f64) {
    let sum = |f: &dyn Fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let simulated_ms = sum(&|o| o.simulated_ms);
    let runs = if args.check_determinism { 2.0 } else { 1.0 };
    let rows = [
        ("seeds", format!("{} (from {})", outcomes.len(), args.seed)),
        ("shape", if args.swarm() { "drawn per seed (the swarm)".to_string() } else { args.scenario().describe() }),
        (
            "simulated time",
            format!(
                "{:.1} s total, {:.1} s per seed",
                simulated_ms as f64 / 1000.0,
                simulated_ms as f64 / 1000.0 / outcomes.len() as f64
            ),
        ),
        (
            "wall time",
            format!(
                "{wall_seconds:.1} s ({:.0} simulated s per wall s, {:.0} seeds per minute)",
                runs * simulated_ms as f64 / 1000.0 / wall_seconds,
                runs * outcomes.len() as f64 * 60.0 / wall_seconds
            ),
        ),
        ("events", sum(&|o| o.events).to_string()),
        (
            "key sessions",
            format!(
                "{} started, {} confirmed, {} retired after a rotation",
                sum(&|o| o.sessions_started),
                sum(&|o| o.keys_confirmed),
                sum(&|o| o.keys_retired)
            ),
        ),
        ("deposits", sum(&|o| o.deposits).to_string()),
        ("Batches signed", sum(&|o| o.batches).to_string()),
        (
            "Burns",
            format!(
                "{} issued, {} transactions planned, {} paid on chain",
                sum(&|o| o.burns),
                sum(&|o| o.plans),
                sum(&|o| o.paid)
            ),
        ),
        (
            "hostile deposits",
            format!(
                "{} reusing a transaction key, {} to the change address, {} malformed, {} in {} large blocks",
                sum(&|o| o.hostile.key_reusing),
                sum(&|o| o.hostile.change_address),
                sum(&|o| o.hostile.malformed),
                sum(&|o| o.hostile.large_block_deposits),
                sum(&|o| o.hostile.large_blocks)
            ),
        ),
        ("blames", sum(&|o| o.blames).to_string()),
        ("halts reported", sum(&|o| o.halted).to_string()),
        ("chain reorganisations", sum(&|o| o.faults.reorgs).to_string()),
        ("processor crashes", sum(&|o| o.faults.processor_crashes).to_string()),
        ("coordinator crashes", sum(&|o| o.faults.coordinator_crashes).to_string()),
        ("partitions", sum(&|o| o.faults.partitions).to_string()),
        ("failed commits", sum(&|o| o.faults.storage_faults).to_string()),
        ("duplicated messages", sum(&|o| o.faults.duplicates).to_string()),
        ("faulty coordinator", format!("{} commands it must not send", sum(&|o| o.faults.coordinator_faults))),
        (
            "node faults",
            format!(
                "{} behind, {} stalled, {} on a stale fork",
                sum(&|o| o.faults.node_lags),
                sum(&|o| o.faults.node_stalls),
                sum(&|o| o.faults.stale_nodes)
            ),
        ),
        (
            "corrupted blocks",
            format!(
                "{} served, {} blocks refused",
                sum(&|o| o.faults.garbage_blocks),
                sum(&|o| o.faults.blocks_refused)
            ),
        ),
        ("rings unanswered", sum(&|o| o.faults.rings_unanswered).to_string()),
        ("violations", outcomes.iter().filter(|o| o.violation.is_some()).count().to_string()),
    ];
    println!("{:-<72}", "");
    for (name, value) in rows {
        println!("{name:<22}{value}");
    }
    // One seed: its trace hash, so a replay (or a refactoring) can be compared exactly.
    if let [outcome] = outcomes {
        println!("{:<22}{}", "trace hash", hex::encode(outcome.trace_hash));
    }
    if args.swarm() {
        summarise_swarm(outcomes);
    }
    println!("{:-<72}", "");
}
