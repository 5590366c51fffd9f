//! The Bitcoin Core JSON-RPC client against the mock chain served in that dialect: honest
//! answers are the chain's blocks byte for byte; a node that returns garbage, another block,
//! a height it does not have, wrong credentials or no answer at all produces errors, never a
//! panic or a wrong block.

use mock_chains::bitcoin::rpc::{Behaviour, RpcNode};
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor::rpc::bitcoin::BitcoinRpc;
use processor::rpc::RpcError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn chain() -> Arc<Mutex<MockBitcoin>> {
    Arc::new(Mutex::new(mock_chains::bitcoin::funded_chain(71, 6).0))
}

#[tokio::test]
async fn an_honest_node_serves_the_chain() {
    let chain = chain();
    let node = RpcNode::start(chain.clone(), "user", "secret").await.unwrap();
    let rpc = BitcoinRpc::new(node.address.clone(), Some(("user", "secret")), Duration::from_secs(5));
    assert_eq!(rpc.block_count().await.unwrap(), 6);
    for height in 0..=6 {
        let expected = chain.lock().unwrap().block_bytes(height).unwrap();
        assert_eq!(rpc.block(height).await.unwrap(), expected);
    }
    assert!(rpc.estimate_smart_fee(2).await.unwrap() >= 1);
    // A transaction the chain accepts is accepted through RPC, with its txid.
    let transaction = {
        let chain = chain.lock().unwrap();
        let recipient = Depositor::new(72).script_pubkey().to_owned();
        Depositor::new(71).deposit(&chain, &recipient, bitcoin::Amount::from_sat(50_000), None).unwrap()
    };
    let txid = rpc.send_raw_transaction(&bitcoin::consensus::serialize(&transaction)).await.unwrap();
    assert_eq!(txid, bitcoin::hashes::Hash::to_byte_array(transaction.compute_txid()));
    // The node's own errors come back as such.
    assert!(matches!(rpc.send_raw_transaction(&[1, 2, 3]).await, Err(RpcError::Node { code: -22, .. })));
    assert!(matches!(rpc.block(1_000).await, Err(RpcError::Node { code: -8, .. })));
}

#[tokio::test]
async fn a_lying_node_produces_errors_not_wrong_blocks() {
    let chain = chain();
    let node = RpcNode::start(chain.clone(), "user", "secret").await.unwrap();
    let rpc = BitcoinRpc::new(node.address.clone(), Some(("user", "secret")), Duration::from_millis(500));

    node.set_behaviour(Behaviour::WrongBlock);
    assert!(matches!(rpc.block(2).await, Err(RpcError::Malformed(_))), "another block was accepted");

    node.set_behaviour(Behaviour::Garbage);
    assert!(matches!(rpc.block_count().await, Err(RpcError::Malformed(_))));
    assert!(matches!(rpc.block(2).await, Err(RpcError::Malformed(_))));

    node.set_behaviour(Behaviour::WrongHeight);
    let claimed = rpc.block_count().await.unwrap();
    assert!(matches!(rpc.block(claimed).await, Err(RpcError::Node { .. })), "a block the node does not have");

    node.set_behaviour(Behaviour::Stall);
    assert_eq!(rpc.block_count().await, Err(RpcError::Timeout));

    node.set_behaviour(Behaviour::Honest);
    let wrong = BitcoinRpc::new(node.address.clone(), Some(("user", "wrong")), Duration::from_secs(5));
    assert_eq!(wrong.block_count().await, Err(RpcError::Unauthorized));
    let nobody = BitcoinRpc::new("127.0.0.1:1", None, Duration::from_secs(5));
    assert!(matches!(nobody.block_count().await, Err(RpcError::Connection(_))));
    assert_eq!(rpc.block_count().await.unwrap(), 6);
}
