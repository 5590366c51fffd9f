//! Four daemons follow a real `monerod` (regtest, offline, fixed difficulty): a deposit with an
//! InInstruction, built by the project's depositor and accepted by monerod, ends in a signed
//! Batch; a Burn ends in a 3-of-4 threshold-signed (CLSAG, Bulletproofs+) transaction that
//! monerod accepts and mines, and the receiver finds the payment.

use mock_chains::monero::{Depositor, WalletKeys};
use monero_simple_request_rpc::prelude::*;
use monero_simple_request_rpc::SimpleRequestTransport;
use monero_wallet::{Scanner, WalletOutput};
use processor_core::chain::instruction::encode_instruction;
use processor_core::ids::{Amount, ExternalChain};
use processor_core::messages::{Burn, ChainPublicKey, InInstruction};
use processor_e2e::cluster::{Cluster, NodeSettings};
use processor_e2e::{require, Monerod};
use std::time::{Duration, Instant};

const CONFIRMATIONS: u64 = 2;
const XMR: u64 = 1_000_000_000_000;

type Rpc = MoneroDaemon<SimpleRequestTransport>;

async fn mine(rpc: &Rpc, to: &monero_wallet::address::MoneroAddress, blocks: usize) {
    rpc.generate_blocks(to, blocks).await.expect("monerod mines");
}

/// Outputs to `scanner` in blocks `from..=tip`, with their block numbers.
async fn scan(rpc: &Rpc, scanner: &mut Scanner, from: usize) -> (Vec<(WalletOutput, usize)>, usize) {
    let tip = rpc.latest_block_number().await.expect("the tip");
    let mut found = Vec::new();
    for number in from..=tip {
        let block = rpc.scannable_block_by_number(number).await.expect("a scannable block");
        let outputs = scanner.scan(block).expect("the block scans").ignore_additional_timelock();
        found.extend(outputs.into_iter().map(|output| (output, number)));
    }
    (found, tip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_and_a_burn_on_monerod() {
    if !require("monerod") || !require("nats-server") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = Monerod::start(dir.path()).await;
    let rpc = SimpleRequestTransport::new(node.url()).await.expect("monerod answers");
    let mut depositor = Depositor::new(31);
    // Coinbase outputs unlock after 60 blocks. Ring selection draws output ages from Monero's
    // gamma distribution (median ~1,300 blocks of 2 minutes): on a chain of one output per
    // block, 150 blocks leave ~10% of draws on an unlocked output and selection gives up; 400
    // leave ~35%.
    let started = Instant::now();
    mine(&rpc, &depositor.address(), 400).await;
    println!("mined 400 blocks in {} ms", started.elapsed().as_millis());

    let settings = NodeSettings {
        chain: ExternalChain::Monero,
        url: node.url(),
        credentials: None,
        network: "bitcoin",
        confirmations: CONFIRMATIONS,
        timeout_ms: 30_000,
    };
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_e2e-processor"), dir.path(), 4, 31, &settings).await;
    let tip = rpc.latest_block_number().await.expect("the tip") as u64;
    let keys = cluster.keygen(3, tip, Duration::from_secs(60)).await;
    let ChainPublicKey::Monero { spend_key } = keys.chain else { cluster.fail("not Monero keys") };
    let group = processor_core::chain::monero::group_address(&spend_key, monero_wallet::address::Network::Mainnet)
        .expect("a valid key");

    // The depositor finds its coinbase outputs on monerod and pays 5 XMR with an InInstruction.
    let mut scanner = Scanner::new(depositor.view_pair());
    let (found, tip) = scan(&rpc, &mut scanner, 1).await;
    // Only unlocked coinbases (60 blocks), largest first.
    let mut outputs: Vec<WalletOutput> =
        found.into_iter().filter(|(_, number)| number + 60 < tip).map(|(output, _)| output).collect();
    outputs.sort_by_key(|o| std::cmp::Reverse(o.commitment().amount));
    let fee_rate = rpc.fee_rate(FeePriority::Normal, u64::MAX).await.expect("a fee rate");
    let instruction = encode_instruction(&InInstruction { account: [7; 32] });
    let (deposit, _) = depositor
        .build(&rpc, &outputs, tip, &group, 5 * XMR, Some(&instruction), fee_rate)
        .await
        .expect("the depositor builds a deposit");
    rpc.publish_transaction(&deposit).await.expect("monerod accepts the deposit");
    mine(&rpc, &depositor.address(), 1 + CONFIRMATIONS as usize).await;
    let deposit_final = Instant::now();
    cluster.wait("the deposit's Batch", Duration::from_secs(120), |c| c.signed_batches().count() == 1).await;
    println!("deposit final -> signed Batch: {} ms", deposit_final.elapsed().as_millis());
    let batch = cluster.coordinator.read(|c| c.signed_batches().next().map(|(b, _)| b.clone()).expect("one Batch"));
    assert_eq!(batch.instructions, vec![(InInstruction { account: [7; 32] }, Amount(5 * XMR))]);

    // A Burn of 1 XMR: the group waits for the deposit to unlock (10 blocks), selects rings from
    // monerod, signs 3-of-4, publishes; monerod mines it; the receiver finds it.
    let receiver = WalletKeys::from_seed(99);
    let burn = Burn { id: [8; 32], destination: receiver.address().to_string().into_bytes(), amount: Amount(XMR) };
    cluster.coordinator.act(|c| c.burn(ExternalChain::Monero, vec![burn], fee_rate.per_weight()));
    let mut receiver_scanner = Scanner::new(receiver.view_pair());
    let mut scanned_from = tip + 1;
    let started = Instant::now();
    let received = loop {
        mine(&rpc, &depositor.address(), 1).await;
        let (found, tip) = scan(&rpc, &mut receiver_scanner, scanned_from).await;
        scanned_from = tip + 1;
        if let Some((output, _)) = found.first() {
            break output.commitment().amount;
        }
        if started.elapsed() > Duration::from_secs(300) {
            cluster.fail("the Burn was not paid on monerod");
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
    println!("Burn paid on monerod: {received} piconero after {} ms", started.elapsed().as_millis());
    // Less its share of the fee (the scheduler's linear model at monerod's fee rate).
    assert!(received <= XMR && received > XMR - XMR / 20, "paid {received} for a Burn of {XMR}");
    println!("fee rate {} per weight unit; the Burn bore {} piconero of fee", fee_rate.per_weight(), XMR - received);

    mine(&rpc, &depositor.address(), CONFIRMATIONS as usize).await;
    let completed = Instant::now();
    while cluster.daemons.iter().any(|d| d.metric("processor_plans_completed") != Some(1)) {
        if completed.elapsed() > Duration::from_secs(60) {
            cluster.fail("the daemons did not see the payment final");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss: Vec<u64> = cluster.daemons.iter().filter_map(|d| d.process.rss_kib()).collect();
    println!("daemon resident memory while following monerod (KiB): {rss:?}");

    let mut cluster = cluster;
    for (index, daemon) in cluster.daemons.iter_mut().enumerate() {
        assert!(daemon.process.terminate(Duration::from_secs(20)), "processor {index} stops cleanly");
    }
    cluster.stop_coordinator().await;
}
