//! The daemon's chain sources: the core's [`processor_core::core::Effect`]s performed against a node's
//! RPC. Every reply is validated by the RPC clients or by the core itself (a block is parsed and
//! checked to build on the last one before anything is reported), so a lying node produces
//! errors, never a wrong report.

use crate::rpc::bitcoin::BitcoinRpc;
use crate::rpc::RpcError;
use monero_simple_request_rpc::prelude::*;
use monero_simple_request_rpc::SimpleRequestTransport;
use processor_core::chain::monero::MoneroBlockData;
use processor_core::transaction::monero::DecoyRequest;
use std::future::Future;
use std::time::Duration;

/// What the daemon needs from a node.
pub trait NodeSource: Send + Sync {
    /// The best chain's height (the top block's number).
    fn tip(&self) -> impl Future<Output = Result<u64, RpcError>> + Send;
    /// The block at `height`, in the form the core scans.
    fn block(&self, height: u64) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send;
    /// Hands a signed transaction to the network.
    fn publish(&self, transaction: &[u8]) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// Monero: the rings of a plan's inputs.
    fn select_decoys(&self, request: &DecoyRequest) -> impl Future<Output = Result<Vec<Vec<u8>>, RpcError>> + Send;
}

/// A Bitcoin Core-family node (bitcoind, litecoind).
pub struct BitcoinSource(pub BitcoinRpc);

impl NodeSource for BitcoinSource {
    async fn tip(&self) -> Result<u64, RpcError> {
        self.0.block_count().await
    }
    async fn block(&self, height: u64) -> Result<Vec<u8>, RpcError> {
        self.0.block(height).await
    }
    async fn publish(&self, transaction: &[u8]) -> Result<(), RpcError> {
        self.0.send_raw_transaction(transaction).await.map(|_| ())
    }
    async fn select_decoys(&self, _request: &DecoyRequest) -> Result<Vec<Vec<u8>>, RpcError> {
        Err(RpcError::Malformed("Bitcoin has no rings".into()))
    }
}

/// A monerod, through monero-oxide's RPC crates.
pub struct MoneroSource {
    rpc: MoneroDaemon<SimpleRequestTransport>,
}

fn interface_error(what: &str, error: impl std::fmt::Debug) -> RpcError {
    let text = format!("{what}: {error:?}");
    // monero-oxide reports connection failures as `InterfaceError`s too; tell them apart so the
    // operator sees "cannot reach" rather than "lies".
    if text.contains("Connection") || text.contains("connect") || text.contains("timed out") {
        RpcError::Connection(text)
    } else {
        RpcError::Malformed(text)
    }
}

impl MoneroSource {
    /// `url` like `http://user:password@127.0.0.1:18081` (digest authentication if given).
    pub async fn connect(url: &str, timeout: Duration) -> Result<MoneroSource, RpcError> {
        let rpc = SimpleRequestTransport::with_custom_timeout(url.to_string(), timeout)
            .await
            .map_err(|e| interface_error("connecting to monerod", e))?;
        Ok(MoneroSource { rpc })
    }
}

impl NodeSource for MoneroSource {
    async fn tip(&self) -> Result<u64, RpcError> {
        let number = self.rpc.latest_block_number().await.map_err(|e| interface_error("latest block", e))?;
        Ok(number as u64)
    }

    async fn block(&self, height: u64) -> Result<Vec<u8>, RpcError> {
        let number = usize::try_from(height).map_err(|_| RpcError::Malformed("height out of range".into()))?;
        // The scannable block carries the first RingCT output's index; the full transactions
        // come separately (the scannable block's are pruned). The core checks the transactions
        // against the block's list.
        let scannable =
            self.rpc.scannable_block_by_number(number).await.map_err(|e| interface_error("scannable block", e))?;
        let hashes = scannable.block.transactions.clone();
        let transactions = self.rpc.transactions(&hashes).await.map_err(|e| interface_error("transactions", e))?;
        let data =
            MoneroBlockData::new(&scannable.block, &transactions, scannable.output_index_for_first_ringct_output);
        Ok(data.encode())
    }

    async fn publish(&self, transaction: &[u8]) -> Result<(), RpcError> {
        let transaction = monero_wallet::transaction::Transaction::read(&mut &*transaction)
            .map_err(|e| RpcError::Malformed(format!("not a transaction: {e}")))?;
        self.rpc
            .publish_transaction(&transaction)
            .await
            .map_err(|e| RpcError::Node { code: 0, message: format!("{e:?}") })
    }

    async fn select_decoys(&self, request: &DecoyRequest) -> Result<Vec<Vec<u8>>, RpcError> {
        processor_core::transaction::monero::select_decoys(&self.rpc, request).await.map_err(RpcError::Malformed)
    }
}

/// A chain in this process (the devnet's mock Monero chain, tests), behind the same interface.
pub struct InMemorySource<C: processor_core::chain::ChainSource + Send + Sync>(pub C);

impl<C: processor_core::chain::ChainSource + Send + Sync> NodeSource for InMemorySource<C> {
    async fn tip(&self) -> Result<u64, RpcError> {
        Ok(self.0.tip())
    }
    async fn block(&self, height: u64) -> Result<Vec<u8>, RpcError> {
        self.0.block_bytes(height).ok_or(RpcError::Node { code: -8, message: format!("no block at height {height}") })
    }
    async fn publish(&self, transaction: &[u8]) -> Result<(), RpcError> {
        self.0.publish(transaction).map_err(|message| RpcError::Node { code: -26, message })
    }
    async fn select_decoys(&self, request: &DecoyRequest) -> Result<Vec<Vec<u8>>, RpcError> {
        self.0.select_decoys(request).map_err(RpcError::Malformed)
    }
}
