//! Four `processor run` daemons on a real NATS JetStream broker generate keys, then over four
//! rounds sign Batches for deposits and pay Burns on the mock Bitcoin chain (served over
//! JSON-RPC). Then the same run
//! again while daemons are SIGKILLed at random moments (at least 20 kills, RocksDB under them)
//! and the broker is killed and restarted twice: the outcome must be the same.

use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::chain::instruction::encode_instruction;
use processor_core::ids::{Amount, ExternalChain};
use processor_core::messages::{Burn, ChainPublicKey, InInstruction};
use processor_e2e::cluster::{Cluster, ServedBitcoin, KEYGEN_SESSION};
use processor_e2e::require;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const CONFIRMATIONS: u64 = 2;
const ROUNDS: u64 = 4;
const STAGE: Duration = Duration::from_secs(240);

/// Faults injected while a stage waits.
struct Chaos {
    rng: ChaCha20Rng,
    kills_left: u32,
    /// Kills allowed in the current stage, so that faults hit every stage.
    per_stage: u32,
    stage_left: u32,
    broker_restarts_at: Vec<u32>,
    kills: u32,
    broker_restarts: u32,
    next: Instant,
}

impl Chaos {
    fn new(seed: u64, kills: u32, per_stage: u32, broker_restarts_at: Vec<u32>) -> Chaos {
        Chaos {
            rng: ChaCha20Rng::seed_from_u64(seed),
            kills_left: kills,
            per_stage,
            stage_left: 0,
            broker_restarts_at,
            kills: 0,
            broker_restarts: 0,
            next: Instant::now(),
        }
    }

    fn next_stage(&mut self) {
        self.stage_left = self.per_stage;
    }

    /// At random moments: SIGKILL one daemon and start it again at once (sometimes after a
    /// pause); at the chosen kills, SIGKILL and restart the broker too.
    fn strike(&mut self, cluster: &mut Cluster) {
        if self.kills_left == 0 || self.stage_left == 0 || Instant::now() < self.next {
            return;
        }
        self.stage_left -= 1;
        self.next = Instant::now() + Duration::from_millis(50 + self.rng.next_u64() % 400);
        let victim = (self.rng.next_u64() % cluster.daemons.len() as u64) as usize;
        cluster.daemons[victim].process.kill();
        if self.rng.next_u64() % 4 == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        cluster.daemons[victim].process.restart();
        self.kills += 1;
        self.kills_left -= 1;
        if self.broker_restarts_at.contains(&self.kills) {
            cluster.nats.crash_and_restart();
            self.broker_restarts += 1;
        }
    }
}

fn lock(chain: &Mutex<MockBitcoin>) -> std::sync::MutexGuard<'_, MockBitcoin> {
    chain.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a run ended with: each Batch's id and InInstructions, what each Burn's destination
/// received on chain, and the plans every daemon completed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    batches: Vec<(u32, Vec<(InInstruction, Amount)>)>,
    received: Vec<Vec<u64>>,
    plans_completed: u64,
}

impl Outcome {
    /// Checks everything that is owed was paid once: each Burn in one output, its amount less
    /// its share of the fee. (The share depends on how many inputs the plan spends, which depends
    /// on which outputs had joined the funds when the Burn arrived: timing, not correctness.)
    fn assert_paid_once(&self) {
        for (received, asked) in self.received.iter().zip((0..ROUNDS).map(|r| 10_000 + 1_000 * r)) {
            assert!(matches!(received[..], [paid] if paid <= asked && paid > asked / 2), "{received:?} for {asked}");
        }
        assert_eq!(self.plans_completed, ROUNDS);
    }
}

