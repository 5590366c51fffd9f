//! Four daemons follow a mock Bitcoin node that, on command, answers garbage, serves another
//! block than asked, serves a block whose transactions do not match its header, claims a
//! height it does not have, stalls, and finally changes a final block. Each lie must show as
//! errors in the metrics and never as a panic or a wrong report; the changed final block must
//! halt scanning cleanly (processes up, health failing, the halt reported).

use coordinator::Observation;
use mock_chains::bitcoin::rpc::Behaviour;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::chain::instruction::encode_instruction;
use processor_core::ids::BlockHeight;
use processor_core::messages::{ChainPublicKey, InInstruction};
use processor_e2e::cluster::{Cluster, ServedBitcoin};
use processor_e2e::{http_get, require};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const CONFIRMATIONS: u64 = 2;

fn lock(chain: &Mutex<MockBitcoin>) -> std::sync::MutexGuard<'_, MockBitcoin> {
    chain.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sums a metric over the daemons.
fn total(cluster: &Cluster, name: &str) -> u64 {
    cluster.daemons.iter().filter_map(|d| d.metric(name)).sum()
}

/// Waits until `done`, failing with the logs after `within`.
async fn until(cluster: &Cluster, what: &str, within: Duration, mut done: impl FnMut(&Cluster) -> bool) {
    let started = Instant::now();
    while !done(cluster) {
        if started.elapsed() > within {
            cluster.fail(&format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every block any processor reported is the honest chain's block at that height.
fn reports_are_true(cluster: &Cluster, chain: &Mutex<MockBitcoin>) {
    let reports: Vec<(BlockHeight, processor_core::ids::BlockId)> = cluster.coordinator.read(|c| {
        c.observations()
            .iter()
            .filter_map(|o| match o {
                Observation::BlockReported { height, block, .. } => Some((*height, *block)),
                _ => None,
            })
            .collect()
    });
    assert!(!reports.is_empty(), "blocks were reported");
    let chain = lock(chain);
    for (height, block) in reports {
        let honest = chain.block_hash(height.0).map(bitcoin::hashes::Hash::to_byte_array);
        assert_eq!(honest, Some(block.0), "the report for height {height} names the chain's block");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lies_give_errors_and_a_changed_final_block_halts_cleanly() {
    if !require("nats-server") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let served = ServedBitcoin::start(11).await;
    let (chain, node, mut depositor) = (served.chain.clone(), &served.node, served.depositor.clone());
    let settings = served.settings(CONFIRMATIONS, 1_000);
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_e2e-processor"), dir.path(), 4, 11, &settings).await;
    cluster.coordinator.act(|c| {
        c.record_reports(true);
        vec![]
    });
    let tip = served.lock().tip_height();
    let keys = cluster.keygen(3, tip, Duration::from_secs(60)).await;
    let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { cluster.fail("not Bitcoin keys") };
    let script = processor_core::chain::bitcoin::group_script(&internal_key).expect("a valid key");
    let deposit = |account: u8, depositor: &mut Depositor| {
        let instruction = encode_instruction(&InInstruction { account: [account; 32] });
        let mut mock = lock(&chain);
        let tx =
            depositor.deposit(&mock, &script, bitcoin::Amount::from_sat(50_000), Some(&instruction)).expect("funded");
        mock.submit(tx).expect("valid");
        mock.mine();
        for _ in 0..CONFIRMATIONS {
            mock.mine();
        }
    };

    // Honest first: a deposit ends in a Batch.
    deposit(1, &mut depositor);
    cluster.wait("the first Batch", Duration::from_secs(60), |c| c.signed_batches().count() == 1).await;

    // Each lie in turn, while a new deposit waits to be reported: errors counted, nothing
    // reported, nobody down.
    deposit(2, &mut depositor);
    // (A node claiming a higher tip does serve real blocks for the heights that exist, and
    // the deposit's block is final, so its Batch may be signed meanwhile: no wrong report. The
    // node is trusted for finality; a node lying about its tip can make a block count as final
    // early, which is why the operator runs their own.)
    for (lie, metric, blocks_reports) in [
        (Behaviour::Garbage, "processor_node_malformed_total", true),
        (Behaviour::WrongBlock, "processor_node_malformed_total", true),
        (Behaviour::CorruptBlock, "processor_blocks_refused_total", true),
        (Behaviour::Stall, "processor_node_timeouts_total", true),
        (Behaviour::WrongHeight, "processor_node_errors_total", false),
    ] {
        let before = total(&cluster, metric);
        node.set_behaviour(lie);
        // WrongBlock and CorruptBlock only show when a block is fetched: let one become final.
        lock(&chain).mine();
        until(&cluster, &format!("{lie:?} counted in {metric}"), Duration::from_secs(60), |cluster| {
            total(cluster, metric) > before
        })
        .await;
        println!("{lie:?}: {metric} {before} -> {}", total(&cluster, metric));
        if blocks_reports {
            assert_eq!(cluster.coordinator.read(|c| c.signed_batches().count()), 1, "no Batch from a lying node");
        }
    }
    node.set_behaviour(Behaviour::Honest);
    cluster
        .wait("the second Batch, once the node is honest again", Duration::from_secs(120), |c| {
            c.signed_batches().count() == 2
        })
        .await;
    reports_are_true(&cluster, &chain);

    // Every processor must have scanned the newest final block before it changes: one that is
    // still behind (backing off after the stall) would simply scan the new branch, and rightly so.
    let next_to_scan = served.lock().tip_height() + 1 - CONFIRMATIONS;
    until(&cluster, "every processor scanned the final tip", Duration::from_secs(60), |cluster| {
        cluster.daemons.iter().all(|d| d.metric("processor_scanned_height").is_some_and(|h| h >= next_to_scan))
    })
    .await;

    // A final block changes: every processor halts scanning, stays up and says so.
    let reported_before = cluster.coordinator.read(|c| c.observations().len());
    {
        let mut mock = lock(&chain);
        mock.reorg(CONFIRMATIONS as usize + 3).expect("the reorg happens");
        for _ in 0..3 {
            mock.mine();
        }
    }
    until(&cluster, "every processor halted", Duration::from_secs(60), |cluster| {
        total(cluster, "processor_halted") == cluster.daemons.len() as u64
    })
    .await;
    for daemon in &cluster.daemons {
        let (status, body) = http_get(daemon.metrics_port, "/health").expect("the daemon answers");
        assert_eq!(status, 503, "a halted processor is unhealthy: {body}");
        assert!(body.contains("halted"), "{body}");
    }
    cluster
        .wait("the halts reported", Duration::from_secs(30), |c| {
            c.observations()[reported_before..].iter().filter(|o| matches!(o, Observation::ChainHalted { .. })).count()
                >= 3
        })
        .await;
    let mut cluster = cluster;
    for (index, daemon) in cluster.daemons.iter_mut().enumerate() {
        assert!(daemon.process.running(), "processor {index} is still running:\n{}", daemon.process.log_tail(20));
        let log = daemon.process.log_tail(10_000);
        assert!(!log.contains("panicked"), "processor {index} panicked:\n{log}");
        assert!(daemon.process.terminate(Duration::from_secs(20)), "processor {index} stops cleanly");
    }
    cluster.stop_coordinator().await;
}
