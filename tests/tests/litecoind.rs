//! Four daemons follow a real `litecoind` in regtest (Litecoin Core 0.21: Bitcoin Core's RPC and
//! consensus code with Taproot, its own genesis and `rltc` addresses): a deposit to the group's
//! Taproot address ends in a signed Batch, and a Burn ends in a threshold-signed Taproot key-path
//! spend that litecoind accepts and mines.

use bitcoin::Transaction;
use processor::daemon::config::BITCOIN_PROFILES;
use processor_core::chain::instruction::encode_instruction;
use processor_core::ids::{Amount, ExternalChain};
use processor_core::messages::{Burn, ChainPublicKey, InInstruction};
use processor_e2e::cluster::{Cluster, NodeSettings};
use processor_e2e::{require, Litecoind};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CONFIRMATIONS: u64 = 2;

fn text(value: &Value, field: &str) -> String {
    value.get(field).and_then(Value::as_str).unwrap_or_else(|| panic!("no {field} in {value}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_and_a_burn_on_litecoind() {
    if !require("litecoind") || !require("nats-server") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = Litecoind::start(dir.path()).await;
    node.call("createwallet", json!(["e2e"])).await;
    let miner = node.call("getnewaddress", json!(["", "bech32"])).await;
    let mine = |blocks: u64| {
        let miner = miner.clone();
        let node = &node;
        async move {
            node.call("generatetoaddress", json!([blocks, miner])).await;
        }
    };
    // Coinbases mature after 100 blocks. (MWEB locks in at 288 and activates at 432 on a fresh
    // regtest chain; this test stays far below.)
    mine(101).await;

    // A daemon configured for Bitcoin's regtest refuses Litecoin's node (another genesis).
    let identity = dir.path().join("misconfigured.key");
    processor::daemon::write_identity(
        &identity,
        &processor_core::crypto::Identity::generate(
            &mut <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(1),
        ),
    )
    .expect("written");
    let mut misconfigured = processor_e2e::Process::start(
        [
            env!("CARGO_BIN_EXE_e2e-processor"),
            "run",
            "--chain",
            "bitcoin",
            "--network",
            "regtest",
            "--data-dir",
            &dir.path().join("misconfigured").display().to_string(),
            "--identity",
            &identity.display().to_string(),
            "--coordinator-key",
            &"11".repeat(32),
            "--node-url",
            &format!("http://127.0.0.1:{}", node.rpc_port),
            "--node-user",
            Litecoind::USER,
            "--node-password",
            Litecoind::PASSWORD,
            "--nats-url",
            "nats://127.0.0.1:1",
        ]
        .map(String::from)
        .to_vec(),
        &dir.path().join("misconfigured.log"),
    );
    let started = Instant::now();
    while misconfigured.running() {
        assert!(started.elapsed() < Duration::from_secs(30), "a misconfigured daemon must stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = misconfigured.log_tail(5);
    assert!(log.contains("genesis") && log.contains("530827f3"), "{log}");

    let settings = NodeSettings {
        chain: ExternalChain::Bitcoin,
        url: format!("http://127.0.0.1:{}", node.rpc_port),
        credentials: Some((Litecoind::USER.into(), Litecoind::PASSWORD.into())),
        network: "litecoin-regtest",
        confirmations: CONFIRMATIONS,
        timeout_ms: 10_000,
    };
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_e2e-processor"), dir.path(), 4, 21, &settings).await;
    let tip = node.rpc.block_count().await.expect("the tip");
    let keys = cluster.keygen(3, tip, Duration::from_secs(60)).await;
    let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { cluster.fail("not Bitcoin keys") };
    let script = processor_core::chain::bitcoin::group_script(&internal_key).expect("a valid key");

    // The group's address in Litecoin's encoding, as litecoind reads it.
    let profile = BITCOIN_PROFILES.iter().find(|p| p.name == "litecoin-regtest").expect("the profile exists");
    let address = processor::daemon::bitcoin_address(profile, &script).expect("a Taproot script has an address");
    assert!(address.starts_with("rltc1p"), "{address}");
    let validated = node.call("validateaddress", json!([address])).await;
    assert_eq!(validated.get("isvalid"), Some(&json!(true)), "{validated}");
    assert_eq!(text(&validated, "scriptPubKey"), hex::encode(script.as_bytes()), "litecoind reads the same script");

    // A deposit of 1 LTC with an InInstruction to the group's address; the wallet funds and signs.
    let instruction = encode_instruction(&InInstruction { account: [9; 32] });
    let unfunded = node
        .call("createrawtransaction", json!([[], [{ address.clone(): 1.0 }, { "data": hex::encode(&instruction) }]]))
        .await;
    let funded = node.call("fundrawtransaction", json!([unfunded])).await;
    let signed = node.call("signrawtransactionwithwallet", json!([text(&funded, "hex")])).await;
    assert_eq!(signed.get("complete"), Some(&json!(true)), "{signed}");
    node.call("sendrawtransaction", json!([text(&signed, "hex")])).await;
    mine(1 + CONFIRMATIONS).await;
    let deposit_final = Instant::now();
    cluster.wait("the deposit's Batch", Duration::from_secs(60), |c| c.signed_batches().count() == 1).await;
    println!("deposit final -> signed Batch: {} ms", deposit_final.elapsed().as_millis());
    let (batch, _) =
        cluster.coordinator.read(|c| c.signed_batches().next().map(|(b, s)| (b.clone(), *s)).expect("one Batch"));
    assert_eq!(batch.instructions, vec![(InInstruction { account: [9; 32] }, Amount(100_000_000))]);

    // A Burn of 0.3 LTC to a wallet address: the group signs, litecoind accepts and mines.
    let receiver = node.call("getnewaddress", json!(["", "bech32"])).await;
    let receiver = receiver.as_str().expect("an address").to_string();
    let receiver_script = text(&node.call("validateaddress", json!([receiver])).await, "scriptPubKey");
    let burn =
        Burn { id: [5; 32], destination: hex::decode(&receiver_script).expect("hex"), amount: Amount(30_000_000) };
    // Regtest has no fee estimates; 20 sat/vB clears Litecoin's relay minimum.
    cluster.coordinator.act(|c| c.burn(ExternalChain::Bitcoin, vec![burn], 20));
    let started = Instant::now();
    let received = loop {
        mine(1).await;
        let received = node.call("getreceivedbyaddress", json!([receiver, 1])).await;
        let received = (received.as_f64().unwrap_or(0.0) * 100_000_000.0).round() as u64;
        if received > 0 {
            break received;
        }
        if started.elapsed() > Duration::from_secs(120) {
            cluster.fail("the Burn was not paid on litecoind");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(received <= 30_000_000 && received > 29_000_000, "paid {received} for a Burn of 30,000,000");
    println!("Burn paid on litecoind: {received} litoshi after {} ms", started.elapsed().as_millis());

    // The payment is a key-path spend of the group's output, and every daemon sees it final.
    mine(CONFIRMATIONS).await;
    let completed = Instant::now();
    while cluster.daemons.iter().any(|d| d.metric("processor_plans_completed") != Some(1)) {
        if completed.elapsed() > Duration::from_secs(60) {
            cluster.fail("the daemons did not see the payment final");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // `processor inspect` reads a running daemon's store: keys active, the Batch signed, the
    // plan completed with its Burn.
    let report = processor::inspect::inspect(&dir.path().join("processor-0")).expect("the running store reads");
    println!("processor inspect on a running daemon:\n{}", report.human());
    assert!(report.active_session.is_some() && report.halted.is_none(), "{report:?}");
    assert!(report.batches.signed >= 1 && report.plans.completed == 1 && report.burns.planned == 1, "{report:?}");
    assert!(report.plans.listed.iter().any(|plan| plan.state == "completed" && plan.burns.len() == 1), "{report:?}");
    let transactions = node.call("listtransactions", json!(["*", 10])).await;
    let txid = transactions
        .as_array()
        .and_then(|list| list.iter().find(|t| t.get("address") == Some(&json!(receiver))))
        .map(|t| text(t, "txid"))
        .expect("the wallet lists the payment");
    let wallet_view = node.call("gettransaction", json!([txid])).await;
    assert!(
        wallet_view.get("confirmations").and_then(Value::as_u64).is_some_and(|n| n > CONFIRMATIONS),
        "{wallet_view}"
    );
    let payment: Transaction = bitcoin::consensus::encode::deserialize_hex(&text(&wallet_view, "hex"))
        .expect("litecoind's transaction parses");
    assert!(
        payment.input.iter().all(|input| input.witness.len() == 1 && input.witness[0].len() == 64),
        "key-path spends"
    );

    // Steady memory while following the chain: more blocks, then each daemon's RSS.
    for _ in 0..30 {
        mine(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss: Vec<u64> = cluster.daemons.iter().filter_map(|d| d.process.rss_kib()).collect();
    println!("daemon resident memory while following litecoind (KiB): {rss:?}");
    assert_eq!(rss.len(), 4);

    let mut cluster = cluster;
    for (index, daemon) in cluster.daemons.iter_mut().enumerate() {
        assert!(daemon.process.terminate(Duration::from_secs(20)), "processor {index} stops cleanly");
    }
    cluster.stop_coordinator().await;
}