/// Polls until `done`, striking with `chaos` and mining a block every `mine_every` if set.
async fn drive(
    cluster: &mut Cluster,
    chaos: &mut Chaos,
    chain: &Mutex<MockBitcoin>,
    what: &str,
    mine_every: Option<Duration>,
    mut done: impl FnMut(&mut Cluster, &MockBitcoin) -> bool,
) {
    let started = Instant::now();
    let mut mined = Instant::now();
    chaos.next_stage();
    loop {
        chaos.strike(cluster);
        let finished = done(cluster, &lock(chain));
        if finished {
            println!(
                "{what}: {} ms ({} daemon kills, {} broker restarts so far)",
                started.elapsed().as_millis(),
                chaos.kills,
                chaos.broker_restarts
            );
            return;
        }
        if started.elapsed() > STAGE {
            cluster.fail(&format!("timed out waiting for {what}"));
        }
        if mine_every.is_some_and(|every| mined.elapsed() >= every) {
            lock(chain).mine();
            mined = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(seed: u64, mut chaos: Chaos) -> (Outcome, Chaos) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let served = ServedBitcoin::start(seed).await;
    let (chain, mut depositor) = (served.chain.clone(), served.depositor.clone());
    let settings = served.settings(CONFIRMATIONS, 5_000);
    let mut cluster = Cluster::start(env!("CARGO_BIN_EXE_e2e-processor"), dir.path(), 4, seed, &settings).await;

    // Key generation, with faults.
    let tip = lock(&chain).tip_height();
    cluster.order_keygen(3, tip);
    drive(&mut cluster, &mut chaos, &chain, "key generation", None, |cluster, _| {
        cluster.coordinator.read(|c| matches!(c.status(KEYGEN_SESSION), Some(coordinator::SessionStatus::Confirmed(_))))
    })
    .await;
    // Anyone who can publish on the broker can reach a processor's inbox: a frame sealed by
    // another key than the coordinator's is refused and counted.
    if chaos.kills_left == 0 {
        forge_a_command(&cluster).await;
    }
    let group = cluster.confirmed_keys();
    let ChainPublicKey::Bitcoin { internal_key } = group.chain else { cluster.fail("not Bitcoin keys") };
    let script = processor_core::chain::bitcoin::group_script(&internal_key).expect("a valid group key");

    // Rounds of deposits (two with InInstructions, sometimes one without) and Burns.
    let destinations: Vec<bitcoin::ScriptBuf> =
        (0..ROUNDS).map(|r| Depositor::new(70 + r).script_pubkey().to_owned()).collect();
    for round in 0..ROUNDS {
        let account = 2 * round as u8;
        let mut deposits = vec![(30_000 + 1_000 * round, Some(account + 1)), (20_000, Some(account + 2))];
        if round % 2 == 0 {
            deposits.push((10_000, None));
        }
        for (amount, account) in deposits {
            let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
            let mut mock = lock(&chain);
            let tx = depositor
                .deposit(&mock, &script, bitcoin::Amount::from_sat(amount), instruction.as_deref())
                .expect("the depositor can pay");
            mock.submit(tx).expect("the deposit is valid");
            mock.mine();
        }
        for _ in 0..CONFIRMATIONS {
            lock(&chain).mine();
        }
        let batches = 2 * (round as usize + 1);
        drive(&mut cluster, &mut chaos, &chain, "the round's Batches", None, |cluster, _| {
            cluster.batches().len() >= batches
        })
        .await;

        let mut burns = vec![Burn {
            id: [round as u8 + 1; 32],
            destination: destinations[round as usize].to_bytes(),
            amount: Amount(10_000 + 1_000 * round),
        }];
        if round == 0 {
            burns.push(Burn { id: [100; 32], destination: b"nowhere".to_vec(), amount: Amount(5_000) });
        }
        let fee_rate = lock(&chain).fee_rate_sat_per_vb();
        cluster.coordinator.act(|c| c.burn(ExternalChain::Bitcoin, burns, fee_rate));
        let plans = round + 1;
        drive(
            &mut cluster,
            &mut chaos,
            &chain,
            "the round's Burn paid",
            Some(Duration::from_millis(300)),
            |cluster, _| settled(cluster, plans),
        )
        .await;
    }

    // Faults left are spent now; then every daemon must be up and settled.
    while chaos.kills_left > 0 {
        chaos.next_stage();
        chaos.strike(&mut cluster);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drive(&mut cluster, &mut chaos, &chain, "every daemon settled", Some(Duration::from_millis(300)), |cluster, _| {
        settled(cluster, ROUNDS)
    })
    .await;
    let received = {
        let mock = lock(&chain);
        destinations
            .iter()
            .map(|d| mock.spendable_outputs(d).iter().map(|(_, output)| output.value.to_sat()).collect())
            .collect()
    };
    let outcome = Outcome {
        batches: cluster.batches().into_iter().map(|b| (b.id.0, b.instructions)).collect(),
        received,
        plans_completed: cluster.daemons[0].metric("processor_plans_completed").expect("the daemon serves its metrics"),
    };
    for (index, daemon) in cluster.daemons.iter_mut().enumerate() {
        assert!(
            daemon.process.terminate(Duration::from_secs(20)),
            "processor {index} did not stop cleanly on SIGTERM:\n{}",
            daemon.process.log_tail(20)
        );
    }
    cluster.stop_coordinator().await;
    (outcome, chaos)
}

/// Publishes to processor 0's inbox a well-formed command sealed by an impostor, and waits for
/// the processor to count it as refused.
async fn forge_a_command(cluster: &Cluster) {
    use processor_core::messages::{CoordinatorMessage, Envelope, Frame, PaymentsCommand};
    let impostor = processor_core::crypto::Identity::generate(&mut ChaCha20Rng::seed_from_u64(666));
    let to = cluster.keys[0];
    let command = CoordinatorMessage::Payments(PaymentsCommand::Burns {
        chain: ExternalChain::Bitcoin,
        burns: vec![],
        fee_rate: 1,
    });
    let frame = Frame::Data { seq: processor_core::ids::SeqId(1_000), message: command };
    let bytes = Envelope::new(impostor.peer_key(), to, frame).seal(&impostor);
    let client = async_nats::connect(cluster.nats.url()).await.expect("the broker answers");
    let context = async_nats::jetstream::new(client);
    let ack = context.publish(format!("custody.processor.{to}"), bytes.into()).await.expect("published");
    ack.await.expect("stored by the stream");
    let started = Instant::now();
    while cluster.daemons[0].metric("processor_frames_refused_total").unwrap_or(0) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the forged frame was not refused and counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every daemon up, with `plans` plans complete and nothing in flight.
fn settled(cluster: &mut Cluster, plans: u64) -> bool {
    cluster.daemons.iter_mut().all(|daemon| {
        daemon.process.running()
            && daemon.metric("processor_plans_completed").is_some_and(|n| n >= plans)
            && daemon.metric("processor_plans_planned") == Some(0)
            && daemon.metric("processor_plans_signed") == Some(0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_daemons_and_a_restarted_broker_change_nothing() {
    if !require("nats-server") {
        return;
    }
    let seed = 7;
    let (calm, _) = scenario(seed, Chaos::new(seed, 0, 0, vec![])).await;
    assert_eq!(calm.batches.len(), 2 * ROUNDS as usize, "each deposit with an InInstruction makes a Batch: {calm:?}");
    calm.assert_paid_once();
    // Keys, then two stages a round: three kills in each, the broker killed twice on the way.
    let (crashed, chaos) = scenario(seed, Chaos::new(seed, 27, 3, vec![7, 17])).await;
    assert!(chaos.kills >= 20, "{} kills", chaos.kills);
    assert_eq!(chaos.broker_restarts, 2);
    assert_eq!(crashed.batches, calm.batches, "the same Batches, whatever crashed");
    crashed.assert_paid_once();
    assert_eq!(crashed.plans_completed, calm.plans_completed);
}
