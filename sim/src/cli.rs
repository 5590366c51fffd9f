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
    /// Make the last validator Byzantine: `keygen` (corrupt DKG shares) or `signing` (wrong
    /// signature shares).
    #[arg(long)]
    byzantine: Option<sim::Byzantine>,
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
    /// Seeds run side by side (each seed is its own single-threaded simulation).
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Args {
    fn scenario(&self) -> Scenario {
        let mut scenario = Scenario {
            validators: self.validators,
            threshold: self.threshold,
            loss_per_mille: self.loss,
            max_latency_ms: self.latency_ms,
            duplicate_per_mille: self.duplicate,
            processor_crash_per_mille: self.crash,
            coordinator_crash_per_mille: self.coordinator_crash,
            partition_per_mille: self.partition,
            node_lag_per_mille: self.node_lag,
            node_stall_per_mille: self.node_stall,
            node_garbage_per_mille: self.node_garbage,
            node_stale_per_mille: self.node_stale,
            byzantine: self.byzantine,
            deep_reorg: self.deep_reorg,
            ..Scenario::standard()
        };
        if self.calm {
            scenario = Scenario {
                byzantine: self.byzantine,
                deep_reorg: self.deep_reorg,
                ..Scenario::calm(self.validators, self.threshold)
            };
        }
        scenario.fault_phase_ms = self.blocks.saturating_mul(scenario.block_interval_ms);
        scenario
    }

    /// The command reproducing one seed with these settings.
    fn reproduce(&self, seed: u64) -> String {
        let mut command = format!(
            "scripts/sim.sh --seed {seed} --validators {} --threshold {} --blocks {}",
            self.validators, self.threshold, self.blocks
        );
        if self.calm {
            command.push_str(" --calm");
        } else {
            command.push_str(&format!(
                " --loss {} --latency-ms {} --duplicate {} --crash {} --coordinator-crash {} --partition {}",
                self.loss, self.latency_ms, self.duplicate, self.crash, self.coordinator_crash, self.partition
            ));
            command.push_str(&format!(
                " --node-lag {} --node-stall {} --node-garbage {} --node-stale {}",
                self.node_lag, self.node_stall, self.node_garbage, self.node_stale
            ));
        }
        if let Some(byzantine) = self.byzantine {
            command.push_str(match byzantine {
                sim::Byzantine::KeyGen => " --byzantine keygen",
                sim::Byzantine::Signing => " --byzantine signing",
            });
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
    let scenario = args.scenario();
    if let Err(error) = scenario.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    if args.seeds == 0 {
        eprintln!("error: --seeds must be at least 1");
        return ExitCode::from(2);
    }

    if args.jobs == 0 {
        eprintln!("error: --jobs must be at least 1");
        return ExitCode::from(2);
    }

    let started = Instant::now();
    let seeds: Vec<u64> = (args.seed..args.seed.saturating_add(args.seeds)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::<(Outcome, bool)>::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(seeds.len()) {
            scope.spawn(|| loop {
                let position = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&seed) = seeds.get(position) else { break };
                let outcome = sim::run(seed, &scenario);
                let deterministic = !args.check_determinism || {
                    let again = sim::run(seed, &scenario);
                    again.trace_hash == outcome.trace_hash && again.events == outcome.events
                };
                let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                results.push((outcome, deterministic));
                let outcomes: Vec<&Outcome> = results.iter().map(|(o, _)| o).collect();
                progress(outcomes.len() as u64, args.seeds, &outcomes);
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

fn summarise(args: &Args, outcomes: &[Outcome], wall_seconds: f64) {
    let sum = |f: &dyn Fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let simulated_ms = sum(&|o| o.simulated_ms);
    let runs = if args.check_determinism { 2.0 } else { 1.0 };
    let rows = [
        ("seeds", format!("{} (from {})", outcomes.len(), args.seed)),
        (
            "validators",
            format!(
                "{}-of-{}{}",
                args.threshold,
                args.validators,
                match args.byzantine {
                    Some(how) => format!(", one Byzantine ({how:?})"),
                    None => String::new(),
                }
            ),
        ),
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
        ("key sessions", format!("{} started, {} confirmed", sum(&|o| o.sessions_started), sum(&|o| o.keys_confirmed))),
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
        ("blames", sum(&|o| o.blames).to_string()),
        ("halts reported", sum(&|o| o.halted).to_string()),
        ("chain reorganisations", sum(&|o| o.faults.reorgs).to_string()),
        ("processor crashes", sum(&|o| o.faults.processor_crashes).to_string()),
        ("coordinator crashes", sum(&|o| o.faults.coordinator_crashes).to_string()),
        ("partitions", sum(&|o| o.faults.partitions).to_string()),
        ("duplicated messages", sum(&|o| o.faults.duplicates).to_string()),
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
    println!("{:-<72}", "");
}
